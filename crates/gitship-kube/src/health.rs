//! Health, the way `kubectl rollout status` judges it, evaluated on the object's JSON.
//!
//! - Deployment: `status.observedGeneration >= metadata.generation`, then a `Progressing`
//!   condition with reason `ProgressDeadlineExceeded` is a failure; otherwise ready when
//!   `updatedReplicas == spec.replicas`, no old replicas remain (`replicas == updatedReplicas`)
//!   and `availableReplicas == updatedReplicas`. (kube-runtime's `is_deployment_completed` is not
//!   used: it ignores observedGeneration and would report a stale status as done.)
//! - StatefulSet: observed generation, `readyReplicas` and `updatedReplicas` reach `spec.replicas`,
//!   and `currentRevision == updateRevision` (rolling updates without partition).
//! - DaemonSet: observed generation, `updatedNumberScheduled` and `numberAvailable` reach
//!   `desiredNumberScheduled`.
//! - Job: condition `Complete` is ready, `Failed` is a failure.
//! - PersistentVolumeClaim: `status.phase == Bound`. CustomResourceDefinition: `Established`.
//! - Every other kind is ready once applied.
//!
//! [`wait`] reads each kind and namespace with one LIST and then follows it with a WATCH, so it
//! returns one round trip after the last object becomes ready (or the first fails), or at the
//! timeout; then [`report`] describes each unhealthy object with its conditions and its most
//! recent Events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use serde_json::Value;

use crate::check::Prepared;
use crate::retry::RetryPolicy;

/// The health of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// Still converging; the text says what is awaited.
    Progressing(String),
    /// Will not converge by waiting.
    Failed(String),
}

/// Whether gitship waits for objects of `kind`.
pub fn is_watched(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "PersistentVolumeClaim"
            | "CustomResourceDefinition"
    )
}

