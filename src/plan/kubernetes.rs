//! The Kubernetes part of a plan and of a drift report, from the Kubernetes stage's comparison
//! ([`gitship_kube::diff::EnvironmentDiff`]).
//!
//! Everything leaving this module is safe to show: a Secret's `data`/`stringData` values are
//! replaced by [`REDACTED`](super::REDACTED) on both sides before any comparison is rendered, and
//! every sensitive Terraform value the [`Redactor`] knows is scrubbed from all other strings.
//!
//! Drift is the same comparison read differently: a managed field whose live value differs from
//! Git's, attributed to the field manager that owns it now (from `managedFields`), minus what the
//! environment's ignore rules (`drift.ignore`) expect; plus objects of the inventory that are gone.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::plan::{
    DriftKind, FieldChange, KubernetesPart, ObjectAction, ObjectChange, ObjectDrift, ObjectRef,
    PlannedHook, REDACTED, unified_diff,
};
use crate::render::Redactor;
use crate::repo::config::IgnoreRule;
use gitship_foundation::model::{Manifest, ObjectId, is_secret};
use gitship_kube::diff::{self, EnvironmentDiff, ObjectDiff, PlannedAction};
use gitship_kube::inventory::InventoryEntry;

/// The Kubernetes part of a plan: one entry per desired object (unchanged ones included, so
/// counts are complete) and one per object to prune.
pub fn plan_part(
    environment_diff: &EnvironmentDiff,
    sources: &dyn Fn(&ObjectId) -> Option<String>,
    redactor: &Redactor,
) -> KubernetesPart {
    let mut objects: Vec<ObjectChange> = environment_diff
        .objects
        .iter()
        .map(|(id, object_diff)| object_change(id, object_diff, sources(id), redactor))
        .collect();
    objects.extend(environment_diff.prune.iter().map(|entry| ObjectChange {
        object: entry_ref(entry),
        action: ObjectAction::Prune,
        source: None,
        fields: Vec::new(),
        diff: None,
    }));
    KubernetesPart {
        objects,
        hooks: Vec::new(),
    }
}

/// The hooks among `manifests`, one entry per phase they run in, in the order a deploy runs
/// them (phase, weight, object), then the objects a deploy skips; the namespace of a
/// namespaced one as written, else `namespace`.
pub fn planned_hooks(manifests: &[Manifest], namespace: &str) -> Vec<PlannedHook> {
    use gitship_foundation::model::hook::{Role, role_of};
    let mut hooks: Vec<(usize, PlannedHook)> = Vec::new();
    for manifest in manifests {
        let role = match role_of(&manifest.object) {
            Ok(Role::Object) | Err(_) => continue,
            Ok(role) => role,
        };
        let object = hook_name(manifest, namespace);
        let source = manifest.source.to_string();
        match role {
            Role::Hook(hook) => {
                for phase in &hook.phases {
                    let planned = PlannedHook {
                        phase: phase.as_str().to_string(),
                        object: object.clone(),
                        source: source.clone(),
                        weight: hook.weight,
                        detail: hook.delete.describe(),
                    };
                    hooks.push((*phase as usize, planned));
                }
            }
            Role::Skipped(why) => hooks.push((
                usize::MAX,
                PlannedHook {
                    phase: "Skip".into(),
                    object,
                    source,
                    weight: 0,
                    detail: why,
                },
            )),
            Role::Object => {}
        }
    }
    hooks.sort_by(|(a, x), (b, y)| (a, x.weight, &x.object).cmp(&(b, y.weight, &y.object)));
    hooks.into_iter().map(|(_, hook)| hook).collect()
}

/// `Job blog/migrate-`: a hook as kubectl names it, its `generateName` prefix when it has no
/// name.
fn hook_name(manifest: &Manifest, namespace: &str) -> String {
    let object = &manifest.object;
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    let name = text("/metadata/name")
        .or_else(|| text("/metadata/generateName"))
        .unwrap_or_default();
    let kind = manifest.kind();
    if gitship_foundation::model::is_cluster_scoped(
        gitship_foundation::model::group_of(manifest.api_version()),
        kind,
    ) {
        return format!("{kind} {name}");
    }
    let namespace = text("/metadata/namespace").unwrap_or(namespace);
    format!("{kind} {namespace}/{name}")
}

