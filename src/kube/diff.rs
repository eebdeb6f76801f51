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
use serde_json::{Map, Value};

use std::borrow::Cow;
use std::collections::BTreeSet;

use futures::StreamExt;

use crate::kube::KubeError;
use crate::kube::apply;
use crate::kube::check::{self, Checked, Prepared};
use crate::kube::discovery::Resources;
use crate::kube::inventory::{self, InventoryEntry};
use crate::kube::prune;
use crate::kube::retry::{RetryPolicy, status_code};
use crate::model::{Environment, FIELD_MANAGER, Manifest, ObjectId, holds_unknown, is_secret};

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

/// One changed field. `path` is dotted (`spec.replicas`, `spec.template.spec.containers[0].image`);
/// `None` means absent on that side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub path: String,
    pub live: Option<Value>,
    pub desired: Option<Value>,
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
    let prune = prune::candidates(&previous.objects, &desired_ids);
    Ok(EnvironmentDiff {
        objects: ordered,
        prune,
    })
}

/// Check `desired` as a deploy does; the objects whose kind is served, and (as creations) those
/// whose kind a CRD of the same set defines and is not served yet.
pub async fn checked_objects(
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

/// Compare `prepared` with the cluster: GET the live object, dry-run apply, compare. An object
/// the server is deleting counts as absent: applying creates it anew once it is gone.
pub async fn diff_object(
    client: &kube::Client,
    prepared: &Prepared,
    force: bool,
    retry: &RetryPolicy,
) -> Result<ObjectDiff, kube::Error> {
    let live = apply::get_live(client, prepared, retry)
        .await?
        .filter(|live| !apply::is_being_deleted(live));
    if holds_unknown(&prepared.body) {
        return Ok(unknown_until_apply(live, prepared.body.clone()));
    }
    let dry_run = match apply::server_side_apply(client, prepared, force, true, retry).await {
        Ok(result) => result,
        Err(error) if live.is_none() && status_code(&error) == Some(404) => prepared.body.clone(),
        Err(error)
            if crate::kube::immutable_field(&error).is_some()
                && crate::model::annotation(&prepared.body, crate::model::REPLACE_ANNOTATION)
                    == Some("true") =>
        {
            let desired = prepared.body.clone();
            let mut changes = Vec::new();
            if let Some(live) = &live {
                changes_between("", &strip_server_fields(live), &desired, &mut changes);
                // Without a dry-run result, only fields the manifest sets are comparable.
                changes.retain(|change| change.desired.is_some());
            }
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
/// ([`crate::model::KNOWN_AFTER_APPLY`]). It is never sent
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
pub fn diff_from(live: Option<Value>, dry_run: Value) -> ObjectDiff {
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

/// The differences between a live object and a dry-run result over the fields gitship manages
/// (or over the whole objects, minus server bookkeeping, when neither carries managedFields).
pub fn compare(live: &Value, dry_run: &Value) -> Vec<FieldChange> {
    let managed = union(
        managed_fields(live, FIELD_MANAGER),
        managed_fields(dry_run, FIELD_MANAGER),
    );
    let managed = managed.map(|tree| with_secret_data(dry_run, tree));
    let (live, desired) = match managed {
        Some(tree) => (
            project(&strip_server_fields(live), &tree),
            project(&strip_server_fields(dry_run), &tree),
        ),
        None => (strip_server_fields(live), strip_server_fields(dry_run)),
    };
    let mut changes = Vec::new();
    changes_between("", &live, &desired, &mut changes);
    changes
}

/// A Secret's `stringData` is a write-only alias of `data`: the server stores the values under
/// `data` while the field set records `stringData`. Owning `stringData.<key>` therefore means
/// owning `data.<key>`, or a changed value would go unseen.
fn with_secret_data(object: &Value, mut tree: Value) -> Value {
    let is_secret = object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if !is_secret {
        return tree;
    }
    let Some(string_data) = tree.get("f:stringData").cloned() else {
        return tree;
    };
    if let Some(map) = tree.as_object_mut() {
        let merged = union(map.remove("f:data"), Some(string_data)).unwrap_or(Value::Null);
        map.insert("f:data".to_string(), merged);
    }
    tree
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

/// The union of the `fieldsV1` trees of `manager`'s managedFields entries, if any.
pub fn managed_fields(object: &Value, manager: &str) -> Option<Value> {
    let entries = object.pointer("/metadata/managedFields")?.as_array()?;
    entries
        .iter()
        .filter(|entry| entry.get("manager").and_then(Value::as_str) == Some(manager))
        .filter_map(|entry| entry.get("fieldsV1").cloned())
        .fold(None, |merged, tree| union(merged, Some(tree)))
}

/// The managers owning the field at `path` (dotted, as in [`FieldChange::path`]) according to
/// the managedFields of `object`; used by `drift` to say who changed a field.
pub fn managers_of(object: &Value, path: &str) -> Vec<String> {
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let target = strip_server_fields(object);
    let mut managers = Vec::new();
    for entry in entries {
        let (Some(manager), Some(tree)) = (
            entry.get("manager").and_then(Value::as_str),
            entry.get("fieldsV1"),
        ) else {
            continue;
        };
        let mut owned = Vec::new();
        leaves("", &project(&target, tree), &mut owned);
        let covers = |p: &str| {
            p == path || path.starts_with(&format!("{p}.")) || path.starts_with(&format!("{p}["))
        };
        let below =
            |p: &str| p.starts_with(&format!("{path}.")) || p.starts_with(&format!("{path}["));
        if owned.iter().any(|p| covers(p) || below(p)) && !managers.iter().any(|m| m == manager) {
            managers.push(manager.to_string());
        }
    }
    managers
}

fn union(left: Option<Value>, right: Option<Value>) -> Option<Value> {
    match (left, right) {
        (None, other) | (other, None) => other,
        (Some(Value::Object(mut left)), Some(Value::Object(right))) => {
            for (key, value) in right {
                let merged =
                    union(left.remove(&key), Some(value)).unwrap_or(Value::Object(Map::new()));
                left.insert(key, merged);
            }
            Some(Value::Object(left))
        }
        (Some(left), Some(_)) => Some(left),
    }
}

/// `value` restricted to the fields of a `fieldsV1` tree (`f:` keys, `k:` list-map keys, `v:`
/// set values, `i:` indexes; a node with no children other than `.` selects the whole value).
pub fn project(value: &Value, tree: &Value) -> Value {
    let Some(node) = tree.as_object() else {
        return value.clone();
    };
    let children: Vec<(&String, &Value)> =
        node.iter().filter(|(key, _)| key.as_str() != ".").collect();
    if children.is_empty() {
        return value.clone();
    }
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, child) in &children {
                if let Some(field) = key.strip_prefix("f:")
                    && let Some(inner) = map.get(field)
                {
                    out.insert(field.to_string(), project(inner, child));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for (index, item) in items.iter().enumerate() {
                let selected = children
                    .iter()
                    .find(|(key, _)| element_matches(key, index, item));
                if let Some((_, child)) = selected {
                    out.push(project(item, child));
                }
            }
            Value::Array(out)
        }
        other => other.clone(),
    }
}

fn element_matches(key: &str, index: usize, item: &Value) -> bool {
    if let Some(fields) = key.strip_prefix("k:") {
        let Ok(Value::Object(wanted)) = serde_json::from_str::<Value>(fields) else {
            return false;
        };
        return wanted.iter().all(|(name, expected)| {
            item.get(name)
                .is_some_and(|v| loosely_equal("", v, expected))
        });
    }
    if let Some(literal) = key.strip_prefix("v:") {
        return serde_json::from_str::<Value>(literal).is_ok_and(|v| &v == item);
    }
    if let Some(position) = key.strip_prefix("i:") {
        return position.parse::<usize>().is_ok_and(|p| p == index);
    }
    false
}

/// Collect the differences between `live` and `desired` below `path`.
pub fn changes_between(path: &str, live: &Value, desired: &Value, out: &mut Vec<FieldChange>) {
    match (live, desired) {
        (Value::Object(live_map), Value::Object(desired_map)) => {
            let mut keys: Vec<&String> = live_map.keys().chain(desired_map.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = join(path, key);
                match (live_map.get(key), desired_map.get(key)) {
                    (Some(l), Some(d)) => changes_between(&child, l, d, out),
                    (l, d) => {
                        if !is_empty_value(l) || !is_empty_value(d) {
                            out.push(FieldChange {
                                path: child,
                                live: l.cloned(),
                                desired: d.cloned(),
                            });
                        }
                    }
                }
            }
        }
        (Value::Array(live_items), Value::Array(desired_items))
            if live_items.len() == desired_items.len() =>
        {
            for (index, (l, d)) in live_items.iter().zip(desired_items).enumerate() {
                changes_between(&format!("{path}[{index}]"), l, d, out);
            }
        }
        (l, d) => {
            if !loosely_equal(path, l, d) {
                out.push(FieldChange {
                    path: path.to_string(),
                    live: Some(l.clone()),
                    desired: Some(d.clone()),
                });
            }
        }
    }
}

/// The dotted paths of every leaf (scalar, empty map or empty list) of `value`.
fn leaves(path: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            map.iter().for_each(|(k, v)| leaves(&join(path, k), v, out))
        }
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| leaves(&format!("{path}[{i}]"), v, out)),
        _ => out.push(path.to_string()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn is_empty_value(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        _ => false,
    }
}

/// Equality after normalisation: numbers by value; quantities by amount under resource-like
/// fields (`resources`, `limits`, `requests`, `capacity`, `hard`, `storage`).
pub fn loosely_equal(path: &str, left: &Value, right: &Value) -> bool {
    if left == right {
        return true;
    }
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => match (l.as_f64(), r.as_f64()) {
            (Some(l), Some(r)) => numbers_equal(l, r),
            _ => false,
        },
        _ if is_quantity_path(path) => match (quantity_of(left), quantity_of(right)) {
            (Some(l), Some(r)) => numbers_equal(l, r),
            _ => false,
        },
        _ => false,
    }
}

fn numbers_equal(left: f64, right: f64) -> bool {
    (left - right).abs() <= f64::EPSILON * left.abs().max(right.abs()).max(1.0) * 4.0
}

fn is_quantity_path(path: &str) -> bool {
    path.split(['.', '[']).any(|segment| {
        matches!(
            segment,
            "resources" | "limits" | "requests" | "capacity" | "hard" | "storage" | "allocatable"
        )
    })
}

fn quantity_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => parse_quantity(text),
        _ => None,
    }
}

/// The amount of a Kubernetes quantity (`500m` -> 0.5, `1Ki` -> 1024, `1e3` -> 1000).
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * multiplier)
}

