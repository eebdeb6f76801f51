//! The Kubernetes side of `gitship destroy`: what an environment has in the cluster, and its
//! removal (ARCHITECTURE.md, "Destroy").
//!
//! [`plan`] reads, changing nothing: every object of the inventory with what will happen to it
//! (the prune rule of [`crate::prune::decide`], with Namespaces, PVCs and CRDs deleted, since
//! destroying is the point), in the order they go (the reverse of the apply order: the last wave
//! first, kinds in reverse [`crate::order`], the bootstrap kinds last), the environment's
//! namespace (deleted when gitship created it) and gitship's records there. Under the lock,
//! [`prune`] deletes the objects one by one, waits for each to be gone (finalizers) and rewrites
//! the inventory as they go, so a second run knows what is left; [`delete_records`] removes the
//! agent's status, the revisions Secret and the inventory (and its copy); [`delete_namespace`]
//! the namespace. Every step takes what is already gone as done.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::KubeError;
use crate::discovery::Resources;
use crate::inventory::{self, Inventory, InventoryEntry};
use crate::lock::{self, DeployLock, LockOptions};
use crate::progress::Progress;
use crate::prune::{self, PROTECTED_KINDS, PruneDecision};
use crate::retry::{RetryPolicy, status_code};
use gitship_foundation::model::{
    CREATED_BY_ANNOTATION, Environment, OWNED_BY_ANNOTATION, ObjectId, PRUNE_ANNOTATION,
};
use gitship_foundation::output::Printer;

/// How often a deletion is looked at again while waiting for it.
const POLL: Duration = Duration::from_millis(250);

/// How to destroy.
#[derive(Debug, Clone)]
pub struct DestroyOptions {
    /// How long to wait for each deleted object (and the namespace) to be gone.
    pub timeout: Duration,
    /// Keep the environment's namespace (`--keep-namespace`).
    pub keep_namespace: bool,
    pub lock: LockOptions,
    /// Who destroys (the lock holder): the caller reads it.
    pub who: String,
    pub retry: RetryPolicy,
}

/// One object of the inventory and what destroy does with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedObject {
    pub id: ObjectId,
    pub api_version: String,
    /// Its wave (`gitship.dev/wave`, read from the live object; 0 when gone).
    pub wave: i64,
    /// [`PruneDecision::Delete`], or why it stays (or that it is gone already).
    pub decision: PruneDecision,
    /// A Namespace, PVC or CRD: a deploy's prune keeps these, destroy deletes them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected_kind: bool,
    /// Its finalizers, as read (a deletion waits for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// What happens to the environment's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacePlan {
    pub name: String,
    pub exists: bool,
    /// It is being deleted already (an earlier destroy asked): everything in it goes with it,
    /// nothing new can be written there (not even the Lease), so only the wait is left.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminating: bool,
    pub delete: bool,
    /// Why it goes or stays (`created by the environment`, `--keep-namespace`, ...).
    pub reason: String,
}

/// What the environment has in the cluster, and what destroy does with each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubePlan {
    /// The inventory was found (or its copy: `restored`).
    pub inventory_found: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restored: bool,
    /// The objects in the order they are deleted.
    pub objects: Vec<PlannedObject>,
    pub namespace: NamespacePlan,
    /// gitship's own objects in the namespace that exist (`ConfigMap blog/gitship-production`).
    pub records: Vec<String>,
}

impl KubePlan {
    /// How many objects destroy deletes.
    pub fn to_delete(&self) -> usize {
        self.objects
            .iter()
            .filter(|o| o.decision == PruneDecision::Delete)
            .count()
    }
}

/// What happened to one object or record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    Deleted,
    /// Already gone when destroy looked.
    AlreadyGone,
    /// Not deleted: its decision says why.
    Kept,
}

/// One object's outcome, in the order destroy went through them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemovedObject {
    pub id: ObjectId,
    pub removal: Removal,
    pub decision: PruneDecision,
}

/// One of gitship's records (`ConfigMap blog/gitship-production`) and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedRecord {
    pub name: String,
    pub removal: Removal,
}

