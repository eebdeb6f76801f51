//! The live tree of an environment's objects, for the agent's status page: each object's
//! health, judged by [`health::evaluate`] (the one rule a deploy waits on), and what the
//! workload controllers made of it: a Deployment's ReplicaSets and their Pods, the Pods of a
//! StatefulSet, DaemonSet or Job, found by `metadata.ownerReferences` (uid).
//!
//! [`read`] LISTs each watched kind once per namespace, then the namespace's ReplicaSets and
//! Pods once each (paged), whatever the number of objects: Pods carry the labels of their
//! template, not gitship's, so no label selector finds them all; instead every page is reduced
//! as it arrives to the few fields shown, of the children of the environment's objects only,
//! at most [`MAX_REPLICA_SETS`] and [`MAX_PODS`] per owner. What it holds is bounded by the
//! number of objects and these caps, never by the namespace. The assembly is the pure
//! [`Collector`], unit-tested without a cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::health::{self, Health};
use crate::inventory::InventoryEntry;
use crate::retry::RetryPolicy;
use gitship_foundation::model::ObjectId;

/// The most ReplicaSets kept per Deployment (the current one first, then the newest).
pub(crate) const MAX_REPLICA_SETS: usize = 5;
/// The most Pods kept per owner (a ReplicaSet, StatefulSet, DaemonSet or Job).
pub(crate) const MAX_PODS: usize = 20;
/// The longest text kept of a reason or a name read from the cluster, in characters.
pub const MAX_TEXT: usize = 300;
/// One page of a LIST: what is held at once while a namespace's Pods (or the cluster's CRDs,
/// large objects) are read, before each page is reduced to what the page shows.
const PAGE: u32 = 100;

/// The health of one object, as the status page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthState {
    /// Exists, and ready by [`health::evaluate`].
    Healthy,
    /// Still converging.
    Progressing,
    /// Will not converge by waiting (a failed rollout or Job, a lost claim).
    Degraded,
    /// In the inventory, not in the cluster.
    Missing,
    /// Could not be read (its LIST was refused); the reason says why.
    Unknown,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "Healthy",
            HealthState::Progressing => "Progressing",
            HealthState::Degraded => "Degraded",
            HealthState::Missing => "Missing",
            HealthState::Unknown => "Unknown",
        }
    }

    /// The state and reason of a [`Health`].
    pub fn of(health: Health) -> (HealthState, Option<String>) {
        match health {
            Health::Ready => (HealthState::Healthy, None),
            Health::Progressing(reason) => (HealthState::Progressing, Some(clip(&reason))),
            Health::Failed(reason) => (HealthState::Degraded, Some(clip(&reason))),
        }
    }
}

/// One Pod: what `kubectl get pods` shows of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodNode {
    pub name: String,
    /// `status.phase` (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`).
    pub phase: String,
    /// Whether the Pod's `Ready` condition is true.
    pub ready: bool,
    /// Containers ready, of all.
    pub ready_containers: u32,
    pub containers: u32,
    /// Restarts, summed over its containers.
    pub restarts: u64,
    /// Why a container waits or ended (`CrashLoopBackOff`, `ImagePullBackOff`, `Error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One ReplicaSet of a Deployment, with its Pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetNode {
    pub name: String,
    /// `deployment.kubernetes.io/revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The Deployment's current ReplicaSet (its revision is the Deployment's).
    pub current: bool,
    pub desired: i64,
    pub ready: i64,
    pub pods: Vec<PodNode>,
    /// Pods left out beyond [`MAX_PODS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_pods: usize,
}

/// One object of the environment, with its health and children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectNode {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub health: HealthState,
    /// What is awaited, or why it failed (the deploy's health check's words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A Deployment's ReplicaSets: the current one first, then the newest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_sets: Vec<ReplicaSetNode>,
    /// ReplicaSets left out beyond [`MAX_REPLICA_SETS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_replica_sets: usize,
    /// The Pods a StatefulSet, DaemonSet or Job owns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodNode>,
    /// Pods left out beyond [`MAX_PODS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_pods: usize,
}

