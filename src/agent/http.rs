//! The agent's HTTP server: probes, metrics, status and the push webhook.
//!
//! - `GET /healthz`: 200 `ok` while the reconcile loop ticks, else 503 with the reason
//!   ([`crate::agent::state::Liveness`]);
//! - `GET /readyz`: 200 `ready` once [`AgentState::ready`], else 503 `not ready`;
//! - `GET /metrics`: [`Metrics::encode`](crate::agent::metrics::Metrics::encode) of the current
//!   status, in OpenMetrics text when the `Accept` header prefers it (as Prometheus asks), else
//!   in the classic text format 0.0.4 ([`metrics::Format::negotiate`]);
//! - `GET /status`: the leader's [`Status`] as JSON (see "Followers" below);
//! - `GET /status/self`: this replica's own status;
//! - `GET /status/objects`: the leader's [`EnvironmentView`] of the objects as JSON (health,
//!   sync state, children, drift lines, the last deploy records); `null` before its first heal
//!   and on a follower;
//! - `GET /`: both as an HTML page ([`page`]: no script, no external assets, every string
//!   escaped, since commit subjects, names and errors are user text; a Content-Security-Policy
//!   that allows no script, frame, form or base);
//! - `POST /hooks/git`: a push webhook, authenticated by GitHub's `X-Hub-Signature-256` (an
//!   HMAC-SHA256 of the body keyed with `GITSHIP_WEBHOOK_SECRET`) or GitLab's `X-Gitlab-Token`
//!   (equal to `GITSHIP_GITLAB_TOKEN`). An authenticated hook pulls [`AgentState::trigger`] (the
//!   loop fetches now) and gets 202; anything else gets 401 and changes nothing.
//!
//! The webhook secrets are never served or logged; they are compared in constant time.
//!
//! **Followers.** Every replica is ready and sits behind the one Service, so any of them may get
//! a webhook or a status request. A follower forwards an authenticated webhook to the leader's
//! address (which the leader publishes in its status, see [`crate::agent::leader`]) and answers
//! what the leader answered; the forwarded request carries no secret of the original, only
//! [`FORWARD_SIGNATURE_HEADER`], an HMAC of the body keyed with the shared webhook secret, so a
//! wrong address in the ConfigMap learns nothing. `/` and `/status` on a follower show the
//! leader's (from the leader, else as last published).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::agent::metrics;
use crate::agent::page;
use crate::agent::state::{AgentState, EnvironmentView, Status, SyncState};

/// The largest request body accepted; beyond: 413. A push event is usually a few KiB (the body
/// is only signed, never parsed); a push of very many commits can exceed this, and then the agent
/// finds it at its next poll instead.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The environment variable holding the GitHub webhook's HMAC secret.
pub const GITHUB_SECRET_VARIABLE: &str = "GITSHIP_WEBHOOK_SECRET";

/// The environment variable holding the GitLab webhook's token.
pub const GITLAB_TOKEN_VARIABLE: &str = "GITSHIP_GITLAB_TOKEN";

/// GitHub's signature header: `sha256=<hex HMAC-SHA256 of the body>`.
const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// GitLab's secret token header.
const GITLAB_TOKEN_HEADER: &str = "x-gitlab-token";

/// A webhook a follower forwarded: `sha256=<hex HMAC-SHA256 of the body>`, keyed with the
/// GitHub secret when one is configured, else with the GitLab token.
pub const FORWARD_SIGNATURE_HEADER: &str = "x-gitship-forward-signature-256";

/// The identity of the follower that forwarded a webhook.
const FORWARDED_BY_HEADER: &str = "x-gitship-forwarded-by";

/// How long a follower waits for the leader (a forwarded webhook, its status).
const LEADER_TIMEOUT: Duration = Duration::from_secs(2);

type HmacSha256 = Hmac<Sha256>;

/// What one client may hold of the server, so that no number of idle or slow connections can
/// take the descriptors the agent needs for its own work (Git fetches, the API server) or stop
/// `/healthz` from answering.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; beyond, new ones wait in the listen backlog (no descriptor
    /// is taken for them) until one closes. Well below the usual 1,024 descriptors, which leaves
    /// the rest to the agent.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long one connection may live (slow bodies, idle keep-alive): closed after it.
    pub connection_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(60),
        }
    }
}

