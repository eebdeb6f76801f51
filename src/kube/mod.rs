//! The Kubernetes stage: everything gitship does against a cluster's API.
//!
//! It owns the concepts between "rendered manifests" and "a healthy, converged environment":
//!
//! - [`client`]: one `kube::Client` per environment, built from `--kubeconfig` / `KUBECONFIG` /
//!   `~/.kube/config` and the environment's context, or from the in-cluster config; the client is
//!   built once by the command and injected everywhere below.
//! - [`discovery`]: apiVersion/kind -> resource and scope, cached for the run.
//! - [`order`]: the staged, documented apply order (bootstrap kinds, kind order, waves).
//! - [`apply`]: server-side apply with field manager `gitship`, change detection and retries.
//! - [`diff`]: the server-side dry-run comparison with the live object over the fields gitship
//!   manages; `plan`, `diff` and `drift` reuse it.
//! - [`health`]: rollout health like `kubectl rollout status`, and failure reports with Events.
//! - [`inventory`] and [`prune`]: what gitship applied last time, and what to delete now.
//! - [`lock`]: the per-environment Lease that keeps two deploys from interleaving.
//! - [`deploy`]: the entry point `gitship deploy` calls, [`deploy::deploy_objects`].

pub mod apply;
pub mod client;
pub mod deploy;
pub mod diff;
pub mod discovery;
mod error;
pub mod health;
pub mod inventory;
pub mod lock;
pub mod order;
pub mod progress;
pub mod prune;
pub mod retry;
pub mod sandbox;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diagnostics::Location;

pub use client::{ClientOptions, connect};
pub use deploy::{DeployOptions, DeployReport, Environment, ObjectAction, deploy_objects};
pub use diff::{FieldChange, ObjectDiff, PlannedAction};
pub use error::KubeError;

/// The field manager of every server-side apply gitship sends.
pub const FIELD_MANAGER: &str = "gitship";
/// Annotation naming the environment that owns an object; prune only deletes matching objects.
pub const OWNED_BY_ANNOTATION: &str = "gitship.dev/owned-by";
/// Label set on every applied object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Annotation `"<int>"`: user ordering; lower waves are applied (and healthy) first.
pub const WAVE_ANNOTATION: &str = "gitship.dev/wave";
/// Annotation `"true"`: an immutable-field change is applied by delete and recreate.
pub const REPLACE_ANNOTATION: &str = "gitship.dev/replace";
/// Annotation `"false"`: the object is never pruned.
pub const PRUNE_ANNOTATION: &str = "gitship.dev/prune";

/// One object gitship wants in the cluster, and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    /// Where the manifest was written (file:line:col), for error messages.
    pub source: Location,
    /// The rendered object (`apiVersion`, `kind`, `metadata`, ...).
    pub object: Value,
}

impl From<crate::render::Manifest> for DesiredObject {
    fn from(manifest: crate::render::Manifest) -> Self {
        DesiredObject {
            source: manifest.source,
            object: manifest.object,
        }
    }
}

/// The identity of an object: group, kind, namespace (None for cluster-scoped) and name.
/// The version is not part of the identity (an object keeps its identity across API versions).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectId {
    pub group: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectId {
    /// The identity of a JSON object as written (namespace as written, possibly absent).
    pub fn of(object: &Value) -> Option<ObjectId> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let metadata = object.get("metadata")?;
        let name = metadata.get("name")?.as_str()?;
        let namespace = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(ObjectId {
            group: group_of(api_version).to_string(),
            kind: kind.to_string(),
            namespace,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {}/{}", self.kind, namespace, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The group part of an `apiVersion` (`apps/v1` -> `apps`, `v1` -> ``).
pub fn group_of(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map(|(group, _)| group)
        .unwrap_or("")
}

/// An annotation of a JSON object, when set to a string.
pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/annotations")?.get(key)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identity_ignores_version_and_displays_kubectl_like() {
        let object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "blog"}});
        let id = ObjectId::of(&object).unwrap();
        assert_eq!(id.group, "apps");
        assert_eq!(id.to_string(), "Deployment blog/web");
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "blog"}});
        assert_eq!(
            ObjectId::of(&namespace).unwrap().to_string(),
            "Namespace blog"
        );
        assert_eq!(ObjectId::of(&json!({"kind": "X"})), None);
    }
}