impl ObjectNode {
    /// An object with no children (yet) and no reason.
    pub fn leaf(
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
        health: HealthState,
    ) -> ObjectNode {
        ObjectNode {
            api_version,
            kind,
            namespace,
            name,
            health,
            reason: None,
            replica_sets: Vec::new(),
            more_replica_sets: 0,
            pods: Vec::new(),
            more_pods: 0,
        }
    }

    pub fn id(&self) -> ObjectId {
        ObjectId {
            group: gitship_foundation::model::group_of(&self.api_version).to_string(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// What [`read`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveTree {
    pub objects: Vec<ObjectNode>,
    /// What could not be read (a LIST refused), one line each; the rest of the tree stands.
    pub notes: Vec<String>,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// `text` cut to [`MAX_TEXT`] characters.
pub fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT) {
        Some((index, _)) => format!("{}…", &text[..index]),
        None => text.to_string(),
    }
}

/// The kinds whose live objects are read: those [`health::is_watched`] judges, with their
/// resource. Every other kind is healthy once it exists.
fn watched_resource(kind: &str) -> Option<(ApiResource, bool)> {
    let namespaced = |resource| Some((resource, true));
    match kind {
        "Deployment" => namespaced(ApiResource::erase::<Deployment>(&())),
        "StatefulSet" => namespaced(ApiResource::erase::<StatefulSet>(&())),
        "DaemonSet" => namespaced(ApiResource::erase::<DaemonSet>(&())),
        "Job" => namespaced(ApiResource::erase::<Job>(&())),
        "PersistentVolumeClaim" => namespaced(ApiResource::erase::<PersistentVolumeClaim>(&())),
        "CustomResourceDefinition" => {
            Some((ApiResource::erase::<CustomResourceDefinition>(&()), false))
        }
        _ => None,
    }
}

/// Whether `kind`'s Pods are found: its own, or its ReplicaSets'.
fn owns_pods(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet" | "Job")
}

/// The health and children of `objects` (the environment's inventory), read with a few paged
/// LISTs (see the module's header). A watched object the LIST does not find is
/// [`HealthState::Missing`]; every other object is [`HealthState::Healthy`] here (whether it
/// exists is the drift check's to say). A refused LIST leaves a note and its objects
/// [`HealthState::Unknown`] rather than failing the whole tree.
pub async fn read(client: &Client, objects: &[InventoryEntry], retry: &RetryPolicy) -> LiveTree {
    let mut collector = Collector::new(objects);
    let mut notes = Vec::new();
    for ((kind, namespace), names) in collector.watched_groups() {
        let Some((resource, namespaced)) = watched_resource(&kind) else {
            continue;
        };
        let namespace = if namespaced { namespace } else { None };
        let listed = list(client, &resource, namespace.as_deref(), retry, |item| {
            let name = item.pointer("/metadata/name").and_then(Value::as_str);
            if name.is_some_and(|name| names.contains(name)) {
                collector.workload(&kind, namespace.as_deref(), &item);
            }
        })
        .await;
        match listed {
            Ok(()) => collector.listed(&kind, namespace.as_deref()),
            Err(error) => {
                let note = format!(
                    "cannot list {} in {}: {error}",
                    resource.plural,
                    namespace.as_deref().unwrap_or("the cluster")
                );
                collector.unknown(&kind, namespace.as_deref(), &note);
                notes.push(note);
            }
        }
    }
    for namespace in collector.deployment_namespaces() {
        let resource = ApiResource::erase::<ReplicaSet>(&());
        if let Err(error) = list(client, &resource, Some(&namespace), retry, |item| {
            collector.replica_set(&item)
        })
        .await
        {
            notes.push(format!("cannot list replicasets in {namespace}: {error}"));
        }
    }
    for namespace in collector.pod_namespaces() {
        let resource = ApiResource::erase::<Pod>(&());
        if let Err(error) = list(client, &resource, Some(&namespace), retry, |item| {
            collector.pod(&item)
        })
        .await
        {
            notes.push(format!("cannot list pods in {namespace}: {error}"));
        }
    }
    LiveTree {
        objects: collector.finish(),
        notes,
    }
}

/// A paged LIST of `resource` (in `namespace`, or the whole cluster), each item passed to
/// `keep` as JSON as its page arrives; the server's message on failure.
async fn list(
    client: &Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    retry: &RetryPolicy,
    mut keep: impl FnMut(Value),
) -> Result<(), String> {
    let api: Api<DynamicObject> = match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = retry
            .run(&format!("list {}", resource.plural), || api.list(&params))
            .await
            .map_err(|error| crate::error_message(&error))?;
        for item in page.items {
            if let Ok(value) = serde_json::to_value(item) {
                keep(value);
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params.continue_token = Some(token),
            _ => return Ok(()),
        }
    }
}

/// The uid of the first controller (or, without one, first owner) in `ownerReferences`.
fn owner_uid(item: &Value) -> Option<&str> {
    let owners = item.pointer("/metadata/ownerReferences")?.as_array()?;
    owners
        .iter()
        .find(|owner| owner.get("controller").and_then(Value::as_bool) == Some(true))
        .or_else(|| owners.first())?
        .get("uid")?
        .as_str()
}

fn text(item: &Value, pointer: &str) -> Option<String> {
    item.pointer(pointer).and_then(Value::as_str).map(clip)
}

fn int(item: &Value, pointer: &str) -> i64 {
    item.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// `deployment.kubernetes.io/revision` of a Deployment or ReplicaSet.
fn revision(item: &Value) -> Option<u64> {
    gitship_foundation::model::annotation(item, "deployment.kubernetes.io/revision")?
        .parse()
        .ok()
}

/// A Pod as the page shows it.
pub(crate) fn pod_node(item: &Value) -> PodNode {
    let statuses: Vec<&Value> = item
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|statuses| statuses.iter().collect())
        .unwrap_or_default();
    let containers = item
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(statuses.len(), Vec::len);
    let ready_containers = statuses
        .iter()
        .filter(|status| status.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts = statuses
        .iter()
        .filter_map(|status| status.get("restartCount").and_then(Value::as_u64))
        .fold(0u64, u64::saturating_add);
    let reason = statuses
        .iter()
        .find_map(|status| {
            ["/state/waiting/reason", "/state/terminated/reason"]
                .iter()
                .find_map(|pointer| text(status, pointer))
        })
        .or_else(|| text(item, "/status/reason"));
    let ready = item
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|condition| {
                condition.get("type").and_then(Value::as_str) == Some("Ready")
                    && condition.get("status").and_then(Value::as_str) == Some("True")
            })
        });
    PodNode {
        name: text(item, "/metadata/name").unwrap_or_default(),
        phase: text(item, "/status/phase").unwrap_or_else(|| "Unknown".to_string()),
        ready,
        ready_containers: u32::try_from(ready_containers).unwrap_or(u32::MAX),
        containers: u32::try_from(containers).unwrap_or(u32::MAX),
        restarts,
        reason,
    }
}

