//! [`deploy_objects`]: the Kubernetes part of `gitship deploy`.
//!
//! validate (identities, duplicates, wave annotations, every kind known to the cluster or defined
//! by a CRD of this deploy: all before any write) -> create the environment namespace when
//! missing -> lock -> read the inventory (refuse an empty desired set that would prune
//! everything) -> bootstrap stage (CRDs, Namespaces, cluster RBAC), waited for -> waves, kinds in
//! order, objects of one kind concurrently (bounded) -> wait for health -> prune -> record the
//! inventory and a deploy record -> unlock. Nothing after a failed step runs, except that the
//! inventory still records what was applied (so a later deploy can prune it) and the lock is
//! released. A re-run converges.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::KubeError;
use crate::apply::{self, Applied};
use crate::check::{self, Checked, Prepared};
use crate::discovery::{self, Resources};
use crate::health::{self, Health};
use crate::hooks::{self, HookRun, PreparedHook};
use crate::inventory::{
    self, DeployOutcome, DeployRecord, Inventory, InventoryEntry, RecordCounts, RecordError,
    RecordExtras, RecordSource,
};
use crate::lock::{self, DeployLock, LockOptions};
use crate::order::{self, Position};
use crate::progress::Progress;
use crate::prune::{self, PruneDecision};
use crate::retry::{RetryPolicy, status_code};
use crate::revisions;
use gitship_foundation::model::hook::HookPhase;
use gitship_foundation::model::{Environment, FIELD_MANAGER, MANAGED_BY_LABEL, Manifest, ObjectId};
use gitship_foundation::output::Printer;

/// How to deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Server-side apply takes fields from other managers (`force=true`).
    pub force_conflicts: bool,
    /// Health wait (per wave).
    pub timeout: Duration,
    pub lock: LockOptions,
    pub prune: bool,
    /// Allow pruning when the desired set is empty.
    pub allow_empty: bool,
    /// Also prune Namespaces, PVCs and CRDs.
    pub prune_protected: bool,
    /// Wait for health (off only for benchmarks and `--no-wait`-like uses).
    pub wait: bool,
    /// Deploy records kept in the inventory.
    pub history: usize,
    /// Concurrent requests within one kind of one wave: they overlap their round trips to the
    /// server (kube-apiserver takes 200 mutating requests in flight by default).
    pub concurrency: usize,
    /// The Git commit being deployed.
    pub sha: Option<String>,
    /// Who deploys (for the record and the lock holder): the caller reads it (`gitship`'s `ci::who`);
    /// the default names no one.
    pub who: String,
    /// What started the deploy, and for a heal what it puts back (for the record).
    pub source: RecordSource,
    pub healed: Vec<String>,
    /// What else the record says (the commit's subject and author, timing, Terraform, images,
    /// the CI run), known to the caller.
    pub record: RecordExtras,
    pub retry: RetryPolicy,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            force_conflicts: true,
            timeout: Duration::from_secs(300),
            lock: LockOptions::default(),
            prune: true,
            allow_empty: false,
            prune_protected: false,
            wait: true,
            history: 50,
            concurrency: 32,
            sha: None,
            who: "gitship".to_string(),
            source: RecordSource::Deploy,
            healed: Vec::new(),
            record: RecordExtras::default(),
            retry: RetryPolicy::default(),
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectAction {
    Created,
    Configured,
    Replaced,
    Unchanged,
    Pruned,
    /// A prune candidate that was kept (protected kind or `gitship.dev/prune: "false"`).
    Kept,
    Failed,
}

impl ObjectAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectAction::Created => "created",
            ObjectAction::Configured => "configured",
            ObjectAction::Replaced => "replaced",
            ObjectAction::Unchanged => "unchanged",
            ObjectAction::Pruned => "pruned",
            ObjectAction::Kept => "kept",
            ObjectAction::Failed => "failed",
        }
    }
}

/// One object's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectOutcome {
    pub id: ObjectId,
    pub action: ObjectAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The result of a deploy: per object, and counted per kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeployReport {
    pub environment: String,
    /// The number of the deploy's record in the history (`#17`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_number: Option<u64>,
    pub objects: Vec<ObjectOutcome>,
    /// kind -> action -> count.
    pub summary: BTreeMap<String, BTreeMap<ObjectAction, usize>>,
    /// The hooks that ran, in order, and how each ended (ARCHITECTURE.md, "Waves and hooks").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRun>,
}

impl DeployReport {
    fn push(&mut self, id: ObjectId, action: ObjectAction, message: Option<String>) {
        *self
            .summary
            .entry(id.kind.clone())
            .or_default()
            .entry(action)
            .or_default() += 1;
        self.objects.push(ObjectOutcome {
            id,
            action,
            message,
        });
    }

    fn reclassify(&mut self, id: &ObjectId, from: ObjectAction, to: ObjectAction) {
        if let Some(outcome) = self
            .objects
            .iter_mut()
            .find(|o| &o.id == id && o.action == from)
        {
            outcome.action = to;
            let counts = self.summary.entry(id.kind.clone()).or_default();
            if let Some(count) = counts.get_mut(&from) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&from);
                }
            }
            *counts.entry(to).or_default() += 1;
        }
    }

    /// How many objects ended with `action`.
    pub fn count(&self, action: ObjectAction) -> usize {
        self.objects.iter().filter(|o| o.action == action).count()
    }

    /// `2 created, 1 configured, 30 unchanged, 1 pruned` (zero counts left out).
    pub fn summary_line(&self) -> String {
        let parts: Vec<String> = [
            ObjectAction::Created,
            ObjectAction::Configured,
            ObjectAction::Replaced,
            ObjectAction::Unchanged,
            ObjectAction::Pruned,
            ObjectAction::Kept,
            ObjectAction::Failed,
        ]
        .into_iter()
        .filter_map(|action| {
            let count = self.count(action);
            (count > 0).then(|| format!("{count} {}", action.as_str()))
        })
        .collect();
        if parts.is_empty() {
            "nothing to do".into()
        } else {
            parts.join(", ")
        }
    }

    /// A per-kind table for people.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        for (kind, counts) in &self.summary {
            let counts: Vec<String> = counts
                .iter()
                .map(|(action, n)| format!("{n} {}", action.as_str()))
                .collect();
            out.push_str(&format!("{kind:<32} {}\n", counts.join(", ")));
        }
        out
    }

    /// The inventory entries of the objects in this report that were applied.
    fn applied_ids(&self) -> BTreeSet<ObjectId> {
        self.objects
            .iter()
            .filter(|o| {
                matches!(
                    o.action,
                    ObjectAction::Created
                        | ObjectAction::Configured
                        | ObjectAction::Replaced
                        | ObjectAction::Unchanged
                )
            })
            .map(|o| o.id.clone())
            .collect()
    }
}

