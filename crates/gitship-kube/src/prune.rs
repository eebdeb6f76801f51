//! Prune: delete what gitship deployed before and Git no longer has.
//!
//! Candidates are the previous inventory minus the desired set (by identity: group, kind,
//! namespace, name; the version does not matter). Each candidate is looked up and deleted with
//! foreground propagation only when its `gitship.dev/owned-by` annotation still names this
//! environment and it is not annotated `gitship.dev/prune: "false"`. Namespaces,
//! PersistentVolumeClaims and CustomResourceDefinitions (deleting them deletes data) are kept
//! unless `--prune-protected`. Prune runs last, after everything else is healthy.
//!
//! The inventory is not trusted for where to delete ([`Scope`]): a namespaced candidate is
//! pruned only in the environment's namespace or a namespace Git declares objects in, a
//! cluster-scoped one only when Git declares objects of its kind, and never under a name gitship
//! reserves. Anything else the inventory lists is reported and never deleted.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::inventory::InventoryEntry;
use gitship_foundation::model::{OWNED_BY_ANNOTATION, ObjectId, PRUNE_ANNOTATION};

/// Kinds never pruned without `--prune-protected`.
pub(crate) const PROTECTED_KINDS: &[&str] = &[
    "Namespace",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
];

/// Previous inventory entries whose identity is not desired any more, in reverse apply order
/// (workloads before the ConfigMaps they use, Namespaces last).
pub fn candidates(
    previous: &[InventoryEntry],
    desired: &BTreeSet<ObjectId>,
) -> Vec<InventoryEntry> {
    let mut out: Vec<InventoryEntry> = previous
        .iter()
        .filter(|entry| !desired.contains(&entry.id()))
        .cloned()
        .collect();
    out.sort_by(|a, b| {
        let rank = |e: &InventoryEntry| crate::order::position(&e.kind, 0);
        rank(b).cmp(&rank(a)).then_with(|| a.cmp(b))
    });
    out.dedup();
    out
}

/// Where a deploy may prune: what the environment declares in Git now.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    environment: String,
    namespaces: BTreeSet<String>,
    /// `(group, kind)` of the cluster-scoped objects Git declares.
    cluster_kinds: BTreeSet<(String, String)>,
}

impl Scope {
    /// The scope of `environment` (its namespace `namespace`) whose Git declares `desired`.
    pub fn new(environment: &str, namespace: &str, desired: &BTreeSet<ObjectId>) -> Scope {
        let mut scope = Scope {
            environment: environment.to_string(),
            namespaces: BTreeSet::from([namespace.to_string()]),
            cluster_kinds: BTreeSet::new(),
        };
        for id in desired {
            match &id.namespace {
                Some(namespace) => {
                    scope.namespaces.insert(namespace.clone());
                }
                None => {
                    scope
                        .cluster_kinds
                        .insert((id.group.clone(), id.kind.clone()));
                }
            }
        }
        scope
    }

    /// Why `entry` is outside the scope, if it is.
    pub fn refuses(&self, entry: &InventoryEntry) -> Option<String> {
        let id = entry.id();
        if gitship_foundation::model::is_reserved(&self.environment, &id.name)
            && id.namespace.is_some()
        {
            return Some(format!(
                "`{}` is a name gitship reserves for environment `{}`",
                id.name, self.environment
            ));
        }
        match &id.namespace {
            Some(namespace) if !self.namespaces.contains(namespace) => Some(format!(
                "namespace `{namespace}` is neither the environment's nor one Git declares objects in"
            )),
            None if !self
                .cluster_kinds
                .contains(&(id.group.clone(), id.kind.clone())) =>
            {
                Some(format!(
                    "cluster-scoped, and Git declares no {} of environment `{}`",
                    id.kind, self.environment
                ))
            }
            _ => None,
        }
    }
}

/// What happens to one prune candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision", content = "detail")]
pub enum PruneDecision {
    Delete,
    /// Already deleted by someone else.
    Gone,
    /// A protected kind and `--prune-protected` was not given.
    KeepProtected,
    /// Annotated `gitship.dev/prune: "false"`.
    KeepAnnotated,
    /// Its ownership annotation names another environment (or none): not ours to delete.
    NotOwned(String),
    /// Outside what the environment declares ([`Scope`]): reported, never deleted, dropped
    /// from the inventory.
    OutOfScope(String),
    /// The server refused to read it (403: RBAC that names the objects it may read and delete,
    /// as the agent's does for Secrets and cluster-scoped objects): reported, kept in the
    /// inventory for a deploy allowed to prune it.
    Forbidden(String),
}

impl PruneDecision {
    /// Whether the entry stays in the inventory (kept objects are still gitship's).
    pub(crate) fn stays_in_inventory(&self) -> bool {
        matches!(
            self,
            PruneDecision::KeepProtected
                | PruneDecision::KeepAnnotated
                | PruneDecision::Forbidden(_)
        )
    }
}

