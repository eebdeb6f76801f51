//! Change detection: what a server-side apply of a manifest would change in the live object.
//!
//! The server computes the answer: a dry-run apply (`dryRun=All`, field manager `gitship`)
//! returns the object as it would be stored, defaulting and merging included. That result is
//! compared with the live object over the fields gitship manages (its `managedFields` entries in
//! both, unioned, so a field gitship stopped setting also shows), after normalisation: status and
//! server bookkeeping (`resourceVersion`, `generation`, `managedFields`, timestamps, `uid`) are
//! ignored, numbers compare by value (`1` = `1.0`) and resource quantities by amount
//! (`500m` = `0.5`, `1Gi` = `1024Mi`). Equal means the real apply would be a no-op, so
//! `deploy` skips it; `plan`, `diff` and `drift` show the [`FieldChange`]s.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::collections::BTreeSet;

use futures::StreamExt;

use crate::KubeError;
use crate::apply;
use crate::check::{self, Checked, Prepared};
use crate::discovery::Resources;
pub use crate::fields::FieldChange;
use crate::fields::{self, FieldPath};
use crate::inventory::{self, InventoryEntry};
use crate::prune;
use crate::retry::{RetryPolicy, status_code};
use gitship_foundation::model::{Environment, FIELD_MANAGER, Manifest, ObjectId, holds_unknown};

/// What applying an object would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlannedAction {
    Create,
    Update,
    /// An immutable field changed and the object opts into delete-and-recreate
    /// (`gitship.dev/replace: "true"`).
    Replace,
    Unchanged,
}

/// The comparison of one desired object with the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectDiff {
    pub action: PlannedAction,
    /// The live object (`None` when it does not exist).
    pub live: Option<Value>,
    /// The dry-run result: the object as the server would store it (the desired object itself
    /// when a dry run is impossible, e.g. its namespace does not exist yet).
    pub desired: Value,
    /// Changed fields over what gitship manages (empty for `Create` and `Unchanged`).
    pub changes: Vec<FieldChange>,
}

/// The Kubernetes part of a plan: every desired object compared with the cluster, and what a
/// deploy would prune. Reads and dry-runs only (RBAC: get/list and patch with dryRun).
#[derive(Debug, Clone)]
pub struct EnvironmentDiff {
    /// Desired objects in apply order, with their comparison.
    pub objects: Vec<(ObjectId, ObjectDiff)>,
    /// Objects of the previous inventory that Git no longer has (before ownership checks).
    pub prune: Vec<InventoryEntry>,
}

impl EnvironmentDiff {
    /// Whether anything would change.
    pub fn has_changes(&self) -> bool {
        !self.prune.is_empty()
            || self
                .objects
                .iter()
                .any(|(_, diff)| diff.action != PlannedAction::Unchanged)
    }
}

