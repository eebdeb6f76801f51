//! The inventory: what gitship applied to an environment, stored in the cluster.
//!
//! A ConfigMap `gitship-<env>` in the environment namespace holds two keys:
//! `inventory.json` (the applied objects: apiVersion, kind, namespace, name; sorted) and
//! `history.json` (the last N deploy records: Git SHA and subject, time, who, outcome, counts,
//! images; newest first). It is written with server-side apply (field manager `gitship`) after
//! each deploy; prune compares the previous inventory with the desired set. The history is cut
//! to `deploy.history` records, and further (oldest first) when the ConfigMap's data would
//! exceed [`MAX_DATA_BYTES`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::KubeError;
use crate::retry::RetryPolicy;
use gitship_foundation::model::{FIELD_MANAGER, MANAGED_BY_LABEL, ObjectId, group_of};

const OBJECTS_KEY: &str = "inventory.json";
const HISTORY_KEY: &str = "history.json";
const APPLIED_KEY: &str = "applied.json";

/// The most the inventory ConfigMap's data may hold (a ConfigMap holds at most 1 MiB): older
/// deploy records are dropped to stay under it.
pub(crate) const MAX_DATA_BYTES: usize = 512 * 1024;

/// One object gitship applied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl InventoryEntry {
    /// The identity (version-free) of this entry.
    pub fn id(&self) -> ObjectId {
        ObjectId {
            group: group_of(&self.api_version).to_string(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// One deploy, as remembered in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    /// The record's number in the environment's history (`#17`): one more than the newest
    /// before it. Records written before numbers existed are numbered when read, oldest first.
    #[serde(default)]
    pub number: u64,
    /// The Git commit deployed, when known.
    pub sha: Option<String>,
    pub time: DateTime<Utc>,
    /// Who deployed (user@host, or the CI identity).
    pub who: String,
    pub outcome: DeployOutcome,
    /// One line: `3 created, 1 configured, 20 unchanged, 1 pruned`.
    pub summary: String,
    /// What started it (records written before it existed are `deploy`).
    #[serde(default)]
    pub source: RecordSource,
    /// For a heal: what was put back and whose change it undid (`Deployment/web
    /// spec.replicas (kubectl)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub healed: Vec<String>,
    /// The first line of the commit's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The commit's author (name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// When the deploy started (`time` is when it ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    /// How long the whole deploy took (images, Terraform, Kubernetes), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// What happened to the objects.
    #[serde(default, skip_serializing_if = "RecordCounts::is_zero")]
    pub counts: RecordCounts,
    /// The Terraform plan applied; `None` when Terraform applied nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terraform: Option<TerraformCounts>,
    /// The image references deployed (with their digest when known).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<DeployedImage>,
    /// The CI run that deployed, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_url: Option<String>,
    /// Why a failed deploy failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordError>,
    /// `deploy --rev REV`: the revision as given (the deploy was not of the work tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// How many deploys this record stands for: consecutive deploys of the same revision that
    /// changed nothing collapse into one (`time` is the newest's).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub repeats: u32,
    /// A successful deploy: the record (`#N`) whose stored manifests are what this one applied
    /// (its own number, or an earlier record's when they are the same), in the revisions Secret
    /// ([`crate::revisions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<u64>,
    /// The hooks the deploy ran and how each ended ([`crate::hooks`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRun>,
}

fn one() -> u32 {
    1
}

fn is_one(count: &u32) -> bool {
    *count == 1
}

/// Why a deploy failed: the stage, the object when one is to blame, and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    /// `apply`, `health`, `hook`, `prune` or `lock`.
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub message: String,
}

impl DeployRecord {
    /// A bare record of `sha` for tests: by `ann`, now, nothing counted (unnumbered). The
    /// `gitship` crate's unit tests reach it through the feature `test-fixtures` (a
    /// dev-dependency feature: never in a release build).
    #[cfg(any(test, feature = "test-fixtures"))]
    pub fn for_test(sha: &str, outcome: DeployOutcome, source: RecordSource) -> DeployRecord {
        DeployRecord {
            number: 0,
            sha: Some(sha.into()),
            time: Utc::now(),
            who: "ann".into(),
            outcome,
            summary: String::new(),
            source,
            healed: Vec::new(),
            subject: None,
            author: None,
            started: None,
            duration_ms: None,
            counts: RecordCounts::default(),
            terraform: None,
            images: Vec::new(),
            ci_url: None,
            error: None,
            rev: None,
            repeats: 1,
            manifests: None,
            hooks: Vec::new(),
        }
    }

    /// Whether this deploy changed nothing (no object created, configured or pruned, no hook ran).
    pub fn is_no_op(&self) -> bool {
        self.outcome == DeployOutcome::Succeeded
            && self.counts.created == 0
            && self.counts.configured == 0
            && self.counts.pruned == 0
            && self.terraform.is_none()
            && self.hooks.is_empty()
    }
}

/// Put `record` on top of `history` (newest first): numbered one more than the newest, or
/// collapsed into the newest when both are no-op deploys of the same revision from the same
/// source (its count goes up, its time is the new one's).
pub fn push_record(history: &mut Vec<DeployRecord>, mut record: DeployRecord) {
    if let Some(newest) = history.first_mut()
        && newest.is_no_op()
        && record.is_no_op()
        && newest.sha == record.sha
        && newest.source == record.source
        && newest.healed.is_empty()
        && record.healed.is_empty()
    {
        newest.repeats = newest.repeats.saturating_add(record.repeats.max(1));
        newest.time = record.time;
        newest.who = record.who;
        newest.duration_ms = record.duration_ms;
        return;
    }
    record.number = history
        .iter()
        .map(|r| r.number)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    history.insert(0, record);
}

/// Number the records that have none (written before numbers existed): below the numbered
/// ones, oldest first from 1.
fn number_history(history: &mut [DeployRecord]) {
    let unnumbered = history.iter().filter(|r| r.number == 0).count() as u64;
    if unnumbered == 0 {
        return;
    }
    let mut next = 1u64;
    for record in history.iter_mut().rev() {
        if record.number == 0 {
            record.number = next;
            next = next.saturating_add(1);
        } else if record.number < unnumbered {
            // An edited history: keep the numbers unique by counting on from the highest.
            record.number = record.number.saturating_add(unnumbered);
        }
    }
}

/// How many objects a deploy created, configured, left unchanged and pruned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    #[serde(default)]
    pub created: usize,
    #[serde(default)]
    pub configured: usize,
    #[serde(default)]
    pub unchanged: usize,
    #[serde(default)]
    pub pruned: usize,
}