/// The gitship record kinds [`delete_records`] removes, in order: the agent's status and
/// leadership, the stored manifests, the inventory's copy and the inventory last (it says what
/// is left until the end).
fn record_objects(environment: &str) -> Vec<(&'static str, String)> {
    let agent = gitship_foundation::model::agent_status_name(environment);
    vec![
        ("ConfigMap", agent.clone()),
        ("Lease", agent),
        ("Secret", crate::revisions::secret_name(environment)),
        ("ConfigMap", inventory::copy_name(environment)),
        ("ConfigMap", inventory::configmap_name(environment)),
    ]
}

/// Read what `environment` has in the cluster and decide what destroy does with it; changes
/// nothing. A missing namespace is an empty plan (nothing of the environment can be there).
pub async fn plan(
    client: &Client,
    environment: &Environment,
    options: &DestroyOptions,
) -> Result<KubePlan, KubeError> {
    let retry = &options.retry;
    let live_namespace = read_namespace(client, &environment.namespace, retry).await?;
    let Some(live_namespace) = live_namespace else {
        return Ok(KubePlan {
            inventory_found: false,
            restored: false,
            objects: Vec::new(),
            namespace: NamespacePlan {
                name: environment.namespace.clone(),
                exists: false,
                terminating: false,
                delete: false,
                reason: "not there".into(),
            },
            records: Vec::new(),
        });
    };
    if live_namespace
        .pointer("/metadata/deletionTimestamp")
        .is_some()
    {
        return Ok(KubePlan {
            inventory_found: false,
            restored: false,
            objects: Vec::new(),
            namespace: NamespacePlan {
                name: environment.namespace.clone(),
                exists: true,
                terminating: true,
                delete: true,
                reason: "being deleted already: everything in it goes with it".into(),
            },
            records: Vec::new(),
        });
    }
    let stored = inventory::load(client, &environment.name, &environment.namespace, retry).await?;
    let mut objects = match &stored {
        Some(inventory) => plan_objects(client, environment, &inventory.objects, retry).await?,
        None => Vec::new(),
    };
    keep_declared_namespaces_that_hold_others(client, environment, &mut objects, retry).await?;
    let mut namespace = namespace_plan(environment, &live_namespace, stored.as_ref(), options);
    keep_what_holds_kept_objects(&mut namespace, &objects);
    if namespace.delete {
        let others = other_environments(client, &namespace.name, &environment.name, retry).await?;
        keep_for_others(&mut namespace, &others);
    }
    let records = existing_records(client, environment, retry).await?;
    Ok(KubePlan {
        inventory_found: stored.is_some(),
        restored: stored.as_ref().is_some_and(|i| i.restored),
        objects,
        namespace,
        records,
    })
}

/// The environment's namespace as JSON; `None` when it does not exist.
async fn read_namespace(
    client: &Client,
    name: &str,
    retry: &RetryPolicy,
) -> Result<Option<Value>, KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let found = retry
        .run(name, || api.get_opt(name))
        .await
        .map_err(|source| KubeError::api(format!("Namespace {name}"), source))?;
    found
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| KubeError::api(format!("Namespace {name}"), kube::Error::SerdeError(e)))
}

/// Whether the namespace goes: when this environment created it (its annotation
/// `gitship.dev/created-by` names the environment: a deploy that found no namespace, or a
/// preview's record), or it is a Namespace of the inventory that names this environment as its
/// owner; unless kept. The `managed-by` label alone says nothing: every applied object has it.
fn namespace_plan(
    environment: &Environment,
    live: &Value,
    stored: Option<&Inventory>,
    options: &DestroyOptions,
) -> NamespacePlan {
    let name = environment.namespace.clone();
    let created = gitship_foundation::model::annotation(live, CREATED_BY_ANNOTATION)
        == Some(environment.name.as_str());
    let declared = stored.is_some_and(|inventory| {
        inventory
            .objects
            .iter()
            .any(|entry| is_own_namespace(entry, environment))
    }) && gitship_foundation::model::annotation(live, OWNED_BY_ANNOTATION)
        == Some(environment.name.as_str());
    let (delete, reason) = if options.keep_namespace {
        (false, "kept: `--keep-namespace`".to_string())
    } else if gitship_foundation::model::annotation(live, PRUNE_ANNOTATION) == Some("false") {
        (
            false,
            "kept: annotated `gitship.dev/prune: \"false\"`".into(),
        )
    } else if declared {
        (true, "declared by the environment".into())
    } else if created {
        (true, "created by the environment".into())
    } else {
        (
            false,
            format!(
                "kept: not created by this environment (no annotation `{CREATED_BY_ANNOTATION}: {}`)",
                environment.name
            ),
        )
    };
    NamespacePlan {
        name,
        exists: true,
        terminating: false,
        delete,
        reason,
    }
}