/// An object, what applying it did and the applied digest it gets (key, digest).
type ApplyResult = (
    Prepared,
    Result<(Applied, Option<(String, String)>), KubeError>,
);

/// What every step of one deploy works with.
struct Run<'a> {
    client: &'a Client,
    resources: &'a Resources,
    environment: &'a Environment,
    options: &'a DeployOptions,
    printer: &'a Progress,
    /// The manifests deployed, as given (stored for an exact rollback when the deploy succeeds).
    desired: &'a [Manifest],
}

/// Deploy `desired` to `environment`. See the module documentation for the steps.
pub async fn deploy_objects(
    client: &Client,
    environment: &Environment,
    desired: Vec<Manifest>,
    options: &DeployOptions,
    printer: &Printer,
) -> Result<DeployReport, KubeError> {
    let retry = &options.retry;
    let resources = Resources::new();
    // 1. Everything that can be checked before the first write.
    let checked = check::check(client, &resources, environment, &desired, retry).await?;
    let hooks = hooks::prepare(client, &resources, environment, &desired, retry).await?;
    let desired_ids = desired_ids(&checked, environment);

    let progress = Progress::new(printer, desired_ids.len());
    let run = Run {
        client,
        resources: &resources,
        environment,
        options,
        printer: &progress,
        desired: &desired,
    };
    // 2. The environment namespace (the lock and the inventory live there).
    let created_namespace = ensure_namespace(&run, &checked).await?;

    // 3. Lock.
    let lock = acquire(&run).await?;
    let planned = Planned {
        checked,
        hooks,
        desired_ids,
    };
    let result = locked_deploy(&run, planned, &lock, created_namespace).await;
    let released = lock.release(retry).await;
    let report = result?;
    released?;
    Ok(report)
}

/// The environment's lock, held for a whole deploy (Terraform included) by the caller: see
/// [`lock_environment`] and [`deploy_objects_locked`].
#[derive(Debug)]
pub struct EnvironmentLock {
    lock: DeployLock,
    /// The namespace was created (from its manifest) to hold the Lease.
    created_namespace: Option<ObjectId>,
}

impl EnvironmentLock {
    /// Whether another holder took the Lease while it was held.
    pub fn is_lost(&self) -> bool {
        self.lock.is_lost()
    }

    /// Stop renewing and delete the Lease (when still ours).
    pub async fn release(self, retry: &RetryPolicy) -> Result<(), KubeError> {
        self.lock.release(retry).await
    }
}

/// Take `environment`'s lock before a deploy changes anything: create its namespace when it
/// is missing (from its manifest among `manifests` when there is one) and acquire the Lease,
/// waiting up to the lock timeout for another holder. It is renewed until released.
pub async fn lock_environment(
    client: &Client,
    environment: &Environment,
    manifests: &[Manifest],
    options: &DeployOptions,
    printer: &Printer,
) -> Result<EnvironmentLock, KubeError> {
    let resources = Resources::new();
    let progress = Progress::new(printer, 0);
    let run = Run {
        client,
        resources: &resources,
        environment,
        options,
        printer: &progress,
        desired: &[],
    };
    let namespace: Vec<Manifest> = manifests
        .iter()
        .filter(|m| {
            let id = m.id();
            id.group.is_empty() && id.kind == "Namespace" && id.name == environment.namespace
        })
        .cloned()
        .collect();
    let checked = check::check(client, &resources, environment, &namespace, &options.retry).await?;
    let created_namespace = ensure_namespace(&run, &checked).await?;
    let lock = acquire(&run).await?;
    Ok(EnvironmentLock {
        lock,
        created_namespace,
    })
}

/// [`deploy_objects`] for a caller that holds the environment's lock already.
pub async fn deploy_objects_locked(
    client: &Client,
    environment: &Environment,
    desired: Vec<Manifest>,
    options: &DeployOptions,
    printer: &Printer,
    held: &EnvironmentLock,
) -> Result<DeployReport, KubeError> {
    let resources = Resources::new();
    let checked = check::check(client, &resources, environment, &desired, &options.retry).await?;
    let hooks = hooks::prepare(client, &resources, environment, &desired, &options.retry).await?;
    let desired_ids = desired_ids(&checked, environment);
    let progress = Progress::new(printer, desired_ids.len());
    let run = Run {
        client,
        resources: &resources,
        environment,
        options,
        printer: &progress,
        desired: &desired,
    };
    let planned = Planned {
        checked,
        hooks,
        desired_ids,
    };
    locked_deploy(&run, planned, &held.lock, held.created_namespace.clone()).await
}

/// What a deploy checked before its first write: the desired objects, the hooks, and the
/// identities of the objects.
struct Planned {
    checked: Vec<Checked>,
    hooks: Vec<PreparedHook>,
    desired_ids: BTreeSet<ObjectId>,
}

fn desired_ids(checked: &[Checked], environment: &Environment) -> BTreeSet<ObjectId> {
    checked
        .iter()
        .map(|c| match c {
            Checked::Ready(p) => p.id.clone(),
            Checked::Deferred(d, namespaced) => check::deferred_id(d, *namespaced, environment),
        })
        .collect()
}

/// Acquire the environment's Lease as `<who> <uuid>`.
async fn acquire(run: &Run<'_>) -> Result<DeployLock, KubeError> {
    let holder = format!("{} {}", run.options.who, uuid::Uuid::new_v4().simple());
    lock::acquire(
        run.client,
        &run.environment.name,
        &run.environment.namespace,
        &holder,
        run.options.lock,
        &run.options.retry,
        run.printer,
    )
    .await
}

