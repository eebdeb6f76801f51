//! The HTTP side: the accept loop (hyper, HTTP/1.1), request recording, injected latency and
//! faults, discovery/OpenAPI/version endpoints, dispatch to [`crate::api`], and WATCH streams.

use crate::api::{self, Answer, ApiRequest, Target};
use crate::errors::ApiError;
use crate::store::{Event, EventType, Store};
use crate::{Fault, RequestRecord, Rollout};
use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Request, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

/// Requests kept for [`crate::SimHandle::requests`]; the older half is dropped beyond this.
const MAX_RECORDED_REQUESTS: usize = 100_000;

/// Fault-injection state.
#[derive(Debug, Default)]
pub struct Faults {
    /// Faults for the next requests, in order.
    pub queue: VecDeque<Fault>,
    /// Faults for the next requests of one HTTP method (`DELETE`, ...), in order; before `queue`.
    pub by_method: HashMap<String, VecDeque<Fault>>,
    /// Faults for the next requests of one method and path (no query), in order; before
    /// `by_method`.
    pub by_path: HashMap<(String, String), VecDeque<Fault>>,
    /// Random faults: percent of requests, and the faults to pick from.
    pub rate: Option<(u8, Vec<Fault>)>,
    /// Pseudo-random state for `rate`.
    pub seed: u64,
}

/// State shared by the server, the controllers and every [`crate::SimHandle`].
pub struct Shared {
    /// The objects.
    pub store: Mutex<Store>,
    /// Faults to inject.
    pub faults: Mutex<Faults>,
    /// Every request received.
    pub requests: Mutex<Vec<RequestRecord>>,
    /// Scripted rollout outcomes by (namespace, name).
    pub scripts: Mutex<HashMap<(String, String), Rollout>>,
    /// The simulated network round-trip time: added to every response, and to every event a
    /// WATCH streams (see [`crate::Options::latency`]).
    pub latency: Mutex<Duration>,
    /// Delay before simulated workloads become healthy.
    pub rollout_delay: Duration,
    /// Interval between watch bookmarks.
    pub bookmark_interval: Duration,
    /// The bearer token every request must carry, if any.
    pub token: Option<String>,
    /// Flips to `true` when the simulator stops.
    pub shutdown: watch::Sender<bool>,
}

/// Locks a mutex, recovering from poisoning (a panicked request must not stop the server).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The error that makes hyper close a connection without answering (fault `Drop`).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
pub struct DroppedConnection;

/// Serves connections until shutdown.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let shared = shared.clone();
        let mut connection_shutdown = shared.shutdown.subscribe();
        tokio::spawn(async move {
            let service_shared = shared.clone();
            let service =
                hyper::service::service_fn(move |request| respond(service_shared.clone(), request));
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = connection_shutdown.changed() => {}
            }
        });
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut output = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        output.push(byte);
                        index += 3;
                        continue;
                    }
                    Err(_) => output.push(b'%'),
                }
            }
            b'+' => output.push(b' '),
            byte => output.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&output).into_owned()
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn text_response(code: u16, text: String, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    let mut response = json_response(error.code, &error.status());
    if let Some(seconds) = error.retry_after
        && let Ok(value) = hyper::header::HeaderValue::from_str(&seconds.to_string())
    {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, value);
    }
    response
}

/// Whether an `Authorization` header value satisfies the configured bearer token. Like
/// kube-apiserver's bearer authenticator: scheme `Bearer` in any case, one space, the token.
/// Every request passes when no token is configured.
fn authorized(token: Option<&str>, authorization: &str) -> bool {
    let Some(expected) = token else {
        return true;
    };
    let Some((scheme, presented)) = authorization.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let presented = presented.trim_start();
    // Compare without an early exit, so timing does not reveal a matching prefix.
    presented.len() == expected.len()
        && presented
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |difference, (left, right)| difference | (left ^ right))
            == 0
}