impl RecordCounts {
    pub fn is_zero(&self) -> bool {
        *self == RecordCounts::default()
    }
}

/// The counts of the Terraform plan a deploy applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerraformCounts {
    #[serde(default)]
    pub add: usize,
    #[serde(default)]
    pub change: usize,
    #[serde(default)]
    pub replace: usize,
    #[serde(default)]
    pub destroy: usize,
}

/// One image a deploy pinned its manifests to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedImage {
    pub app: String,
    /// `<repository>:<tag>@<digest>` (without the digest when it is unknown, as in the sandbox).
    pub reference: String,
}

/// What the record of a deploy says that the Kubernetes stage does not know itself: the
/// commit, the timing, Terraform, the images and the CI run (set by `ops::deploy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordExtras {
    /// `deploy --rev REV`: the revision as given.
    pub rev: Option<String>,
    pub subject: Option<String>,
    pub author: Option<String>,
    pub started: Option<DateTime<Utc>>,
    pub terraform: Option<TerraformCounts>,
    pub images: Vec<DeployedImage>,
    pub ci_url: Option<String>,
    /// The deploy re-applies the manifests stored for record `#N` (an exact rollback).
    pub stored: Option<u64>,
}

/// What started a deploy record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordSource {
    /// `gitship deploy`.
    #[default]
    Deploy,
    /// The agent synced a new commit.
    Agent,
    /// The agent put drifted or deleted objects back.
    Heal,
    /// `gitship rollback`.
    Rollback,
}

impl RecordSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordSource::Deploy => "deploy",
            RecordSource::Agent => "agent",
            RecordSource::Heal => "heal",
            RecordSource::Rollback => "rollback",
        }
    }
}

/// How a deploy ended (stored as `succeeded` or `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployOutcome {
    Succeeded,
    Failed,
}

