//! Live objects read in bulk, and compared with the manifests without a dry run.
//!
//! [`compare_live`] reads every object of a set with one paged LIST per resource and namespace
//! (all of them concurrently), instead of one GET per object. It is `drift`'s comparison:
//! the desired objects checked as a deploy checks them ([`crate::kube::check::check`]), their live
//! counterparts listed, and every field the manifest sets compared with [`compare_to_manifest`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use kube::Client;
use kube::api::ListParams;
use serde_json::Value;

use crate::kube::KubeError;
use crate::kube::check::Prepared;
use crate::kube::diff::{self, EnvironmentDiff, ObjectDiff, PlannedAction};
use crate::kube::retry::RetryPolicy;
use crate::model::{Environment, Manifest, ObjectId, is_secret};

/// How many objects one LIST page of `drift` holds. Pages bound the memory of a check: a page's
/// body and its decoded objects are dropped before the next is read, so a long-running agent's
/// working set is one page per kind, not the whole namespace.
const DRIFT_PAGE: u32 = 100;

/// How many objects one LIST page of a deploy holds: kubectl's chunk size. A deploy keeps what
/// it reads until the group is applied anyway, and each page is one more round trip.
const DEPLOY_PAGE: u32 = 500;

/// What [`compare_live`] found for one desired object: its live object and what differs.
struct Found {
    live: Value,
    changes: Vec<diff::FieldChange>,
}

/// The objects of `objects` that exist, each passed through `keep` as its page arrives: one
/// paged LIST per resource and namespace (all of them concurrently), instead of one GET per
/// object. Live objects whose names are not in `objects` are dropped page by page, so what
/// stays in memory is what `keep` returns. `Ok` holds the ids of the group listed and what
/// `keep` made of those that exist; `Err` per resource and namespace, so that a caller
/// can fall back to GETs where a LIST is refused (RBAC may grant `get` without `list`). A
/// resource and namespace with fewer than `min_group` objects is not listed at all.
async fn list_each<T, F>(
    client: &Client,
    objects: &[&Prepared],
    min_group: usize,
    page_size: u32,
    retry: &RetryPolicy,
    keep: &F,
) -> Vec<Result<(Vec<ObjectId>, Vec<(ObjectId, T)>), (Vec<ObjectId>, KubeError)>>
where
    F: Fn(&Prepared, Value) -> T + Sync,
    T: Send,
{
    type ListKey = (String, String, String, Option<String>);
    let mut groups: BTreeMap<ListKey, Vec<&Prepared>> = BTreeMap::new();
    for prepared in objects {
        let key = (
            prepared.resolved.resource.group.clone(),
            prepared.resolved.resource.version.clone(),
            prepared.resolved.resource.plural.clone(),
            prepared.id.namespace.clone(),
        );
        groups.entry(key).or_default().push(prepared);
    }
    groups.retain(|_, group| group.len() >= min_group);
    futures::future::join_all(groups.into_values().map(|group| async move {
        let ids = || group.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        let mut found = Vec::with_capacity(group.len());
        let Some(first) = group.first() else {
            return Ok((Vec::new(), found));
        };
        let wanted: HashMap<&str, &Prepared> =
            group.iter().map(|p| (p.id.name.as_str(), *p)).collect();
        let api = first.api(client);
        let mut params = ListParams::default().limit(page_size);
        loop {
            let page = retry
                .run(&format!("list {}", first.resolved.resource.plural), || {
                    api.list(&params)
                })
                .await
                .map_err(|e| (ids(), first.error(e)))?;
            for item in page.items {
                let Some(prepared) = item.metadata.name.as_deref().and_then(|n| wanted.get(n))
                else {
                    continue;
                };
                if let Ok(live) = serde_json::to_value(item) {
                    found.push((prepared.id.clone(), keep(prepared, live)));
                }
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params.continue_token = Some(token),
                _ => break,
            }
        }
        Ok((ids(), found))
    }))
    .await
}

/// A deploy LISTs a resource in a namespace only for at least this many of its objects: fewer
/// are read with concurrent GETs (one round trip too), and a LIST of a cluster's kind with few
/// objects in Git (CustomResourceDefinitions, ClusterRoles) would read many large objects.
const LIST_AT_LEAST: usize = 8;