fn next_fault(shared: &Shared, method: &str, path: &str) -> Option<Fault> {
    let mut faults = lock(&shared.faults);
    if !faults.by_path.is_empty()
        && let Some(fault) = faults
            .by_path
            .get_mut(&(method.to_string(), path.to_string()))
            .and_then(VecDeque::pop_front)
    {
        return Some(fault);
    }
    if let Some(fault) = faults
        .by_method
        .get_mut(method)
        .and_then(VecDeque::pop_front)
    {
        return Some(fault);
    }
    if let Some(fault) = faults.queue.pop_front() {
        return Some(fault);
    }
    let (percent, choices) = faults.rate.clone()?;
    if choices.is_empty() {
        return None;
    }
    // xorshift64*
    let mut seed = faults.seed.max(1);
    seed ^= seed >> 12;
    seed ^= seed << 25;
    seed ^= seed >> 27;
    faults.seed = seed;
    let random = seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    if (random % 100) < u64::from(percent) {
        Some(choices[((random >> 32) % choices.len() as u64) as usize].clone())
    } else {
        None
    }
}

async fn respond(
    shared: Arc<Shared>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, DroppedConnection> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = parse_query(&raw_query);
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let content_type = header(hyper::header::CONTENT_TYPE)
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let user_agent = header(hyper::header::USER_AGENT);
    let authorized = authorized(
        shared.token.as_deref(),
        &header(hyper::header::AUTHORIZATION),
    );
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let method = parts.method.as_str().to_string();
    let accept = header(hyper::header::ACCEPT);
    let request = ApiRequest {
        method: method.clone(),
        query,
        content_type,
        user_agent,
        accept,
        body,
    };
    {
        let mut requests = lock(&shared.requests);
        if requests.len() >= MAX_RECORDED_REQUESTS {
            requests.drain(..MAX_RECORDED_REQUESTS / 2);
        }
        requests.push(RequestRecord {
            method: method.clone(),
            path: path.clone(),
            query: raw_query,
            dry_run: request.dry_run(),
            content_type: request.content_type.clone(),
            field_manager: request.query.get("fieldManager").cloned(),
            watch: is_watch(&request),
        });
    }
    // The round trip, on this request's own task: concurrent requests (one connection each, as
    // HTTP/1.1 clients do) wait side by side, as they would on a network.
    let latency = *lock(&shared.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if !authorized {
        return Ok(error_response(&ApiError::unauthorized()));
    }
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    if let Some(response) = fixed_endpoint(&shared, &segments) {
        return Ok(response);
    }
    if let Some(fault) = next_fault(&shared, &method, &path) {
        return match fault {
            Fault::Drop => Err(DroppedConnection),
            Fault::Status500 => Ok(error_response(&ApiError::internal(
                "injected fault: internal error",
            ))),
            Fault::TooManyRequests { retry_after_secs } => Ok(error_response(
                &ApiError::too_many_requests(retry_after_secs),
            )),
            Fault::Conflict409 => Ok(error_response(&ApiError::injected_conflict())),
            Fault::Forbidden403 => Ok(error_response(&ApiError::forbidden(
                "injected fault: forbidden",
            ))),
        };
    }
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Ok(error_response(&ApiError::path_not_found())),
    };
    let target = {
        let store = lock(&shared.store);
        api::route(&store, group, version, rest)
    };
    let target = match target {
        Ok(target) => target,
        Err(error) => return Ok(error_response(&error)),
    };
    if request.method == "GET" && target.name.is_none() && is_watch(&request) {
        return Ok(start_watch(&shared, target, &request));
    }
    let outcome = {
        let mut store = lock(&shared.store);
        api::handle(&mut store, &target, &request)
    };
    if request.method == "DELETE"
        && target.resource.group.is_empty()
        && target.resource.plural == "namespaces"
        && outcome.is_ok()
        && !request.dry_run()
        && let Some(name) = target.name.clone()
    {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut store = lock(&shared.store);
            api::finish_namespace(&mut store, &name);
        });
    }
    Ok(match outcome {
        Ok(Answer::Json(code, value)) => json_response(code, &value),
        Err(error) => error_response(&error),
    })
}

fn is_watch(request: &ApiRequest) -> bool {
    matches!(
        request.query.get("watch").map(String::as_str),
        Some("true" | "1")
    )
}