/// A namespace that holds an object destroy keeps stays (deleting it would delete the object).
fn keep_what_holds_kept_objects(namespace: &mut NamespacePlan, objects: &[PlannedObject]) {
    if !namespace.delete {
        return;
    }
    let kept: Vec<String> = objects
        .iter()
        .filter(|o| o.id.namespace.as_deref() == Some(namespace.name.as_str()))
        .filter(|o| !matches!(o.decision, PruneDecision::Delete | PruneDecision::Gone))
        .map(|o| o.id.to_string())
        .collect();
    if !kept.is_empty() {
        keep(
            namespace,
            format!(
                "it holds what destroy keeps ({}); deleting it would delete them",
                kept.join(", ")
            ),
        );
    }
}

/// The namespace stays, for `why`.
fn keep(namespace: &mut NamespacePlan, why: String) {
    namespace.delete = false;
    namespace.reason = format!("kept: {why}");
}

/// The other environments whose inventory is in `namespace` (they deploy there too).
async fn other_environments(
    client: &Client,
    namespace: &str,
    environment: &str,
    retry: &RetryPolicy,
) -> Result<Vec<String>, KubeError> {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), namespace);
    let params = kube::api::ListParams::default().labels(inventory::INVENTORY_LABEL);
    let list = retry
        .run(namespace, || api.list_metadata(&params))
        .await
        .map_err(|source| KubeError::api(format!("ConfigMaps in {namespace}"), source))?;
    let mut others: Vec<String> = list
        .items
        .iter()
        .filter_map(|item| {
            item.metadata
                .labels
                .as_ref()?
                .get(inventory::INVENTORY_LABEL)
        })
        .filter(|owner| owner.as_str() != environment)
        .cloned()
        .collect();
    others.sort();
    others.dedup();
    Ok(others)
}

/// A namespace another environment deploys in stays (deleting it would delete what it deployed).
fn keep_for_others(namespace: &mut NamespacePlan, others: &[String]) {
    if namespace.delete && !others.is_empty() {
        let names: Vec<String> = others.iter().map(|o| format!("`{o}`")).collect();
        keep(
            namespace,
            format!(
                "environment {} deploys there too; deleting it would delete what it deployed",
                names.join(", ")
            ),
        );
    }
}

/// A Namespace of the inventory (not the environment's own) that holds what destroy keeps, or
/// another environment's objects, stays: deleting it would delete them too.
async fn keep_declared_namespaces_that_hold_others(
    client: &Client,
    environment: &Environment,
    objects: &mut [PlannedObject],
    retry: &RetryPolicy,
) -> Result<(), KubeError> {
    let kept: Vec<(String, String)> = objects
        .iter()
        .filter(|o| !matches!(o.decision, PruneDecision::Delete | PruneDecision::Gone))
        .filter_map(|o| Some((o.id.namespace.clone()?, o.id.to_string())))
        .collect();
    for object in objects.iter_mut() {
        let id = &object.id;
        if !(id.group.is_empty() && id.kind == "Namespace")
            || object.decision != PruneDecision::Delete
        {
            continue;
        }
        let mut why: Vec<String> = kept
            .iter()
            .filter(|(namespace, _)| namespace == &id.name)
            .map(|(_, shown)| shown.clone())
            .collect();
        for other in other_environments(client, &id.name, &environment.name, retry).await? {
            why.push(format!("environment `{other}`'s objects"));
        }
        if !why.is_empty() {
            object.decision = PruneDecision::OutOfScope(format!(
                "it holds what destroy keeps ({}); deleting it would delete them",
                why.join(", ")
            ));
        }
    }
    Ok(())
}