/// One desired object's change, redacted.
pub fn object_change(
    id: &ObjectId,
    object_diff: &ObjectDiff,
    source: Option<String>,
    redactor: &Redactor,
) -> ObjectChange {
    let object = object_ref(id, &object_diff.desired);
    let secret = is_secret(&object_diff.desired);
    let action = match object_diff.action {
        PlannedAction::Create => ObjectAction::Create,
        PlannedAction::Update => ObjectAction::Update,
        PlannedAction::Replace => ObjectAction::Replace,
        PlannedAction::Unchanged => ObjectAction::Unchanged,
    };
    let fields: Vec<FieldChange> = object_diff
        .changes
        .iter()
        .map(|change| describe(change, secret, None, redactor))
        .collect();
    let diff = match object_diff.action {
        PlannedAction::Unchanged => None,
        PlannedAction::Create => {
            let shown = redactor.redact_object(&diff::strip_server_fields(&object_diff.desired));
            let text = without_status_noise(&shown);
            Some(unified_diff("", &text, "live", "git"))
        }
        PlannedAction::Update | PlannedAction::Replace => Some(field_lines(&fields)),
    };
    ObjectChange {
        object,
        action,
        source,
        fields,
        diff: diff.filter(|d| !d.is_empty()),
    }
}

/// The drift of one environment's Kubernetes objects against Git. Returns the drifted objects
/// and how many differences the ignore rules suppressed.
///
/// - An object gitship would update: each managed field whose live value differs, with the
///   manager that owns the live value (from `managedFields`; any manager but gitship when several).
/// - An object of the inventory that gitship would create: it was deleted behind gitship's back.
/// - Objects declared in Git but never deployed, and objects to prune, are pending deploys, not
///   drift; `plan` shows them.
pub fn drift(
    environment_diff: &EnvironmentDiff,
    inventory: &[InventoryEntry],
    rules: &[IgnoreRule],
    redactor: &Redactor,
) -> (Vec<ObjectDrift>, usize) {
    let deployed: BTreeSet<ObjectId> = inventory.iter().map(InventoryEntry::id).collect();
    let mut drifted = Vec::new();
    let mut ignored = 0;
    for (id, object_diff) in &environment_diff.objects {
        match object_diff.action {
            PlannedAction::Unchanged => {}
            PlannedAction::Create => {
                if !deployed.contains(id) {
                    continue;
                }
                if rules
                    .iter()
                    .any(|rule| rule_matches_object(rule, id) && rule_covers_object(rule))
                {
                    ignored += 1;
                    continue;
                }
                drifted.push(ObjectDrift {
                    object: object_ref(id, &object_diff.desired),
                    kind: DriftKind::Deleted,
                    fields: Vec::new(),
                });
            }
            PlannedAction::Update | PlannedAction::Replace => {
                let secret = is_secret(&object_diff.desired);
                let mut fields = Vec::new();
                for change in &object_diff.changes {
                    let manager = object_diff
                        .live
                        .as_ref()
                        .and_then(|live| manager_of(live, change));
                    let pointer = change.path.pointer();
                    if rules.iter().any(|rule| {
                        rule_matches_object(rule, id)
                            && rule_matches_field(rule, &pointer, manager.as_deref())
                    }) {
                        ignored += 1;
                        continue;
                    }
                    fields.push(describe(change, secret, manager, redactor));
                }
                if !fields.is_empty() {
                    drifted.push(ObjectDrift {
                        object: object_ref(id, &object_diff.desired),
                        kind: DriftKind::Modified,
                        fields,
                    });
                }
            }
        }
    }
    (drifted, ignored)
}

fn rule_matches_object(rule: &IgnoreRule, id: &ObjectId) -> bool {
    rule.kind.as_deref().is_none_or(|kind| kind == id.kind)
        && rule.name.as_deref().is_none_or(|name| name == id.name)
        && rule
            .namespace
            .as_deref()
            .is_none_or(|namespace| Some(namespace) == id.namespace.as_deref())
}

/// A rule without pointer and manager covers the whole object (including its deletion).
fn rule_covers_object(rule: &IgnoreRule) -> bool {
    rule.pointer.is_none() && rule.manager.is_none()
}

fn rule_matches_field(rule: &IgnoreRule, pointer: &str, manager: Option<&str>) -> bool {
    let pointer_matches = rule.pointer.as_deref().is_none_or(|prefix| {
        let prefix = prefix.trim_end_matches('/');
        pointer == prefix
            || (pointer.starts_with(prefix) && pointer[prefix.len()..].starts_with('/'))
    });
    let manager_matches = rule
        .manager
        .as_deref()
        .is_none_or(|expected| Some(expected) == manager);
    pointer_matches && manager_matches
}