/// Children kept for one owner: the first `cap`, and a count of the rest.
#[derive(Debug)]
struct Capped<T> {
    items: Vec<T>,
    more: usize,
}

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Capped {
            items: Vec::new(),
            more: 0,
        }
    }
}

impl<T> Capped<T> {
    fn push(&mut self, item: T, cap: usize) {
        if self.items.len() < cap {
            self.items.push(item);
        } else {
            self.more = self.more.saturating_add(1);
        }
    }
}

/// A ReplicaSet as read, before its Pods are known.
#[derive(Debug)]
struct ReplicaSetSeen {
    uid: String,
    node: ReplicaSetNode,
}

/// The tree as the LISTs' pages arrive; [`Collector::finish`] assembles it.
#[derive(Debug)]
pub(crate) struct Collector {
    objects: Vec<ObjectNode>,
    /// Watched objects by (kind, namespace, name): index into `objects`.
    index: HashMap<(String, Option<String>, String), usize>,
    /// Which (kind, namespace) were listed: their objects not found are missing.
    listed: BTreeSet<(String, Option<String>)>,
    /// The watched objects found (indexes into `objects`).
    seen: BTreeSet<usize>,
    /// Workload uid -> (index into `objects`, kind).
    owners: HashMap<String, (usize, String)>,
    /// Deployment index -> its revision.
    deployment_revisions: HashMap<usize, Option<u64>>,
    /// Deployment uid -> its ReplicaSets (all of them: the cap applies once sorted).
    replica_sets: HashMap<String, Vec<ReplicaSetSeen>>,
    /// ReplicaSet uid -> Deployment uid.
    replica_set_owners: HashMap<String, String>,
    /// Owner uid (a ReplicaSet, or a StatefulSet, DaemonSet or Job) -> its Pods.
    pods: HashMap<String, Capped<PodNode>>,
}

