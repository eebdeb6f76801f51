//! The apply order, documented here because users rely on it.
//!
//! 1. **Bootstrap stage**, applied and waited for before anything else: CustomResourceDefinitions
//!    (until Established), Namespaces, then cluster RBAC (ClusterRoles, ClusterRoleBindings).
//! 2. **Waves**: the annotation `gitship.dev/wave: "<int>"` (default 0, negative allowed) groups
//!    the other objects; lower waves are applied first, and when there is more than one wave each
//!    is healthy before the next starts. Argo CD's `argocd.argoproj.io/sync-wave` is read the
//!    same way; an object with both must give them the same value.
//! 3. **Kind order** inside a wave (as Helm and Flux do):
//!    NetworkPolicy, ResourceQuota, LimitRange, PodDisruptionBudget, ServiceAccount, Secret,
//!    ConfigMap, StorageClass, PersistentVolume, PersistentVolumeClaim, Role, RoleBinding,
//!    Service, DaemonSet, Pod, ReplicaSet, Deployment, HorizontalPodAutoscaler, StatefulSet, Job,
//!    CronJob, IngressClass, Ingress, then custom resources and other kinds, then APIService,
//!    MutatingWebhookConfiguration and ValidatingWebhookConfiguration last (a webhook must not
//!    block the objects its own service needs).
//!
//! Objects of one kind in one wave are applied concurrently (bounded).

use serde_json::Value;

/// Kinds of the bootstrap stage, in order.
pub(crate) const BOOTSTRAP_KINDS: &[&str] = &[
    "CustomResourceDefinition",
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
];

/// Kind order inside a wave; kinds not listed go between `Ingress` and `APIService`.
pub(crate) const KIND_ORDER: &[&str] = &[
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
];

/// Kinds applied after everything else of their wave.
pub(crate) const LAST_KINDS: &[&str] = &[
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Where an object goes in the apply order: smaller sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 0 = bootstrap stage, 1 = everything else.
    pub stage: u8,
    pub wave: i64,
    pub kind_rank: usize,
}

/// The rank of a kind: bootstrap kinds first, then [`KIND_ORDER`], others, [`LAST_KINDS`].
pub(crate) fn kind_rank(kind: &str) -> usize {
    if let Some(index) = BOOTSTRAP_KINDS.iter().position(|k| *k == kind) {
        return index;
    }
    let base = BOOTSTRAP_KINDS.len();
    if let Some(index) = KIND_ORDER.iter().position(|k| *k == kind) {
        return base + index;
    }
    let others = base + KIND_ORDER.len();
    match LAST_KINDS.iter().position(|k| *k == kind) {
        Some(index) => others + 1 + index,
        None => others,
    }
}

/// The wave of an object (`gitship.dev/wave`, or Argo CD's `argocd.argoproj.io/sync-wave`), or
/// why its annotations are refused ([`gitship_foundation::model::hook::wave_of`]).
pub fn wave_of(object: &Value) -> Result<i64, String> {
    gitship_foundation::model::hook::wave_of(object)
}

/// The position of an object of `kind` in `wave`.
pub fn position(kind: &str, wave: i64) -> Position {
    if BOOTSTRAP_KINDS.contains(&kind) {
        Position {
            stage: 0,
            wave: 0,
            kind_rank: kind_rank(kind),
        }
    } else {
        Position {
            stage: 1,
            wave,
            kind_rank: kind_rank(kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitship_foundation::model::WAVE_ANNOTATION;
    use serde_json::json;

    #[test]
    fn kinds_sort_in_the_documented_order() {
        let mut kinds = vec![
            "ValidatingWebhookConfiguration",
            "Deployment",
            "Widget",
            "Service",
            "ConfigMap",
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "Ingress",
            "Secret",
            "PersistentVolumeClaim",
        ];
        kinds.sort_by_key(|k| position(k, 0));
        assert_eq!(
            kinds,
            vec![
                "CustomResourceDefinition",
                "Namespace",
                "ClusterRole",
                "ServiceAccount",
                "Secret",
                "ConfigMap",
                "PersistentVolumeClaim",
                "Service",
                "Deployment",
                "Ingress",
                "Widget",
                "ValidatingWebhookConfiguration",
            ]
        );
    }

    #[test]
    fn waves_come_before_kinds_but_after_bootstrap() {
        let early_deployment = position("Deployment", -1);
        let configmap = position("ConfigMap", 0);
        let late_configmap = position("ConfigMap", 2);
        let namespace = position("Namespace", 5);
        assert!(namespace < early_deployment);
        assert!(early_deployment < configmap);
        assert!(configmap < late_configmap);
    }

    #[test]
    fn wave_annotation_is_parsed() {
        let object = |wave: &str| json!({"metadata": {"annotations": {WAVE_ANNOTATION: wave}}});
        assert_eq!(wave_of(&object("3")), Ok(3));
        assert_eq!(wave_of(&object("-2")), Ok(-2));
        assert!(wave_of(&object("soon")).unwrap_err().contains("soon"));
        assert_eq!(wave_of(&json!({"metadata": {}})), Ok(0));
    }
}