fn fixed_endpoint(shared: &Shared, segments: &[&str]) -> Option<Response<Body>> {
    let store = lock(&shared.store);
    let registry = store.registry();
    let answer = match segments {
        ["version"] => json_response(
            200,
            &json!({
                "major": "1", "minor": "37", "gitVersion": "v1.37.0-kubesim", "gitCommit": "kubesim",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
                "compiler": "gc", "platform": "linux/amd64",
            }),
        ),
        ["healthz" | "livez" | "readyz"] => text_response(200, "ok".into(), "text/plain"),
        ["openapi", "v3"] => text_response(200, registry.openapi_index(), "application/json"),
        ["openapi", "v3", rest @ ..] => match registry.openapi_document(&rest.join("/")) {
            Some(document) => text_response(200, document, "application/json"),
            None => error_response(&ApiError::path_not_found()),
        },
        ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _] => {
            match registry.discovery(&segments.join("/")) {
                Some(document) => text_response(200, document, "application/json"),
                None => error_response(&ApiError::path_not_found()),
            }
        }
        _ => return None,
    };
    Some(answer)
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

struct WatchFilter {
    target: Target,
    labels: crate::selectors::Selector,
    fields: crate::selectors::Selector,
}

impl WatchFilter {
    fn matches(&self, object: &Value) -> bool {
        let in_namespace = match (&self.target.namespace, self.target.resource.namespaced) {
            (Some(namespace), true) => {
                object["metadata"]["namespace"].as_str() == Some(namespace.as_str())
            }
            _ => true,
        };
        in_namespace && self.labels.matches_labels(object) && self.fields.matches_fields(object)
    }

    /// The line to send for an event, if any (objects moving out of the selection are DELETED).
    fn line(&self, event: &Event) -> Option<Bytes> {
        if event.storage_key != self.target.resource.storage_key() {
            return None;
        }
        let object = crate::store::parse(&event.object);
        let now = self.matches(&object);
        let before = event
            .previous
            .as_ref()
            .is_some_and(|previous| self.matches(&crate::store::parse(previous)));
        let kind = match (event.kind, before, now) {
            (EventType::Deleted, _, true) => EventType::Deleted,
            (EventType::Deleted, _, false) => return None,
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            _ => return None,
        };
        Some(watch_line(
            kind.as_str(),
            &api::typed(&self.target.resource, &object),
        ))
    }
}

