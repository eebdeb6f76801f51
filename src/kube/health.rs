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
//! [`wait`] polls with one LIST per kind and namespace, until everything is ready, something
//! failed, or the timeout passes; then [`report`] describes each unhealthy object with its
//! conditions and its most recent Events.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use crate::kube::check::Prepared;
use crate::kube::retry::RetryPolicy;

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
pub fn evaluate(kind: &str, object: &Value) -> Health {
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

/// Wait until every watched object in `objects` is ready, one fails, or `timeout` passes.
pub async fn wait(
    client: &Client,
    objects: &[Prepared],
    timeout: Duration,
    retry: &RetryPolicy,
    mut progress: impl FnMut(usize, usize),
) -> Result<WaitOutcome, kube::Error> {
    let watched: Vec<&Prepared> = objects.iter().filter(|p| is_watched(&p.id.kind)).collect();
    // `timeout` is at most `settings::MAX_DURATION`; even so, an overflowing deadline must not
    // panic: it means "no deadline" in practice.
    let started = tokio::time::Instant::now();
    let deadline = started
        .checked_add(timeout)
        .unwrap_or_else(|| started + crate::settings::MAX_DURATION);
    let mut interval = Duration::from_millis(100);
    loop {
        let states = observe(client, &watched, retry).await?;
        let total = states.len();
        let ready = states
            .iter()
            .filter(|(_, h, _)| *h == Health::Ready)
            .count();
        progress(ready, total);
        let failed = states
            .iter()
            .any(|(_, h, _)| matches!(h, Health::Failed(_)));
        if ready == total || failed {
            return Ok(outcome(states, false));
        }
        if tokio::time::Instant::now() >= deadline || crate::process::is_interrupted() {
            return Ok(outcome(states, true));
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(interval.min(remaining)).await;
        interval = interval.mul_f64(1.5).min(Duration::from_secs(1));
    }
}

/// The health and live JSON of every object in `watched`, with one LIST per (resource,
/// namespace).
async fn observe(
    client: &Client,
    watched: &[&Prepared],
    retry: &RetryPolicy,
) -> Result<Vec<(Prepared, Health, Option<Value>)>, kube::Error> {
    let mut groups: BTreeMap<(String, String, Option<String>), Vec<&Prepared>> = BTreeMap::new();
    for prepared in watched {
        let key = (
            prepared.resolved.resource.api_version.clone(),
            prepared.resolved.resource.plural.clone(),
            prepared.id.namespace.clone(),
        );
        groups.entry(key).or_default().push(prepared);
    }
    let mut states: Vec<(Prepared, Health, Option<Value>)> = Vec::new();
    for members in groups.values() {
        let by_name = list_by_name(client, members[0], retry).await?;
        for prepared in members {
            let live = by_name.get(&prepared.id.name).cloned();
            let health = match &live {
                Some(object) => evaluate(&prepared.id.kind, object),
                None => Health::Progressing("the object does not exist".into()),
            };
            states.push(((*prepared).clone(), health, live));
        }
    }
    Ok(states)
}

/// The live objects of `example`'s resource in its namespace (or cluster-wide), by name.
async fn list_by_name(
    client: &Client,
    example: &Prepared,
    retry: &RetryPolicy,
) -> Result<BTreeMap<String, Value>, kube::Error> {
    let api: Api<DynamicObject> = match &example.id.namespace {
        Some(namespace) => {
            Api::namespaced_with(client.clone(), namespace, &example.resolved.resource)
        }
        None => Api::all_with(client.clone(), &example.resolved.resource),
    };
    let params = ListParams::default();
    let listed = retry.run("health", || api.list(&params)).await?;
    Ok(listed
        .items
        .into_iter()
        .filter_map(|item| {
            let name = item.metadata.name.clone()?;
            Some((name, serde_json::to_value(item).ok()?))
        })
        .collect())
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
pub async fn recent_events(
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
    use serde_json::json;

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