/// The managed fields of `desired` (the manifest as gitship applies it) whose live value differs,
/// without a dry run: every leaf the manifest sets is compared with the live object at the same
/// path, after the normalisation of [`loosely_equal`]. Fields the manifest does not set
/// (server defaults, other managers' fields) are not looked at, so a freshly deployed object has
/// no changes. A Secret's `stringData` is compared as the `data` the server stores it as.
/// `drift` uses this over LISTed objects: one request per kind instead of two per object.
pub fn compare_to_manifest(live: &Value, desired: &Value) -> Vec<FieldChange> {
    let desired = secret_as_stored(desired);
    let live = secret_as_stored(live);
    let mut changes = Vec::new();
    if let (Value::Object(live), Value::Object(desired)) = (live.as_ref(), desired.as_ref()) {
        for (key, value) in desired {
            if key == "status" {
                continue;
            }
            walk_manifest(key, live.get(key), value, &mut changes);
        }
    }
    changes
}

fn walk_manifest(path: &str, live: Option<&Value>, desired: &Value, out: &mut Vec<FieldChange>) {
    let push = |out: &mut Vec<FieldChange>| {
        out.push(FieldChange {
            path: path.to_string(),
            live: live.cloned(),
            desired: Some(desired.clone()),
        })
    };
    match (desired, live) {
        (Value::Null, _) => {}
        (Value::Object(wanted), None | Some(Value::Null)) if wanted.is_empty() => {}
        (Value::Array(wanted), None | Some(Value::Null)) if wanted.is_empty() => {}
        (Value::Object(wanted), Some(Value::Object(found))) => {
            for (key, value) in wanted {
                let child = format!("{path}.{key}");
                walk_manifest(&child, found.get(key), value, out);
            }
        }
        (Value::Array(wanted), Some(Value::Array(found))) if wanted.len() == found.len() => {
            for (index, (value, live_value)) in wanted.iter().zip(found).enumerate() {
                walk_manifest(&format!("{path}[{index}]"), Some(live_value), value, out);
            }
        }
        (_, None) => push(out),
        (wanted, Some(found)) => {
            let equal = match (wanted, found) {
                (Value::Object(_) | Value::Array(_), _)
                | (_, Value::Object(_) | Value::Array(_)) => false,
                _ => loosely_equal(path, found, wanted),
            };
            if !equal {
                push(out);
            }
        }
    }
}