/// Compare every desired object with the cluster (concurrently, bounded) and compute the prune
/// set from the stored inventory. Objects whose kind is defined by a CRD of the same set (not
/// served yet) are reported as `Create` without a dry run.
pub async fn diff_environment(
    client: &kube::Client,
    environment: &Environment,
    desired: &[Manifest],
    force: bool,
    concurrency: usize,
    retry: &RetryPolicy,
) -> Result<EnvironmentDiff, KubeError> {
    let (mut prepared, objects) = checked_objects(client, environment, desired, retry).await?;
    prepared.sort_by(|a, b| (a.position, &a.id).cmp(&(b.position, &b.id)));
    let compared: Vec<Result<(ObjectId, ObjectDiff), KubeError>> = futures::stream::iter(prepared)
        .map(|p| async move {
            let diff = diff_object(client, &p, force, retry)
                .await
                .map_err(|e| p.error(e))?;
            if let Some(live) = &diff.live {
                check::check_owner(&p, live)?;
            }
            Ok((p.id.clone(), diff))
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut ordered = compared.into_iter().collect::<Result<Vec<_>, _>>()?;
    ordered.extend(objects);
    let desired_ids: BTreeSet<ObjectId> = ordered.iter().map(|(id, _)| id.clone()).collect();
    let previous = inventory::load(client, &environment.name, &environment.namespace, retry)
        .await?
        .unwrap_or_default();
    let scope = prune::Scope::new(&environment.name, &environment.namespace, &desired_ids);
    let mut prune = prune::candidates(&previous.objects, &desired_ids);
    prune.retain(|entry| scope.refuses(entry).is_none());
    Ok(EnvironmentDiff {
        objects: ordered,
        prune,
    })
}

/// Check `desired` as a deploy does; the objects whose kind is served, and (as creations) those
/// whose kind a CRD of the same set defines and is not served yet.
pub(crate) async fn checked_objects(
    client: &kube::Client,
    environment: &Environment,
    desired: &[Manifest],
    retry: &RetryPolicy,
) -> Result<(Vec<Prepared>, Vec<(ObjectId, ObjectDiff)>), KubeError> {
    let resources = Resources::new();
    let checked = check::check(client, &resources, environment, desired, retry).await?;
    let mut prepared = Vec::new();
    let mut deferred = Vec::new();
    for item in checked {
        match item {
            Checked::Ready(p) => prepared.push(*p),
            Checked::Deferred(object, namespaced) => deferred.push((
                check::deferred_id(&object, namespaced, environment),
                ObjectDiff {
                    action: PlannedAction::Create,
                    live: None,
                    desired: object.object,
                    changes: Vec::new(),
                },
            )),
        }
    }
    Ok((prepared, deferred))
}

/// What can be known to fail before anything changes (ARCHITECTURE.md, "Nothing changes
/// before every check that can be made without a change passed"): every kind resolves through
/// discovery (or is defined by a CRD of the same set; a hook's kind is served), no object is
/// declared twice, and no
/// Namespace Git declares is owned by another environment. `desired` may be rendered with
/// placeholder outputs: only identities and ownership are looked at. Reads only.
pub async fn check_before_changes(
    client: &kube::Client,
    environment: &Environment,
    desired: &[Manifest],
    retry: &RetryPolicy,
) -> Result<(), KubeError> {
    let resources = Resources::new();
    let checked = check::check(client, &resources, environment, desired, retry).await?;
    // The hooks' kinds too: a hook the cluster cannot create must stop the deploy here.
    crate::hooks::prepare(client, &resources, environment, desired, retry).await?;
    for item in &checked {
        if let Checked::Ready(prepared) = item
            && prepared.id.kind == "Namespace"
            && prepared.id.group.is_empty()
            && let Some(live) = prepared
                .get_live(client, retry)
                .await
                .map_err(|e| prepared.error(e))?
        {
            check::check_owner(prepared, &live)?;
        }
    }
    Ok(())
}

/// How many of the `desired` objects exist live and belong to `environment` (its
/// `gitship.dev/owned-by` annotation): the evidence of earlier deploys when the inventory is gone.
/// One GET per object; only asked when the inventory and its copy are missing.
pub async fn count_owned(
    client: &kube::Client,
    environment: &Environment,
    desired: &[Manifest],
    retry: &RetryPolicy,
) -> Result<usize, KubeError> {
    let resources = Resources::new();
    let checked = check::check(client, &resources, environment, desired, retry).await?;
    let mut owned = 0usize;
    for item in &checked {
        let Checked::Ready(prepared) = item else {
            continue;
        };
        // The environment's namespace is created for the lock before the first deploy applies.
        if prepared.id.kind == "Namespace"
            && prepared.id.group.is_empty()
            && prepared.id.name == environment.namespace
        {
            continue;
        }
        let live = prepared
            .get_live(client, retry)
            .await
            .map_err(|e| prepared.error(e))?;
        if live.as_ref().is_some_and(|live| {
            gitship_foundation::model::annotation(
                live,
                gitship_foundation::model::OWNED_BY_ANNOTATION,
            ) == Some(environment.name.as_str())
        }) {
            owned = owned.saturating_add(1);
        }
    }
    Ok(owned)
}

/// Compare `prepared` with the cluster: GET the live object, dry-run apply, compare. An object
/// the server is deleting counts as absent: applying creates it anew once it is gone.
pub(crate) async fn diff_object(
    client: &kube::Client,
    prepared: &Prepared,
    force: bool,
    retry: &RetryPolicy,
) -> Result<ObjectDiff, kube::Error> {
    let live = prepared
        .get_live(client, retry)
        .await?
        .filter(|live| !apply::is_being_deleted(live));
    if holds_unknown(&prepared.body) {
        return Ok(unknown_until_apply(live, prepared.body.clone()));
    }
    let dry_run = match apply::server_side_apply(client, prepared, force, true, retry).await {
        Ok(result) => result,
        Err(error) if live.is_none() && status_code(&error) == Some(404) => prepared.body.clone(),
        Err(error)
            if crate::immutable_field(&error).is_some()
                && gitship_foundation::model::annotation(
                    &prepared.body,
                    gitship_foundation::model::REPLACE_ANNOTATION,
                ) == Some("true") =>
        {
            let desired = prepared.body.clone();
            // Without a dry-run result, only fields the manifest sets are comparable.
            let changes = live
                .as_ref()
                .map(|live| compare_to_manifest(live, &desired))
                .unwrap_or_default();
            return Ok(ObjectDiff {
                action: PlannedAction::Replace,
                live,
                desired,
                changes,
            });
        }
        Err(error) => return Err(error),
    };
    Ok(diff_from(live, dry_run))
}

/// The [`ObjectDiff`] of an object that holds a value known only after apply
/// ([`gitship_foundation::model::KNOWN_AFTER_APPLY`]). It is never sent
/// to the server, not even as a dry run: the placeholder is no valid value (a quantity, a port,
/// a name), and the server would reject it or, worse, accept it as a string. As Terraform shows
/// such a resource, the object is compared with its live counterpart over the fields the
/// manifest sets, and each unknown field shows as `(known after apply)`.
fn unknown_until_apply(live: Option<Value>, desired: Value) -> ObjectDiff {
    match live {
        None => ObjectDiff {
            action: PlannedAction::Create,
            live: None,
            desired,
            changes: Vec::new(),
        },
        Some(live) => {
            let changes = compare_to_manifest(&live, &desired);
            ObjectDiff {
                action: match changes.is_empty() {
                    true => PlannedAction::Unchanged,
                    false => PlannedAction::Update,
                },
                live: Some(live),
                desired,
                changes,
            }
        }
    }
}

/// The [`ObjectDiff`] of a live object (if any) and a dry-run result.
pub(crate) fn diff_from(live: Option<Value>, dry_run: Value) -> ObjectDiff {
    match live {
        None => ObjectDiff {
            action: PlannedAction::Create,
            live: None,
            desired: dry_run,
            changes: Vec::new(),
        },
        Some(live) => {
            let changes = compare(&live, &dry_run);
            let action = if changes.is_empty() {
                PlannedAction::Unchanged
            } else {
                PlannedAction::Update
            };
            ObjectDiff {
                action,
                live: Some(live),
                desired: dry_run,
                changes,
            }
        }
    }
}

/// The differences between a live object and a dry-run result: everything the apply would
/// change, over the whole objects minus status and server bookkeeping, list items paired by
/// their keys ([`fields::changes_between`]). Fields and items only other managers own come back
/// from the dry run as they are, so they are no change.
pub fn compare(live: &Value, dry_run: &Value) -> Vec<FieldChange> {
    let shape = fields::union(fields::all_managers(live), fields::all_managers(dry_run));
    let mut changes = Vec::new();
    fields::changes_between(
        &FieldPath::new(),
        &strip_server_fields(live),
        &strip_server_fields(dry_run),
        shape.as_ref(),
        &mut changes,
    );
    changes
}

/// The object without status and server bookkeeping.
pub fn strip_server_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in [
                "resourceVersion",
                "generation",
                "managedFields",
                "creationTimestamp",
                "uid",
                "selfLink",
            ] {
                metadata.remove(key);
            }
        }
    }
    object
}