/// The stored inventory of an environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Read from the copy ([`copy_name`]): the inventory ConfigMap itself was gone.
    pub restored: bool,
    pub objects: Vec<InventoryEntry>,
    pub history: Vec<DeployRecord>,
    /// Object (`Kind namespace/name`) -> [`applied_digest`] of the body gitship last applied to
    /// it successfully. Lets a deploy skip the dry run of an object whose live state already
    /// holds exactly that (see `kube::apply::apply_object`). Never for Secrets.
    pub applied: BTreeMap<String, String>,
}

/// The key of `id` in [`Inventory::applied`]: `Kind namespace/name`, with ` (group)` unless core.
pub(crate) fn digest_key(id: &ObjectId) -> String {
    if id.group.is_empty() {
        id.to_string()
    } else {
        format!("{id} ({})", id.group)
    }
}

/// The digest of a body as gitship applies it (the first 16 bytes of the SHA-256 of its JSON,
/// hex): `None` for a Secret, whose digest would let anyone who reads the inventory test
/// guesses of its values.
pub(crate) fn applied_digest(body: &Value) -> Option<String> {
    use sha2::{Digest, Sha256};
    if gitship_foundation::model::is_secret(body) {
        return None;
    }
    let text = serde_json::to_vec(body).ok()?;
    let digest = Sha256::digest(&text);
    Some(hex::encode(digest.get(..16)?))
}

/// Label of an inventory ConfigMap (and its copy): the environment it is the inventory of.
pub const INVENTORY_LABEL: &str = "gitship.dev/inventory";

/// The inventory ConfigMap's name for `environment`.
pub fn configmap_name(environment: &str) -> String {
    gitship_foundation::model::reserved_name(environment)
}

/// The name of the inventory's copy, `gitship-<env>.history`: the objects, the history, the pin
/// and the suspension, kept twice so that deleting the inventory ConfigMap loses none of them
/// (read in its place when it is gone; the next deploy writes the inventory again).
pub fn copy_name(environment: &str) -> String {
    format!("{}.history", configmap_name(environment))
}

/// An encoded inventory ConfigMap, and how many of the newest `keep` records did not fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub configmap: Value,
    /// Records dropped (oldest first) to keep the data under [`MAX_DATA_BYTES`].
    pub dropped: usize,
    /// Records kept: the newest `kept` of the history.
    pub kept: usize,
}

/// The ConfigMap holding `inventory`: objects sorted, history cut to `keep` records and then,
/// oldest first, to what fits in [`MAX_DATA_BYTES`] (the newest record always stays).
pub fn encode(
    inventory: &Inventory,
    environment: &str,
    namespace: &str,
    keep: usize,
) -> Result<Encoded, serde_json::Error> {
    let mut objects = inventory.objects.clone();
    objects.sort();
    objects.dedup();
    let objects = serde_json::to_string_pretty(&objects)?;
    let applied = serde_json::to_string(&inventory.applied)?;
    let wanted = inventory.history.len().min(keep.max(1));
    let history_of = |count: usize| serde_json::to_string_pretty(&inventory.history[..count]);
    let fits = |history: &str| objects.len() + applied.len() + history.len() <= MAX_DATA_BYTES;
    let mut history = history_of(wanted)?;
    let mut kept = wanted;
    if !fits(&history) && wanted > 1 {
        // The size grows with the count: the most records that fit, by bisection.
        let (mut low, mut high) = (1, wanted - 1);
        while low < high {
            let middle = (low + high).div_ceil(2);
            if fits(&history_of(middle)?) {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        kept = low;
        history = history_of(kept)?;
    }
    let configmap = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(environment),
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: FIELD_MANAGER, INVENTORY_LABEL: environment},
        },
        "data": {
            OBJECTS_KEY: objects,
            HISTORY_KEY: history,
            APPLIED_KEY: applied,
        }
    });
    Ok(Encoded {
        configmap,
        dropped: wanted - kept,
        kept,
    })
}