/// How long a shutdown waits for the requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serve until `shutdown` completes, then finish the requests in flight and return.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AgentState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_with(listener, state, shutdown, Limits::default()).await
}

/// [`serve`] within `limits`: its own accept loop, which takes a connection only while fewer
/// than `max_connections` are open, gives each one `header_timeout` for its headers and
/// `connection_timeout` in all, and on shutdown stops accepting and lets the requests in flight
/// finish (for up to 5 seconds).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: Arc<AgentState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> Result<()> {
    let address = listener
        .local_addr()
        .context("cannot read the agent's HTTP listen address")?;
    tracing::debug!("agent HTTP server listening on {address}");
    let service = hyper_util::service::TowerToHyperService::new(router(state));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else { break };
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a reset before accept: wait, then go on.
                    tracing::debug!(%error, "agent HTTP server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let connection = graceful
            .watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone()));
        let lifetime = limits.connection_timeout;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(lifetime, connection).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    Ok(())
}

/// Every route, on `state`.
fn router(state: Arc<AgentState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status_json))
        .route("/status/self", get(own_status_json))
        .route("/status/objects", get(objects_json))
        .route("/hooks/git", post(git_hook))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn healthz(State(state): State<Arc<AgentState>>) -> (StatusCode, String) {
    match state.liveness_problem() {
        None => (StatusCode::OK, "ok\n".into()),
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, format!("{problem}\n")),
    }
}

async fn readyz(State(state): State<Arc<AgentState>>) -> (StatusCode, &'static str) {
    if state.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_text(
    State(state): State<Arc<AgentState>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    // Every `Accept` header counts, as one list; a value that is not text is left out.
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let accept = (!accept.is_empty()).then(|| accept.join(","));
    let format = metrics::Format::negotiate(accept.as_deref());
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (header::VARY, HeaderValue::from_static("accept")),
        ],
        state.metrics.encode(&state.status(), format),
    )
}

/// The leader's status: this replica's when it leads (or no leader is known), else the
/// leader's own answer, else what the leader last published.
async fn status_json(State(state): State<Arc<AgentState>>) -> axum::Json<Status> {
    let own = state.status();
    let Some(view) = state.leader_view().filter(|_| !own.leader) else {
        return axum::Json(own);
    };
    if let Some(address) = &view.address
        && let Some((StatusCode::OK, body)) = from_leader(address, "/status").await
        && let Ok(status) = serde_json::from_slice::<Status>(&body)
    {
        return axum::Json(status);
    }
    axum::Json(view.status)
}

async fn own_status_json(State(state): State<Arc<AgentState>>) -> axum::Json<Status> {
    axum::Json(state.status())
}

/// `GET {address}{path}` of the leader, within [`LEADER_TIMEOUT`]; its status and body.
async fn from_leader(address: &str, path: &str) -> Option<(StatusCode, Bytes)> {
    let client = reqwest::Client::builder()
        .timeout(LEADER_TIMEOUT)
        .build()
        .ok()?;
    let response = client.get(format!("{address}{path}")).send().await.ok()?;
    let status = StatusCode::from_u16(response.status().as_u16()).ok()?;
    let body = response.bytes().await.ok()?;
    Some((status, Bytes::from(body.to_vec())))
}

async fn objects_json(State(state): State<Arc<AgentState>>) -> Response {
    let view = state.view();
    let view: Option<&EnvironmentView> = view.as_deref();
    axum::Json(view).into_response()
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

async fn index(State(state): State<Arc<AgentState>>) -> Response {
    let own = state.status();
    let now = chrono::Utc::now();
    let html = match state.leader_view().filter(|_| !own.leader) {
        Some(view) => {
            let answered = match &view.address {
                Some(address) => from_leader(address, "/").await,
                None => None,
            };
            match answered {
                Some((StatusCode::OK, body)) => String::from_utf8_lossy(&body).into_owned(),
                _ => page::status_page(&view.status, None, now),
            }
        }
        None => page::status_page(&own, state.view().as_deref(), now),
    };
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    // The page has no script and loads nothing: say so, so that an escaping bug cannot run one.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(page::POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Which webhook authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HookKind {
    GitHub,
    GitLab,
    /// Forwarded by a follower ([`FORWARD_SIGNATURE_HEADER`]).
    Forwarded,
}

impl HookKind {
    fn as_str(self) -> &'static str {
        match self {
            HookKind::GitHub => "github",
            HookKind::GitLab => "gitlab",
            HookKind::Forwarded => "forwarded",
        }
    }
}