impl Collector {
    /// A collector for `entries`: each starts healthy, judged when its live object arrives.
    pub fn new(entries: &[InventoryEntry]) -> Collector {
        let mut objects = Vec::with_capacity(entries.len());
        let mut index = HashMap::new();
        for entry in entries {
            if health::is_watched(&entry.kind) {
                index.insert(
                    (
                        entry.kind.clone(),
                        entry.namespace.clone(),
                        entry.name.clone(),
                    ),
                    objects.len(),
                );
            }
            objects.push(ObjectNode::leaf(
                entry.api_version.clone(),
                entry.kind.clone(),
                entry.namespace.clone(),
                entry.name.clone(),
                HealthState::Healthy,
            ));
        }
        Collector {
            objects,
            index,
            listed: BTreeSet::new(),
            seen: BTreeSet::new(),
            owners: HashMap::new(),
            deployment_revisions: HashMap::new(),
            replica_sets: HashMap::new(),
            replica_set_owners: HashMap::new(),
            pods: HashMap::new(),
        }
    }

    /// The watched objects by (kind, namespace): what to LIST, and the names wanted.
    pub(crate) fn watched_groups(&self) -> BTreeMap<(String, Option<String>), BTreeSet<String>> {
        let mut groups: BTreeMap<(String, Option<String>), BTreeSet<String>> = BTreeMap::new();
        for (kind, namespace, name) in self.index.keys() {
            groups
                .entry((kind.clone(), namespace.clone()))
                .or_default()
                .insert(name.clone());
        }
        groups
    }

    /// The live object of a watched (`kind`, `namespace`) arrived.
    pub fn workload(&mut self, kind: &str, namespace: Option<&str>, item: &Value) {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = (
            kind.to_string(),
            namespace.map(str::to_string),
            name.to_string(),
        );
        let Some(&index) = self.index.get(&key) else {
            return;
        };
        self.seen.insert(index);
        let (state, reason) = HealthState::of(health::evaluate(kind, item));
        if let Some(object) = self.objects.get_mut(index) {
            object.health = state;
            object.reason = reason;
        }
        if owns_pods(kind)
            && let Some(uid) = item.pointer("/metadata/uid").and_then(Value::as_str)
        {
            self.owners
                .insert(uid.to_string(), (index, kind.to_string()));
        }
        if kind == "Deployment" {
            self.deployment_revisions.insert(index, revision(item));
        }
    }

    /// (`kind`, `namespace`) could not be listed: its objects are unknown, for `reason`.
    pub fn unknown(&mut self, kind: &str, namespace: Option<&str>, reason: &str) {
        for ((object_kind, object_namespace, _), index) in &self.index {
            if object_kind == kind
                && object_namespace.as_deref() == namespace
                && let Some(object) = self.objects.get_mut(*index)
            {
                object.health = HealthState::Unknown;
                object.reason = Some(clip(reason));
            }
        }
    }

