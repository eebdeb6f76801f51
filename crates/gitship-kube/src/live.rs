//! Live objects read in bulk, with paged LISTs instead of one GET per object.
//!
//! [`compare_live`] is `drift`'s comparison: the desired objects checked as a deploy checks them
//! ([`crate::check::check`]), their live counterparts listed (one paged LIST per resource
//! and namespace, all concurrently), and every field the manifest sets compared with
//! [`diff::compare_to_manifest`], page by page. [`read_live`] is a deploy's read of the objects
//! it is about to apply.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use kube::Client;
use kube::api::ListParams;
use serde_json::Value;

use crate::KubeError;
use crate::check::Prepared;
use crate::diff::{self, EnvironmentDiff, ObjectDiff, PlannedAction};
use crate::retry::RetryPolicy;
use gitship_foundation::model::{Environment, Manifest, ObjectId};

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
            for mut item in page.items {
                let Some(prepared) = item.metadata.name.as_deref().and_then(|n| wanted.get(n))
                else {
                    continue;
                };
                // A real API server leaves `apiVersion` and `kind` off the items of a LIST of
                // built-in kinds (the list carries them); a GET has them. Put them back, or
                // every listed object would differ from its manifest in both fields.
                if item.types.is_none() {
                    item.types = Some(kube::api::TypeMeta {
                        api_version: first.resolved.resource.api_version.clone(),
                        kind: first.resolved.resource.kind.clone(),
                    });
                }
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
pub(crate) async fn read_live(
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

/// How many objects `drift` dry-runs at once to confirm what the LISTs found changed.
const CONFIRM_CONCURRENCY: usize = 8;

/// Every desired object compared with its live counterpart, as a deploy would change it
/// (ARCHITECTURE.md, "Drift is what a deploy would change"). The live objects are LISTed and
/// compared with [`diff::compare_to_manifest`] as their pages arrive (no request per object);
/// only an object found changed is then dry-run applied as a deploy applies it, and its
/// changes are the dry run's ([`diff::diff_object`]): what the apply would really change, so a
/// difference the server would merge away (a defaulted value, an item another manager added)
/// is never reported. Where the dry run is refused (RBAC without `patch`), the local comparison
/// stands. Objects whose kind is not served yet (defined by a CRD of the same set) count as
/// missing. An unchanged object's `live` lacks `metadata.managedFields`.
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
        let changes = diff::compare_to_manifest(&live, &prepared.body);
        if changes.is_empty()
            && let Some(metadata) = live.get_mut("metadata").and_then(Value::as_object_mut)
        {
            metadata.remove("managedFields");
        }
        Found { live, changes }
    };
    let mut found: HashMap<ObjectId, Found> = HashMap::with_capacity(references.len());
    let mut refused: Vec<ObjectId> = Vec::new();
    for list in list_each(client, &references, 1, DRIFT_PAGE, &retry, &compare).await {
        match list {
            Ok((_, listed)) => found.extend(listed),
            // RBAC may grant `get` by name without `list` (the agent's Secrets and cluster-scoped
            // objects, `agent::manifests`): those are read one by one.
            Err((ids, KubeError::Api { source, .. }))
                if crate::retry::status_code(&source) == Some(403) =>
            {
                refused.extend(ids);
            }
            Err((_, error)) => return Err(error),
        }
    }
    let refused: std::collections::HashSet<ObjectId> = refused.into_iter().collect();
    let wanted: Vec<&Prepared> = references
        .iter()
        .copied()
        .filter(|p| refused.contains(&p.id))
        .collect();
    let (compare, retry_ref) = (&compare, &retry);
    let read: Vec<Result<Option<(ObjectId, Found)>, KubeError>> = futures::stream::iter(wanted)
        .map(|p| async move {
            let live = p
                .get_live(client, retry_ref)
                .await
                .map_err(|e| p.error(e))?;
            Ok(live.map(|live| (p.id.clone(), compare(p, live))))
        })
        .buffered(CONFIRM_CONCURRENCY)
        .collect()
        .await;
    for one in read {
        found.extend(one?);
    }
    drop(references);
    let retry = &retry;
    let mut compared: Vec<(ObjectId, ObjectDiff)> = futures::stream::iter(prepared)
        .map(|p| {
            let found = found.remove(&p.id);
            async move {
                let object_diff = match found {
                    None => missing(p.body),
                    Some(Found { live, changes }) if changes.is_empty() => ObjectDiff {
                        action: PlannedAction::Unchanged,
                        live: Some(live),
                        desired: p.body,
                        changes,
                    },
                    Some(Found { live, changes }) => {
                        confirm(client, &p, live, changes, retry).await
                    }
                };
                (p.id, object_diff)
            }
        })
        .buffered(CONFIRM_CONCURRENCY)
        .collect()
        .await;
    compared.extend(objects);
    Ok(EnvironmentDiff {
        objects: compared,
        prune: Vec::new(),
    })
}

/// The changes a deploy would make to an object the local comparison found changed: a dry-run
/// apply (with `force`, as a deploy applies) compared with the live object. If the dry run
/// fails (refused, or the apply itself would fail), the local comparison is what is known.
async fn confirm(
    client: &Client,
    prepared: &Prepared,
    live: Value,
    changes: Vec<diff::FieldChange>,
    retry: &RetryPolicy,
) -> ObjectDiff {
    match diff::diff_object(client, prepared, true, retry).await {
        Ok(object_diff) if object_diff.live.is_some() => object_diff,
        Ok(_) => missing(prepared.body.clone()),
        Err(error) => {
            tracing::debug!(%error, object = %prepared.id, "dry run refused: drift keeps the local comparison");
            ObjectDiff {
                action: PlannedAction::Update,
                live: Some(live),
                desired: prepared.body.clone(),
                changes,
            }
        }
    }
}

fn missing(desired: Value) -> ObjectDiff {
    ObjectDiff {
        action: PlannedAction::Create,
        live: None,
        desired,
        changes: Vec::new(),
    }
}