/// The inventory this deploy starts from (its copy when the ConfigMap was gone, said), and
/// whether there was none; an empty desired set that would prune everything is refused here
/// unless `allow_empty`.
async fn previous_inventory(
    run: &Run<'_>,
    desired_ids: &BTreeSet<ObjectId>,
) -> Result<(Inventory, bool), KubeError> {
    let (environment, options) = (run.environment, run.options);
    let stored = inventory::load(
        run.client,
        &environment.name,
        &environment.namespace,
        &options.retry,
    )
    .await?;
    let inventory_missing = stored.is_none();
    let previous = stored.unwrap_or_default();
    if previous.restored {
        run.printer.warn(&format!(
            "the inventory ConfigMap `{}` of environment `{}` was gone: its objects, history and pin are read from its copy `{}`, and this deploy writes it again",
            inventory::configmap_name(&environment.name),
            environment.name,
            inventory::copy_name(&environment.name)
        ));
    }
    if desired_ids.is_empty()
        && options.prune
        && !options.allow_empty
        && !previous.objects.is_empty()
    {
        return Err(KubeError::EmptyDesiredSet {
            env: environment.name.clone(),
            count: previous.objects.len(),
        });
    }
    Ok((previous, inventory_missing))
}

/// Steps 4 to 8, under the lock: read the inventory, apply, wait, prune, record.
/// `created_namespace`: the namespace's manifest was applied before the lock, so its later
/// apply found it unchanged; the report (and the record) say it was created.
async fn locked_deploy(
    run: &Run<'_>,
    planned: Planned,
    lock: &DeployLock,
    created_namespace: Option<ObjectId>,
) -> Result<DeployReport, KubeError> {
    let Planned {
        checked,
        hooks,
        desired_ids,
    } = planned;
    let (environment, options) = (run.environment, run.options);
    let (previous, inventory_missing) = previous_inventory(run, &desired_ids).await?;
    let mut report = DeployReport {
        environment: environment.name.clone(),
        ..Default::default()
    };
    let mut entries: HashMap<ObjectId, InventoryEntry> = HashMap::new();
    let mut digests = Digests {
        previous: &previous.applied,
        new: BTreeMap::new(),
    };
    // A deploy that changes nothing runs no hook (ARCHITECTURE.md, "Waves and hooks"): known
    // only when the last deploy succeeded, nothing is pruned and Terraform applied nothing.
    let may_be_no_op = previous
        .history
        .first()
        .is_some_and(|newest| newest.outcome == DeployOutcome::Succeeded)
        && prune::candidates(&previous.objects, &desired_ids).is_empty()
        && options.record.terraform.is_none();
    let hooks = HookSet {
        hooks,
        may_be_no_op,
    };
    let applied = apply_all(run, checked, hooks, &mut report, &mut entries, &mut digests).await;
    let digests = digests.new;
    if let Some(id) = &created_namespace {
        report.reclassify(id, ObjectAction::Unchanged, ObjectAction::Created);
    }
    if inventory_missing {
        warn_missing_inventory(run, &report);
    }
    if let Err(error) = applied {
        // Remember what was applied so that a later deploy can prune it; nothing is pruned now.
        let applied = report.applied_ids();
        let mut objects = previous.objects.clone();
        objects.extend(
            entries
                .into_iter()
                .filter(|(id, _)| applied.contains(id))
                .map(|(_, entry)| entry),
        );
        let why = record_error("apply", &error);
        record(run, previous, objects, &digests, &report, Err(why)).await?;
        return Err(error);
    }

    // A lost lock means another deploy may be applying: never prune then.
    if !lock.still_held(&options.retry).await? {
        let mut objects = previous.objects.clone();
        objects.extend(entries.into_values());
        let error = KubeError::LockLost {
            env: environment.name.clone(),
        };
        let why = record_error("lock", &error);
        record(run, previous, objects, &digests, &report, Err(why)).await?;
        return Err(error);
    }
    // Prune last, after everything is healthy.
    let (kept, failure) = match prune_all(run, &previous, &desired_ids, &mut report).await {
        Ok(kept) => (kept, None),
        Err((kept, error)) => (kept, Some(error)),
    };
    let mut objects: Vec<InventoryEntry> = entries.into_values().collect();
    objects.extend(kept);
    let outcome = match &failure {
        None => Ok(()),
        Some(error) => Err(record_error("prune", error)),
    };
    // The inventory is written whether or not pruning failed: it lists every object applied.
    report.record_number = Some(record(run, previous, objects, &digests, &report, outcome).await?);
    match failure {
        None => Ok(report),
        Some(error) => Err(error),
    }
}

/// No inventory was found, yet objects of this environment already existed: the inventory
/// ConfigMap was deleted, and what it listed that Git no longer has can no longer be pruned.
fn warn_missing_inventory(run: &Run<'_>, report: &DeployReport) {
    let existing = report
        .objects
        .iter()
        .filter(|o| {
            matches!(
                o.action,
                ObjectAction::Configured | ObjectAction::Unchanged | ObjectAction::Replaced
            )
        })
        // The environment's namespace is created for the lock before the first apply.
        .filter(|o| {
            !(o.id.kind == "Namespace"
                && o.id.group.is_empty()
                && o.id.name == run.environment.namespace)
        })
        .count();
    if existing > 0 {
        run.printer.warn(&format!(
            "the inventory ConfigMap `{}` of environment `{}` is missing although {existing} of its objects exist: objects removed from Git since it was written can no longer be pruned (delete them by hand); this deploy writes a new inventory",
            inventory::configmap_name(&run.environment.name),
            run.environment.name
        ));
    }
}

/// Prune what the previous inventory has and the desired set does not. Returns the candidates
/// that stay in the inventory (kept, not owned, or not reached because pruning failed), and the
/// error that stopped pruning, if one did.
async fn prune_all(
    run: &Run<'_>,
    previous: &Inventory,
    desired_ids: &BTreeSet<ObjectId>,
    report: &mut DeployReport,
) -> Result<Vec<InventoryEntry>, (Vec<InventoryEntry>, KubeError)> {
    let candidates = prune::candidates(&previous.objects, desired_ids);
    if !run.options.prune {
        return Ok(candidates);
    }
    let scope = prune::Scope::new(
        &run.environment.name,
        &run.environment.namespace,
        desired_ids,
    );
    let mut kept: Vec<InventoryEntry> = Vec::new();
    let mut remaining = candidates.into_iter();
    while let Some(candidate) = remaining.next() {
        if let Some(why) = scope.refuses(&candidate) {
            report_prune(run, &candidate, &PruneDecision::OutOfScope(why), report);
            continue;
        }
        let decision = match prune_one(run, &candidate).await {
            Ok(decision) => decision,
            Err(error) => {
                // The failed candidate and the ones not reached stay: a later deploy retries.
                kept.push(candidate);
                kept.extend(remaining);
                return Err((kept, error));
            }
        };
        report_prune(run, &candidate, &decision, report);
        if decision.stays_in_inventory() {
            kept.push(candidate);
        }
    }
    Ok(kept)
}

