//! Simulated controllers, acting like a healthy cluster would: Deployments, StatefulSets,
//! DaemonSets and Jobs get their status (observedGeneration, replica counts, conditions with the
//! real reasons) after the configured rollout delay, or fail/stay slow when scripted through
//! [`crate::SimHandle::script_rollout`]; PersistentVolumeClaims become Bound and
//! CustomResourceDefinitions Established. Rollouts record `v1` Events like the real controllers
//! (`ScalingReplicaSet`; a Warning `ProgressDeadlineExceeded` for a failed one). Status writes go through the `status` subresource as
//! manager `kube-controller-manager`, so they bump resourceVersion and emit MODIFIED events.

use crate::Rollout;
use crate::managed::{self, Scope};
use crate::server::{Shared, lock};
use crate::store::Change;
use crate::store::EventType;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::mpsc;

type Key = ((String, String), String, String);

/// Whether the controllers care about objects stored under `storage_key`.
pub fn watches(storage_key: &(String, String)) -> bool {
    is_workload(storage_key)
        || storage_key.1 == "persistentvolumeclaims"
        || storage_key.1 == "customresourcedefinitions"
}

/// Runs until the simulator shuts down, reacting to the changed objects the store reports
/// (coalesced, so a burst of writes never makes the controllers fall behind).
pub async fn run(shared: Arc<Shared>, mut changes: mpsc::UnboundedReceiver<Change>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut scheduled: HashSet<(Key, String, i64)> = HashSet::new();
    resync(&shared, &mut scheduled);
    loop {
        let first = tokio::select! {
            change = changes.recv() => match change {
                Some(change) => change,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        let mut seen = HashSet::from([first.clone()]);
        let mut batch = vec![first];
        while let Ok(change) = changes.try_recv() {
            if seen.insert(change.clone()) {
                batch.push(change);
            }
        }
        for (storage_key, key) in batch {
            let object = lock(&shared.store).get(&storage_key, &key);
            if let Some(object) = object {
                react(
                    &shared,
                    &storage_key,
                    EventType::Modified,
                    &object,
                    &mut scheduled,
                );
            }
        }
    }
}

fn resync(shared: &Arc<Shared>, scheduled: &mut HashSet<(Key, String, i64)>) {
    let interesting = lock(&shared.store).matching(|storage_key, _, _| watches(storage_key));
    for (storage_key, object) in interesting {
        react(
            shared,
            &storage_key,
            EventType::Modified,
            &object,
            scheduled,
        );
    }
}

fn is_workload(storage_key: &(String, String)) -> bool {
    matches!(
        (storage_key.0.as_str(), storage_key.1.as_str()),
        ("apps", "deployments" | "statefulsets" | "daemonsets") | ("batch", "jobs")
    )
}

fn react(
    shared: &Arc<Shared>,
    storage_key: &(String, String),
    kind: EventType,
    object: &Value,
    scheduled: &mut HashSet<(Key, String, i64)>,
) {
    if kind == EventType::Deleted {
        return;
    }
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let key: Key = (storage_key.clone(), namespace, name);
    match (storage_key.0.as_str(), storage_key.1.as_str()) {
        _ if is_workload(storage_key) => {
            if object["metadata"].get("deletionTimestamp").is_some() {
                return;
            }
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
            let pending = !settled(object, generation);
            // Keyed by uid too: a deleted and recreated object starts again at generation 1.
            let uid = object["metadata"]["uid"].as_str().unwrap_or("").to_string();
            if pending && scheduled.insert((key.clone(), uid, generation)) {
                schedule(shared.clone(), key, generation);
            }
        }
        ("", "persistentvolumeclaims") if object["status"]["phase"] != "Bound" => {
            write_status(
                shared,
                &key,
                None,
                |object| json!({"phase": "Bound", "accessModes": object["spec"]["accessModes"], "capacity": object["spec"]["resources"]["requests"]}),
            );
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let established = object["status"]["conditions"]
                .as_array()
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                });
            if !established {
                write_status(shared, &key, None, |object| {
                    let now = now();
                    json!({
                        "acceptedNames": object["spec"]["names"],
                        "storedVersions": object["spec"]["versions"].as_array().map(|versions| versions.iter().filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
                        "conditions": [
                            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
                            {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
                        ],
                    })
                });
            }
        }
        _ => {}
    }
}

/// Whether a workload's status shows a finished rollout (healthy or failed) of `generation`.
fn settled(object: &Value, generation: i64) -> bool {
    let status = &object["status"];
    let has_condition = |kind: &str, reasons: &[&str]| {
        status["conditions"].as_array().is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == kind && reasons.iter().any(|reason| c["reason"] == *reason))
        })
    };
    let observed = status["observedGeneration"].as_i64() == Some(generation);
    match object["kind"].as_str().unwrap_or("") {
        "Deployment" => {
            observed
                && has_condition(
                    "Progressing",
                    &["NewReplicaSetAvailable", "ProgressDeadlineExceeded"],
                )
        }
        "StatefulSet" => {
            observed
                && status["currentRevision"] == status["updateRevision"]
                && status["readyReplicas"] == status["replicas"]
        }
        "DaemonSet" => observed && status["numberReady"] == status["desiredNumberScheduled"],
        "Job" => status["conditions"].as_array().is_some_and(|conditions| {
            conditions.iter().any(|c| {
                (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
            })
        }),
        _ => true,
    }
}

