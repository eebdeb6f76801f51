//! Waves and hooks as Argo CD and Helm write them, read once for every layer (ARCHITECTURE.md,
//! "Waves and hooks").
//!
//! A wave is `gitship.dev/wave` or Argo CD's `argocd.argoproj.io/sync-wave` (one object may
//! carry both only with the same value). A hook is an object annotated
//! `argocd.argoproj.io/hook` (`PreSync`, `Sync`, `PostSync`, `SyncFail`, `Skip`; `PostDelete` is
//! ignored) or, without it, `helm.sh/hook` (`pre-install`/`pre-upgrade` run as `PreSync`,
//! `post-install`/`post-upgrade` as `PostSync`; the delete, rollback and test hooks are ignored,
//! as Argo CD ignores them). A hook is no desired object: it is not in the inventory, never
//! pruned nor drift-checked, and it may have `metadata.generateName` instead of a name. Its
//! delete policy is `argocd.argoproj.io/hook-delete-policy` (or Helm's
//! `helm.sh/hook-delete-policy`); with none, a hook with a fixed name is deleted before it is
//! created again (`BeforeHookCreation`, as Argo CD does). Its weight (the order in its phase) is
//! its wave, or Helm's `helm.sh/hook-weight`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{WAVE_ANNOTATION, annotation};

/// Argo CD's wave annotation, read as [`WAVE_ANNOTATION`].
pub const ARGO_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";
/// Argo CD's hook annotation.
pub const ARGO_HOOK_ANNOTATION: &str = "argocd.argoproj.io/hook";
/// Argo CD's hook delete policy.
pub const ARGO_DELETE_POLICY_ANNOTATION: &str = "argocd.argoproj.io/hook-delete-policy";
/// Helm's hook annotation (in `helm template`'s output).
pub const HELM_HOOK_ANNOTATION: &str = "helm.sh/hook";
/// Helm's hook delete policy.
pub const HELM_DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";
/// Helm's hook weight.
pub const HELM_WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";

/// The wave of an object (0 when it has none), or why its annotations are refused.
pub fn wave_of(object: &Value) -> Result<i64, String> {
    let ours = integer_annotation(object, WAVE_ANNOTATION)?;
    let argo = integer_annotation(object, ARGO_WAVE_ANNOTATION)?;
    match (ours, argo) {
        (Some(ours), Some(argo)) if ours != argo => Err(format!(
            "annotations `{WAVE_ANNOTATION}: \"{ours}\"` and `{ARGO_WAVE_ANNOTATION}: \"{argo}\"` disagree: keep one of them (or give both the same value)"
        )),
        (Some(wave), _) | (None, Some(wave)) => Ok(wave),
        (None, None) => Ok(0),
    }
}

/// The integer value of annotation `key`, `None` when absent.
fn integer_annotation(object: &Value, key: &str) -> Result<Option<i64>, String> {
    match annotation(object, key) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("annotation `{key}` must be an integer, got `{text}`")),
    }
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HookPhase {
    /// After Terraform, before the first object is applied.
    PreSync,
    /// With the objects of its wave, after them.
    Sync,
    /// After every object is applied and healthy.
    PostSync,
    /// When the deploy fails.
    SyncFail,
}

impl HookPhase {
    pub const ALL: [HookPhase; 4] = [
        HookPhase::PreSync,
        HookPhase::Sync,
        HookPhase::PostSync,
        HookPhase::SyncFail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::PreSync => "PreSync",
            HookPhase::Sync => "Sync",
            HookPhase::PostSync => "PostSync",
            HookPhase::SyncFail => "SyncFail",
        }
    }
}

/// When a hook object is deleted (Argo CD's `hook-delete-policy`, Helm's equivalents).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletePolicy {
    /// Before the hook is created again (the object of an earlier run goes first).
    pub before_creation: bool,
    /// After it succeeded.
    pub succeeded: bool,
    /// After it failed.
    pub failed: bool,
}

impl DeletePolicy {
    /// `BeforeHookCreation, HookSucceeded` (Argo CD's names), or `none`.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = [
            (self.before_creation, "BeforeHookCreation"),
            (self.succeeded, "HookSucceeded"),
            (self.failed, "HookFailed"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

/// A hook: the phases it runs in, its delete policy and its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Sorted, without repeats; never empty.
    pub phases: Vec<HookPhase>,
    pub delete: DeletePolicy,
    /// Order within a phase (lower first); Sync hooks run in this wave.
    pub weight: i64,
}

/// What an object is to a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A desired object: applied, inventoried, pruned, drift-checked.
    Object,
    /// A hook, run in its phases.
    Hook(Hook),
    /// Never applied: `argocd.argoproj.io/hook: Skip`, or only hooks gitship ignores (named).
    Skipped(String),
}