/// Say what pruning did with `candidate`.
fn report_prune(
    run: &Run<'_>,
    candidate: &InventoryEntry,
    decision: &PruneDecision,
    report: &mut DeployReport,
) {
    let id = candidate.id();
    match decision {
        PruneDecision::Delete => {
            run.printer.line(&format!("pruned {id}"));
            report.push(id, ObjectAction::Pruned, None);
        }
        PruneDecision::KeepProtected => {
            run.printer.warn(&format!(
                "not pruning {id}: protected kind (pass `--prune-protected`)"
            ));
            report.push(id, ObjectAction::Kept, Some("protected kind".into()));
        }
        PruneDecision::KeepAnnotated => {
            report.push(
                id,
                ObjectAction::Kept,
                Some("annotated `gitship.dev/prune: \"false\"`".into()),
            );
        }
        PruneDecision::NotOwned(owner) => {
            run.printer.warn(&format!(
                "not pruning {id}: owned by `{owner}`, not `{}`",
                run.environment.name
            ));
        }
        PruneDecision::OutOfScope(why) => {
            run.printer.warn(&format!(
                "not pruning {id}, which the inventory lists: {why}; gitship deletes nothing outside what the environment declares (delete it by hand if it should go)"
            ));
            report.push(id, ObjectAction::Kept, Some(format!("out of scope: {why}")));
        }
        PruneDecision::Forbidden(message) => {
            run.printer.warn(&format!(
                "not pruning {id}: the server refused to read it ({message}); it stays in the inventory for a deploy whose credentials may delete it, or delete it by hand (the agent may delete only the Secrets and cluster-scoped objects its RBAC names)"
            ));
            report.push(id, ObjectAction::Kept, Some("forbidden".into()));
        }
        PruneDecision::Gone => {}
    }
}

/// What a heal put back: the drift its check found (`found`), and every object its deploy
/// changed that the check did not name (`<object> (put back)`: changed after the check, before
/// the deploy). A plain deploy (nothing found) heals nothing.
fn healed(found: &[String], report: &DeployReport) -> Vec<String> {
    let mut healed = found.to_vec();
    if found.is_empty() {
        return healed;
    }
    for object in &report.objects {
        let changed = matches!(
            object.action,
            ObjectAction::Created | ObjectAction::Configured | ObjectAction::Replaced
        );
        let name = object.id.to_string();
        let named = |line: &String| line == &name || line.starts_with(&format!("{name} "));
        if changed && !healed.iter().any(named) {
            healed.push(format!("{name} (put back)"));
        }
    }
    healed
}

/// The longest failure message a record keeps (the inventory ConfigMap holds the history).
const RECORD_ERROR_BYTES: usize = 2_000;

/// Why a deploy failed, for its record: the stage (`stage` unless the error says it was the
/// health wait), the object when one is to blame, the message (cut to [`RECORD_ERROR_BYTES`]).
fn record_error(stage: &str, error: &KubeError) -> RecordError {
    let (stage, object) = match error {
        KubeError::Unhealthy { .. } => ("health", None),
        KubeError::HookFailed { hook, .. } => ("hook", Some(hook.clone())),
        KubeError::Api { object, .. }
        | KubeError::Immutable { object, .. }
        | KubeError::StillDeleting { object, .. }
        | KubeError::OwnedElsewhere { object, .. } => (stage, Some(object.clone())),
        _ => (stage, None),
    };
    let mut message = error.to_string();
    if message.len() > RECORD_ERROR_BYTES {
        let mut cut = RECORD_ERROR_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" ...");
    }
    RecordError {
        stage: stage.to_string(),
        object,
        message,
    }
}

/// Write the inventory (`objects`) and a deploy record on top of the previous history
/// (`outcome`: succeeded, or failed and why). The applied digests are the previous ones updated
/// with `digests` (this deploy's applies), for the objects of the inventory only.
async fn record(
    run: &Run<'_>,
    previous: Inventory,
    objects: Vec<InventoryEntry>,
    digests: &BTreeMap<String, String>,
    report: &DeployReport,
    outcome: Result<(), RecordError>,
) -> Result<u64, KubeError> {
    let options = run.options;
    let extras = &options.record;
    let time = Utc::now();
    let duration_ms = extras
        .started
        .map(|started| u64::try_from((time - started).num_milliseconds()).unwrap_or(0));
    let (outcome, error) = match outcome {
        Ok(()) => (DeployOutcome::Succeeded, None),
        Err(error) => (DeployOutcome::Failed, Some(error)),
    };
    let mut history = previous.history;
    let this = DeployRecord {
        number: 0,
        sha: options.sha.clone(),
        time,
        who: options.who.clone(),
        outcome,
        summary: report.summary_line(),
        source: options.source,
        healed: healed(&options.healed, report),
        subject: extras.subject.clone(),
        author: extras.author.clone(),
        started: extras.started,
        duration_ms,
        counts: RecordCounts {
            created: report.count(ObjectAction::Created),
            configured: report.count(ObjectAction::Configured)
                + report.count(ObjectAction::Replaced),
            unchanged: report.count(ObjectAction::Unchanged),
            pruned: report.count(ObjectAction::Pruned),
        },
        terraform: extras.terraform,
        images: extras.images.clone(),
        ci_url: extras.ci_url.clone(),
        error,
        rev: extras.rev.clone(),
        repeats: 1,
        manifests: None,
        hooks: report.hooks.clone(),
    };
    let newest_before = history.first().map(|newest| newest.number);
    let succeeded = this.outcome == DeployOutcome::Succeeded;
    inventory::push_record(&mut history, this);
    let number = history.first().map_or(0, |newest| newest.number);
    // What a new successful record applied, for an exact rollback; a collapsed no-op has it.
    let revisions = if succeeded && newest_before != Some(number) {
        remember_manifests(run, &mut history).await
    } else {
        None
    };
    let mut applied = previous.applied;
    applied.extend(digests.iter().map(|(k, v)| (k.clone(), v.clone())));
    let listed: BTreeSet<String> = objects
        .iter()
        .map(|entry| inventory::digest_key(&entry.id()))
        .collect();
    applied.retain(|key, _| listed.contains(key));
    let inventory = Inventory {
        restored: false,
        objects,
        history,
        applied,
    };
    let inventory::StoredHistory { dropped, kept } = inventory::store(
        run.client,
        &inventory,
        &run.environment.name,
        &run.environment.namespace,
        options.history,
        &options.retry,
    )
    .await?;
    if let Some(pending) = revisions {
        let kept = inventory.history.get(..kept).unwrap_or(&inventory.history);
        store_manifests(run, pending, kept).await;
    }
    if dropped > 0 {
        run.printer.warn(&format!(
            "history of {}: dropped {dropped} oldest record{} to keep the inventory under {} KiB",
            run.environment.name,
            if dropped == 1 { "" } else { "s" },
            inventory::MAX_DATA_BYTES / 1024
        ));
    }
    Ok(number)
}