    /// (`kind`, `namespace`) was listed: its objects not seen are missing.
    pub fn listed(&mut self, kind: &str, namespace: Option<&str>) {
        self.listed
            .insert((kind.to_string(), namespace.map(str::to_string)));
    }

    /// The namespaces whose ReplicaSets to list: those of the Deployments found.
    pub(crate) fn deployment_namespaces(&self) -> BTreeSet<String> {
        self.namespaces_of(|kind| kind == "Deployment")
    }

    /// The namespaces whose Pods to list: those of the workloads found.
    pub(crate) fn pod_namespaces(&self) -> BTreeSet<String> {
        self.namespaces_of(owns_pods)
    }

    fn namespaces_of(&self, kinds: impl Fn(&str) -> bool) -> BTreeSet<String> {
        self.owners
            .values()
            .filter(|(_, kind)| kinds(kind))
            .filter_map(|(index, _)| self.objects.get(*index)?.namespace.clone())
            .collect()
    }

    /// A ReplicaSet of a listed namespace arrived: kept when a Deployment found owns it.
    pub fn replica_set(&mut self, item: &Value) {
        let Some(owner) = owner_uid(item) else {
            return;
        };
        if self
            .owners
            .get(owner)
            .is_none_or(|(_, kind)| kind != "Deployment")
        {
            return;
        }
        let Some(uid) = item.pointer("/metadata/uid").and_then(Value::as_str) else {
            return;
        };
        let node = ReplicaSetNode {
            name: text(item, "/metadata/name").unwrap_or_default(),
            revision: revision(item),
            current: false,
            desired: int(item, "/spec/replicas"),
            ready: int(item, "/status/readyReplicas"),
            pods: Vec::new(),
            more_pods: 0,
        };
        self.replica_set_owners
            .insert(uid.to_string(), owner.to_string());
        self.replica_sets
            .entry(owner.to_string())
            .or_default()
            .push(ReplicaSetSeen {
                uid: uid.to_string(),
                node,
            });
    }

    /// A Pod of a listed namespace arrived: kept when a ReplicaSet kept or a workload found
    /// owns it.
    pub fn pod(&mut self, item: &Value) {
        let Some(owner) = owner_uid(item) else {
            return;
        };
        let ours = self.replica_set_owners.contains_key(owner)
            || self
                .owners
                .get(owner)
                .is_some_and(|(_, kind)| kind != "Deployment");
        if ours {
            self.pods
                .entry(owner.to_string())
                .or_default()
                .push(pod_node(item), MAX_PODS);
        }
    }