/// The phases of a simulated rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Progressing,
    Healthy,
    Failed,
}

fn schedule(shared: Arc<Shared>, key: Key, generation: i64) {
    let script = lock(&shared.scripts)
        .get(&(key.1.clone(), key.2.clone()))
        .cloned();
    let delay = match script {
        Some(Rollout::Slow(delay)) => delay,
        _ => shared.rollout_delay,
    };
    tokio::spawn(async move {
        if !delay.is_zero() {
            let written = write_status(&shared, &key, Some(generation), |object| {
                workload_status(object, Phase::Progressing)
            });
            if let Some(object) = written {
                record_events(&shared, &object, Phase::Progressing);
            }
            tokio::time::sleep(delay).await;
        }
        let script = lock(&shared.scripts)
            .get(&(key.1.clone(), key.2.clone()))
            .cloned();
        let phase = if script == Some(Rollout::Fail) {
            Phase::Failed
        } else {
            Phase::Healthy
        };
        let written = write_status(&shared, &key, Some(generation), |object| {
            workload_status(object, phase)
        });
        if let Some(object) = written {
            if delay.is_zero() {
                record_events(&shared, &object, Phase::Progressing);
            }
            record_events(&shared, &object, phase);
        }
    });
}

/// The Events a real controller records for a workload entering `phase`.
fn record_events(shared: &Shared, object: &Value, phase: Phase) {
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    let desired = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let revision = format!("{name}-{}", template_hash(object));
    let events: Vec<(&str, &str, &str, String)> = match (kind, phase) {
        ("Deployment", Phase::Progressing) => vec![(
            "deployment-controller",
            "Normal",
            "ScalingReplicaSet",
            format!("Scaled up replica set {revision} from 0 to {desired}"),
        )],
        ("Deployment", Phase::Failed) => vec![(
            "deployment-controller",
            "Warning",
            "ProgressDeadlineExceeded",
            format!("Deployment \"{name}\" has timed out progressing."),
        )],
        ("StatefulSet", Phase::Progressing) => vec![(
            "statefulset-controller",
            "Normal",
            "SuccessfulCreate",
            format!("create Pod {name}-0 in StatefulSet {name} successful"),
        )],
        ("Job", Phase::Progressing) => vec![(
            "job-controller",
            "Normal",
            "SuccessfulCreate",
            format!("Created pod: {name}-{}", &template_hash(object)[..5]),
        )],
        ("Job", Phase::Healthy) => {
            vec![(
                "job-controller",
                "Normal",
                "Completed",
                "Job completed".into(),
            )]
        }
        ("Job", Phase::Failed) => vec![(
            "job-controller",
            "Warning",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".into(),
        )],
        _ => Vec::new(),
    };
    for (component, kind_of_event, reason, message) in events {
        record_event(shared, object, component, kind_of_event, reason, &message);
    }
}

/// Stores one `v1` Event about `object`, as a controller's event recorder does.
fn record_event(
    shared: &Shared,
    object: &Value,
    component: &str,
    kind_of_event: &str,
    reason: &str,
    message: &str,
) {
    let mut store = lock(&shared.store);
    let Some(resource) = store.registry().by_kind("v1", "Event") else {
        return;
    };
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let involved = object["metadata"]["name"].as_str().unwrap_or("");
    let name = format!(
        "{involved}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let now = now();
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": namespace, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now},
        "involvedObject": {
            "apiVersion": object["apiVersion"], "kind": object["kind"], "namespace": namespace,
            "name": involved, "uid": object["metadata"]["uid"], "resourceVersion": object["metadata"]["resourceVersion"],
        },
        "reason": reason, "message": message, "type": kind_of_event,
        "source": {"component": component},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "reportingComponent": component, "reportingInstance": "",
    });
    store.commit(&resource, (namespace, name), event, EventType::Added);
}