/// Decide about one candidate given its live object.
pub fn decide(
    entry: &InventoryEntry,
    live: Option<&Value>,
    environment: &str,
    prune_protected: bool,
) -> PruneDecision {
    let Some(live) = live else {
        return PruneDecision::Gone;
    };
    let owner = gitship_foundation::model::annotation(live, OWNED_BY_ANNOTATION);
    if owner != Some(environment) {
        return PruneDecision::NotOwned(owner.unwrap_or("").to_string());
    }
    if gitship_foundation::model::annotation(live, PRUNE_ANNOTATION) == Some("false") {
        return PruneDecision::KeepAnnotated;
    }
    if PROTECTED_KINDS.contains(&entry.kind.as_str()) && !prune_protected {
        return PruneDecision::KeepProtected;
    }
    PruneDecision::Delete
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(api_version: &str, kind: &str, name: &str) -> InventoryEntry {
        let namespace = (kind != "Namespace").then(|| "blog".to_string());
        InventoryEntry {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace,
            name: name.into(),
        }
    }

    #[test]
    fn candidates_are_previous_minus_desired_in_reverse_order() {
        let previous = vec![
            entry("v1", "Namespace", "blog"),
            entry("v1", "ConfigMap", "old"),
            entry("apps/v1", "Deployment", "web"),
            entry("apps/v1beta1", "Deployment", "api"),
            entry("v1", "ConfigMap", "kept"),
        ];
        let desired: BTreeSet<ObjectId> = [
            entry("v1", "ConfigMap", "kept").id(),
            entry("apps/v1", "Deployment", "api").id(),
        ]
        .into();
        let names: Vec<String> = candidates(&previous, &desired)
            .iter()
            .map(|e| format!("{}/{}", e.kind, e.name))
            .collect();
        assert_eq!(
            names,
            vec!["Deployment/web", "ConfigMap/old", "Namespace/blog"]
        );
    }

    #[test]
    fn decisions() {
        let cm = entry("v1", "ConfigMap", "a");
        let owned = |extra: Value| {
            let mut annotations = json!({OWNED_BY_ANNOTATION: "production"});
            annotations
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            json!({"metadata": {"annotations": annotations}})
        };
        assert_eq!(decide(&cm, None, "production", false), PruneDecision::Gone);
        assert_eq!(
            decide(&cm, Some(&owned(json!({}))), "production", false),
            PruneDecision::Delete
        );
        assert_eq!(
            decide(&cm, Some(&owned(json!({}))), "staging", false),
            PruneDecision::NotOwned("production".into())
        );
        assert_eq!(
            decide(&cm, Some(&json!({"metadata": {}})), "production", false),
            PruneDecision::NotOwned(String::new())
        );
        assert_eq!(
            decide(
                &cm,
                Some(&owned(json!({PRUNE_ANNOTATION: "false"}))),
                "production",
                true
            ),
            PruneDecision::KeepAnnotated
        );
        let pvc = entry("v1", "PersistentVolumeClaim", "data");
        assert_eq!(
            decide(&pvc, Some(&owned(json!({}))), "production", false),
            PruneDecision::KeepProtected
        );
        assert_eq!(
            decide(&pvc, Some(&owned(json!({}))), "production", true),
            PruneDecision::Delete
        );
        assert!(PruneDecision::KeepProtected.stays_in_inventory());
        assert!(!PruneDecision::Gone.stays_in_inventory());
    }

    #[test]
    fn the_scope_is_what_git_declares() {
        let id = |group: &str, kind: &str, namespace: Option<&str>, name: &str| ObjectId {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
        };
        let rbac = "rbac.authorization.k8s.io";
        let desired: BTreeSet<ObjectId> = [
            id("", "ConfigMap", Some("blog"), "a"),
            id("", "ConfigMap", Some("monitoring"), "b"),
            id(rbac, "ClusterRole", None, "reader"),
        ]
        .into();
        let scope = Scope::new("production", "blog", &desired);
        let cases = [
            ("v1", "ConfigMap", Some("blog"), "old", true),
            ("v1", "ConfigMap", Some("monitoring"), "old", true),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                None,
                "old",
                true,
            ),
            ("v1", "ConfigMap", Some("kube-system"), "coredns", false),
            ("v1", "Namespace", None, "kube-system", false),
            (
                "v1",
                "ConfigMap",
                Some("blog"),
                "gitship-production.agent",
                false,
            ),
            ("v1", "ConfigMap", Some("blog"), "gitship-production", false),
        ];
        for (api_version, kind, namespace, name, prunable) in cases {
            let entry = InventoryEntry {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: namespace.map(str::to_string),
                name: name.into(),
            };
            assert_eq!(scope.refuses(&entry).is_none(), prunable, "{entry:?}");
        }
    }
}