/// Why a webhook request was refused; the message is the response body (it never holds a
/// secret or what the request sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HookRejection {
    /// Neither secret is configured.
    Disabled,
    /// A GitHub signature came, but no GitHub secret is configured.
    GitHubDisabled,
    /// A GitLab token came, but no GitLab token is configured.
    GitLabDisabled,
    /// Neither header came.
    Unauthenticated,
    /// `X-Hub-Signature-256` is not `sha256=<hex>`.
    MalformedSignature,
    /// The signature does not match the body.
    BadSignature,
    /// The GitLab token does not match.
    BadToken,
}

impl HookRejection {
    fn status(self) -> StatusCode {
        match self {
            HookRejection::Disabled => StatusCode::NOT_FOUND,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    fn message(self) -> String {
        match self {
            HookRejection::Disabled => format!(
                "webhooks are disabled: set `{GITHUB_SECRET_VARIABLE}` (GitHub HMAC secret) or \
                 `{GITLAB_TOKEN_VARIABLE}` (GitLab token) on the agent\n"
            ),
            HookRejection::GitHubDisabled => format!(
                "GitHub webhooks are disabled: set `{GITHUB_SECRET_VARIABLE}` on the agent\n"
            ),
            HookRejection::GitLabDisabled => format!(
                "GitLab webhooks are disabled: set `{GITLAB_TOKEN_VARIABLE}` on the agent\n"
            ),
            HookRejection::Unauthenticated => {
                "missing `X-Hub-Signature-256` or `X-Gitlab-Token` header\n".to_string()
            }
            HookRejection::MalformedSignature => {
                "malformed `X-Hub-Signature-256`: expected `sha256=<hex>`\n".to_string()
            }
            HookRejection::BadSignature => "bad `X-Hub-Signature-256` signature\n".to_string(),
            HookRejection::BadToken => "bad `X-Gitlab-Token`\n".to_string(),
        }
    }
}

async fn git_hook(
    State(state): State<Arc<AgentState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    match authenticate_hook(&state, &headers, &body) {
        Ok(kind) => {
            let status = state.status();
            if status.leader || status.state != SyncState::Follower {
                tracing::info!(webhook = kind.as_str(), "push webhook: fetching now");
                state.trigger.notify_one();
                return (StatusCode::ACCEPTED, "accepted: fetching now\n".to_string());
            }
            if kind == HookKind::Forwarded {
                // Leadership moved since the follower looked: never forward twice.
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this replica does not lead: the leader finds the commit at its next poll\n"
                        .to_string(),
                );
            }
            forward_hook(&state, &status.identity, &body).await
        }
        Err(rejection) => {
            tracing::warn!("push webhook refused: {}", rejection.message().trim_end());
            (rejection.status(), rejection.message())
        }
    }
}

/// Forward an authenticated webhook to the leader; what it answered.
async fn forward_hook(state: &AgentState, identity: &str, body: &Bytes) -> (StatusCode, String) {
    let unavailable = |why: String| {
        tracing::warn!("push webhook not forwarded: {why}");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "this replica follows, and {why}: the leader finds the commit at its next poll\n"
            ),
        )
    };
    let Some(view) = state.leader_view() else {
        return unavailable("no leader is known yet".to_string());
    };
    let Some(address) = view.address else {
        return unavailable(format!(
            "the leader `{}` publishes no address to forward to",
            view.identity
        ));
    };
    let Some(signature) = forward_signature(state, body) else {
        return unavailable("no webhook secret is configured".to_string());
    };
    let client = match reqwest::Client::builder().timeout(LEADER_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => return unavailable(format!("no HTTP client: {error}")),
    };
    let sent = client
        .post(format!("{address}/hooks/git"))
        .header(FORWARD_SIGNATURE_HEADER, signature)
        .header(FORWARDED_BY_HEADER, identity)
        .header(header::CONTENT_TYPE.as_str(), "application/octet-stream")
        .body(body.to_vec())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let code =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let text = response.text().await.unwrap_or_default();
            tracing::info!(leader = %view.identity, status = %code, "push webhook forwarded to the leader");
            (
                code,
                format!("forwarded to the leader `{}`: {text}", view.identity),
            )
        }
        Err(error) => unavailable(format!(
            "the leader `{}` at {address} did not answer ({})",
            view.identity,
            if error.is_timeout() {
                "timed out"
            } else {
                "unreachable"
            }
        )),
    }
}