    /// The objects, with their children: a watched object never found in a listed group is
    /// missing.
    pub fn finish(mut self) -> Vec<ObjectNode> {
        for ((kind, namespace, _), index) in &self.index {
            if !self.listed.contains(&(kind.clone(), namespace.clone())) {
                continue;
            }
            if !self.seen.contains(index)
                && let Some(object) = self.objects.get_mut(*index)
            {
                object.health = HealthState::Missing;
                object.reason = Some("not in the cluster".to_string());
            }
        }
        let owners = std::mem::take(&mut self.owners);
        for (uid, (index, kind)) in owners {
            let pods = self.pods.remove(&uid).unwrap_or_default();
            let Some(object) = self.objects.get_mut(index) else {
                continue;
            };
            if kind != "Deployment" {
                object.pods = pods.items;
                object.more_pods = pods.more;
                continue;
            }
            let current = self.deployment_revisions.get(&index).copied().flatten();
            let mut sets = self.replica_sets.remove(&uid).unwrap_or_default();
            for set in &mut sets {
                set.node.current = current.is_some() && set.node.revision == current;
                let pods = self.pods.remove(&set.uid).unwrap_or_default();
                set.node.pods = pods.items;
                set.node.more_pods = pods.more;
            }
            // The current one first, then the newest.
            sets.sort_by(|a, b| {
                (b.node.current, b.node.revision, &a.node.name).cmp(&(
                    a.node.current,
                    a.node.revision,
                    &b.node.name,
                ))
            });
            object.more_replica_sets = sets.len().saturating_sub(MAX_REPLICA_SETS);
            object.replica_sets = sets
                .into_iter()
                .take(MAX_REPLICA_SETS)
                .map(|set| set.node)
                .collect();
        }
        self.objects
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(api_version: &str, kind: &str, name: &str) -> InventoryEntry {
        InventoryEntry {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: Some("web".to_string()),
            name: name.to_string(),
        }
    }

    fn owned(kind: &str, name: &str, uid: &str, owner: &str) -> serde_json::Value {
        json!({"kind": kind, "metadata": {"name": name, "namespace": "web", "uid": uid,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "X", "name": "x", "uid": owner,
                "controller": true}]}})
    }

    fn ready_deployment(name: &str, uid: &str, revision: &str) -> serde_json::Value {
        json!({"metadata": {"name": name, "uid": uid, "generation": 1,
                "annotations": {"deployment.kubernetes.io/revision": revision}},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                "availableReplicas": 1}})
    }

    fn replica_set(name: &str, uid: &str, owner: &str, revision: &str) -> serde_json::Value {
        let mut set = owned("ReplicaSet", name, uid, owner);
        set["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": revision});
        set["spec"] = json!({"replicas": 1});
        set["status"] = json!({"readyReplicas": 1});
        set
    }

    fn pod(name: &str, owner: &str) -> serde_json::Value {
        let mut pod = owned("Pod", name, &format!("{name}-uid"), owner);
        pod["spec"] = json!({"containers": [{"name": "app"}, {"name": "sidecar"}]});
        pod["status"] = json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "sidecar", "ready": true, "restartCount": 1, "state": {"running": {}}}]});
        pod
    }

    #[test]
    fn a_deployment_has_its_replica_sets_current_first_and_their_pods() {
        let entries = [
            entry("v1", "ConfigMap", "site"),
            entry("apps/v1", "Deployment", "web"),
        ];
        let mut collector = Collector::new(&entries);
        let groups = collector.watched_groups();
        assert_eq!(groups.len(), 1, "only the Deployment is listed: {groups:?}");
        collector.workload(
            "Deployment",
            Some("web"),
            &ready_deployment("web", "d1", "2"),
        );
        collector.listed("Deployment", Some("web"));
        assert_eq!(
            collector.deployment_namespaces(),
            BTreeSet::from(["web".to_string()])
        );
        collector.replica_set(&replica_set("web-old", "rs1", "d1", "1"));
        collector.replica_set(&replica_set("web-new", "rs2", "d1", "2"));
        // Someone else's ReplicaSet and Pod in the namespace are left out.
        collector.replica_set(&replica_set("other", "rs3", "someone", "1"));
        collector.pod(&pod("web-new-a", "rs2"));
        collector.pod(&pod("other-a", "rs3"));
        collector.pod(&json!({"metadata": {"name": "bare"}}));
        let objects = collector.finish();
        assert_eq!(objects[0].kind, "ConfigMap");
        assert_eq!(objects[0].health, HealthState::Healthy);
        let web = &objects[1];
        assert_eq!(web.health, HealthState::Healthy, "{web:?}");
        let names: Vec<(&str, bool)> = web
            .replica_sets
            .iter()
            .map(|set| (set.name.as_str(), set.current))
            .collect();
        assert_eq!(names, [("web-new", true), ("web-old", false)]);
        let pods = &web.replica_sets[0].pods;
        assert_eq!(pods.len(), 1, "{pods:?}");
        assert_eq!(
            pods[0],
            PodNode {
                name: "web-new-a".to_string(),
                phase: "Running".to_string(),
                ready: true,
                ready_containers: 2,
                containers: 2,
                restarts: 3,
                reason: None,
            }
        );
        assert!(web.replica_sets[1].pods.is_empty());
    }

    #[test]
    fn unhealthy_missing_and_unreadable_objects_say_so() {
        let entries = [
            entry("apps/v1", "Deployment", "slow"),
            entry("apps/v1", "Deployment", "gone"),
            entry("batch/v1", "Job", "migrate"),
            entry("apps/v1", "StatefulSet", "db"),
        ];
        let mut collector = Collector::new(&entries);
        let mut slow = ready_deployment("slow", "d1", "1");
        slow["status"]["availableReplicas"] = json!(0);
        collector.workload("Deployment", Some("web"), &slow);
        collector.listed("Deployment", Some("web"));
        collector.workload(
            "Job",
            Some("web"),
            &json!({"metadata": {"name": "migrate", "uid": "j1"}, "status": {"conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}]}}),
        );
        collector.listed("Job", Some("web"));
        collector.unknown(
            "StatefulSet",
            Some("web"),
            "cannot list statefulsets in web: forbidden",
        );
        let mut crashing = pod("migrate-x", "j1");
        crashing["status"]["phase"] = json!("Failed");
        crashing["status"]["conditions"] = json!([]);
        crashing["status"]["containerStatuses"][0]["ready"] = json!(false);
        crashing["status"]["containerStatuses"][0]["state"] =
            json!({"terminated": {"reason": "Error"}});
        collector.pod(&crashing);
        let objects = collector.finish();
        let by_name = |name: &str| {
            objects
                .iter()
                .find(|object| object.name == name)
                .expect("the object")
        };
        assert_eq!(by_name("slow").health, HealthState::Progressing);
        assert_eq!(
            by_name("slow").reason.as_deref(),
            Some("0 of 1 updated replicas are available")
        );
        assert_eq!(by_name("gone").health, HealthState::Missing);
        assert_eq!(by_name("migrate").health, HealthState::Degraded);
        assert_eq!(
            by_name("migrate").reason.as_deref(),
            Some("BackoffLimitExceeded: Job has reached the specified backoff limit")
        );
        let pods = &by_name("migrate").pods;
        assert_eq!(pods.len(), 1);
        assert!(!pods[0].ready);
        assert_eq!(pods[0].phase, "Failed");
        assert_eq!(pods[0].reason.as_deref(), Some("Error"));
        assert_eq!(by_name("db").health, HealthState::Unknown);
        assert!(
            by_name("db")
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("forbidden"))
        );
    }

    #[test]
    fn children_are_capped_per_owner() {
        let entries = [entry("apps/v1", "Deployment", "web")];
        let mut collector = Collector::new(&entries);
        collector.workload(
            "Deployment",
            Some("web"),
            &ready_deployment("web", "d1", "12"),
        );
        collector.listed("Deployment", Some("web"));
        for revision in 1..=12 {
            collector.replica_set(&replica_set(
                &format!("web-{revision}"),
                &format!("rs{revision}"),
                "d1",
                &revision.to_string(),
            ));
        }
        for index in 0..(MAX_PODS + 7) {
            collector.pod(&pod(&format!("web-12-{index}"), "rs12"));
        }
        let objects = collector.finish();
        let web = &objects[0];
        assert_eq!(web.replica_sets.len(), MAX_REPLICA_SETS);
        assert_eq!(web.more_replica_sets, 12 - MAX_REPLICA_SETS);
        assert_eq!(web.replica_sets[0].name, "web-12");
        assert!(web.replica_sets[0].current);
        assert_eq!(web.replica_sets[1].name, "web-11");
        assert_eq!(web.replica_sets[0].pods.len(), MAX_PODS);
        assert_eq!(web.replica_sets[0].more_pods, 7);
    }

    #[test]
    fn long_text_is_clipped() {
        let long = "é".repeat(MAX_TEXT + 10);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_TEXT + 1);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
