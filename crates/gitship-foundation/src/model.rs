//! The domain model every layer shares: an object's identity ([`ObjectId`]), one object gitship
//! wants in the cluster and where it was written ([`Manifest`]), the environment as the cluster
//! sees it ([`Environment`]), an app's image reference ([`ImageRef`]), Terraform's outputs
//! ([`Outputs`]), the known secrets scrubbed from text ([`KnownSecrets`]), and the labels,
//! annotations and reserved names gitship owns, and what an object is to a deploy (a desired
//! object, a hook or skipped: [`hook`]).
//!
//! It sits at the bottom of the layers (see `ARCHITECTURE.md`): it depends on nothing of gitship
//! but [`crate::diagnostics::Location`], so `image`, `terraform`, `render`, `kube`, `plan` and
//! `ops` can all speak of the same objects without importing each other.

pub mod hook;
mod image_ref;
mod known_secrets;
mod terraform_outputs;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diagnostics::Location;

pub use image_ref::ImageRef;
pub use known_secrets::{KnownSecrets, REDACTED};
pub use terraform_outputs::{OutputValue, Outputs};

/// The field manager of every server-side apply gitship sends.
pub const FIELD_MANAGER: &str = "gitship";
/// Label set on every object gitship renders and applies.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "gitship";
/// Label carrying the environment's name.
pub const ENVIRONMENT_LABEL: &str = "gitship.dev/environment";
/// Annotation naming the environment that created a namespace (a deploy that found none, or a
/// preview's record): `destroy` deletes a namespace only when it names the environment destroyed
/// (ARCHITECTURE.md, "Destroy"), never for the `managed-by` label alone, which every applied
/// object carries.
pub const CREATED_BY_ANNOTATION: &str = "gitship.dev/created-by";
/// Annotation naming the environment that owns an object; prune only deletes matching objects.
pub const OWNED_BY_ANNOTATION: &str = "gitship.dev/owned-by";
/// Annotation `"<int>"`: user ordering; lower waves are applied (and healthy) first.
pub const WAVE_ANNOTATION: &str = "gitship.dev/wave";
/// Annotation `"true"`: an immutable-field change is applied by delete and recreate.
pub const REPLACE_ANNOTATION: &str = "gitship.dev/replace";
/// Annotation `"false"`: the object is never pruned.
pub const PRUNE_ANNOTATION: &str = "gitship.dev/prune";
/// Annotation `"true"`: take over an object another environment owns (its `owned-by` changes).
pub const ADOPT_ANNOTATION: &str = "gitship.dev/adopt";

/// What a value that Terraform only knows after apply looks like.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// Whether a value of `object` holds [`KNOWN_AFTER_APPLY`]: a Terraform output that a plan
/// rendered before the apply that makes it known.
pub fn holds_unknown(object: &serde_json::Value) -> bool {
    use serde_json::Value;
    match object {
        Value::String(text) => text.contains(KNOWN_AFTER_APPLY),
        Value::Array(items) => items.iter().any(holds_unknown),
        Value::Object(map) => map.values().any(holds_unknown),
        _ => false,
    }
}

/// The name gitship reserves in an environment's namespace: the inventory ConfigMap and the
/// deploy-lock Lease are both called `gitship-<env>`.
pub fn reserved_name(environment: &str) -> String {
    format!("gitship-{environment}")
}

/// Whether gitship reserves `name` in `environment`'s namespace, whatever the kind: the one
/// prefix rule covers every name gitship uses now (`gitship-<env>`: inventory and deploy lock;
/// `gitship-<env>.agent`: the agent's Lease and status) and every name it may use later
/// (`gitship-<env>.<anything>`). No manifest may declare one, and prune never deletes one.
pub fn is_reserved(environment: &str, name: &str) -> bool {
    let reserved = reserved_name(environment);
    name == reserved
        || name
            .strip_prefix(&reserved)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// The agent's leader Lease of `environment` (a dot cannot occur in an environment's name, so
/// this never names another environment's lock).
pub fn agent_lease_name(environment: &str) -> String {
    format!("gitship-{environment}.agent")
}

/// The ConfigMap where the agent publishes its status (`gitship status` reads it).
pub fn agent_status_name(environment: &str) -> String {
    format!("gitship-{environment}.agent")
}

/// The environment as the Kubernetes stage sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: String,
    /// Default namespace for namespaced objects; holds the inventory and the lock.
    pub namespace: String,
}