/// The one description of a changed field that `plan`, `diff` and `drift` all print: its path,
/// its values shown safely, and who changed it. A Secret's data (and its last-applied
/// annotation) is never shown, only the fact that it changes (`sensitive`); every other value
/// is shown as a string or compact JSON with the sensitive values the [`Redactor`] knows
/// scrubbed.
pub fn describe(
    change: &diff::FieldChange,
    secret: bool,
    manager: Option<String>,
    redactor: &Redactor,
) -> FieldChange {
    let path = change.path.to_string();
    let sensitive = secret
        && (path.starts_with("data")
            || path.starts_with("stringData")
            || path.contains("last-applied-configuration"));
    let show = |value: &Value| {
        if sensitive {
            return REDACTED.to_string();
        }
        let text = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        redactor.redact_text(&text)
    };
    FieldChange {
        before: change.live.as_ref().map(show),
        after: change.desired.as_ref().map(show),
        path,
        sensitive,
        manager,
    }
}

/// Who changed a drifted field: a manager other than gitship that owns the live value, else
/// (the value is gone, and with it its ownership) the last other manager that wrote the object.
/// `None` when only gitship owns it: Git changed since the last deploy, no one else to name.
fn manager_of(live: &Value, change: &diff::FieldChange) -> Option<String> {
    let owners = diff::managers_of(live, &change.path);
    if let Some(other) = owners
        .iter()
        .find(|m| *m != gitship_foundation::model::FIELD_MANAGER)
    {
        return Some(other.clone());
    }
    if owners.is_empty() || change.live.is_none() {
        return gitship_kube::fields::last_writer(live, gitship_foundation::model::FIELD_MANAGER);
    }
    None
}

/// An update's fields as text, one `symbol line` each: what `diff` holds for an update.
fn field_lines(fields: &[FieldChange]) -> String {
    fields
        .iter()
        .map(|field| format!("{} {}\n", field.symbol(), field.line()))
        .collect()
}

fn without_status_noise(object: &Value) -> String {
    crate::render::emit::to_yaml(object)
}

/// The identity to show, with the apiVersion of the object as written or served.
pub fn object_ref(id: &ObjectId, object: &Value) -> ObjectRef {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            if id.group.is_empty() {
                "v1".to_string()
            } else {
                format!("{}/v1", id.group)
            }
        });
    ObjectRef {
        api_version,
        kind: id.kind.clone(),
        namespace: id.namespace.clone(),
        name: id.name.clone(),
    }
}