fn write_status(
    shared: &Shared,
    key: &Key,
    generation: Option<i64>,
    build: impl FnOnce(&Value) -> Value,
) -> Option<Value> {
    let mut store = lock(&shared.store);
    let resource = store.registry().by_storage_key(&key.0)?;
    let object_key = (key.1.clone(), key.2.clone());
    let old = store.get(&key.0, &object_key)?;
    if generation
        .is_some_and(|generation| old["metadata"]["generation"].as_i64().unwrap_or(1) != generation)
    {
        return None;
    }
    let mut new = (*old).clone();
    new["status"] = build(&old);
    managed::track_update(
        Some(&old),
        &mut new,
        "kube-controller-manager",
        Scope::Status,
    );
    if new == *old {
        return None;
    }
    Some(store.commit(&resource, object_key, new, EventType::Modified))
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A stable 10-character hash of the pod template, like `pod-template-hash`.
fn template_hash(object: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in object["spec"]["template"].to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    (0..10)
        .map(|index| ALPHABET[((hash >> (index * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

fn condition(kind: &str, status: &str, reason: &str, message: String) -> Value {
    let now = now();
    json!({"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": message})
}

fn workload_status(object: &Value, phase: Phase) -> Value {
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let desired = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let previous = &object["status"];
    let revision = format!("{name}-{}", template_hash(object));
    match object["kind"].as_str().unwrap_or("") {
        "Deployment" => {
            let previously_available = previous["availableReplicas"].as_i64().unwrap_or(0);
            match phase {
                Phase::Healthy => json!({
                    "observedGeneration": generation, "replicas": desired, "updatedReplicas": desired,
                    "readyReplicas": desired, "availableReplicas": desired,
                    "conditions": [
                        condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.".into()),
                        condition("Progressing", "True", "NewReplicaSetAvailable", format!("ReplicaSet \"{revision}\" has successfully progressed.")),
                    ],
                }),
                Phase::Progressing => json!({
                    "observedGeneration": generation, "replicas": desired, "updatedReplicas": 0,
                    "readyReplicas": previously_available, "availableReplicas": previously_available,
                    "unavailableReplicas": (desired - previously_available).max(0),
                    "conditions": [
                        if previously_available > 0 {
                            condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.".into())
                        } else {
                            condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into())
                        },
                        condition("Progressing", "True", "ReplicaSetUpdated", format!("ReplicaSet \"{revision}\" is progressing.")),
                    ],
                }),
                Phase::Failed => json!({
                    "observedGeneration": generation, "replicas": desired, "updatedReplicas": desired,
                    "readyReplicas": 0, "availableReplicas": 0, "unavailableReplicas": desired,
                    "conditions": [
                        condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into()),
                        condition("Progressing", "False", "ProgressDeadlineExceeded", format!("ReplicaSet \"{revision}\" has timed out progressing.")),
                    ],
                }),
            }
        }
        "StatefulSet" => {
            let current = previous["currentRevision"]
                .as_str()
                .unwrap_or(&revision)
                .to_string();
            match phase {
                Phase::Healthy => json!({
                    "observedGeneration": generation, "replicas": desired, "readyReplicas": desired,
                    "currentReplicas": desired, "updatedReplicas": desired, "availableReplicas": desired,
                    "currentRevision": revision, "updateRevision": revision, "collisionCount": 0,
                }),
                Phase::Progressing | Phase::Failed => json!({
                    "observedGeneration": generation, "replicas": desired, "readyReplicas": 0,
                    "currentReplicas": 0, "updatedReplicas": 0, "availableReplicas": 0,
                    "currentRevision": current, "updateRevision": revision, "collisionCount": 0,
                }),
            }
        }
        "DaemonSet" => {
            let ready = i64::from(phase == Phase::Healthy);
            json!({
                "observedGeneration": generation, "desiredNumberScheduled": 1, "currentNumberScheduled": 1,
                "numberMisscheduled": 0, "numberReady": ready, "updatedNumberScheduled": ready,
                "numberAvailable": ready, "numberUnavailable": 1 - ready,
            })
        }
        "Job" => {
            let start = previous["startTime"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(now);
            match phase {
                Phase::Progressing => {
                    json!({"startTime": start, "active": 1, "ready": 0, "terminating": 0})
                }
                Phase::Healthy => json!({
                    "startTime": start, "completionTime": now(), "ready": 0, "terminating": 0,
                    "succeeded": object["spec"]["completions"].as_i64().unwrap_or(1),
                    "conditions": [
                        condition("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods".into()),
                        condition("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods".into()),
                    ],
                }),
                Phase::Failed => json!({
                    "startTime": start, "ready": 0, "terminating": 0,
                    "failed": object["spec"]["backoffLimit"].as_i64().unwrap_or(6) + 1,
                    "conditions": [
                        condition("FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit".into()),
                        condition("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit".into()),
                    ],
                }),
            }
        }
        _ => previous.clone(),
    }
}