/// The identity of an object: group, kind, namespace (None for cluster-scoped) and name.
/// The version is not part of the identity (an object keeps its identity across API versions).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectId {
    /// API group; empty for the core group.
    pub group: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectId {
    /// The identity of a JSON object as written (namespace as written, possibly absent);
    /// `None` when `apiVersion`, `kind` or `metadata.name` is missing.
    pub fn of(object: &Value) -> Option<ObjectId> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let name = object.pointer("/metadata/name")?.as_str()?;
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(ObjectId {
            group: group_of(api_version).to_string(),
            kind: kind.to_string(),
            namespace,
            name: name.to_string(),
        })
    }

    /// The identity of an object whose missing fields count as empty.
    pub fn lenient(object: &Value) -> ObjectId {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        ObjectId {
            group: group_of(text("/apiVersion").unwrap_or_default()).to_string(),
            kind: text("/kind").unwrap_or_default().to_string(),
            namespace: text("/metadata/namespace").map(str::to_string),
            name: text("/metadata/name").unwrap_or_default().to_string(),
        }
    }

    /// `apps/Deployment blog/web`: the identity with its group, for messages where two kinds of
    /// one name in different groups must not read alike.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.to_string()
        } else {
            format!("{}/{self}", self.group)
        }
    }
}

/// `Deployment blog/web`, `Namespace blog`: as `kubectl` names objects.
impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {}/{}", self.kind, namespace, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One object gitship wants in the cluster: a rendered manifest and where it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The start of the YAML document (file relative to the repository root).
    pub source: Location,
    /// The rendered object (`apiVersion`, `kind`, `metadata`, ...).
    pub object: Value,
}

impl Manifest {
    /// The object's identity (missing fields empty).
    pub fn id(&self) -> ObjectId {
        ObjectId::lenient(&self.object)
    }

    /// [`ObjectId::qualified`] of [`Manifest::id`]; a hook without a name shows its
    /// `metadata.generateName` prefix instead (`batch/Job blog/migrate-`).
    pub fn qualified_name(&self) -> String {
        let mut id = self.id();
        if id.name.is_empty()
            && let Some(prefix) = self
                .object
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
        {
            id.name = prefix.to_string();
        }
        id.qualified()
    }

    pub fn api_version(&self) -> &str {
        self.object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
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

/// Whether `object` is a core `v1` Secret.
pub fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// Kinds that are cluster-scoped (group, kind). Everything else is assumed namespaced; the
/// Kubernetes stage corrects this with API discovery.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("networking.k8s.io", "IngressClass"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("apiregistration.k8s.io", "APIService"),
    ("node.k8s.io", "RuntimeClass"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
];

/// Whether objects of `kind` in `group` are cluster-scoped, by gitship's built-in table.
pub fn is_cluster_scoped(group: &str, kind: &str) -> bool {
    CLUSTER_SCOPED
        .iter()
        .any(|(g, k)| *g == group && *k == kind)
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
        assert_eq!(id.qualified(), "apps/Deployment blog/web");
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "blog"}});
        assert_eq!(
            ObjectId::of(&namespace).unwrap().to_string(),
            "Namespace blog"
        );
        assert_eq!(
            ObjectId::of(&namespace).unwrap().qualified(),
            "Namespace blog"
        );
        assert_eq!(ObjectId::of(&json!({"kind": "X"})), None);
        assert_eq!(ObjectId::lenient(&json!({"kind": "X"})).to_string(), "X ");
    }

    #[test]
    fn reserved_names_and_scopes() {
        assert_eq!(reserved_name("prod"), "gitship-prod");
        assert_eq!(agent_lease_name("prod"), "gitship-prod.agent");
        assert!(is_reserved("prod", "gitship-prod"));
        assert!(is_reserved("prod", &agent_lease_name("prod")));
        assert!(is_reserved("prod", "gitship-prod.anything-later"));
        assert!(!is_reserved("prod", "gitship-production"));
        assert!(!is_reserved("prod", "gitship-prod-web"));
        assert!(!is_reserved("prod", "web"));
        assert_eq!(agent_status_name("prod"), "gitship-prod.agent");
        assert!(is_cluster_scoped("", "Namespace"));
        assert!(!is_cluster_scoped("apps", "Deployment"));
    }
}