fn entry_ref(entry: &InventoryEntry) -> ObjectRef {
    ObjectRef {
        api_version: entry.api_version.clone(),
        kind: entry.kind.clone(),
        namespace: entry.namespace.clone(),
        name: entry.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitship_kube::diff::FieldChange as KubeFieldChange;
    use serde_json::json;

    #[test]
    fn hooks_are_planned_per_phase_in_the_order_they_run() {
        let manifest = |line: usize, metadata: Value| Manifest {
            source: gitship_foundation::diagnostics::Location::new("hooks.yaml", line, 1),
            object: json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata}),
        };
        let manifests = [
            manifest(
                1,
                json!({"generateName": "smoke-", "annotations": {"argocd.argoproj.io/hook": "PostSync"}}),
            ),
            manifest(10, json!({"name": "web"})),
            manifest(
                20,
                json!({"name": "late", "namespace": "ops", "annotations": {"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "5"}}),
            ),
            manifest(
                30,
                json!({"name": "early", "annotations": {"argocd.argoproj.io/hook": "PreSync,SyncFail", "argocd.argoproj.io/sync-wave": "-1"}}),
            ),
            manifest(
                40,
                json!({"name": "test", "annotations": {"helm.sh/hook": "test"}}),
            ),
        ];
        let lines: Vec<String> = planned_hooks(&manifests, "blog")
            .iter()
            .map(PlannedHook::line)
            .collect();
        assert_eq!(
            lines,
            [
                "PreSync   Job blog/early (hooks.yaml:30:1), weight -1, delete policy BeforeHookCreation",
                "PreSync   Job ops/late (hooks.yaml:20:1), weight 5, delete policy BeforeHookCreation",
                "PostSync  Job blog/smoke- (hooks.yaml:1:1), weight 0, delete policy none",
                "SyncFail  Job blog/early (hooks.yaml:30:1), weight -1, delete policy BeforeHookCreation",
                "Skip      Job blog/test (hooks.yaml:40:1), not applied: `helm.sh/hook: test` (gitship does not run these hooks)",
            ]
        );
    }

    fn id(kind: &str, name: &str) -> ObjectId {
        ObjectId {
            group: if kind == "Deployment" {
                "apps".into()
            } else {
                String::new()
            },
            kind: kind.into(),
            namespace: Some("blog".into()),
            name: name.into(),
        }
    }

    fn scaled() -> (ObjectId, ObjectDiff) {
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "blog-backend", "namespace": "blog", "managedFields": [
                {"manager": "gitship", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {}}}},
                {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
            "spec": {"replicas": 10}});
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "blog-backend", "namespace": "blog"}, "spec": {"replicas": 3}});
        (
            id("Deployment", "blog-backend"),
            ObjectDiff {
                action: PlannedAction::Update,
                live: Some(live),
                desired,
                changes: vec![KubeFieldChange {
                    path: "spec.replicas".into(),
                    live: Some(json!(10)),
                    desired: Some(json!(3)),
                }],
            },
        )
    }

    fn secret_update() -> (ObjectId, ObjectDiff) {
        let desired = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "blog"}, "stringData": {"password": "hunter2"}});
        (
            id("Secret", "db"),
            ObjectDiff {
                action: PlannedAction::Update,
                live: Some(
                    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "b2xk"}}),
                ),
                desired,
                changes: vec![KubeFieldChange {
                    path: "data.password".into(),
                    live: Some(json!("b2xk")),
                    desired: Some(json!("aHVudGVyMg==")),
                }],
            },
        )
    }

    fn environment_diff(objects: Vec<(ObjectId, ObjectDiff)>) -> EnvironmentDiff {
        EnvironmentDiff {
            objects,
            prune: Vec::new(),
        }
    }

    #[test]
    fn drift_names_the_field_values_and_manager() {
        let (drifted, ignored) = drift(
            &environment_diff(vec![scaled()]),
            &[],
            &[],
            &Redactor::default(),
        );
        assert_eq!(ignored, 0);
        assert_eq!(drifted.len(), 1);
        assert_eq!(
            drifted[0].fields,
            vec![FieldChange {
                manager: Some("kubectl".into()),
                ..FieldChange::new("spec.replicas", Some("10".into()), Some("3".into()))
            }]
        );
    }

    #[test]
    fn ignore_rules_match_kind_name_pointer_and_manager() {
        let by_pointer = IgnoreRule {
            kind: Some("Deployment".into()),
            pointer: Some("/spec".into()),
            ..IgnoreRule::default()
        };
        let (drifted, ignored) = drift(
            &environment_diff(vec![scaled()]),
            &[],
            &[by_pointer],
            &Redactor::default(),
        );
        assert!(drifted.is_empty());
        assert_eq!(ignored, 1);
        let other_manager = IgnoreRule {
            manager: Some("horizontal-pod-autoscaler".into()),
            pointer: Some("/spec/replicas".into()),
            ..IgnoreRule::default()
        };
        let other_name = IgnoreRule {
            name: Some("blog-frontend".into()),
            ..IgnoreRule::default()
        };
        let partial_pointer = IgnoreRule {
            pointer: Some("/spec/replica".into()),
            ..IgnoreRule::default()
        };
        let (drifted, ignored) = drift(
            &environment_diff(vec![scaled()]),
            &[],
            &[other_manager, other_name, partial_pointer],
            &Redactor::default(),
        );
        assert_eq!(drifted.len(), 1);
        assert_eq!(ignored, 0);
    }

    #[test]
    fn deleted_inventory_objects_drift_and_undeployed_ones_do_not() {
        let created = |name: &str| {
            (
                id("ConfigMap", name),
                ObjectDiff {
                    action: PlannedAction::Create,
                    live: None,
                    desired: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
                    changes: vec![],
                },
            )
        };
        let inventory = vec![InventoryEntry {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("blog".into()),
            name: "gone".into(),
        }];
        let (drifted, _) = drift(
            &environment_diff(vec![created("gone"), created("new")]),
            &inventory,
            &[],
            &Redactor::default(),
        );
        assert_eq!(drifted.len(), 1);
        assert_eq!(drifted[0].object.name, "gone");
        assert_eq!(drifted[0].kind, DriftKind::Deleted);
    }

    #[test]
    fn secret_values_are_masked_everywhere() {
        let mut redactor = Redactor::default();
        redactor.add("hunter2");
        let (id, object_diff) = secret_update();
        let change = object_change(&id, &object_diff, None, &redactor);
        let text = serde_json::to_string(&change).unwrap();
        assert!(
            !text.contains("b2xk") && !text.contains("aHVudGVy"),
            "{text}"
        );
        assert!(text.contains(REDACTED));
        // Never the value, always the fact.
        assert_eq!(
            change.fields[0].line(),
            "data.password: <sensitive> (changed)"
        );
        let created = ObjectDiff {
            action: PlannedAction::Create,
            live: None,
            ..object_diff.clone()
        };
        let text = serde_json::to_string(&object_change(&id, &created, None, &redactor)).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let (drifted, _) = drift(
            &environment_diff(vec![(id, object_diff)]),
            &[],
            &[],
            &redactor,
        );
        let text = serde_json::to_string(&drifted).unwrap();
        assert!(
            !text.contains("b2xk") && !text.contains("aHVudGVy"),
            "{text}"
        );
    }
}