fn int(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn condition_is(object: &Value, kind: &str, status: &str) -> bool {
    condition(object, kind)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some(status)
}

fn observed(object: &Value) -> Result<(), Health> {
    let generation = int(object, "/metadata/generation").unwrap_or(0);
    let observed = int(object, "/status/observedGeneration").unwrap_or(-1);
    if observed >= generation {
        Ok(())
    } else {
        Err(Health::Progressing(format!(
            "waiting for the controller to observe generation {generation}"
        )))
    }
}

/// Evaluate the health of an object of `kind`.
pub(crate) fn evaluate(kind: &str, object: &Value) -> Health {
    match kind {
        "Deployment" => deployment(object),
        "StatefulSet" => stateful_set(object),
        "DaemonSet" => daemon_set(object),
        "Job" => job(object),
        "PersistentVolumeClaim" => match object.pointer("/status/phase").and_then(Value::as_str) {
            Some("Bound") => Health::Ready,
            Some("Lost") => Health::Failed("the claim lost its volume (phase Lost)".into()),
            phase => Health::Progressing(format!(
                "waiting for the claim to be Bound (phase {})",
                phase.unwrap_or("unknown")
            )),
        },
        "CustomResourceDefinition" => {
            if condition_is(object, "Established", "True") {
                Health::Ready
            } else {
                Health::Progressing("waiting for the CRD to be Established".into())
            }
        }
        _ => Health::Ready,
    }
}

fn deployment(object: &Value) -> Health {
    if let Err(waiting) = observed(object) {
        return waiting;
    }
    if let Some(progressing) = condition(object, "Progressing")
        && progressing.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
    {
        let message = progressing
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Health::Failed(
            format!("ProgressDeadlineExceeded: {message}")
                .trim_end_matches([' ', ':'])
                .to_string(),
        );
    }
    let desired = int(object, "/spec/replicas").unwrap_or(1);
    let updated = int(object, "/status/updatedReplicas").unwrap_or(0);
    let replicas = int(object, "/status/replicas").unwrap_or(0);
    let available = int(object, "/status/availableReplicas").unwrap_or(0);
    if updated < desired {
        return Health::Progressing(format!(
            "{updated} of {desired} updated replicas are available"
        ));
    }
    if replicas > updated {
        return Health::Progressing(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return Health::Progressing(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    Health::Ready
}

fn stateful_set(object: &Value) -> Health {
    if object
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("OnDelete")
    {
        return Health::Ready;
    }
    if let Err(waiting) = observed(object) {
        return waiting;
    }
    let desired = int(object, "/spec/replicas").unwrap_or(1);
    let ready = int(object, "/status/readyReplicas").unwrap_or(0);
    if ready < desired {
        return Health::Progressing(format!("{ready} of {desired} pods are ready"));
    }
    let partition = int(object, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
    if partition > 0 {
        let updated = int(object, "/status/updatedReplicas").unwrap_or(0);
        return if updated < desired - partition {
            Health::Progressing(format!(
                "{updated} of {} new pods are updated",
                desired - partition
            ))
        } else {
            Health::Ready
        };
    }
    let current = object
        .pointer("/status/currentRevision")
        .and_then(Value::as_str);
    let update = object
        .pointer("/status/updateRevision")
        .and_then(Value::as_str);
    if update.is_some() && current != update {
        return Health::Progressing("waiting for the rolling update to complete".into());
    }
    Health::Ready
}

fn daemon_set(object: &Value) -> Health {
    if object
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("OnDelete")
    {
        return Health::Ready;
    }
    if let Err(waiting) = observed(object) {
        return waiting;
    }
    let desired = int(object, "/status/desiredNumberScheduled").unwrap_or(0);
    let updated = int(object, "/status/updatedNumberScheduled").unwrap_or(0);
    let available = int(object, "/status/numberAvailable").unwrap_or(0);
    if updated < desired {
        return Health::Progressing(format!("{updated} of {desired} updated pods are scheduled"));
    }
    if available < desired {
        return Health::Progressing(format!(
            "{available} of {desired} updated pods are available"
        ));
    }
    Health::Ready
}

fn job(object: &Value) -> Health {
    if condition_is(object, "Failed", "True") {
        let failed = condition(object, "Failed");
        let reason = failed
            .and_then(|c| c.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or("Failed");
        let message = failed
            .and_then(|c| c.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Health::Failed(
            format!("{reason}: {message}")
                .trim_end_matches([' ', ':'])
                .to_string(),
        );
    }
    if condition_is(object, "Complete", "True") {
        return Health::Ready;
    }
    Health::Progressing("waiting for the job to complete".into())
}

/// The outcome of waiting.
#[derive(Debug, Clone)]
pub struct WaitOutcome {
    /// Objects that are not ready, with their last health and last seen JSON.
    pub unhealthy: Vec<(Prepared, Health, Option<Value>)>,
    pub timed_out: bool,
}

/// How long one WATCH asks the server to run (below the client's 60 s read timeout, so a quiet
/// watch ends cleanly and is re-opened from its last resourceVersion).
const WATCH_SECONDS: u32 = 50;

/// The pause before a group is read again when its watch cannot be opened (the server or RBAC
/// refuses WATCH): the wait then polls that group with a LIST at this interval.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How often the wait checks for an interrupt while nothing else happens.
const INTERRUPT_CHECK: Duration = Duration::from_millis(100);

/// What the reader of one group (resource and namespace) tells [`wait`].
enum Update {
    /// A full LIST: the group's live objects by name (the members' names only).
    Listed {
        group: usize,
        objects: BTreeMap<String, Value>,
    },
    /// One watched change: the object now, `None` when it was deleted.
    Changed {
        group: usize,
        name: String,
        object: Option<Value>,
    },
    /// A LIST failed for good (after retries): the wait fails with it.
    Failed(kube::Error),
}

/// The objects of one resource in one namespace (or cluster-wide) that the wait follows.
struct Group<'a> {
    members: Vec<&'a Prepared>,
    /// Member indices by object name.
    by_name: HashMap<String, Vec<usize>>,
    live: Vec<Option<Value>>,
    health: Vec<Health>,
    /// Whether a first LIST has been received.
    listed: bool,
}

impl Group<'_> {
    fn set(&mut self, index: usize, object: Option<Value>) {
        let kind = &self.members[index].id.kind;
        self.health[index] = match &object {
            Some(object) => evaluate(kind, object),
            None => Health::Progressing("the object does not exist".into()),
        };
        self.live[index] = object;
    }
}

/// Wait until every watched object in `objects` is ready, one fails, or `timeout` passes.
///
/// Each resource and namespace is read with one LIST, then followed with a WATCH from the LIST's
/// resourceVersion, so a change is seen as soon as the server sends it (one round trip), not at
/// the next poll; a watch that ends is re-opened from the last version seen, one that expires
/// (410) or breaks is replaced by a fresh LIST, and a group whose watch the server refuses is
/// polled with a LIST every [`POLL_INTERVAL`]. Health is judged only on what was read after
/// the apply (the LIST comes after it), by the rules at the top of this module. The wait
/// returns timed out at `timeout` (after at least one read of every group) or as soon as the
/// process is interrupted.
pub async fn wait(
    client: &Client,
    objects: &[Prepared],
    timeout: Duration,
    retry: &RetryPolicy,
    mut progress: impl FnMut(usize, usize),
) -> Result<WaitOutcome, kube::Error> {
    let watched: Vec<&Prepared> = objects.iter().filter(|p| is_watched(&p.id.kind)).collect();
    // `timeout` is at most `duration::MAX_DURATION`; even so, an overflowing deadline must not
    // panic: it means "no deadline" in practice.
    let started = tokio::time::Instant::now();
    let deadline = started
        .checked_add(timeout)
        .unwrap_or_else(|| started + gitship_foundation::duration::MAX_DURATION);
    let (sender, mut updates) = tokio::sync::mpsc::unbounded_channel();
    // Dropping the set (on every return) stops the readers.
    let mut readers = tokio::task::JoinSet::new();
    let mut groups = follow_groups(client, &watched, retry, &sender, &mut readers);
    drop(sender);
    let total: usize = groups.iter().map(|group| group.members.len()).sum();
    let mut interrupt_check = tokio::time::interval(INTERRUPT_CHECK);
    let mut last_ready = None;
    loop {
        let all_listed = groups.iter().all(|group| group.listed);
        if all_listed {
            let ready = groups
                .iter()
                .flat_map(|group| &group.health)
                .filter(|health| **health == Health::Ready)
                .count();
            if last_ready != Some(ready) {
                progress(ready, total);
                last_ready = Some(ready);
            }
            let failed = groups
                .iter()
                .flat_map(|group| &group.health)
                .any(|health| matches!(health, Health::Failed(_)));
            if ready == total || failed {
                return Ok(outcome(states(groups), false));
            }
        }
        let update = tokio::select! {
            update = updates.recv() => update,
            _ = tokio::time::sleep_until(deadline), if all_listed => {
                return Ok(outcome(states(groups), true));
            }
            _ = interrupt_check.tick() => {
                if gitship_foundation::process::is_interrupted() {
                    return Ok(outcome(states(groups), true));
                }
                continue;
            }
        };
        // Take everything that arrived together before judging again.
        let mut next = update;
        while let Some(update) = next {
            take(&mut groups, update)?;
            next = updates.try_recv().ok();
        }
    }
}

/// The groups of `watched` (one per resource and namespace), each followed by a reader task in
/// `readers` sending its [`Update`]s to `sender`.
fn follow_groups<'a>(
    client: &Client,
    watched: &[&'a Prepared],
    retry: &RetryPolicy,
    sender: &tokio::sync::mpsc::UnboundedSender<Update>,
    readers: &mut tokio::task::JoinSet<()>,
) -> Vec<Group<'a>> {
    // A cluster-scoped object (a CRD) is followed alone, by `metadata.name`: what RBAC can grant
    // by name (`resourceNames`), where a LIST of the kind would read the cluster's.
    type Key = (String, String, Option<String>, Option<String>);
    let mut keys: BTreeMap<Key, Vec<&Prepared>> = BTreeMap::new();
    for prepared in watched {
        let key = (
            prepared.resolved.resource.api_version.clone(),
            prepared.resolved.resource.plural.clone(),
            prepared.id.namespace.clone(),
            prepared
                .id
                .namespace
                .is_none()
                .then(|| prepared.id.name.clone()),
        );
        keys.entry(key).or_default().push(prepared);
    }
    let mut groups: Vec<Group<'_>> = Vec::new();
    for (index, ((_, _, _, alone), members)) in keys.into_iter().enumerate() {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (position, prepared) in members.iter().enumerate() {
            by_name
                .entry(prepared.id.name.clone())
                .or_default()
                .push(position);
        }
        let names: HashSet<String> = by_name.keys().cloned().collect();
        readers.spawn(follow(
            members[0].api(client),
            names,
            alone.map(|name| format!("metadata.name={name}")),
            index,
            *retry,
            sender.clone(),
        ));
        let count = members.len();
        groups.push(Group {
            members,
            by_name,
            live: vec![None; count],
            health: vec![Health::Progressing("not read yet".into()); count],
            listed: false,
        });
    }
    groups
}

/// Take one reader's [`Update`] into `groups`; a LIST that failed for good fails the wait.
fn take(groups: &mut [Group<'_>], update: Update) -> Result<(), kube::Error> {
    match update {
        Update::Listed { group, objects } => {
            let group = &mut groups[group];
            for index in 0..group.members.len() {
                let object = objects.get(&group.members[index].id.name).cloned();
                group.set(index, object);
            }
            group.listed = true;
        }
        Update::Changed {
            group,
            name,
            object,
        } => {
            let group = &mut groups[group];
            let indices = group.by_name.get(&name).cloned().unwrap_or_default();
            for index in indices {
                group.set(index, object.clone());
            }
        }
        Update::Failed(error) => return Err(error),
    }
    Ok(())
}

/// Every watched object with its health and live JSON, group by group.
fn states(groups: Vec<Group<'_>>) -> Vec<(Prepared, Health, Option<Value>)> {
    groups
        .into_iter()
        .flat_map(|group| {
            let Group {
                members,
                live,
                health,
                ..
            } = group;
            members
                .into_iter()
                .zip(health)
                .zip(live)
                .map(|((prepared, health), live)| (prepared.clone(), health, live))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Reads one group for [`wait`]: a LIST, then a WATCH from its resourceVersion, forwarding the
/// members' changes, until the wait drops its receiver (or stops the task).
async fn follow(
    api: Api<DynamicObject>,
    names: HashSet<String>,
    selector: Option<String>,
    group: usize,
    retry: RetryPolicy,
    updates: tokio::sync::mpsc::UnboundedSender<Update>,
) {
    let by_name = |items: Vec<DynamicObject>| -> BTreeMap<String, Value> {
        items
            .into_iter()
            .filter_map(|item| {
                let name = item.metadata.name.clone()?;
                if !names.contains(&name) {
                    return None;
                }
                Some((name, serde_json::to_value(item).ok()?))
            })
            .collect()
    };
    let params = match &selector {
        Some(selector) => ListParams::default().fields(selector),
        None => ListParams::default(),
    };
    loop {
        let listed = match retry.run("health", || api.list(&params)).await {
            Ok(listed) => listed,
            Err(error) => {
                let _ = updates.send(Update::Failed(error));
                return;
            }
        };
        let mut version = listed.metadata.resource_version.clone().unwrap_or_default();
        if updates
            .send(Update::Listed {
                group,
                objects: by_name(listed.items),
            })
            .is_err()
        {
            return;
        }
        // Watch until the watch breaks; then read the group afresh.
        let watching = Watching {
            api: &api,
            names: &names,
            selector: selector.as_deref(),
            group,
        };
        if !watch(&watching, &retry, &updates, &mut version).await {
            return;
        }
    }
}

/// What one reader of [`follow`] watches: the members' `names` in `api`, in `group`, with a
/// field selector when it follows one object alone.
#[derive(Clone, Copy)]
struct Watching<'a> {
    api: &'a Api<DynamicObject>,
    names: &'a HashSet<String>,
    selector: Option<&'a str>,
    group: usize,
}

/// Follow `api`'s changes from `version` (kept up to date) and forward the members' (`names`)
/// until a watch breaks (410, an error: `true`, read afresh) or the wait dropped its receiver
/// (`false`); a watch the server ends is re-opened. A watch the server refuses is replaced by a
/// LIST after [`POLL_INTERVAL`].
async fn watch(
    watching: &Watching<'_>,
    retry: &RetryPolicy,
    updates: &tokio::sync::mpsc::UnboundedSender<Update>,
    version: &mut String,
) -> bool {
    loop {
        if version.is_empty() {
            tokio::time::sleep(POLL_INTERVAL).await;
            return true;
        }
        let Watching {
            api,
            names,
            selector,
            group,
        } = *watching;
        let mut watch_params = WatchParams::default().timeout(WATCH_SECONDS);
        if let Some(selector) = selector {
            watch_params = watch_params.fields(selector);
        }
        let stream = match retry
            .run("health watch", || api.watch(&watch_params, version))
            .await
        {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "cannot watch: polling with LIST instead");
                tokio::time::sleep(POLL_INTERVAL).await;
                return true;
            }
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let (object, deleted) = match event {
                Ok(WatchEvent::Added(object) | WatchEvent::Modified(object)) => (object, false),
                Ok(WatchEvent::Deleted(object)) => (object, true),
                Ok(WatchEvent::Bookmark(bookmark)) => {
                    *version = bookmark.metadata.resource_version;
                    continue;
                }
                Ok(WatchEvent::Error(status)) => {
                    // 410 Expired and the like: the version is gone, read afresh.
                    tracing::debug!(code = status.code, message = %status.message, "watch ended");
                    return true;
                }
                Err(error) => {
                    tracing::debug!(%error, "watch broke");
                    return true;
                }
            };
            if let Some(seen) = &object.metadata.resource_version {
                version.clone_from(seen);
            }
            let Some(name) = object.metadata.name.clone() else {
                continue;
            };
            if !names.contains(&name) {
                continue;
            }
            let object = if deleted {
                None
            } else {
                serde_json::to_value(object).ok()
            };
            let update = Update::Changed {
                group,
                name,
                object,
            };
            if updates.send(update).is_err() {
                return false;
            }
        }
        // The server ended the watch (its timeout): go on from the last version seen.
    }
}

/// The objects of `states` that are not ready.
fn outcome(states: Vec<(Prepared, Health, Option<Value>)>, timed_out: bool) -> WaitOutcome {
    let unhealthy = states
        .into_iter()
        .filter(|(_, h, _)| *h != Health::Ready)
        .collect();
    WaitOutcome {
        unhealthy,
        timed_out,
    }
}

/// A report naming each unhealthy object with its health, conditions and recent Events.
pub async fn report(client: &Client, outcome: &WaitOutcome, retry: &RetryPolicy) -> String {
    let mut out = String::new();
    for (prepared, health, live) in &outcome.unhealthy {
        let state = match health {
            Health::Failed(text) => format!("failed: {text}"),
            Health::Progressing(text) if outcome.timed_out => format!("timed out: {text}"),
            Health::Progressing(text) => format!("not ready: {text}"),
            Health::Ready => "ready".into(),
        };
        out.push_str(&format!("  {}: {state}\n", prepared.describe()));
        if let Some(conditions) = live
            .as_ref()
            .and_then(|l| l.pointer("/status/conditions"))
            .and_then(Value::as_array)
        {
            for condition in conditions {
                let field = |name: &str| condition.get(name).and_then(Value::as_str).unwrap_or("");
                out.push_str(&format!(
                    "    condition {}={} {}: {}\n",
                    field("type"),
                    field("status"),
                    field("reason"),
                    field("message")
                ));
            }
        }
        for event in recent_events(client, prepared, retry).await {
            out.push_str(&format!("    event {event}\n"));
        }
    }
    out.trim_end().to_string()
}

/// The last few Events about an object (`<type> <reason>: <message>`), newest last.
pub(crate) async fn recent_events(
    client: &Client,
    prepared: &Prepared,
    retry: &RetryPolicy,
) -> Vec<String> {
    let Some(namespace) = &prepared.id.namespace else {
        return Vec::new();
    };
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let selector = format!(
        "involvedObject.name={},involvedObject.kind={}",
        prepared.id.name, prepared.id.kind
    );
    let params = ListParams::default().fields(&selector);
    let Ok(list) = retry.run("events", || api.list(&params)).await else {
        return Vec::new();
    };
    let mut events: Vec<Event> = list
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(&prepared.id.name)
                && e.involved_object.kind.as_deref() == Some(&prepared.id.kind)
        })
        .collect();
    events.sort_by_key(|e| {
        e.last_timestamp
            .clone()
            .map(|t| t.0)
            .or(e.event_time.clone().map(|t| t.0))
    });
    let start = events.len().saturating_sub(5);
    events[start..]
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e.type_.as_deref().unwrap_or("Normal"),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("").trim()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::{DeployOptions, ObjectAction};
    use crate::{KubeError, deploy_objects};
    use gitship_foundation::model::{Environment, Manifest};
    use gitship_foundation::output::OutputFormat;
    use gitship_foundation::output::Printer;
    use kubesim::{KubeSim, Options, Rollout};
    use serde_json::json;

    fn web(name: &str, image: &str) -> Manifest {
        Manifest {
            source: gitship_foundation::diagnostics::Location::new(format!("{name}.yaml"), 1, 1),
            object: json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "app", "image": image}]}}}}),
        }
    }

    fn environment() -> Environment {
        Environment {
            name: "health".into(),
            namespace: "health".into(),
        }
    }

    fn options(timeout: Duration) -> DeployOptions {
        DeployOptions {
            timeout,
            who: "test".into(),
            ..DeployOptions::default()
        }
    }

    fn printer() -> Printer {
        Printer {
            quiet: true,
            ..Printer::plain(OutputFormat::Human)
        }
    }

    /// `(LISTs, WATCHes)` of Deployments recorded by `sim` from request `start` on.
    fn deployment_reads(sim: &KubeSim, start: usize) -> (usize, usize) {
        let reads: Vec<_> = sim
            .handle()
            .requests()
            .into_iter()
            .skip(start)
            .filter(|r| r.method == "GET" && r.path.ends_with("/namespaces/health/deployments"))
            .collect();
        let watches = reads.iter().filter(|r| r.watch).count();
        (reads.len() - watches, watches)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wait_lists_once_then_watches_until_the_last_rollout_is_done() {
        let sim = KubeSim::start_with(Options {
            rollout_delay: Duration::from_millis(50),
            ..Options::default()
        })
        .await
        .unwrap();
        let client = crate::client::client_from(sim.kube_config()).unwrap();
        let slow = Duration::from_millis(1500);
        sim.handle()
            .script_rollout("health", "slow", Rollout::Slow(slow));
        let start = sim.handle().request_count();
        let started = std::time::Instant::now();
        let desired = vec![web("fast", "nginx:1"), web("slow", "nginx:1")];
        let report = deploy_objects(
            &client,
            &environment(),
            desired,
            &options(Duration::from_secs(30)),
            &printer(),
        )
        .await
        .unwrap();
        let took = started.elapsed();
        assert_eq!(report.count(ObjectAction::Created), 2);
        assert!(
            took >= slow,
            "returned after {took:?}, before the slow rollout"
        );
        let live = sim
            .handle()
            .get("apps/v1", "Deployment", "health", "slow")
            .unwrap();
        assert_eq!(evaluate("Deployment", &live), Health::Ready);
        // The old poll (100 ms growing to 1 s) listed 5 times over 1.5 s; a watch needs one LIST.
        assert_eq!(
            deployment_reads(&sim, start),
            (1, 1),
            "one LIST, then one WATCH, for {took:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_seen_through_the_watch_ends_the_wait_and_a_timeout_is_reported() {
        let sim = KubeSim::start_with(Options {
            rollout_delay: Duration::from_millis(300),
            ..Options::default()
        })
        .await
        .unwrap();
        let client = crate::client::client_from(sim.kube_config()).unwrap();
        sim.handle()
            .script_rollout("health", "broken", Rollout::Fail);
        let error = deploy_objects(
            &client,
            &environment(),
            vec![web("broken", "nginx:1")],
            &options(Duration::from_secs(30)),
            &printer(),
        )
        .await
        .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, KubeError::Unhealthy { .. }), "{message}");
        let KubeError::Unhealthy { report, .. } = &error else {
            unreachable!()
        };
        assert!(
            report.contains("failed: ProgressDeadlineExceeded"),
            "{report}"
        );

        // A rollout slower than the timeout: the wait gives up at the timeout, saying so.
        sim.handle()
            .script_rollout("health", "late", Rollout::Slow(Duration::from_secs(20)));
        let started = std::time::Instant::now();
        let error = deploy_objects(
            &client,
            &environment(),
            vec![web("late", "nginx:1")],
            &options(Duration::from_millis(400)),
            &printer(),
        )
        .await
        .unwrap_err();
        let took = started.elapsed();
        let KubeError::Unhealthy { report, .. } = &error else {
            panic!("not an unhealthy error: {error}")
        };
        assert!(
            report.contains("late") && report.contains("timed out"),
            "{report}"
        );
        assert!(took < Duration::from_secs(10), "the timeout took {took:?}");
    }

    fn deployment(generation: i64, status: Value) -> Value {
        json!({"metadata": {"generation": generation}, "spec": {"replicas": 3}, "status": status})
    }

    #[test]
    fn deployment_health_follows_rollout_status() {
        let done = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
        assert_eq!(
            evaluate("Deployment", &deployment(2, done.clone())),
            Health::Ready
        );
        // A stale status is not done, whatever its counters say.
        assert!(
            matches!(evaluate("Deployment", &deployment(3, done)), Health::Progressing(t) if t.contains("generation 3"))
        );
        let updating = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 3});
        assert!(
            matches!(evaluate("Deployment", &deployment(2, updating)), Health::Progressing(t) if t.contains("1 of 3"))
        );
        let old = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3});
        assert!(
            matches!(evaluate("Deployment", &deployment(2, old)), Health::Progressing(t) if t.contains("old replicas"))
        );
        let unavailable = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2});
        assert!(matches!(
            evaluate("Deployment", &deployment(2, unavailable)),
            Health::Progressing(_)
        ));
        let stuck = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "conditions": [
            {"type": "Available", "status": "False"},
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet \"web-1\" has timed out progressing."}]});
        assert_eq!(
            evaluate("Deployment", &deployment(2, stuck)),
            Health::Failed(
                "ProgressDeadlineExceeded: ReplicaSet \"web-1\" has timed out progressing.".into()
            )
        );
        assert!(matches!(
            evaluate("Deployment", &json!({"metadata": {"generation": 1}})),
            Health::Progressing(_)
        ));
    }

    #[test]
    fn other_kinds() {
        let sts = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "readyReplicas": 2, "currentRevision": "a", "updateRevision": "a"}});
        assert_eq!(evaluate("StatefulSet", &sts), Health::Ready);
        let mut rolling = sts.clone();
        rolling["status"]["updateRevision"] = json!("b");
        assert!(matches!(
            evaluate("StatefulSet", &rolling),
            Health::Progressing(_)
        ));
        let ds = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1}});
        assert!(matches!(evaluate("DaemonSet", &ds), Health::Progressing(_)));
        let complete = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(evaluate("Job", &complete), Health::Ready);
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            evaluate("Job", &failed),
            Health::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
        assert!(matches!(
            evaluate("Job", &json!({})),
            Health::Progressing(_)
        ));
        assert_eq!(
            evaluate(
                "PersistentVolumeClaim",
                &json!({"status": {"phase": "Bound"}})
            ),
            Health::Ready
        );
        assert!(matches!(
            evaluate(
                "PersistentVolumeClaim",
                &json!({"status": {"phase": "Pending"}})
            ),
            Health::Progressing(_)
        ));
        let crd = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert_eq!(evaluate("CustomResourceDefinition", &crd), Health::Ready);
        assert_eq!(evaluate("ConfigMap", &json!({})), Health::Ready);
    }
}