/// The live state of `objects` read with paged LISTs, for a deploy: an entry for every object
/// whose resource could be listed (`None`: it does not exist), none for the others (fewer than
/// [`LIST_AT_LEAST`] of their resource, or their LIST was refused or failed: the caller GETs
/// them one by one).
pub async fn read_live(
    client: &Client,
    objects: &[&Prepared],
    retry: &RetryPolicy,
) -> HashMap<ObjectId, Option<Value>> {
    let lists = list_each(
        client,
        objects,
        LIST_AT_LEAST,
        DEPLOY_PAGE,
        retry,
        &|_, live| live,
    )
    .await;
    let mut known: HashMap<ObjectId, Option<Value>> = HashMap::with_capacity(objects.len());
    for list in lists {
        match list {
            Ok((listed, found)) => {
                known.extend(listed.into_iter().map(|id| (id, None)));
                known.extend(found.into_iter().map(|(id, live)| (id, Some(live))));
            }
            Err((_, error)) => {
                tracing::debug!(%error, "LIST failed: reading these objects one by one");
            }
        }
    }
    known
}

/// Every desired object compared with its live counterpart (no dry runs: see
/// [`compare_to_manifest`]). Objects whose kind is not served yet (defined by a CRD of the same
/// set) count as missing. An unchanged object's `live` lacks `metadata.managedFields`.
pub async fn compare_live(
    client: &Client,
    environment: &Environment,
    desired: &[Manifest],
) -> Result<EnvironmentDiff, KubeError> {
    let retry = RetryPolicy::default();
    let (prepared, objects) = diff::checked_objects(client, environment, desired, &retry).await?;
    let references: Vec<&Prepared> = prepared.iter().collect();
    // Each object is compared as its page arrives; one without changes keeps its live body
    // without `metadata.managedFields` (only a changed field's manager is ever looked up), so
    // what stays in memory is about one copy of the desired set.
    let compare = |prepared: &Prepared, mut live: Value| {
        let changes = compare_to_manifest(&live, &prepared.body);
        if changes.is_empty()
            && let Some(metadata) = live.get_mut("metadata").and_then(Value::as_object_mut)
        {
            metadata.remove("managedFields");
        }
        Found { live, changes }
    };
    let mut found: HashMap<ObjectId, Found> = HashMap::with_capacity(references.len());
    for list in list_each(client, &references, 1, DRIFT_PAGE, &retry, &compare).await {
        found.extend(list.map_err(|(_, error)| error)?.1);
    }
    drop(references);
    let mut compared: Vec<(ObjectId, ObjectDiff)> = prepared
        .into_iter()
        .map(|p| {
            let object_diff = match found.remove(&p.id) {
                None => missing(p.body),
                Some(Found { live, changes }) => ObjectDiff {
                    action: if changes.is_empty() {
                        PlannedAction::Unchanged
                    } else {
                        PlannedAction::Update
                    },
                    live: Some(live),
                    desired: p.body,
                    changes,
                },
            };
            (p.id, object_diff)
        })
        .collect();
    compared.extend(objects);
    Ok(EnvironmentDiff {
        objects: compared,
        prune: Vec::new(),
    })
}

fn missing(desired: Value) -> ObjectDiff {
    ObjectDiff {
        action: PlannedAction::Create,
        live: None,
        desired,
        changes: Vec::new(),
    }
}

/// The managed fields of `desired` (the manifest as gitship applies it) whose live value differs,
/// without a dry run: every leaf the manifest sets is compared with the live object at the same
/// path, after the normalisation of [`diff::loosely_equal`]. Fields the manifest does not set
/// (server defaults, other managers' fields) are not looked at, so a freshly deployed object has
/// no changes. A Secret's `stringData` is compared as the `data` the server stores it as.
/// `drift` uses this over LISTed objects: one request per kind instead of two per object.
pub fn compare_to_manifest(live: &Value, desired: &Value) -> Vec<diff::FieldChange> {
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

fn walk_manifest(
    path: &str,
    live: Option<&Value>,
    desired: &Value,
    out: &mut Vec<diff::FieldChange>,
) {
    let push = |out: &mut Vec<diff::FieldChange>| {
        out.push(diff::FieldChange {
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
                _ => diff::loosely_equal(path, found, wanted),
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
    use crate::kube::FieldChange as KubeFieldChange;
    use serde_json::json;

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
            vec![KubeFieldChange {
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