/// What `object` is to a deploy, or why its hook annotations are refused.
pub fn role_of(object: &Value) -> Result<Role, String> {
    let (key, text) = match (
        annotation(object, ARGO_HOOK_ANNOTATION),
        annotation(object, HELM_HOOK_ANNOTATION),
    ) {
        (Some(text), _) => (ARGO_HOOK_ANNOTATION, text),
        (None, Some(text)) => (HELM_HOOK_ANNOTATION, text),
        (None, None) => {
            wave_of(object)?;
            return Ok(Role::Object);
        }
    };
    let mut phases = Vec::new();
    let mut ignored = Vec::new();
    for value in text.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        match phase_of(key, value)? {
            Some(Some(phase)) => phases.push(phase),
            Some(None) => return Ok(Role::Skipped(format!("`{key}: {value}`"))),
            None => ignored.push(value),
        }
    }
    if key == HELM_HOOK_ANNOTATION && phases.is_empty() && text.trim() == "crd-install" {
        return Ok(Role::Object);
    }
    if phases.is_empty() {
        if ignored.is_empty() {
            return Err(format!("annotation `{key}` is empty"));
        }
        return Ok(Role::Skipped(format!(
            "`{key}: {}` (gitship does not run these hooks)",
            ignored.join(",")
        )));
    }
    phases.sort();
    phases.dedup();
    let weight = match wave_of(object)? {
        0 => integer_annotation(object, HELM_WEIGHT_ANNOTATION)?.unwrap_or(0),
        wave => wave,
    };
    let named = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_some_and(|name| !name.is_empty());
    let delete = delete_policy(object, named)?;
    Ok(Role::Hook(Hook {
        phases,
        delete,
        weight,
    }))
}

/// The phase of one value of hook annotation `key`: `Some(Some(phase))`, `Some(None)` for
/// `Skip`, `None` for a hook gitship ignores; an unknown value is an error.
fn phase_of(key: &str, value: &str) -> Result<Option<Option<HookPhase>>, String> {
    let phase = if key == ARGO_HOOK_ANNOTATION {
        match value {
            "PreSync" => Some(Some(HookPhase::PreSync)),
            "Sync" => Some(Some(HookPhase::Sync)),
            "PostSync" => Some(Some(HookPhase::PostSync)),
            "SyncFail" => Some(Some(HookPhase::SyncFail)),
            "Skip" => Some(None),
            "PostDelete" => None,
            _ => {
                return Err(format!(
                    "annotation `{key}`: unknown hook `{value}` (expected PreSync, Sync, PostSync, SyncFail, Skip or PostDelete)"
                ));
            }
        }
    } else {
        match value {
            "pre-install" | "pre-upgrade" => Some(Some(HookPhase::PreSync)),
            "post-install" | "post-upgrade" => Some(Some(HookPhase::PostSync)),
            "pre-delete" | "post-delete" | "pre-rollback" | "post-rollback" | "test"
            | "test-success" | "test-failure" | "crd-install" => None,
            _ => {
                return Err(format!(
                    "annotation `{key}`: unknown hook `{value}` (expected pre-install, pre-upgrade, post-install, post-upgrade, pre-delete, post-delete, pre-rollback, post-rollback or test)"
                ));
            }
        }
    };
    Ok(phase)
}