/// Read an inventory ConfigMap's JSON.
pub fn decode(configmap: &Value) -> Result<Inventory, String> {
    let data = configmap.get("data");
    let read = |key: &str| data.and_then(|d| d.get(key)).and_then(Value::as_str);
    let objects = match read(OBJECTS_KEY) {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("`{OBJECTS_KEY}`: {e}"))?,
        None => Vec::new(),
    };
    let mut history: Vec<DeployRecord> = match read(HISTORY_KEY) {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("`{HISTORY_KEY}`: {e}"))?,
        None => Vec::new(),
    };
    number_history(&mut history);
    // Only a shortcut: unreadable digests mean every object is dry-run, as without them.
    let applied = read(APPLIED_KEY)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let objects: Vec<InventoryEntry> = objects;
    // The inventory is cluster data anyone with write access can edit: its names go into
    // request paths when pruning, so a name that is not a path segment makes it corrupt.
    for entry in &objects {
        for part in std::iter::once(&entry.name).chain(entry.namespace.iter()) {
            if !is_path_segment(part) {
                return Err(format!(
                    "`{OBJECTS_KEY}`: `{}` is not a valid object name",
                    part.escape_default()
                ));
            }
        }
    }
    let restored = configmap
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_some_and(|name| name.ends_with(".history"));
    Ok(Inventory {
        restored,
        objects,
        history,
        applied,
    })
}

/// Whether `name` can stand as one segment of an API path (what any Kubernetes name is).
fn is_path_segment(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 253
        && !name.contains(['/', '%', '?', '#'])
        && !name.chars().any(char::is_control)
}

/// The environment's stored inventory; `None` before its first deploy.
pub async fn load(
    client: &Client,
    environment: &str,
    namespace: &str,
    retry: &RetryPolicy,
) -> Result<Option<Inventory>, KubeError> {
    let Some(value) = load_configmap(client, environment, namespace, retry).await? else {
        return Ok(None);
    };
    decode(&value)
        .map(Some)
        .map_err(|message| KubeError::CorruptInventory {
            name: configmap_name(environment),
            message,
        })
}

/// The environment's inventory ConfigMap as JSON (for [`decode`] and the pin's decode, from one
/// read); `None` before its first deploy.
pub async fn load_configmap(
    client: &Client,
    environment: &str,
    namespace: &str,
    retry: &RetryPolicy,
) -> Result<Option<Value>, KubeError> {
    let name = configmap_name(environment);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let found = retry
        .run(&name, || api.get_opt(&name))
        .await
        .map_err(|source| KubeError::api(format!("ConfigMap {namespace}/{name}"), source))?;
    let found = match found {
        Some(configmap) => Some(configmap),
        // Gone: its copy, when there is one, has everything it had.
        None => {
            let copy = copy_name(environment);
            retry
                .run(&copy, || api.get_opt(&copy))
                .await
                .map_err(|source| KubeError::api(format!("ConfigMap {namespace}/{copy}"), source))?
        }
    };
    let Some(configmap) = found else {
        return Ok(None);
    };
    serde_json::to_value(configmap)
        .map(Some)
        .map_err(|e| KubeError::CorruptInventory {
            name,
            message: e.to_string(),
        })
}

/// How much of the history [`store`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHistory {
    /// Records dropped (oldest first) to keep the data under [`MAX_DATA_BYTES`].
    pub dropped: usize,
    /// Records kept: the newest `kept` of the history.
    pub kept: usize,
}

/// Write the inventory (server-side apply); how many deploy records it kept, and how many were
/// dropped to keep it under [`MAX_DATA_BYTES`] (see [`encode`]).
pub async fn store(
    client: &Client,
    inventory: &Inventory,
    environment: &str,
    namespace: &str,
    keep: usize,
    retry: &RetryPolicy,
) -> Result<StoredHistory, KubeError> {
    let name = configmap_name(environment);
    let object = format!("ConfigMap {namespace}/{name}");
    let Encoded {
        configmap,
        dropped,
        kept,
    } = encode(inventory, environment, namespace, keep).map_err(|e| {
        KubeError::CorruptInventory {
            name: name.clone(),
            message: e.to_string(),
        }
    })?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&configmap);
    retry
        .run(&name, || api.patch(&name, &params, &patch))
        .await
        .map_err(|source| KubeError::Api {
            object,
            message: crate::error_message(&source),
            source,
        })?;
    // The copy: the same data under the copy's name. The deploy is recorded already, so a copy
    // that cannot be written (an agent whose RBAC predates it) is a warning, not a failure.
    let copy = copy_name(environment);
    let mut copied = configmap;
    copied["metadata"]["name"] = Value::String(copy.clone());
    let patch = Patch::Apply(&copied);
    if let Err(error) = retry.run(&copy, || api.patch(&copy, &params, &patch)).await {
        tracing::warn!(
            error = %crate::error_message(&error),
            "could not write the inventory's copy `{copy}`"
        );
    }
    Ok(StoredHistory { dropped, kept })
}