/// Take the mark `gitship.dev/created-by` off a namespace destroy keeps, so that no later run
/// (a re-run once the inventory that explained why is gone) deletes it. Nothing when it is not
/// this environment's mark.
pub async fn disown_namespace(
    client: &Client,
    namespace: &str,
    environment: &str,
    retry: &RetryPolicy,
) -> Result<(), KubeError> {
    let Some(live) = read_namespace(client, namespace, retry).await? else {
        return Ok(());
    };
    if gitship_foundation::model::annotation(&live, CREATED_BY_ANNOTATION) != Some(environment) {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(client.clone());
    let patch = serde_json::json!({"metadata": {"annotations": {CREATED_BY_ANNOTATION: null}}});
    let params = kube::api::PatchParams::default();
    let patch = kube::api::Patch::Merge(&patch);
    retry
        .run(namespace, || api.patch(namespace, &params, &patch))
        .await
        .map(|_| ())
        .map_err(|source| KubeError::api(format!("Namespace {namespace}"), source))
}

/// Whether `entry` is the environment's own Namespace (the namespace step's, never pruned).
fn is_own_namespace(entry: &InventoryEntry, environment: &Environment) -> bool {
    let id = entry.id();
    id.group.is_empty() && id.kind == "Namespace" && id.name == environment.namespace
}

/// Each object of the inventory (but the environment's namespace) read and decided, in the
/// order destroy deletes them.
async fn plan_objects(
    client: &Client,
    environment: &Environment,
    entries: &[InventoryEntry],
    retry: &RetryPolicy,
) -> Result<Vec<PlannedObject>, KubeError> {
    let resources = Resources::new();
    let ids: std::collections::BTreeSet<ObjectId> = entries.iter().map(|e| e.id()).collect();
    let scope = prune::Scope::new(&environment.name, &environment.namespace, &ids);
    let mut planned = Vec::new();
    for entry in entries {
        if is_own_namespace(entry, environment) {
            continue;
        }
        let (decision, live) = match scope.refuses(entry) {
            Some(why) => (PruneDecision::OutOfScope(why), None),
            None => decide(client, &resources, environment, entry, retry).await?,
        };
        planned.push(planned_object(entry, decision, live.as_ref()));
    }
    sort_for_deletion(&mut planned);
    planned.dedup_by(|a, b| a.id == b.id);
    Ok(planned)
}

fn planned_object(
    entry: &InventoryEntry,
    decision: PruneDecision,
    live: Option<&Value>,
) -> PlannedObject {
    let wave = live
        .and_then(|live| crate::order::wave_of(live).ok())
        .unwrap_or(0);
    let finalizers = live.map(finalizers_of).unwrap_or_default();
    PlannedObject {
        id: entry.id(),
        api_version: entry.api_version.clone(),
        wave,
        protected_kind: PROTECTED_KINDS.contains(&entry.kind.as_str()),
        decision,
        finalizers,
    }
}

/// The reverse of the apply order: the last position first (bootstrap kinds last), then by name.
pub fn sort_for_deletion(objects: &mut [PlannedObject]) {
    objects.sort_by(|a, b| {
        let position = |o: &PlannedObject| crate::order::position(&o.id.kind, o.wave);
        position(b).cmp(&position(a)).then_with(|| a.id.cmp(&b.id))
    });
}

fn finalizers_of(live: &Value) -> Vec<String> {
    live.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The live object of `entry` and the prune rule's decision about it (Namespaces, PVCs and
/// CRDs included).
async fn decide(
    client: &Client,
    resources: &Resources,
    environment: &Environment,
    entry: &InventoryEntry,
    retry: &RetryPolicy,
) -> Result<(PruneDecision, Option<Value>), KubeError> {
    let Some(api) = object_api(client, resources, entry, retry).await? else {
        return Ok((PruneDecision::Gone, None));
    };
    let id = entry.id();
    let live = match retry
        .run(&id.to_string(), || api.get_opt(&entry.name))
        .await
    {
        Err(error) if status_code(&error) == Some(403) => {
            return Ok((PruneDecision::Forbidden(crate::error_message(&error)), None));
        }
        read => read.map_err(|source| KubeError::api(id.to_string(), source))?,
    };
    let live = live
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| KubeError::api(id.to_string(), kube::Error::SerdeError(e)))?;
    let decision = prune::decide(entry, live.as_ref(), &environment.name, true);
    Ok((decision, live))
}

/// The API of `entry`'s kind; `None` when the cluster no longer serves it (nothing of it exists).
async fn object_api(
    client: &Client,
    resources: &Resources,
    entry: &InventoryEntry,
    retry: &RetryPolicy,
) -> Result<Option<Api<DynamicObject>>, KubeError> {
    let resolved = resources
        .resolve(client, retry, &entry.api_version, &entry.kind)
        .await
        .map_err(|source| KubeError::api(entry.id().to_string(), source))?;
    Ok(resolved.map(|resolved| match &entry.namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resolved.resource),
        None => Api::all_with(client.clone(), &resolved.resource),
    }))
}