/// [`revisions::remember`] for the newest record; `None`, with a warning, when the revisions
/// Secret cannot be read (the deploy is recorded all the same; a rollback to it renders again).
async fn remember_manifests(
    run: &Run<'_>,
    history: &mut [DeployRecord],
) -> Option<revisions::Pending> {
    let environment = run.environment;
    match revisions::remember(
        run.client,
        &environment.name,
        &environment.namespace,
        history,
        run.desired,
        run.options.record.stored,
        &run.options.retry,
    )
    .await
    {
        Ok(pending) => Some(pending),
        Err(error) => {
            run.printer.warn(&format!(
                "the manifests of this deploy are not kept for rollback: {error} (a rollback to it renders the revision again)"
            ));
            None
        }
    }
}

/// [`revisions::store`], after the inventory: a failure is a warning (an agent whose RBAC
/// predates the Secret), as is a revision whose manifests no longer fit.
async fn store_manifests(run: &Run<'_>, pending: revisions::Pending, kept: &[DeployRecord]) {
    let environment = run.environment;
    match revisions::store(
        run.client,
        &environment.name,
        &environment.namespace,
        pending,
        kept,
        &run.options.retry,
    )
    .await
    {
        Ok(stored) if !stored.dropped.is_empty() => {
            let numbers: Vec<String> = stored.dropped.iter().map(|n| format!("#{n}")).collect();
            run.printer.warn(&format!(
                "the stored manifests of {} no longer fit in `{}` ({} KiB): a rollback to them renders the revision again",
                numbers.join(", "),
                revisions::secret_name(&environment.name),
                revisions::MAX_SECRET_BYTES / 1024
            ));
        }
        Ok(_) => {}
        Err(error) => run.printer.warn(&format!(
            "the manifests of this deploy are not kept for rollback: {error} (a rollback to it renders the revision again)"
        )),
    }
}

async fn prune_one(run: &Run<'_>, candidate: &InventoryEntry) -> Result<PruneDecision, KubeError> {
    let (client, resources, environment, options) =
        (run.client, run.resources, run.environment, run.options);
    let retry = &options.retry;
    let id = candidate.id();
    let api_error = |source: kube::Error| KubeError::Api {
        object: id.to_string(),
        message: crate::error_message(&source),
        source,
    };
    let Some(resolved) = resources
        .resolve(client, retry, &candidate.api_version, &candidate.kind)
        .await
        .map_err(api_error)?
    else {
        // The kind is not served any more: the object cannot exist.
        return Ok(PruneDecision::Gone);
    };
    let api: Api<kube::api::DynamicObject> = match &candidate.namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resolved.resource),
        None => Api::all_with(client.clone(), &resolved.resource),
    };
    // A read the server refuses (403: RBAC, which names what the agent may read and delete) is
    // not a failed deploy; a refused delete of what could be read (an admission policy) is.
    let live = match retry
        .run(&id.to_string(), || api.get_opt(&candidate.name))
        .await
    {
        Err(error) if status_code(&error) == Some(403) => {
            return Ok(PruneDecision::Forbidden(crate::error_message(&error)));
        }
        read => read.map_err(api_error)?,
    };
    let live = live
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| api_error(kube::Error::SerdeError(e)))?;
    let decision = prune::decide(
        candidate,
        live.as_ref(),
        &environment.name,
        options.prune_protected,
    );
    if decision == PruneDecision::Delete {
        let params = DeleteParams::foreground();
        match retry
            .run(&id.to_string(), || api.delete(&candidate.name, &params))
            .await
        {
            Ok(_) => {}
            Err(error) if status_code(&error) == Some(404) => return Ok(PruneDecision::Gone),
            Err(error) => return Err(api_error(error)),
        }
    }
    Ok(decision)
}

/// Create the environment namespace when it does not exist (from its manifest when there is
/// one: then its identity is returned).
async fn ensure_namespace(
    run: &Run<'_>,
    checked: &[Checked],
) -> Result<Option<ObjectId>, KubeError> {
    let (client, environment, options, printer) =
        (run.client, run.environment, run.options, run.printer);
    let retry = &options.retry;
    let name = &environment.namespace;
    let waiting = || {
        printer.line(&format!(
            "waiting for namespace `{name}` to finish terminating"
        ))
    };
    if namespace_exists(client, name, retry, waiting).await? {
        return Ok(None);
    }
    let manifest = checked.iter().find_map(|c| match c {
        Checked::Ready(p)
            if p.id.kind == "Namespace" && p.id.group.is_empty() && &p.id.name == name =>
        {
            Some(p.as_ref())
        }
        _ => None,
    });
    let created = match manifest {
        Some(prepared) => {
            apply::server_side_apply(client, prepared, options.force_conflicts, false, retry)
                .await
                .map_err(|e| prepared.error(e))?;
            Some(prepared.id.clone())
        }
        None => {
            create_namespace(client, name, &environment.name, retry).await?;
            None
        }
    };
    printer.line(&format!("created namespace `{name}`"));
    Ok(created)
}

/// Create the namespace `name` (labelled as gitship's, created by `environment`) when it does
/// not exist; whether it was created. For what must live in it before the first deploy (the
/// agent's leader Lease).
pub async fn ensure_namespace_exists(
    client: &Client,
    name: &str,
    environment: &str,
    retry: &RetryPolicy,
) -> Result<bool, KubeError> {
    let waiting =
        || tracing::info!(namespace = %name, "waiting for the namespace to finish terminating");
    if namespace_exists(client, name, retry, waiting).await? {
        return Ok(false);
    }
    create_namespace(client, name, environment, retry).await?;
    Ok(true)
}