/// The managers owning the field at `path` according to the managedFields of `object`; used by
/// `drift` to say who changed a field.
pub fn managers_of(object: &Value, path: &FieldPath) -> Vec<String> {
    fields::owners(object, path)
}

/// What applying `desired` (the manifest as gitship applies it) would change in `live`, without
/// a dry run ([`fields::manifest_changes`] for gitship's field manager): each field the manifest
/// sets whose live value differs, and each field gitship owns that the manifest no longer sets.
/// Server defaults and other managers' fields and list items are not looked at, so a freshly
/// deployed object has no changes. `drift` uses this over LISTed objects (one request per kind
/// instead of two per object), and dry-runs only the objects it finds changed.
pub(crate) fn compare_to_manifest(live: &Value, desired: &Value) -> Vec<FieldChange> {
    fields::manifest_changes(live, desired, FIELD_MANAGER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{loosely_equal, parse_quantity};
    use serde_json::json;

    fn paths(changes: &[FieldChange]) -> Vec<String> {
        changes.iter().map(|c| c.path.to_string()).collect()
    }

    fn deployment(replicas: Value, managed_replicas_by: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "blog", "resourceVersion": "7", "generation": 2,
                "labels": {"app": "web"},
                "managedFields": [
                    {"manager": "gitship", "operation": "Apply", "fieldsV1": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {},
                                "f:resources": {"f:limits": {"f:cpu": {}}}}}}}}}},
                    {"manager": managed_replicas_by, "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
                ]
            },
            "spec": {"replicas": replicas, "revisionHistoryLimit": 10,
                "template": {"spec": {"containers": [{"name": "app", "image": "web:1",
                    "resources": {"limits": {"cpu": "500m"}}, "terminationMessagePath": "/dev/termination-log"}]}}},
            "status": {"replicas": 3}
        })
    }

    #[test]
    fn identical_objects_have_no_changes() {
        let live = deployment(json!(3), "gitship");
        let mut dry = live.clone();
        dry["metadata"]["resourceVersion"] = json!("8");
        dry["status"] = json!({});
        assert_eq!(diff_from(Some(live), dry).action, PlannedAction::Unchanged);
    }

    #[test]
    fn a_field_taken_by_another_manager_shows_as_an_update() {
        // Live: `kubectl scale` set 10 and owns spec.replicas. Dry run: gitship (forced) sets 3.
        let live = deployment(json!(10), "kubectl");
        let dry = deployment(json!(3), "gitship");
        let diff = diff_from(Some(live), dry);
        assert_eq!(diff.action, PlannedAction::Update);
        assert_eq!(
            diff.changes,
            vec![FieldChange {
                path: "spec.replicas".into(),
                live: Some(json!(10)),
                desired: Some(json!(3))
            }]
        );
    }

    #[test]
    fn a_dry_run_compares_list_items_by_key() {
        let live = deployment(json!(3), "gitship");
        let mut dry = live.clone();
        dry["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
        assert_eq!(
            paths(&compare(&live, &dry)),
            vec!["spec.template.spec.containers[name=app].image"]
        );
        // An item the dry run keeps in another place is the same item.
        let sidecar = json!({"name": "istio-proxy", "image": "proxy:1"});
        let mut with_sidecar = live.clone();
        with_sidecar["spec"]["template"]["spec"]["containers"] =
            json!([sidecar, live["spec"]["template"]["spec"]["containers"][0]]);
        let mut dry = live.clone();
        dry["spec"]["template"]["spec"]["containers"] =
            json!([live["spec"]["template"]["spec"]["containers"][0], sidecar]);
        assert!(compare(&with_sidecar, &dry).is_empty());
        // An item the apply would remove is that item, not the whole list.
        let changes = compare(&with_sidecar, &live);
        assert_eq!(
            paths(&changes),
            vec!["spec.template.spec.containers[name=istio-proxy]"]
        );
        assert_eq!(changes[0].desired, None);
    }

    #[test]
    fn quantities_and_numbers_are_normalised() {
        let live = deployment(json!(3), "gitship");
        let mut dry = live.clone();
        dry["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] =
            json!("0.5");
        dry["spec"]["replicas"] = json!(3.0);
        assert!(compare(&live, &dry).is_empty());
        assert_eq!(parse_quantity("1Gi"), parse_quantity("1024Mi"));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("2k"), Some(2000.0));
        assert_eq!(parse_quantity("abc"), None);
        // Outside resource fields, strings stay strings.
        assert!(!loosely_equal(
            "metadata.labels.version",
            &json!("1"),
            &json!("1.0")
        ));
    }

    #[test]
    fn bookkeeping_is_no_change() {
        let live = json!({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "1"}, "data": {"k": "v"}});
        let same = json!({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "2"}, "data": {"k": "v"}});
        assert!(compare(&live, &same).is_empty());
        let other =
            json!({"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "w", "new": "x"}});
        let changes = compare(&live, &other);
        assert_eq!(paths(&changes), vec!["data.k", "data.new"]);
        assert_eq!(changes[1].live, None);
    }

    #[test]
    fn managers_are_found_for_a_keyed_path() {
        let live = deployment(json!(10), "kubectl");
        let changes = compare(&live, &deployment(json!(3), "gitship"));
        assert_eq!(
            managers_of(&live, &changes[0].path),
            vec!["kubectl".to_string()]
        );
        let mut dry = live.clone();
        dry["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
        let changes = compare(&live, &dry);
        assert_eq!(
            managers_of(&live, &changes[0].path),
            vec!["gitship".to_string()]
        );
    }

    #[test]
    fn manifest_comparison_ignores_defaults_and_finds_changes() {
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": "4", "labels": {"app": "web", "extra": "x"}},
            "spec": {"replicas": 10, "revisionHistoryLimit": 10, "template": {"spec": {"containers": [
                {"name": "app", "image": "web:1", "imagePullPolicy": "IfNotPresent",
                 "resources": {"limits": {"cpu": "500m"}}}]}}},
            "status": {"replicas": 10}});
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 3.0, "template": {"spec": {"containers": [
                {"name": "app", "image": "web:1", "resources": {"limits": {"cpu": "0.5"}}}]}}}});
        let changes = compare_to_manifest(&live, &desired);
        assert_eq!(
            changes,
            vec![FieldChange {
                path: "spec.replicas".into(),
                live: Some(json!(10)),
                desired: Some(json!(3.0))
            }]
        );
        let mut same = desired.clone();
        same["spec"]["replicas"] = json!(10);
        assert!(compare_to_manifest(&live, &same).is_empty());
        let mut missing = same.clone();
        missing["metadata"]["labels"]["team"] = json!("blog");
        assert_eq!(
            paths(&compare_to_manifest(&live, &missing)),
            vec!["metadata.labels.team"]
        );
    }

    #[test]
    fn secret_string_data_compares_as_stored_data() {
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"});
        let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "stringData": {"password": "hunter2"}});
        assert!(compare_to_manifest(&live, &desired).is_empty());
        let changed = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "stringData": {"password": "other"}});
        assert_eq!(
            paths(&compare_to_manifest(&live, &changed)),
            vec!["data.password"]
        );
    }
}