fn start_watch(shared: &Arc<Shared>, target: Target, request: &ApiRequest) -> Response<Body> {
    let (labels, fields) = match api::selectors(request) {
        Ok(selectors) => selectors,
        Err(error) => return error_response(&error),
    };
    let requested = request
        .query
        .get("resourceVersion")
        .cloned()
        .unwrap_or_default();
    let bookmarks = request.query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let send_initial = request.query.get("sendInitialEvents").map(String::as_str) == Some("true");
    let timeout = request
        .query
        .get("timeoutSeconds")
        .and_then(|seconds| seconds.parse::<u64>().ok())
        .map(Duration::from_secs);
    let filter = WatchFilter {
        target,
        labels,
        fields,
    };
    let (sender, receiver) = mpsc::channel::<Bytes>(256);
    let mut backlog: Vec<Bytes> = Vec::new();
    let mut events: broadcast::Receiver<Arc<Event>>;
    let current;
    {
        let store = lock(&shared.store);
        current = store.resource_version;
        events = store.subscribe();
        let version = requested.parse::<u64>().unwrap_or(0);
        if send_initial || requested.is_empty() || requested == "0" {
            let namespace = if filter.target.resource.namespaced {
                filter.target.namespace.as_deref()
            } else {
                None
            };
            for object in store.list(&filter.target.resource.storage_key(), namespace) {
                if filter.matches(&object) {
                    backlog.push(watch_line(
                        "ADDED",
                        &api::typed(&filter.target.resource, &object),
                    ));
                }
            }
            if send_initial && bookmarks {
                backlog.push(watch_line(
                    "BOOKMARK",
                    &json!({"kind": filter.target.resource.kind, "apiVersion": filter.target.resource.api_version(),
                        "metadata": {"resourceVersion": current.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}}),
                ));
            }
        } else if version < store.compacted {
            let error = ApiError::expired(version, store.compacted + 1);
            backlog.push(watch_line("ERROR", &error.status()));
            return stream_response(backlog, None);
        } else {
            for event in store.events_since(version) {
                if let Some(line) = filter.line(&event) {
                    backlog.push(line);
                }
            }
        }
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        for line in backlog {
            if sender.send(line).await.is_err() {
                return;
            }
        }
        let mut shutdown = shared.shutdown.subscribe();
        let mut ticker = tokio::time::interval(shared.bookmark_interval);
        ticker.tick().await;
        let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(3600 * 24)));
        tokio::pin!(deadline);
        // Lines on their way to the client, each with the instant it arrives there: the event's
        // time plus the latency, so a slow link delays every event without piling the delays up,
        // and this watch keeps receiving (and other watches keep streaming) meanwhile.
        let mut in_flight = InFlight::default();
        loop {
            let next_arrival = in_flight.next_arrival();
            tokio::select! {
                received = events.recv() => match received {
                    Ok(event) => {
                        if event.version <= current { continue; }
                        if let Some(line) = filter.line(&event)
                            && !in_flight.send(&shared, &sender, line).await { return; }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let error = ApiError::expired(current, current + 1);
                        let _ = sender.send(watch_line("ERROR", &error.status())).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(next_arrival.unwrap_or_else(tokio::time::Instant::now)),
                    if next_arrival.is_some() => {
                    if !in_flight.deliver_due(&sender).await { return; }
                }
                _ = ticker.tick(), if bookmarks => {
                    let version = lock(&shared.store).resource_version;
                    let bookmark = json!({"kind": filter.target.resource.kind, "apiVersion": filter.target.resource.api_version(),
                        "metadata": {"resourceVersion": version.to_string()}});
                    if !in_flight.send(&shared, &sender, watch_line("BOOKMARK", &bookmark)).await { return; }
                }
                _ = &mut deadline => return,
                _ = sender.closed() => return,
                _ = shutdown.changed() => return,
            }
        }
    });
    stream_response(Vec::new(), Some(receiver))
}

/// The lines of one WATCH delayed by the simulated latency, oldest first.
#[derive(Default)]
struct InFlight {
    lines: VecDeque<(tokio::time::Instant, Bytes)>,
}

impl InFlight {
    /// When the oldest line in flight reaches the client.
    fn next_arrival(&self) -> Option<tokio::time::Instant> {
        self.lines.front().map(|(arrival, _)| *arrival)
    }

    /// Sends `line` now (no latency and nothing in flight) or puts it in flight; `false` once
    /// the client is gone.
    async fn send(&mut self, shared: &Shared, sender: &mpsc::Sender<Bytes>, line: Bytes) -> bool {
        let latency = *lock(&shared.latency);
        if latency.is_zero() && self.lines.is_empty() {
            return sender.send(line).await.is_ok();
        }
        self.lines
            .push_back((tokio::time::Instant::now() + latency, line));
        true
    }

    /// Sends every line whose arrival time has come; `false` once the client is gone.
    async fn deliver_due(&mut self, sender: &mpsc::Sender<Bytes>) -> bool {
        let now = tokio::time::Instant::now();
        while self.next_arrival().is_some_and(|arrival| arrival <= now) {
            if let Some((_, line)) = self.lines.pop_front()
                && sender.send(line).await.is_err()
            {
                return false;
            }
        }
        true
    }
}

fn stream_response(backlog: Vec<Bytes>, receiver: Option<mpsc::Receiver<Bytes>>) -> Response<Body> {
    let initial = futures::stream::iter(
        backlog
            .into_iter()
            .map(Ok::<Bytes, std::convert::Infallible>),
    );
    let live = futures::stream::unfold(receiver, |receiver| async move {
        let mut receiver = receiver?;
        let line = receiver.recv().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(line), Some(receiver)))
    });
    use futures::StreamExt;
    let mut response = Response::new(Body::from_stream(initial.chain(live)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