/// Whether namespace `name` exists. One the server is deleting (Terminating: it refuses new
/// content) is waited for, at most [`apply::DELETION_WAIT`], calling `waiting` once, so that
/// it can be created anew.
async fn namespace_exists(
    client: &Client,
    name: &str,
    retry: &RetryPolicy,
    waiting: impl FnOnce(),
) -> Result<bool, KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + apply::DELETION_WAIT;
    let mut waiting = Some(waiting);
    loop {
        let existing = retry
            .run(name, || api.get_opt(name))
            .await
            .map_err(|source| KubeError::about(format!("Namespace {name}"), source))?;
        let Some(namespace) = existing else {
            return Ok(false);
        };
        if namespace.metadata.deletion_timestamp.is_none() {
            return Ok(true);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(KubeError::StillDeleting {
                object: format!("Namespace {name}"),
                waited: apply::DELETION_WAIT,
            });
        }
        if let Some(waiting) = waiting.take() {
            waiting();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Create namespace `name`, marked as made by `environment` (which its destroy deletes).
async fn create_namespace(
    client: &Client,
    name: &str,
    environment: &str,
    retry: &RetryPolicy,
) -> Result<(), KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let body = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: FIELD_MANAGER},
            "annotations": {gitship_foundation::model::CREATED_BY_ANNOTATION: environment}}});
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    retry
        .run(name, || api.patch(name, &params, &patch))
        .await
        .map(|_| ())
        .map_err(|source| KubeError::about(format!("Namespace {name}"), source))
}

/// The hooks of a deploy, and whether it may turn out to change nothing (then they do not run).
struct HookSet {
    hooks: Vec<PreparedHook>,
    may_be_no_op: bool,
}

/// The objects checked by the server, then the hooks' phases around the objects
/// ([`apply_phases`]); when that fails after hooks began to run, the SyncFail hooks run before
/// the error is returned.
async fn apply_all(
    run: &Run<'_>,
    checked: Vec<Checked>,
    hooks: HookSet,
    report: &mut DeployReport,
    entries: &mut HashMap<ObjectId, InventoryEntry>,
    digests: &mut Digests<'_>,
) -> Result<(), KubeError> {
    let mut ready: Vec<Prepared> = Vec::new();
    let mut deferred: Vec<Manifest> = Vec::new();
    for item in checked {
        match item {
            Checked::Ready(prepared) => ready.push(*prepared),
            Checked::Deferred(object, _) => deferred.push(object),
        }
    }
    // Before the first write, the server checks every object that changed (ARCHITECTURE.md,
    // "A commit the server rejects changes nothing").
    let mut validated = validate_changed(run, &ready, digests.previous).await?;
    let due = !hooks.hooks.is_empty()
        && (!hooks.may_be_no_op
            || !deferred.is_empty()
            || would_change(run, &ready, &validated, digests.previous).await?);
    if !hooks.hooks.is_empty() && !due {
        run.printer.line(&format!(
            "nothing changes: {} hook(s) not run",
            hooks.hooks.len()
        ));
    }
    let hooks: &[PreparedHook] = if due { &hooks.hooks } else { &[] };
    let runner = hooks::Runner {
        client: run.client,
        environment: run.environment,
        timeout: run.options.timeout,
        retry: &run.options.retry,
        printer: run.printer,
    };
    let mut objects = Objects {
        report,
        entries,
        digests,
        validated: &mut validated,
    };
    let result = apply_phases(run, &runner, ready, deferred, hooks, &mut objects).await;
    if result.is_err()
        && hooks
            .iter()
            .any(|h| h.hook.phases.contains(&HookPhase::SyncFail))
    {
        let mut runs = Vec::new();
        if let Err(error) = runner
            .run_phase(hooks, HookPhase::SyncFail, None, &mut runs)
            .await
        {
            run.printer
                .warn(&format!("a SyncFail hook failed too: {error}"));
        }
        objects.report.hooks.extend(runs);
    }
    result
}

/// What applying writes to: the report, the inventory entries, the applied digests, and the
/// dry runs made before the first write.
struct Objects<'r, 'd> {
    report: &'r mut DeployReport,
    entries: &'r mut HashMap<ObjectId, InventoryEntry>,
    digests: &'r mut Digests<'d>,
    validated: &'r mut HashMap<ObjectId, Value>,
}

/// PreSync hooks, the bootstrap stage (waited for), the custom resources whose CRD it applied,
/// then the waves, each waited for and followed by its Sync hooks, then PostSync hooks.
async fn apply_phases(
    run: &Run<'_>,
    runner: &hooks::Runner<'_>,
    ready: Vec<Prepared>,
    deferred: Vec<Manifest>,
    hooks: &[PreparedHook],
    objects: &mut Objects<'_, '_>,
) -> Result<(), KubeError> {
    let mut runs = Vec::new();
    let presync = runner
        .run_phase(hooks, HookPhase::PreSync, None, &mut runs)
        .await;
    objects.report.hooks.append(&mut runs);
    presync?;
    // Bootstrap stage: CRDs, Namespaces, cluster RBAC; waited for.
    let (bootstrap, mut rest): (Vec<Prepared>, Vec<Prepared>) =
        ready.into_iter().partition(|p| p.position.stage == 0);
    if !bootstrap.is_empty() {
        apply_groups(run, bootstrap.clone(), objects).await?;
        wait_healthy(run, &bootstrap).await?;
    }
    rest.extend(prepare_deferred(run, deferred).await?);
    // Waves, with the waves of the Sync hooks.
    let mut waves: BTreeMap<i64, Vec<Prepared>> = BTreeMap::new();
    for hook in hooks
        .iter()
        .filter(|h| h.hook.phases.contains(&HookPhase::Sync))
    {
        waves.entry(hook.hook.weight).or_default();
    }
    for prepared in rest {
        waves
            .entry(prepared.position.wave)
            .or_default()
            .push(prepared);
    }
    for (number, wave) in waves {
        if !wave.is_empty() {
            apply_groups(run, wave.clone(), objects).await?;
            wait_healthy(run, &wave).await?;
        }
        let sync = runner
            .run_phase(hooks, HookPhase::Sync, Some(number), &mut runs)
            .await;
        objects.report.hooks.append(&mut runs);
        sync?;
    }
    let postsync = runner
        .run_phase(hooks, HookPhase::PostSync, None, &mut runs)
        .await;
    objects.report.hooks.append(&mut runs);
    postsync
}

