//! The inventory: what gitship applied to an environment, stored in the cluster.
//!
//! A ConfigMap `gitship-<env>` in the environment namespace holds two keys:
//! `inventory.json` (the applied objects: apiVersion, kind, namespace, name; sorted) and
//! `history.json` (the last N deploy records: Git SHA, time, who, outcome, summary; newest
//! first). It is written with server-side apply (field manager `gitship`) after each deploy;
//! prune compares the previous inventory with the desired set.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kube::KubeError;
use crate::kube::retry::RetryPolicy;
use crate::model::{FIELD_MANAGER, MANAGED_BY_LABEL, ObjectId, group_of};

const OBJECTS_KEY: &str = "inventory.json";
const HISTORY_KEY: &str = "history.json";

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
    pub objects: Vec<InventoryEntry>,
    pub history: Vec<DeployRecord>,
}

/// The inventory ConfigMap's name for `environment`.
pub fn configmap_name(environment: &str) -> String {
    crate::model::reserved_name(environment)
}

/// The ConfigMap holding `inventory` (objects sorted, history cut to `keep`).
pub fn encode(
    inventory: &Inventory,
    environment: &str,
    namespace: &str,
    keep: usize,
) -> Result<Value, serde_json::Error> {
    let mut objects = inventory.objects.clone();
    objects.sort();
    objects.dedup();
    let history: Vec<&DeployRecord> = inventory.history.iter().take(keep.max(1)).collect();
    Ok(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(environment),
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: FIELD_MANAGER, "gitship.dev/inventory": environment},
        },
        "data": {
            OBJECTS_KEY: serde_json::to_string_pretty(&objects)?,
            HISTORY_KEY: serde_json::to_string_pretty(&history)?,
        }
    }))
}

/// Read an inventory ConfigMap's JSON.
pub fn decode(configmap: &Value) -> Result<Inventory, String> {
    let data = configmap.get("data");
    let read = |key: &str| data.and_then(|d| d.get(key)).and_then(Value::as_str);
    let objects = match read(OBJECTS_KEY) {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("`{OBJECTS_KEY}`: {e}"))?,
        None => Vec::new(),
    };
    let history = match read(HISTORY_KEY) {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("`{HISTORY_KEY}`: {e}"))?,
        None => Vec::new(),
    };
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
    Ok(Inventory { objects, history })
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
    let name = configmap_name(environment);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let found = retry
        .run(&name, || api.get_opt(&name))
        .await
        .map_err(|source| KubeError::Api {
            object: format!("ConfigMap {namespace}/{name}"),
            message: crate::kube::error_message(&source),
            source,
        })?;
    let Some(configmap) = found else {
        return Ok(None);
    };
    let value = serde_json::to_value(configmap).map_err(|e| KubeError::CorruptInventory {
        name: name.clone(),
        message: e.to_string(),
    })?;
    decode(&value)
        .map(Some)
        .map_err(|message| KubeError::CorruptInventory { name, message })
}

/// Write the inventory (server-side apply).
pub async fn store(
    client: &Client,
    inventory: &Inventory,
    environment: &str,
    namespace: &str,
    keep: usize,
    retry: &RetryPolicy,
) -> Result<(), KubeError> {
    let name = configmap_name(environment);
    let object = format!("ConfigMap {namespace}/{name}");
    let body = encode(inventory, environment, namespace, keep).map_err(|e| {
        KubeError::CorruptInventory {
            name: name.clone(),
            message: e.to_string(),
        }
    })?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    retry
        .run(&name, || api.patch(&name, &params, &patch))
        .await
        .map_err(|source| KubeError::Api {
            object,
            message: crate::kube::error_message(&source),
            source,
        })?;
    Ok(())
}

/// Who is deploying: `GITSHIP_DEPLOYER`, else `GITHUB_ACTOR`/`GITLAB_USER_LOGIN`, else `user@host`.
pub fn who() -> String {
    for key in ["GITSHIP_DEPLOYER", "GITHUB_ACTOR", "GITLAB_USER_LOGIN"] {
        if let Ok(value) = std::env::var(key)
            && !value.is_empty()
        {
            return value;
        }
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
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
            source: RecordSource::Deploy,
            healed: Vec::new(),
            sha: Some(format!("{n:040}")),
            time: DateTime::from_timestamp(1_700_000_000 + i64::from(n), 0).unwrap(),
            who: "ci".into(),
            outcome: DeployOutcome::Succeeded,
            summary: format!("{n} created"),
        }
    }

    #[test]
    fn round_trip_sorts_dedups_and_keeps_the_last_records() {
        let inventory = Inventory {
            objects: vec![
                entry("Service", "web"),
                entry("ConfigMap", "a"),
                entry("Service", "web"),
            ],
            history: (0..15).rev().map(record).collect(),
        };
        let configmap = encode(&inventory, "production", "blog", 10).unwrap();
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
    }

    #[test]
    fn empty_and_corrupt_configmaps() {
        assert_eq!(decode(&json!({"data": {}})).unwrap(), Inventory::default());
        let error = decode(&json!({"data": {"inventory.json": "not json"}})).unwrap_err();
        assert!(error.contains("inventory.json"), "{error}");
    }
}