/// The forwarded webhook's signature of `body` (see [`FORWARD_SIGNATURE_HEADER`]).
fn forward_signature(state: &AgentState, body: &[u8]) -> Option<String> {
    let key = configured(&state.webhook.github).or(configured(&state.webhook.gitlab))?;
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).ok()?;
    mac.update(body);
    Some(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// A secret, unless unset or empty (an empty HMAC key or token would let anyone in).
fn configured(secret: &Option<String>) -> Option<&str> {
    secret.as_deref().filter(|secret| !secret.is_empty())
}

/// Which webhook sent this request, if its signature or token is right. A request carrying
/// `X-Hub-Signature-256` is judged as GitHub's, whatever else it carries.
fn authenticate_hook(
    state: &AgentState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HookKind, HookRejection> {
    let github = configured(&state.webhook.github);
    let gitlab = configured(&state.webhook.gitlab);
    if github.is_none() && gitlab.is_none() {
        return Err(HookRejection::Disabled);
    }
    if let Some(signature) = headers.get(FORWARD_SIGNATURE_HEADER) {
        let key = github.or(gitlab).ok_or(HookRejection::Disabled)?;
        verify_signature(signature, key, body)?;
        return Ok(HookKind::Forwarded);
    }
    if let Some(signature) = headers.get(GITHUB_SIGNATURE_HEADER) {
        let secret = github.ok_or(HookRejection::GitHubDisabled)?;
        verify_signature(signature, secret, body)?;
        return Ok(HookKind::GitHub);
    }
    if let Some(token) = headers.get(GITLAB_TOKEN_HEADER) {
        let expected = gitlab.ok_or(HookRejection::GitLabDisabled)?;
        if tokens_match(token.as_bytes(), expected.as_bytes()) {
            return Ok(HookKind::GitLab);
        }
        return Err(HookRejection::BadToken);
    }
    Err(HookRejection::Unauthenticated)
}

/// Check `signature` (`sha256=<hex HMAC-SHA256 of body keyed with key>`), in constant time.
fn verify_signature(signature: &HeaderValue, key: &str, body: &[u8]) -> Result<(), HookRejection> {
    let signature = signature
        .to_str()
        .ok()
        .and_then(|value| value.trim().strip_prefix("sha256="))
        .and_then(|hex_digest| hex::decode(hex_digest).ok())
        .ok_or(HookRejection::MalformedSignature)?;
    let mut mac =
        HmacSha256::new_from_slice(key.as_bytes()).map_err(|_| HookRejection::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| HookRejection::BadSignature)
}

/// `given == expected`, in time independent of where they differ and of their lengths: both are
/// reduced to an HMAC of a fixed message, and the tags compared with `verify_slice`.
fn tokens_match(given: &[u8], expected: &[u8]) -> bool {
    const MESSAGE: &[u8] = b"gitship gitlab token";
    let (Ok(mut given_mac), Ok(mut expected_mac)) = (
        HmacSha256::new_from_slice(given),
        HmacSha256::new_from_slice(expected),
    ) else {
        return false;
    };
    given_mac.update(MESSAGE);
    expected_mac.update(MESSAGE);
    let given_tag = given_mac.finalize().into_bytes();
    expected_mac.verify_slice(&given_tag).is_ok()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::sync::oneshot;

    use super::*;
    use crate::agent::state::{Revision, SyncState, WebhookSecrets};

    const GITHUB_SECRET: &str = "github-test-secret";
    const GITLAB_TOKEN: &str = "gitlab-test-token";
    const PUSH: &str = r#"{"ref":"refs/heads/main","after":"0123456789abcdef"}"#;

    /// A running server; dropping it without [`Server::stop`] leaves the task to the runtime.
    struct Server {
        address: SocketAddr,
        state: Arc<AgentState>,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Result<()>>,
    }

    impl Server {
        async fn start(webhook: WebhookSecrets) -> Server {
            Server::start_with(webhook, Limits::default()).await
        }

        async fn start_with(webhook: WebhookSecrets, limits: Limits) -> Server {
            let status = Status::new(
                "production",
                "https://git.example/shop.git",
                "main",
                "agent-0",
            );
            let state = Arc::new(AgentState::new(status, webhook));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a test port");
            let address = listener.local_addr().expect("the test port");
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(serve_with(
                listener,
                state.clone(),
                async move {
                    let _ = stopped.await;
                },
                limits,
            ));
            Server {
                address,
                state,
                stop,
                task,
            }
        }

        async fn with_both_secrets() -> Server {
            Server::start(WebhookSecrets {
                github: Some(GITHUB_SECRET.to_string()),
                gitlab: Some(GITLAB_TOKEN.to_string()),
            })
            .await
        }

        /// Send `head` (request line and headers, without the final blank line) and `body`.
        async fn request(&self, head: &str, body: &[u8]) -> Reply {
            let mut stream = tokio::net::TcpStream::connect(self.address)
                .await
                .expect("connect to the test server");
            let mut request = format!(
                "{head}\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(body);
            stream.write_all(&request).await.expect("send the request");
            let mut response = Vec::new();
            stream
                .read_to_end(&mut response)
                .await
                .expect("read the response");
            Reply::parse(&response)
        }

        async fn get(&self, path: &str) -> Reply {
            self.request(&format!("GET {path} HTTP/1.1"), b"").await
        }

        async fn hook(&self, headers: &[(&str, &str)], body: &str) -> Reply {
            let mut head = "POST /hooks/git HTTP/1.1".to_string();
            for (name, value) in headers {
                head.push_str(&format!("\r\n{name}: {value}"));
            }
            self.request(&head, body.as_bytes()).await
        }

        /// Whether the trigger fires within a short while.
        async fn triggered(&self) -> bool {
            tokio::time::timeout(Duration::from_millis(200), self.state.trigger.notified())
                .await
                .is_ok()
        }

        async fn stop(self) {
            self.stop.send(()).expect("the server is running");
            tokio::time::timeout(Duration::from_secs(5), self.task)
                .await
                .expect("the server stops within 5 seconds")
                .expect("the server task does not panic")
                .expect("the server stops cleanly");
        }
    }

    /// A parsed HTTP/1.1 response.
    #[derive(Debug)]
    struct Reply {
        status: u16,
        /// Header lines, names lowercased.
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn parse(raw: &[u8]) -> Reply {
            let text = String::from_utf8_lossy(raw);
            let (head, body) = text
                .split_once("\r\n\r\n")
                .unwrap_or_else(|| panic!("no end of headers in {text:?}"));
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|code| code.parse().ok())
                .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
            let headers = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
                .collect();
            Reply {
                status,
                headers,
                body: body.to_string(),
            }
        }

        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(header, _)| header == name)
                .map(|(_, value)| value.as_str())
        }
    }

    fn github_signature(secret: &str, body: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn revision(sha: &str) -> Revision {
        Revision {
            sha: sha.to_string(),
            subject: "Add the shop".to_string(),
            author: "Ada <ada@example.com>".to_string(),
        }
    }

    /// The descriptors this process holds.
    fn open_descriptors() -> usize {
        std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
    }

    /// Idle connections that never send a request hold a bounded number of the server's
    /// descriptors, are closed after the header timeout, and never stop `/healthz` answering.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_are_capped_and_timed_out() {
        let limits = Limits {
            max_connections: 8,
            header_timeout: Duration::from_millis(300),
            connection_timeout: Duration::from_secs(5),
        };
        let server = Server::start_with(WebhookSecrets::default(), limits).await;
        let before = open_descriptors();
        let mut idle = Vec::new();
        for _ in 0..64 {
            idle.push(
                tokio::net::TcpStream::connect(server.address)
                    .await
                    .expect("connect"),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // 64 client sockets, and at most 8 accepted by the server (+ a little slack).
        let held = open_descriptors().saturating_sub(before);
        assert!(held <= 64 + 8 + 4, "{held} descriptors for 64 idle clients");
        let started = std::time::Instant::now();
        let reply = tokio::time::timeout(Duration::from_secs(10), server.get("/healthz"))
            .await
            .expect("/healthz answers while idle connections wait");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // The server closed the idle ones it took after the header timeout.
        let mut closed = 0;
        for stream in &mut idle {
            let mut byte = [0u8; 1];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await
            {
                closed += 1;
            }
        }
        assert!(closed >= 8, "only {closed} idle connections were closed");
        drop(idle);
        server.stop().await;
    }

    #[tokio::test]
    async fn healthz_is_ok() {
        let server = Server::with_both_secrets().await;
        let reply = server.get("/healthz").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body.trim(), "ok");
        server.stop().await;
    }

    /// A loop that stopped ticking fails `/healthz` (the kubelet restarts the container).
    #[tokio::test]
    async fn healthz_fails_when_the_loop_stops_ticking() {
        let status = Status::new("production", "https://git.example/r.git", "main", "a");
        let liveness = crate::agent::state::Liveness {
            started: std::time::Instant::now(),
            stale_after: Duration::from_millis(200),
        };
        let state =
            Arc::new(AgentState::new(status, WebhookSecrets::default()).with_liveness(liveness));
        state.tick();
        assert_eq!(healthz(State(state.clone())).await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (code, body) = healthz(State(state.clone())).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("has not ticked for"), "{body}");
        state.tick();
        assert_eq!(healthz(State(state)).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn readyz_waits_for_the_first_fetch() {
        let server = Server::with_both_secrets().await;
        let reply = server.get("/readyz").await;
        assert_eq!(reply.status, 503, "{reply:?}");
        assert_eq!(reply.body.trim(), "not ready");
        server
            .state
            .update(|status| status.git_revision = Some(revision("0123456789abcdef")));
        let reply = server.get("/readyz").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body.trim(), "ready");
        server.stop().await;
    }

    #[tokio::test]
    async fn readyz_is_ready_for_a_follower() {
        let server = Server::with_both_secrets().await;
        server
            .state
            .update(|status| status.state = SyncState::Follower);
        assert_eq!(server.get("/readyz").await.status, 200);
        server.stop().await;
    }

    /// Prometheus's `Accept` gets OpenMetrics; a classic scraper's (or none) the text format
    /// 0.0.4, whose counters a classic parser reads as counters; both carry the environment and
    /// the gauges of the current status.
    #[tokio::test]
    async fn metrics_are_negotiated_by_accept() {
        let server = Server::with_both_secrets().await;
        server.state.metrics.set_revision("0123456789abcdef");
        server.state.update(|status| {
            status.state = SyncState::Synced;
            status.revision = Some(revision("0123456789abcdef"));
            status.git_revision = Some(revision("fedcba9876543210"));
        });
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let reply = server
            .request(
                &format!("GET /metrics HTTP/1.1\r\nAccept: {prometheus}"),
                b"",
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.header("content-type"),
            Some(metrics::OPENMETRICS_CONTENT_TYPE)
        );
        let body = &reply.body;
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(
            body.contains("# TYPE gitship_agent_syncs counter\n"),
            "{body}"
        );
        assert!(
            body.contains(r#"gitship_agent_revision_info{environment="production",revision="0123456789abcdef"} 1"#),
            "{body}"
        );
        for accept in [
            None,
            Some("text/plain;version=0.0.4"),
            Some("*/*"),
            Some("text/plain;version=0.0.4;q=0.9,*/*;q=0.1"),
        ] {
            let head = match accept {
                Some(accept) => format!("GET /metrics HTTP/1.1\r\nAccept: {accept}"),
                None => "GET /metrics HTTP/1.1".to_string(),
            };
            let reply = server.request(&head, b"").await;
            assert_eq!(reply.status, 200, "{accept:?}: {reply:?}");
            assert_eq!(
                reply.header("content-type"),
                Some("text/plain; version=0.0.4; charset=utf-8"),
                "{accept:?}"
            );
            let body = &reply.body;
            assert!(!body.contains("# EOF"), "{accept:?}: {body}");
            assert!(!body.contains("# UNIT"), "{accept:?}: {body}");
            assert!(
                body.contains("# TYPE gitship_agent_syncs_total counter\n"),
                "{accept:?}: {body}"
            );
            assert!(
                body.contains(
                    r#"gitship_agent_syncs_total{environment="production",result="synced"} 0"#
                ),
                "{accept:?}: {body}"
            );
            assert!(
                body.contains(r#"gitship_agent_state{environment="production",state="synced"} 1"#),
                "{accept:?}: {body}"
            );
            assert!(
                body.contains(r#"gitship_agent_out_of_sync{environment="production"} 1"#),
                "{accept:?}: {body}"
            );
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn status_is_json() {
        let server = Server::with_both_secrets().await;
        let reply = server.get("/status").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(
            reply
                .header("content-type")
                .is_some_and(|value| value.starts_with("application/json")),
            "{reply:?}"
        );
        let json: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
        assert_eq!(json["state"], "starting", "{json}");
        let status: Status = serde_json::from_str(&reply.body).expect("a Status");
        assert_eq!(status, server.state.status());
        server.stop().await;
    }

    #[tokio::test]
    async fn index_escapes_user_text() {
        let server = Server::with_both_secrets().await;
        server.state.update(|status| {
            status.last_error = Some("render: <script>alert('x')</script> & \"more\"".to_string());
            status.revision = Some(Revision {
                sha: "abcdef0123456789".to_string(),
                subject: "<b>bold</b> subject".to_string(),
                author: "Eve <eve@example.com>".to_string(),
            });
            status.flapping = vec!["Deployment/web spec.replicas <hpa>".to_string()];
        });
        let reply = server.get("/").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(
            reply
                .header("content-type")
                .is_some_and(|value| value.starts_with("text/html")),
            "{reply:?}"
        );
        let body = &reply.body;
        assert!(!body.contains("<script"), "{body}");
        assert!(!body.contains("<b>"), "{body}");
        assert!(!body.contains("<eve@"), "{body}");
        assert!(
            body.contains(
                "render: &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;"
            ),
            "{body}"
        );
        assert!(body.contains("&lt;b&gt;bold&lt;/b&gt; subject"), "{body}");
        assert!(body.contains(">abcdef0<"), "{body}");
        assert!(body.contains("spec.replicas &lt;hpa&gt;"), "{body}");
        assert!(body.contains("production"), "{body}");
        assert!(body.contains("starting"), "{body}");
        server.stop().await;
    }

    #[tokio::test]
    async fn objects_are_json_once_the_leader_computed_them() {
        let server = Server::with_both_secrets().await;
        let reply = server.get("/status/objects").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body.trim(), "null");
        let view = EnvironmentView {
            time: chrono::Utc::now(),
            revision: "0123456789abcdef".to_string(),
            objects: Vec::new(),
            more_objects: 0,
            counts: Default::default(),
            history: Vec::new(),
            notes: vec!["cannot list pods in web: forbidden".to_string()],
        };
        server.state.set_view(view.clone());
        let reply = server.get("/status/objects").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let served: EnvironmentView = serde_json::from_str(&reply.body).expect("a view");
        assert_eq!(served, view);
        // The status page shows it, under a policy that allows no script.
        let reply = server.get("/").await;
        assert!(
            reply.body.contains("cannot list pods in web: forbidden"),
            "{reply:?}"
        );
        let policy = reply.header("content-security-policy").unwrap_or_default();
        assert!(policy.starts_with("default-src 'none';"), "{policy}");
        assert!(!policy.contains("script-src"), "{policy}");
        server.stop().await;
    }

    #[tokio::test]
    async fn unknown_path_is_not_found() {
        let server = Server::with_both_secrets().await;
        assert_eq!(server.get("/nope").await.status, 404);
        server.stop().await;
    }

    #[tokio::test]
    async fn github_hook_with_the_right_signature_triggers_a_fetch() {
        let server = Server::with_both_secrets().await;
        let signature = github_signature(GITHUB_SECRET, PUSH);
        let reply = server
            .hook(
                &[
                    ("X-GitHub-Event", "push"),
                    ("X-Hub-Signature-256", &signature),
                ],
                PUSH,
            )
            .await;
        assert_eq!(reply.status, 202, "{reply:?}");
        assert!(server.triggered().await, "the trigger fires");
        server.stop().await;
    }

    #[tokio::test]
    async fn github_hook_with_a_wrong_signature_is_refused() {
        let server = Server::with_both_secrets().await;
        let cases = [
            github_signature("another-secret", PUSH),
            // Signed, then the body changed.
            github_signature(GITHUB_SECRET, "{}"),
            "sha256=not-hex".to_string(),
            "sha1=0123".to_string(),
        ];
        for signature in cases {
            let reply = server
                .hook(&[("X-Hub-Signature-256", &signature)], PUSH)
                .await;
            assert_eq!(reply.status, 401, "{signature}: {reply:?}");
            assert!(!reply.body.contains(GITHUB_SECRET), "{reply:?}");
        }
        let reply = server.hook(&[], PUSH).await;
        assert_eq!(reply.status, 401, "{reply:?}");
        assert!(!server.triggered().await, "the trigger does not fire");
        server.stop().await;
    }

    #[tokio::test]
    async fn gitlab_hook_checks_its_token() {
        let server = Server::with_both_secrets().await;
        for wrong in ["gitlab-test-toke", "gitlab-test-tokenx", "", GITHUB_SECRET] {
            let reply = server.hook(&[("X-Gitlab-Token", wrong)], PUSH).await;
            assert_eq!(reply.status, 401, "{wrong:?}: {reply:?}");
            assert!(!reply.body.contains(GITLAB_TOKEN), "{reply:?}");
        }
        assert!(!server.triggered().await, "no fetch for a wrong token");
        let reply = server
            .hook(
                &[
                    ("X-Gitlab-Event", "Push Hook"),
                    ("X-Gitlab-Token", GITLAB_TOKEN),
                ],
                PUSH,
            )
            .await;
        assert_eq!(reply.status, 202, "{reply:?}");
        assert!(server.triggered().await, "the trigger fires");
        server.stop().await;
    }

    #[tokio::test]
    async fn hook_kind_without_a_secret_is_refused() {
        let server = Server::start(WebhookSecrets {
            github: None,
            gitlab: Some(GITLAB_TOKEN.to_string()),
        })
        .await;
        // Signed with the GitLab token as if it were the GitHub secret: still no GitHub secret.
        let signature = github_signature(GITLAB_TOKEN, PUSH);
        let reply = server
            .hook(&[("X-Hub-Signature-256", &signature)], PUSH)
            .await;
        assert_eq!(reply.status, 401, "{reply:?}");
        assert!(reply.body.contains(GITHUB_SECRET_VARIABLE), "{reply:?}");
        assert!(!server.triggered().await, "the trigger does not fire");
        server.stop().await;
    }

    #[tokio::test]
    async fn hooks_without_secrets_are_disabled() {
        let server = Server::start(WebhookSecrets {
            github: Some(String::new()),
            gitlab: None,
        })
        .await;
        // An empty secret counts as none: its HMAC anyone can compute.
        let signature = github_signature("", PUSH);
        let reply = server
            .hook(&[("X-Hub-Signature-256", &signature)], PUSH)
            .await;
        assert_eq!(reply.status, 404, "{reply:?}");
        assert!(reply.body.contains("webhooks are disabled"), "{reply:?}");
        assert!(reply.body.contains(GITHUB_SECRET_VARIABLE), "{reply:?}");
        assert!(reply.body.contains(GITLAB_TOKEN_VARIABLE), "{reply:?}");
        assert!(!server.triggered().await, "the trigger does not fire");
        server.stop().await;
    }

    #[tokio::test]
    async fn hook_body_is_limited() {
        let server = Server::with_both_secrets().await;
        let body = "x".repeat(MAX_BODY_BYTES + 1);
        let signature = github_signature(GITHUB_SECRET, &body);
        let reply = server
            .hook(&[("X-Hub-Signature-256", &signature)], &body)
            .await;
        assert_eq!(reply.status, 413, "{reply:?}");
        assert!(!server.triggered().await, "the trigger does not fire");
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_closes_idle_keep_alive_connections() {
        let server = Server::with_both_secrets().await;
        let mut stream = tokio::net::TcpStream::connect(server.address)
            .await
            .expect("connect to the test server");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("send the request");
        let mut response = [0u8; 512];
        let read = stream.read(&mut response).await.expect("read the response");
        assert!(
            response[..read].starts_with(b"HTTP/1.1 200 "),
            "{:?}",
            String::from_utf8_lossy(&response[..read])
        );
        // The connection stays open (keep-alive), idle: shutdown must not wait for the client.
        server.stop().await;
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response))
            .await
            .expect("the server closes the connection")
            .expect("read the end of the connection");
        assert_eq!(read, 0, "the connection is closed");
    }

    #[test]
    fn tokens_match_only_equal_tokens() {
        assert!(tokens_match(b"token", b"token"));
        assert!(!tokens_match(b"token", b"tokem"));
        assert!(!tokens_match(b"token", b"token2"));
        assert!(!tokens_match(b"", b"token"));
    }
}