/// The delete policy of a hook: Argo CD's annotation, else Helm's, else `BeforeHookCreation`
/// for a hook with a fixed name (`named`) and nothing for a generated one.
fn delete_policy(object: &Value, named: bool) -> Result<DeletePolicy, String> {
    let (key, text) = match (
        annotation(object, ARGO_DELETE_POLICY_ANNOTATION),
        annotation(object, HELM_DELETE_POLICY_ANNOTATION),
    ) {
        (Some(text), _) => (ARGO_DELETE_POLICY_ANNOTATION, text),
        (None, Some(text)) => (HELM_DELETE_POLICY_ANNOTATION, text),
        (None, None) => {
            return Ok(DeletePolicy {
                before_creation: named,
                ..DeletePolicy::default()
            });
        }
    };
    let mut policy = DeletePolicy::default();
    for value in text.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        match value {
            "BeforeHookCreation" | "before-hook-creation" => policy.before_creation = true,
            "HookSucceeded" | "hook-succeeded" => policy.succeeded = true,
            "HookFailed" | "hook-failed" => policy.failed = true,
            _ => {
                return Err(format!(
                    "annotation `{key}`: unknown delete policy `{value}` (expected BeforeHookCreation, HookSucceeded or HookFailed, or Helm's before-hook-creation, hook-succeeded or hook-failed)"
                ));
            }
        }
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(annotations: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "migrate-", "annotations": annotations}})
    }

    #[test]
    fn argo_waves_are_gitship_waves_and_must_agree() {
        assert_eq!(
            wave_of(&object(json!({ARGO_WAVE_ANNOTATION: "-1"}))),
            Ok(-1)
        );
        assert_eq!(
            wave_of(&object(
                json!({ARGO_WAVE_ANNOTATION: "2", WAVE_ANNOTATION: "2"})
            )),
            Ok(2)
        );
        let both = wave_of(&object(
            json!({ARGO_WAVE_ANNOTATION: "2", WAVE_ANNOTATION: "1"}),
        ))
        .unwrap_err();
        assert!(both.contains("disagree"), "{both}");
        let bad = wave_of(&object(json!({ARGO_WAVE_ANNOTATION: "soon"}))).unwrap_err();
        assert_eq!(
            bad,
            "annotation `argocd.argoproj.io/sync-wave` must be an integer, got `soon`"
        );
        assert_eq!(wave_of(&json!({"metadata": {}})), Ok(0));
    }

    #[test]
    fn argo_and_helm_hooks_map_onto_phases_and_policies() {
        let Ok(Role::Hook(hook)) = role_of(&object(json!({
            ARGO_HOOK_ANNOTATION: "PreSync",
            ARGO_DELETE_POLICY_ANNOTATION: "BeforeHookCreation,HookSucceeded",
            ARGO_WAVE_ANNOTATION: "-2",
        }))) else {
            panic!("a hook");
        };
        assert_eq!(hook.phases, vec![HookPhase::PreSync]);
        assert!(hook.delete.before_creation && hook.delete.succeeded && !hook.delete.failed);
        assert_eq!(hook.weight, -2);
        let Ok(Role::Hook(helm)) = role_of(&object(json!({
            HELM_HOOK_ANNOTATION: "post-install,post-upgrade",
            HELM_DELETE_POLICY_ANNOTATION: "hook-failed",
            HELM_WEIGHT_ANNOTATION: "5",
        }))) else {
            panic!("a hook");
        };
        assert_eq!(helm.phases, vec![HookPhase::PostSync]);
        assert_eq!(helm.delete.describe(), "HookFailed");
        assert_eq!(helm.weight, 5);
        // Argo CD's annotation wins over Helm's.
        let Ok(Role::Hook(both)) = role_of(&object(json!({
            ARGO_HOOK_ANNOTATION: "Sync", HELM_HOOK_ANNOTATION: "pre-install",
        }))) else {
            panic!("a hook");
        };
        assert_eq!(both.phases, vec![HookPhase::Sync]);
    }

    #[test]
    fn the_default_policy_deletes_a_named_hook_before_it_runs_again() {
        let mut named = object(json!({ARGO_HOOK_ANNOTATION: "PostSync"}));
        named["metadata"]["name"] = json!("smoke");
        let Ok(Role::Hook(hook)) = role_of(&named) else {
            panic!("a hook");
        };
        assert_eq!(hook.delete.describe(), "BeforeHookCreation");
        let Ok(Role::Hook(generated)) = role_of(&object(json!({ARGO_HOOK_ANNOTATION: "PostSync"})))
        else {
            panic!("a hook");
        };
        assert_eq!(generated.delete.describe(), "none");
    }

    #[test]
    fn skipped_ignored_and_bad_hooks() {
        assert!(matches!(
            role_of(&object(json!({ARGO_HOOK_ANNOTATION: "Skip"}))),
            Ok(Role::Skipped(_))
        ));
        let Ok(Role::Skipped(why)) = role_of(&object(json!({HELM_HOOK_ANNOTATION: "test"}))) else {
            panic!("skipped");
        };
        assert!(why.contains("helm.sh/hook: test"), "{why}");
        assert_eq!(
            role_of(&object(json!({HELM_HOOK_ANNOTATION: "crd-install"}))),
            Ok(Role::Object)
        );
        let bad = role_of(&object(json!({ARGO_HOOK_ANNOTATION: "Presync"}))).unwrap_err();
        assert!(bad.contains("unknown hook `Presync`"), "{bad}");
        let policy = role_of(&object(json!({
            ARGO_HOOK_ANNOTATION: "PreSync", ARGO_DELETE_POLICY_ANNOTATION: "Always",
        })))
        .unwrap_err();
        assert!(
            policy.contains("unknown delete policy `Always`"),
            "{policy}"
        );
        assert_eq!(role_of(&json!({"metadata": {}})), Ok(Role::Object));
    }
}