/// Whether applying `ready` would change any object, judged as [`apply::apply_object`] judges
/// it (its live state read, then gitship's last apply of the same body, or the dry run made
/// before the first write, compared with it). Asked only for a deploy with hooks.
async fn would_change(
    run: &Run<'_>,
    ready: &[Prepared],
    validated: &HashMap<ObjectId, Value>,
    previous: &BTreeMap<String, String>,
) -> Result<bool, KubeError> {
    let references: Vec<&Prepared> = ready.iter().collect();
    let mut known = crate::live::read_live(run.client, &references, &run.options.retry).await;
    for prepared in ready {
        let live = match known.remove(&prepared.id) {
            Some(live) => live,
            None => prepared
                .get_live(run.client, &run.options.retry)
                .await
                .map_err(|source| prepared.error(source))?,
        };
        let Some(live) = live.filter(|live| !apply::is_being_deleted(live)) else {
            return Ok(true);
        };
        let digest = inventory::applied_digest(&prepared.body);
        let applied_before = digest.is_some()
            && previous.get(&inventory::digest_key(&prepared.id)) == digest.as_ref();
        if applied_before && crate::diff::compare_to_manifest(&live, &prepared.body).is_empty() {
            continue;
        }
        let unchanged = validated.get(&prepared.id).is_some_and(|dry_run| {
            crate::diff::diff_from(Some(live), dry_run.clone()).action
                == crate::diff::PlannedAction::Unchanged
        });
        if !unchanged {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A server-side dry run (as the apply will be: gitship's field manager, `force` as
/// configured) of every object whose body differs from gitship's last successful apply of it
/// (the inventory's digest; an object applied as it is was accepted before), all before the
/// first write: a commit the server rejects (a quantity that is no quantity, a conflict, an
/// immutable field without `gitship.dev/replace`, an admission webhook's denial) fails here and
/// changes nothing. An object whose namespace or kind does not exist yet (404) is checked at its
/// own apply. Returns the dry runs' results, which the applies use instead of asking again.
async fn validate_changed(
    run: &Run<'_>,
    ready: &[Prepared],
    previous: &BTreeMap<String, String>,
) -> Result<HashMap<ObjectId, Value>, KubeError> {
    let (client, options) = (run.client, run.options);
    let changed = ready.iter().filter(|prepared| {
        let digest = inventory::applied_digest(&prepared.body);
        digest.is_none() || previous.get(&inventory::digest_key(&prepared.id)) != digest.as_ref()
    });
    let results: Vec<(&Prepared, Result<Value, kube::Error>)> = futures::stream::iter(changed)
        .map(|prepared| async move {
            let result = apply::server_side_apply(
                client,
                prepared,
                options.force_conflicts,
                true,
                &options.retry,
            )
            .await;
            (prepared, result)
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let mut validated = HashMap::new();
    let mut refused = Vec::new();
    for (prepared, result) in results {
        match result {
            Ok(dry_run) => {
                validated.insert(prepared.id.clone(), dry_run);
            }
            Err(error) if status_code(&error) == Some(404) => {}
            Err(error)
                if crate::immutable_field(&error).is_some()
                    && gitship_foundation::model::annotation(
                        &prepared.body,
                        gitship_foundation::model::REPLACE_ANNOTATION,
                    ) == Some("true") => {}
            Err(error) => refused.push(prepared.error(error)),
        }
    }
    refused.sort_by_key(|error| error.to_string());
    match refused.len() {
        0 => Ok(validated),
        1 => Err(refused.remove(0)),
        _ => Err(KubeError::ApplyFailed {
            failures: refused.iter().map(|e| format!("  {e}")).collect(),
        }),
    }
}

/// Resolve and prepare the custom resources whose CRD the bootstrap stage just applied.
async fn prepare_deferred(
    run: &Run<'_>,
    deferred: Vec<Manifest>,
) -> Result<Vec<Prepared>, KubeError> {
    for object in &deferred {
        run.resources.forget(object.api_version()).await;
    }
    let mut prepared = Vec::with_capacity(deferred.len());
    for object in deferred {
        let (api_version, kind) = (object.api_version(), object.kind());
        let Some(resolved) = resolve_with_patience(run, api_version, kind).await? else {
            return Err(KubeError::UnknownKind {
                location: object.source.clone(),
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                name: object.id().name,
            });
        };
        let wave = order::wave_of(&object.object).unwrap_or(0);
        prepared.push(check::prepare(
            &object.object,
            &object.source,
            resolved,
            &run.environment.name,
            &run.environment.namespace,
            order::position(kind, wave),
        )?);
    }
    Ok(prepared)
}

/// A CRD is served a moment after it is Established; retry discovery briefly.
async fn resolve_with_patience(
    run: &Run<'_>,
    api_version: &str,
    kind: &str,
) -> Result<Option<discovery::Resolved>, KubeError> {
    let (client, resources, options) = (run.client, run.resources, run.options);
    let api_error = |source: kube::Error| KubeError::Api {
        object: format!("{api_version} {kind}"),
        message: crate::error_message(&source),
        source,
    };
    for _ in 0..20 {
        if let Some(resolved) = resources
            .resolve(client, &options.retry, api_version, kind)
            .await
            .map_err(api_error)?
        {
            return Ok(Some(resolved));
        }
        resources.forget(api_version).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

/// The applied digests ([`Inventory::applied`]): the previous inventory's, and this deploy's.
struct Digests<'a> {
    previous: &'a BTreeMap<String, String>,
    new: BTreeMap<String, String>,
}

/// Apply objects grouped by position: positions in order, objects of one position concurrently.
async fn apply_groups(
    run: &Run<'_>,
    objects: Vec<Prepared>,
    into: &mut Objects<'_, '_>,
) -> Result<(), KubeError> {
    let (client, options, printer) = (run.client, run.options, run.printer);
    let Objects {
        report,
        entries,
        digests,
        validated,
    } = into;
    let mut groups: BTreeMap<Position, Vec<Prepared>> = BTreeMap::new();
    for prepared in objects {
        groups.entry(prepared.position).or_default().push(prepared);
    }
    for (_, group) in groups {
        if gitship_foundation::process::is_interrupted() {
            return Err(KubeError::Interrupted);
        }
        if let Some(first) = group.first() {
            let wave = first.position.wave;
            printer.stage(&format!("applying {} (wave {wave})", first.id.kind), false);
        }
        // The group's live objects with one paged LIST per kind instead of a GET each: half
        // the requests of a deploy (an object created by someone else between the LIST and
        // the apply is not checked for ownership; the deploy lock keeps gitship out).
        let references: Vec<&Prepared> = group.iter().collect();
        let mut known = crate::live::read_live(client, &references, &options.retry).await;
        drop(references);
        let previous = digests.previous;
        let results: Vec<ApplyResult> = futures::stream::iter(group)
            .map(|prepared| {
                let live = known.remove(&prepared.id);
                let dry_run = validated.remove(&prepared.id);
                async move {
                    let key = inventory::digest_key(&prepared.id);
                    let digest = inventory::applied_digest(&prepared.body);
                    let applied_before = digest.is_some() && previous.get(&key) == digest.as_ref();
                    let result = apply::apply_object(
                        client,
                        &prepared,
                        apply::Known {
                            live,
                            applied_before,
                            dry_run,
                        },
                        options.force_conflicts,
                        &options.retry,
                    )
                    .await;
                    printer.advance(1);
                    let digest = digest.map(|digest| (key, digest));
                    (prepared, result.map(|applied| (applied, digest)))
                }
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        record_results(printer, results, report, entries, digests)?;
    }
    Ok(())
}

/// Record one group's apply results (sorted by object): report lines, inventory entries and
/// applied digests; the failures as the group's error.
fn record_results(
    printer: &Progress,
    mut results: Vec<ApplyResult>,
    report: &mut DeployReport,
    entries: &mut HashMap<ObjectId, InventoryEntry>,
    digests: &mut Digests<'_>,
) -> Result<(), KubeError> {
    let mut failures = Vec::new();
    results.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    for (prepared, result) in results {
        match result {
            Ok((applied, digest)) => {
                if let Some((key, digest)) = digest {
                    digests.new.insert(key, digest);
                }
                let action = match applied {
                    Applied::Created => ObjectAction::Created,
                    Applied::Configured => ObjectAction::Configured,
                    Applied::Replaced => ObjectAction::Replaced,
                    Applied::Unchanged => ObjectAction::Unchanged,
                };
                if action != ObjectAction::Unchanged {
                    printer.line(&format!("{} {}", action.as_str(), prepared.id));
                }
                entries.insert(
                    prepared.id.clone(),
                    InventoryEntry {
                        api_version: prepared.resolved.resource.api_version.clone(),
                        kind: prepared.id.kind.clone(),
                        namespace: prepared.id.namespace.clone(),
                        name: prepared.id.name.clone(),
                    },
                );
                report.push(prepared.id.clone(), action, None);
            }
            Err(error) => {
                report.push(
                    prepared.id.clone(),
                    ObjectAction::Failed,
                    Some(error.to_string()),
                );
                failures.push(error);
            }
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        _ => Err(KubeError::ApplyFailed {
            failures: failures.iter().map(|e| format!("  {e}")).collect(),
        }),
    }
}

async fn wait_healthy(run: &Run<'_>, objects: &[Prepared]) -> Result<(), KubeError> {
    let (client, options, printer) = (run.client, run.options, run.printer);
    if !options.wait || !objects.iter().any(|p| health::is_watched(&p.id.kind)) {
        return Ok(());
    }
    let retry = &options.retry;
    let mut last = None;
    if gitship_foundation::process::is_interrupted() {
        return Err(KubeError::Interrupted);
    }
    let outcome = health::wait(client, objects, options.timeout, retry, |ready, total| {
        if last != Some(ready) {
            printer.stage(&format!("waiting for health: {ready}/{total} ready"), true);
            last = Some(ready);
        }
    })
    .await
    .map_err(|source| KubeError::Api {
        object: "health check".into(),
        message: crate::error_message(&source),
        source,
    })?;
    if gitship_foundation::process::is_interrupted() {
        return Err(KubeError::Interrupted);
    }
    if outcome.unhealthy.is_empty() {
        return Ok(());
    }
    let count = outcome.unhealthy.len();
    let crd = outcome.unhealthy.iter().find(|(p, h, _)| {
        p.id.kind == "CustomResourceDefinition" && matches!(h, Health::Progressing(_))
    });
    if let Some((prepared, _, _)) = crd {
        return Err(KubeError::CrdNotEstablished {
            name: prepared.id.name.clone(),
            timeout: options.timeout,
        });
    }
    let report = health::report(client, &outcome, retry).await;
    Err(KubeError::Unhealthy { count, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heal_names_what_its_deploy_put_back_beyond_its_check() {
        let id = |name: &str| ObjectId {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some("blog".into()),
            name: name.into(),
        };
        let mut report = DeployReport::default();
        report.push(id("web"), ObjectAction::Configured, None);
        report.push(id("api"), ObjectAction::Configured, None);
        report.push(id("db"), ObjectAction::Unchanged, None);
        let found =
            vec!["Deployment blog/web spec.replicas: 10 -> 2 (changed by kubectl)".to_string()];
        assert_eq!(
            healed(&found, &report),
            vec![
                found[0].clone(),
                "Deployment blog/api (put back)".to_string()
            ]
        );
        assert!(
            healed(&[], &report).is_empty(),
            "a plain deploy heals nothing"
        );
    }

    fn id(kind: &str, name: &str) -> ObjectId {
        ObjectId {
            group: String::new(),
            kind: kind.into(),
            namespace: Some("blog".into()),
            name: name.into(),
        }
    }

    #[test]
    fn report_counts_per_kind_and_summarises() {
        let mut report = DeployReport::default();
        report.push(id("ConfigMap", "a"), ObjectAction::Created, None);
        report.push(id("ConfigMap", "b"), ObjectAction::Unchanged, None);
        report.push(id("Service", "web"), ObjectAction::Unchanged, None);
        report.push(id("Secret", "old"), ObjectAction::Pruned, None);
        assert_eq!(report.summary_line(), "1 created, 2 unchanged, 1 pruned");
        assert_eq!(report.summary["ConfigMap"][&ObjectAction::Unchanged], 1);
        assert_eq!(report.applied_ids().len(), 3);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["objects"][0]["action"], "created");
        assert_eq!(json["summary"]["Secret"]["pruned"], 1);
        let back: DeployReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
        assert_eq!(DeployReport::default().summary_line(), "nothing to do");
    }
}