/// How one hook run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookOutcome {
    Succeeded,
    Failed,
    TimedOut,
}

/// One hook run, for the deploy report and its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    pub phase: gitship_foundation::model::hook::HookPhase,
    /// The object it created (`Job blog/migrate-7xk2p`).
    pub object: String,
    /// Where it is declared (`deploy/migrate.yaml:1:1`).
    pub source: String,
    pub outcome: HookOutcome,
    /// Why it failed or timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Its delete policy deleted it after the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_path_segments_make_the_inventory_corrupt() {
        for name in [
            "../../api/v1/namespaces/kube-system/secrets/x",
            "a%2Fb",
            "..",
            "",
        ] {
            let objects = serde_json::json!([{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "blog", "name": name}]);
            let configmap = serde_json::json!({"data": {OBJECTS_KEY: objects.to_string()}});
            assert!(decode(&configmap).is_err(), "{name:?}");
        }
        let objects = serde_json::json!([{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "blog", "name": "ok.name-1"}]);
        let configmap = serde_json::json!({"data": {OBJECTS_KEY: objects.to_string()}});
        assert_eq!(decode(&configmap).expect("valid").objects.len(), 1);
    }

    fn entry(kind: &str, name: &str) -> InventoryEntry {
        InventoryEntry {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: Some("blog".into()),
            name: name.into(),
        }
    }

    fn record(n: u32) -> DeployRecord {
        DeployRecord {
            number: u64::from(n) + 1,
            error: None,
            repeats: 1,
            manifests: None,
            hooks: Vec::new(),
            rev: None,
            source: RecordSource::Deploy,
            healed: Vec::new(),
            sha: Some(format!("{n:040}")),
            time: DateTime::from_timestamp(1_700_000_000 + i64::from(n), 0).unwrap(),
            who: "ci".into(),
            outcome: DeployOutcome::Succeeded,
            summary: format!("{n} created"),
            subject: Some(format!("change {n}")),
            author: Some("ann".into()),
            started: DateTime::from_timestamp(1_699_999_990 + i64::from(n), 0),
            duration_ms: Some(10_000),
            counts: RecordCounts {
                created: n as usize,
                ..RecordCounts::default()
            },
            terraform: None,
            images: Vec::new(),
            ci_url: None,
        }
    }

    #[test]
    fn round_trip_sorts_dedups_and_keeps_the_last_records() {
        let inventory = Inventory {
            restored: false,
            objects: vec![
                entry("Service", "web"),
                entry("ConfigMap", "a"),
                entry("Service", "web"),
            ],
            history: (0..15).rev().map(record).collect(),
            applied: BTreeMap::from([("ConfigMap blog/a".to_string(), "0123abcd".to_string())]),
        };
        let Encoded {
            configmap, dropped, ..
        } = encode(&inventory, "production", "blog", 10).unwrap();
        assert_eq!(dropped, 0);
        assert_eq!(configmap["metadata"]["name"], "gitship-production");
        assert_eq!(configmap["metadata"]["namespace"], "blog");
        let decoded = decode(&configmap).unwrap();
        assert_eq!(
            decoded.objects,
            vec![entry("ConfigMap", "a"), entry("Service", "web")]
        );
        assert_eq!(decoded.history.len(), 10);
        assert_eq!(decoded.history[0], record(14));
        assert_eq!(decoded.objects[1].id().to_string(), "Service blog/web");
        assert_eq!(decoded.applied, inventory.applied);
    }

    #[test]
    fn empty_and_corrupt_configmaps() {
        assert_eq!(decode(&json!({"data": {}})).unwrap(), Inventory::default());
        let error = decode(&json!({"data": {"inventory.json": "not json"}})).unwrap_err();
        assert!(error.contains("inventory.json"), "{error}");
        // Digests are only a shortcut: unreadable ones are dropped, not an error.
        let decoded = decode(&json!({"data": {"applied.json": "not json"}})).unwrap();
        assert!(decoded.applied.is_empty());
    }

    #[test]
    fn secrets_have_no_applied_digest() {
        let map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let digest = applied_digest(&map).unwrap();
        assert_eq!(digest.len(), 32);
        assert_eq!(applied_digest(&map), Some(digest));
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}, "stringData": {"p": "x"}});
        assert_eq!(applied_digest(&secret), None);
    }

    #[test]
    fn the_history_is_cut_to_fit_the_configmap() {
        let big = |n: u32| DeployRecord {
            healed: (0..20)
                .map(|i| format!("Deployment/web-{i} spec.template.spec.containers (kubectl)"))
                .collect(),
            images: (0..5)
                .map(|i| DeployedImage {
                    app: format!("app-{i}"),
                    reference: format!("ghcr.io/acme/blog/app-{i}:0123456789ab@sha256:{:064}", n),
                })
                .collect(),
            ..record(n)
        };
        let inventory = Inventory {
            objects: vec![entry("ConfigMap", "a")],
            history: (0..5_000).rev().map(big).collect(),
            ..Inventory::default()
        };
        let Encoded {
            configmap,
            dropped,
            kept,
        } = encode(&inventory, "production", "blog", 5_000).unwrap();
        let data = configmap["data"].as_object().unwrap();
        let size: usize = data.values().map(|v| v.as_str().unwrap().len()).sum();
        assert!(size <= MAX_DATA_BYTES, "{size}");
        let decoded = decode(&configmap).unwrap();
        assert!(dropped > 0);
        assert_eq!(decoded.history.len() + dropped, 5_000);
        assert_eq!(decoded.history.len(), kept);
        assert_eq!(decoded.history[0], big(4_999), "the newest is kept");
        // Nearly full: one more record would not have fitted.
        let one_more = serde_json::to_string_pretty(&inventory.history[..=decoded.history.len()])
            .unwrap()
            .len();
        assert!(data[OBJECTS_KEY].as_str().unwrap().len() + one_more > MAX_DATA_BYTES);
    }

    #[test]
    fn records_written_before_the_new_fields_decode() {
        let old = r#"[{"sha": "abc", "time": "2026-01-02T03:04:05Z", "who": "ann@laptop",
            "outcome": "succeeded", "summary": "9 created"}]"#;
        let decoded = decode(&json!({"data": {HISTORY_KEY: old}})).unwrap();
        let record = &decoded.history[0];
        assert_eq!(record.source, RecordSource::Deploy);
        assert_eq!(record.summary, "9 created");
        assert_eq!((record.subject.as_ref(), record.started), (None, None));
        assert!(record.counts.is_zero() && record.images.is_empty());
        // And what is unset is not written.
        let written = serde_json::to_value(record).unwrap();
        assert_eq!(written.as_object().unwrap().len(), 7, "{written}");
        assert_eq!(record.number, 1, "numbered when read");
    }

    #[test]
    fn records_are_numbered_and_no_op_deploys_of_a_revision_collapse() {
        let mut history = Vec::new();
        let deploy = |sha: &str, created: usize| DeployRecord {
            number: 0,
            sha: Some(sha.to_string()),
            counts: RecordCounts {
                created,
                ..RecordCounts::default()
            },
            ..record(0)
        };
        push_record(&mut history, deploy("a", 3));
        push_record(&mut history, deploy("a", 0));
        for _ in 0..50 {
            push_record(&mut history, deploy("a", 0));
        }
        push_record(&mut history, deploy("b", 1));
        let numbers: Vec<(u64, u32)> = history.iter().map(|r| (r.number, r.repeats)).collect();
        assert_eq!(numbers, vec![(3, 1), (2, 51), (1, 1)]);
        // Old unnumbered records below numbered ones get the low numbers.
        let mut mixed = vec![
            DeployRecord {
                number: 3,
                ..record(3)
            },
            DeployRecord {
                number: 0,
                ..record(2)
            },
            DeployRecord {
                number: 0,
                ..record(1)
            },
        ];
        number_history(&mut mixed);
        assert_eq!(
            mixed.iter().map(|r| r.number).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
    }
}