/// Which of gitship's records exist in the environment's namespace.
async fn existing_records(
    client: &Client,
    environment: &Environment,
    retry: &RetryPolicy,
) -> Result<Vec<String>, KubeError> {
    let mut found = Vec::new();
    for (kind, name) in record_objects(&environment.name) {
        let api = record_api(client, kind, &environment.namespace);
        let shown = format!("{kind} {}/{name}", environment.namespace);
        let exists = retry
            .run(&name, || api.get_metadata_opt(&name))
            .await
            .map_err(|source| KubeError::api(shown.clone(), source))?
            .is_some();
        if exists {
            found.push(shown);
        }
    }
    Ok(found)
}

fn record_api(client: &Client, kind: &str, namespace: &str) -> Api<DynamicObject> {
    use kube::api::{ApiResource, GroupVersionKind};
    let gvk = match kind {
        "Lease" => GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease"),
        other => GroupVersionKind::gvk("", "v1", other),
    };
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// Take the environment's lock (the deploy lock: a deploy or the agent waits, then finds the
/// environment gone). The namespace must exist.
pub async fn lock(
    client: &Client,
    environment: &Environment,
    options: &DestroyOptions,
    printer: &Printer,
) -> Result<DeployLock, KubeError> {
    let holder = format!("{} {}", options.who, uuid::Uuid::new_v4().simple());
    let progress = Progress::new(printer, 0);
    lock::acquire(
        client,
        &environment.name,
        &environment.namespace,
        &holder,
        options.lock,
        &options.retry,
        &progress,
    )
    .await
}

/// Delete every object the inventory lists, as [`plan`] decides under the lock (read again
/// here), in its order; each deleted object is waited for until gone, then dropped from the
/// inventory (written again). `announce` is called as each object is done. Stops at the first
/// object still there after the timeout ([`KubeError::DestroyTimeout`]).
pub async fn prune(
    client: &Client,
    environment: &Environment,
    options: &DestroyOptions,
    held: &DeployLock,
    mut announce: impl FnMut(&RemovedObject),
) -> Result<Vec<RemovedObject>, KubeError> {
    let retry = &options.retry;
    let Some(mut stored) =
        inventory::load(client, &environment.name, &environment.namespace, retry).await?
    else {
        return Ok(Vec::new());
    };
    if !held.still_held(retry).await? {
        return Err(KubeError::LockLost {
            env: environment.name.clone(),
        });
    }
    // Decided again under the lock, as the plan decided (objects may have moved since).
    let mut planned = plan_objects(client, environment, &stored.objects, retry).await?;
    keep_declared_namespaces_that_hold_others(client, environment, &mut planned, retry).await?;
    let resources = Resources::new();
    let mut removed = Vec::new();
    for object in planned {
        stop_if_interrupted()?;
        // Each delete is made only while the lock is ours (its renewer notices a loss).
        if held.is_lost() {
            return Err(KubeError::LockLost {
                env: environment.name.clone(),
            });
        }
        let removal = remove_object(client, &resources, &object, options)
            .await
            .map_err(|error| of_environment(error, environment))?;
        if removal != Removal::Kept {
            forget(client, environment, &mut stored, &object.id, retry).await?;
        }
        let done = RemovedObject {
            id: object.id,
            removal,
            decision: object.decision,
        };
        announce(&done);
        removed.push(done);
    }
    Ok(removed)
}

/// Delete one planned object (when its decision says so) and wait for it to be gone.
async fn remove_object(
    client: &Client,
    resources: &Resources,
    object: &PlannedObject,
    options: &DestroyOptions,
) -> Result<Removal, KubeError> {
    match object.decision {
        PruneDecision::Delete => {}
        PruneDecision::Gone => return Ok(Removal::AlreadyGone),
        _ => return Ok(Removal::Kept),
    }
    let entry = InventoryEntry {
        api_version: object.api_version.clone(),
        kind: object.id.kind.clone(),
        namespace: object.id.namespace.clone(),
        name: object.id.name.clone(),
    };
    let Some(api) = object_api(client, resources, &entry, &options.retry).await? else {
        return Ok(Removal::AlreadyGone);
    };
    let shown = object.id.to_string();
    let params = DeleteParams::foreground();
    match options
        .retry
        .run(&shown, || api.delete(&entry.name, &params))
        .await
    {
        Ok(_) => {}
        Err(error) if status_code(&error) == Some(404) => return Ok(Removal::AlreadyGone),
        Err(error) => return Err(KubeError::api(shown, error)),
    }
    wait_gone(&api, &entry.name, &shown, options).await?;
    Ok(Removal::Deleted)
}

/// Wait until `name` is gone, at most `options.timeout`; the timeout names its finalizers.
async fn wait_gone(
    api: &Api<DynamicObject>,
    name: &str,
    shown: &str,
    options: &DestroyOptions,
) -> Result<(), KubeError> {
    let deadline = tokio::time::Instant::now() + options.timeout;
    loop {
        let live = options
            .retry
            .run(shown, || api.get_opt(name))
            .await
            .map_err(|source| KubeError::api(shown.to_string(), source))?;
        let Some(live) = live else {
            return Ok(());
        };
        if tokio::time::Instant::now() >= deadline {
            let finalizers = live.metadata.finalizers.unwrap_or_default();
            return Err(still_there(shown, &finalizers, options));
        }
        stop_if_interrupted()?;
        tokio::time::sleep(POLL).await;
    }
}

/// SIGINT or SIGTERM: stop between two requests (the caller releases the lock; a second run
/// goes on from what is left).
fn stop_if_interrupted() -> Result<(), KubeError> {
    if gitship_foundation::process::is_interrupted() {
        return Err(KubeError::Interrupted);
    }
    Ok(())
}

fn still_there(shown: &str, finalizers: &[String], options: &DestroyOptions) -> KubeError {
    let held = if finalizers.is_empty() {
        "no finalizer left: still being deleted".to_string()
    } else {
        format!("finalizers: {}", finalizers.join(", "))
    };
    KubeError::DestroyTimeout {
        objects: vec![format!("{shown} ({held})")],
        waited: options.timeout,
        environment: String::new(),
    }
}

/// A timeout error names the environment to destroy again in its hint.
pub fn of_environment(error: KubeError, environment: &Environment) -> KubeError {
    match error {
        KubeError::DestroyTimeout {
            objects, waited, ..
        } => KubeError::DestroyTimeout {
            objects,
            waited,
            environment: environment.name.clone(),
        },
        other => other,
    }
}

/// Drop `id` from the stored inventory and write it again (a re-run knows what is left).
async fn forget(
    client: &Client,
    environment: &Environment,
    stored: &mut Inventory,
    id: &ObjectId,
    retry: &RetryPolicy,
) -> Result<(), KubeError> {
    let before = stored.objects.len();
    stored.objects.retain(|entry| &entry.id() != id);
    if stored.objects.len() == before {
        return Ok(());
    }
    let keep = stored.history.len().max(1);
    inventory::store(
        client,
        stored,
        &environment.name,
        &environment.namespace,
        keep,
        retry,
    )
    .await
    .map(|_| ())
}

/// Delete gitship's records in the environment's namespace ([`record_objects`]'s order); each
/// one's name with whether it was there.
pub async fn delete_records(
    client: &Client,
    environment: &Environment,
    retry: &RetryPolicy,
) -> Result<Vec<RemovedRecord>, KubeError> {
    let mut done = Vec::new();
    for (kind, name) in record_objects(&environment.name) {
        let api = record_api(client, kind, &environment.namespace);
        let shown = format!("{kind} {}/{name}", environment.namespace);
        let params = DeleteParams::default();
        let removal = match retry.run(&shown, || api.delete(&name, &params)).await {
            Ok(_) => Removal::Deleted,
            Err(error) if status_code(&error) == Some(404) => Removal::AlreadyGone,
            Err(error) => return Err(KubeError::api(shown, error)),
        };
        done.push(RemovedRecord {
            name: shown,
            removal,
        });
    }
    Ok(done)
}

/// Ask the server to delete the namespace `name` (everything in it goes with it, the Lease
/// included); [`Removal::AlreadyGone`] when it was not there. [`wait_namespace_gone`] waits.
pub async fn delete_namespace(
    client: &Client,
    name: &str,
    retry: &RetryPolicy,
) -> Result<Removal, KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let shown = format!("Namespace {name}");
    let params = DeleteParams::foreground();
    match retry.run(&shown, || api.delete(name, &params)).await {
        Ok(_) => Ok(Removal::Deleted),
        Err(error) if status_code(&error) == Some(404) => Ok(Removal::AlreadyGone),
        Err(error) => Err(KubeError::api(shown, error)),
    }
}