/// A Secret's `stringData` moved into `data`, base64-encoded, as the server stores it.
fn secret_as_stored(object: &Value) -> Cow<'_, Value> {
    use base64::Engine;
    if !is_secret(object) || object.get("stringData").is_none() {
        return Cow::Borrowed(object);
    }
    let mut object = object.clone();
    if let Some(Value::Object(plain)) = object.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        let data = object.as_object_mut().map(|m| {
            m.entry("data")
                .or_insert_with(|| Value::Object(Default::default()))
        });
        if let Some(Value::Object(data)) = data {
            for (key, value) in plain {
                let text = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                data.insert(
                    key,
                    Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
    Cow::Owned(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let mut dry = deployment(json!(3), "gitship");
        dry["metadata"]["managedFields"] = json!([{"manager": "gitship", "operation": "Apply", "fieldsV1": {
            "f:spec": {"f:replicas": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}}]);
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
    fn fields_outside_gitships_set_are_ignored() {
        let live = deployment(json!(3), "gitship");
        let mut dry = live.clone();
        // revisionHistoryLimit is defaulted and not managed by gitship: a change there is not ours.
        dry["spec"]["revisionHistoryLimit"] = json!(5);
        assert!(compare(&live, &dry).is_empty());
        dry["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
        let changes = compare(&live, &dry);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, "spec.template.spec.containers[0].image");
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
    fn without_managed_fields_the_whole_object_is_compared() {
        let live = json!({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "1"}, "data": {"k": "v"}});
        let same = json!({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "2"}, "data": {"k": "v"}});
        assert!(compare(&live, &same).is_empty());
        let other =
            json!({"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "w", "new": "x"}});
        let changes = compare(&live, &other);
        assert_eq!(
            changes.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
            vec!["data.k", "data.new"]
        );
        assert_eq!(changes[1].live, None);
    }

    #[test]
    fn removed_field_that_gitship_managed_is_a_change() {
        let live = json!({"metadata": {"name": "a", "managedFields": [
            {"manager": "gitship", "fieldsV1": {"f:data": {"f:old": {}, "f:k": {}}}}]}, "data": {"k": "v", "old": "x"}});
        let dry = json!({"metadata": {"name": "a", "managedFields": [
            {"manager": "gitship", "fieldsV1": {"f:data": {"f:k": {}}}}]}, "data": {"k": "v"}});
        let changes = compare(&live, &dry);
        assert_eq!(
            changes,
            vec![FieldChange {
                path: "data.old".into(),
                live: Some(json!("x")),
                desired: None
            }]
        );
    }

    #[test]
    fn a_secret_value_written_through_string_data_is_compared_under_data() {
        let secret = |password: &str| {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "managedFields": [
                {"manager": "gitship", "operation": "Apply", "fieldsV1": {"f:stringData": {"f:password": {}}, "f:type": {}}}]},
                "type": "Opaque", "data": {"password": password, "other": "eA=="}})
        };
        let changes = compare(&secret("b2xk"), &secret("bmV3"));
        assert_eq!(
            changes.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
            vec!["data.password"]
        );
        assert!(compare(&secret("b2xk"), &secret("b2xk")).is_empty());
    }

    #[test]
    fn managers_are_found_for_a_path() {
        let live = deployment(json!(10), "kubectl");
        assert_eq!(
            managers_of(&live, "spec.replicas"),
            vec!["kubectl".to_string()]
        );
        assert_eq!(
            managers_of(&live, "spec.template.spec.containers[0].image"),
            vec!["gitship".to_string()]
        );
    }

    #[test]
    fn set_and_index_keys_select_elements() {
        let value = json!({"finalizers": ["a", "b"], "args": ["x", "y"]});
        let tree = json!({"f:finalizers": {"v:\"b\"": {}}, "f:args": {"i:0": {}}});
        assert_eq!(
            project(&value, &tree),
            json!({"finalizers": ["b"], "args": ["x"]})
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
            compare_to_manifest(&live, &missing)[0].path,
            "metadata.labels.team"
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
            compare_to_manifest(&live, &changed)[0].path,
            "data.password"
        );
    }
}