/// Wait until the namespace `name` is gone, at most `options.timeout`.
pub async fn wait_namespace_gone(
    client: &Client,
    name: &str,
    options: &DestroyOptions,
) -> Result<(), KubeError> {
    let deadline = tokio::time::Instant::now() + options.timeout;
    loop {
        let Some(live) = read_namespace(client, name, &options.retry).await? else {
            return Ok(());
        };
        if tokio::time::Instant::now() >= deadline {
            let mut finalizers = finalizers_of(&live);
            if let Some(spec) = live.pointer("/spec/finalizers").and_then(Value::as_array) {
                finalizers.extend(spec.iter().filter_map(Value::as_str).map(str::to_string));
            }
            return Err(still_there(
                &format!("Namespace {name}"),
                &finalizers,
                options,
            ));
        }
        stop_if_interrupted()?;
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(kind: &str, name: &str, wave: i64) -> PlannedObject {
        let api_version = match kind {
            "Deployment" => "apps/v1",
            "CustomResourceDefinition" => "apiextensions.k8s.io/v1",
            _ => "v1",
        };
        let entry = InventoryEntry {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: (kind != "Namespace" && kind != "CustomResourceDefinition")
                .then(|| "blog".to_string()),
            name: name.into(),
        };
        let live = json!({"metadata": {"annotations": {"gitship.dev/wave": wave.to_string()}}});
        planned_object(&entry, PruneDecision::Delete, Some(&live))
    }

    #[test]
    fn objects_go_in_the_reverse_of_the_apply_order() {
        let mut objects = vec![
            object("ConfigMap", "settings", 0),
            object("Namespace", "other", 0),
            object("Deployment", "web", 0),
            object("Deployment", "migrate", -1),
            object("ConfigMap", "late", 2),
            object("CustomResourceDefinition", "widgets.example.com", 0),
            object("Service", "web", 0),
        ];
        sort_for_deletion(&mut objects);
        let order: Vec<String> = objects
            .iter()
            .map(|o| format!("{} {} w{}", o.id.kind, o.id.name, o.wave))
            .collect();
        assert_eq!(
            order,
            vec![
                "ConfigMap late w2",
                "Deployment web w0",
                "Service web w0",
                "ConfigMap settings w0",
                "Deployment migrate w-1",
                "Namespace other w0",
                "CustomResourceDefinition widgets.example.com w0",
            ]
        );
        assert!(objects.iter().any(|o| o.protected_kind));
    }

    fn options(keep_namespace: bool) -> DestroyOptions {
        DestroyOptions {
            timeout: Duration::from_secs(1),
            keep_namespace,
            lock: LockOptions::default(),
            who: "ann".into(),
            retry: RetryPolicy::default(),
        }
    }

    #[test]
    fn the_namespace_goes_only_when_the_environment_made_it() {
        let environment = Environment {
            name: "production".into(),
            namespace: "blog".into(),
        };
        let made = json!({"metadata": {"name": "blog",
            "labels": {gitship_foundation::model::MANAGED_BY_LABEL: "gitship"},
            "annotations": {CREATED_BY_ANNOTATION: "production"}}});
        // The label alone (every object gitship applies has it: a namespace taken over, or made
        // by another environment) is not enough.
        let labelled = json!({"metadata": {"name": "blog",
            "labels": {gitship_foundation::model::MANAGED_BY_LABEL: "gitship"}}});
        let by_another = json!({"metadata": {"name": "blog",
            "annotations": {CREATED_BY_ANNOTATION: "staging"}}});
        let plain = json!({"metadata": {"name": "blog"}});
        let declared = json!({"metadata": {"name": "blog",
            "annotations": {OWNED_BY_ANNOTATION: "production"}}});
        let inventory = Inventory {
            objects: vec![InventoryEntry {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                namespace: None,
                name: "blog".into(),
            }],
            ..Default::default()
        };
        let decide = |live: &Value, stored: Option<&Inventory>, keep: bool| {
            namespace_plan(&environment, live, stored, &options(keep))
        };
        assert!(decide(&made, None, false).delete);
        assert!(!decide(&made, None, true).delete);
        assert!(
            decide(&made, None, true)
                .reason
                .contains("--keep-namespace")
        );
        for live in [&labelled, &by_another, &plain] {
            let kept = decide(live, None, false);
            assert!(
                !kept.delete
                    && kept
                        .reason
                        .contains("not created by this environment (no annotation `gitship.dev/created-by: production`)"),
                "{kept:?}"
            );
        }
        assert!(decide(&declared, Some(&inventory), false).delete);
        assert!(!decide(&declared, None, false).delete);
        let annotated = json!({"metadata": {"name": "blog",
            "annotations": {CREATED_BY_ANNOTATION: "production", PRUNE_ANNOTATION: "false"}}});
        assert!(!decide(&annotated, None, false).delete);
    }

    #[test]
    fn a_namespace_another_environment_deploys_in_stays() {
        let mut namespace = NamespacePlan {
            name: "blog".into(),
            exists: true,
            terminating: false,
            delete: true,
            reason: "created by the environment".into(),
        };
        keep_for_others(&mut namespace, &[]);
        assert!(namespace.delete);
        keep_for_others(&mut namespace, &["staging".to_string()]);
        assert!(
            !namespace.delete
                && namespace
                    .reason
                    .contains("environment `staging` deploys there too"),
            "{namespace:?}"
        );
    }

    #[test]
    fn a_namespace_holding_a_kept_object_stays() {
        let plan = || NamespacePlan {
            name: "blog".into(),
            exists: true,
            terminating: false,
            delete: true,
            reason: "created by the environment".into(),
        };
        let mut kept = object("ConfigMap", "keep", 0);
        kept.decision = PruneDecision::KeepAnnotated;
        let mut namespace = plan();
        keep_what_holds_kept_objects(&mut namespace, &[object("ConfigMap", "a", 0), kept]);
        assert!(!namespace.delete);
        assert!(
            namespace.reason.contains("ConfigMap blog/keep"),
            "{namespace:?}"
        );
        let mut namespace = plan();
        keep_what_holds_kept_objects(&mut namespace, &[object("ConfigMap", "a", 0)]);
        assert!(namespace.delete);
    }

    #[test]
    fn a_timeout_names_the_object_and_its_finalizers() {
        let error = still_there(
            "ConfigMap blog/held",
            &["example.com/hold".to_string()],
            &options(false),
        );
        let text = error.to_string();
        assert!(
            text.contains("ConfigMap blog/held (finalizers: example.com/hold)"),
            "{text}"
        );
    }

    #[test]
    fn records_go_inventory_last() {
        let names: Vec<String> = record_objects("production")
            .into_iter()
            .map(|(kind, name)| format!("{kind} {name}"))
            .collect();
        assert_eq!(
            names.last().map(String::as_str),
            Some("ConfigMap gitship-production")
        );
        assert!(names.contains(&"Secret gitship-production.revisions".to_string()));
        assert!(names.contains(&"ConfigMap gitship-production.agent".to_string()));
    }
}
