//! `destroy`: remove everything an environment deployed (ARCHITECTURE.md, "Destroy"): its
//! cluster objects, its Terraform resources, gitship's records and the namespace gitship made.
//!
//! It refuses an environment whose config says `protected: true`, then shows the plan (each
//! object in the order it goes, the namespace, Terraform's destroy plan), asks (the caller's
//! `confirm`), and runs its steps ([`steps`]) under the environment's lock. Every step takes what
//! is already gone as done, so a second run after an interrupt finishes the job. The outcome is
//! an Event, a local record (`.gitship/destroy/<env>.jsonl`) and the [`DestroyReport`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ops::session::{ClusterConnection, Session};
use crate::terraform::{PlanMode, PlanSummary, Terraform};
use gitship_foundation::diagnostics::{UserError, user_error};
use gitship_kube::destroy::{self as kube_destroy, DestroyOptions, KubePlan, Removal};
use gitship_kube::events::{self, EventType};
use gitship_kube::lock::{DeployLock, LockOptions};
use gitship_kube::retry::RetryPolicy;

/// The version of `destroy -o json`'s shape; bumped when a field changes meaning or goes away.
pub const FORMAT_VERSION: u32 = 1;

/// What `gitship destroy ENV` was asked (resolved values).
#[derive(Debug, Clone)]
pub struct DestroyRequest {
    /// Leave the Terraform resources (`--keep-terraform`).
    pub keep_terraform: bool,
    /// Leave the environment's namespace (`--keep-namespace`).
    pub keep_namespace: bool,
    /// How long each deleted object may take to be gone (`--timeout`, default 5m).
    pub timeout: Duration,
    /// How long to wait for another holder of the lock (`deploy.lock_timeout`).
    pub lock_timeout: Duration,
    /// How long the lock stays valid without renewal, should gitship die.
    pub lock_lease: Duration,
    /// The cluster itself comes from the environment's Terraform: every Kubernetes step runs
    /// before `terraform destroy`, which takes the cluster with it.
    pub cluster_from_terraform: bool,
    /// The cluster is gone (`--skip-kubernetes`): no Kubernetes step, only Terraform.
    pub skip_kubernetes: bool,
}

impl DestroyRequest {
    /// The request for `config` with no flag.
    pub fn for_environment(config: &crate::repo::config::EnvConfig) -> DestroyRequest {
        DestroyRequest {
            keep_terraform: false,
            keep_namespace: false,
            timeout: Duration::from_secs(300),
            lock_timeout: config.deploy.lock_timeout,
            lock_lease: LockOptions::default().lease_duration,
            cluster_from_terraform: config.cluster_from_terraform(),
            skip_kubernetes: false,
        }
    }
}

/// One step of a destroy, in the order [`steps`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestroyStep {
    /// Take the environment's lock (a deploy or the agent waits for it).
    Lock,
    /// Delete the inventory's objects, last wave first, each waited for.
    Prune,
    /// Apply Terraform's destroy plan.
    Terraform,
    /// Delete the agent's status, the revisions Secret and the inventory.
    Records,
    /// Delete the namespace (when gitship made it); the Lease goes with it.
    Namespace,
    /// Release the lock (delete the Lease, when the namespace stays).
    Unlock,
}

impl DestroyStep {
    pub fn as_str(self) -> &'static str {
        match self {
            DestroyStep::Lock => "lock",
            DestroyStep::Prune => "prune",
            DestroyStep::Terraform => "terraform",
            DestroyStep::Records => "records",
            DestroyStep::Namespace => "namespace",
            DestroyStep::Unlock => "unlock",
        }
    }
}

/// The steps in order. The records and the Lease live in the namespace, so they go after the
/// objects and Terraform; when the cluster itself comes from Terraform, every Kubernetes step
/// comes first (the cluster dies with `terraform destroy`).
pub fn steps(cluster_from_terraform: bool) -> Vec<DestroyStep> {
    use DestroyStep::*;
    if cluster_from_terraform {
        vec![Lock, Prune, Records, Namespace, Unlock, Terraform]
    } else {
        vec![Lock, Prune, Terraform, Records, Namespace, Unlock]
    }
}

/// What happens to the Terraform resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "plan")]
pub enum TerraformPlan {
    /// The environment has no Terraform layer.
    None,
    /// `--keep-terraform`.
    Kept,
    /// `terraform plan -destroy`, redacted.
    Destroy(PlanSummary),
}

/// What destroy will do, shown before it asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestroyPlan {
    pub environment: String,
    pub steps: Vec<DestroyStep>,
    pub kubernetes: KubePlan,
    pub terraform: TerraformPlan,
}

/// One step's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutcome {
    pub step: DestroyStep,
    /// `done`, `already_done` (found gone: a re-run) or `skipped` (kept or nothing to do).
    pub outcome: String,
    pub detail: String,
}

/// What `gitship destroy ENV` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestroyReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub environment: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub plan: DestroyPlan,
    /// The steps run, in order.
    pub steps: Vec<StepOutcome>,
    /// Each object of the inventory, in the order destroy went through them.
    pub objects: Vec<kube_destroy::RemovedObject>,
    /// gitship's records (`ConfigMap blog/gitship-production`) and what happened to each.
    pub records: Vec<kube_destroy::RemovedRecord>,
    /// Why it failed, when it did (the local record keeps failed runs too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Destroy the session's environment. `confirm` sees the plan and says whether to go on (the
/// command asks, or `--yes`); refused before anything is read when the environment is protected.
pub async fn destroy(
    session: &Session,
    request: &DestroyRequest,
    confirm: impl FnOnce(&DestroyPlan) -> Result<()>,
) -> Result<DestroyReport> {
    refuse_protected(session)?;
    let started = Utc::now();
    let no_cluster_reason = if request.skip_kubernetes {
        Some("skipped (`--skip-kubernetes`): whatever is left in the cluster stays")
    } else if request.cluster_from_terraform && !cluster_made(session).await? {
        Some("no cluster: the Terraform outputs it comes from have no value")
    } else {
        None
    };
    let connection = match no_cluster_reason {
        Some(_) => None,
        None => Some(reach(session, request).await?),
    };
    let options = options(request);
    let environment = session.environment();
    let kubernetes = match &connection {
        Some(connection) => kube_destroy::plan(&connection.client, &environment, &options)
            .await
            .map_err(user_error)?,
        None => no_cluster(
            &environment.namespace,
            no_cluster_reason.unwrap_or_default(),
        ),
    };
    let driver = terraform_driver(session, request).await?;
    let terraform = plan_terraform(driver.as_ref()).await?;
    let plan = DestroyPlan {
        environment: environment.name.clone(),
        steps: steps(request.cluster_from_terraform),
        kubernetes,
        terraform,
    };
    session.printer.status(&render_plan(&plan));
    if let Err(cancelled) = confirm(&plan) {
        // Nothing happens: the saved destroy plan (it holds the variables) goes too.
        if let TerraformPlan::Destroy(summary) = &plan.terraform {
            let _ = gitship_foundation::private_file::remove(&summary.planfile);
        }
        return Err(cancelled);
    }
    let mut run = Run {
        session,
        connection: connection.as_ref(),
        options,
        driver,
        lock: None,
        skip_kubernetes: request.skip_kubernetes,
        report: DestroyReport {
            format_version: FORMAT_VERSION,
            environment: environment.name.clone(),
            started,
            finished: started,
            plan,
            steps: Vec::new(),
            objects: Vec::new(),
            records: Vec::new(),
            error: None,
        },
    };
    let result = run.all_steps().await;
    run.finish(result).await
}

/// Whether the cluster, which comes from the environment's Terraform, still exists: its outputs
/// name it. Not any more after a run interrupted in (or after) `terraform destroy`, nor before
/// the first deploy: then no Kubernetes step has anything to do. The outputs read here are the
/// session's (its connection resolves from them: `terraform output` runs once).
async fn cluster_made(session: &Session) -> Result<bool> {
    let outputs = session.current_outputs().await?;
    let made = crate::ops::cluster_source::unknown(&session.config, &outputs, true)
        .iter()
        .all(|reference| reference.key == "registry");
    if made {
        session.set_terraform_values(&outputs).await?;
    }
    Ok(made)
}

/// The Kubernetes side of a destroy whose cluster is gone: nothing left to delete.
fn no_cluster(namespace: &str, reason: &str) -> KubePlan {
    KubePlan {
        inventory_found: false,
        restored: false,
        objects: Vec::new(),
        namespace: kube_destroy::NamespacePlan {
            name: namespace.to_string(),
            exists: false,
            terminating: false,
            delete: false,
            reason: reason.into(),
        },
        records: Vec::new(),
    }
}

/// Refuse a `protected: true` environment, naming where the key is.
fn refuse_protected(session: &Session) -> Result<()> {
    let config = &session.config;
    if !config.protected {
        return Ok(());
    }
    let location = config.spans.location("protected");
    Err(UserError::new(
        format!(
            "environment `{}` is protected (`protected: true` at {location}); nothing was changed",
            config.name
        ),
        format!(
            "to destroy it anyway, edit `{}`: remove `protected: true` (or set it to `false`), then run `gitship destroy {}` again",
            location.file.display(),
            config.name
        ),
    )
    .into())
}

/// Connect and check that the cluster answers and the credentials work (the preflight's
/// cluster checks), before reading anything.
async fn reach(session: &Session, request: &DestroyRequest) -> Result<ClusterConnection> {
    let connection = session.connect_announced().await?;
    let checked =
        crate::ops::preflight::preflight(session, Some(&connection), &[], None, None).await;
    if checked.passed() {
        return Ok(connection);
    }
    let mut message = format!(
        "cannot destroy `{}`: its cluster is not reachable; nothing was changed",
        session.config.name
    );
    for check in checked.checks.iter().filter(|c| !c.ok) {
        message.push_str(&format!("\n{}: {}", check.check, check.detail));
    }
    let hints: Vec<&str> = checked
        .checks
        .iter()
        .filter_map(|c| c.hint.as_deref())
        .collect();
    let mut hint = if hints.is_empty() {
        "check the kubeconfig and the environment's `cluster` section".to_string()
    } else {
        hints.join("; ")
    };
    if request.cluster_from_terraform {
        hint.push_str(&format!(
            "; if the cluster is gone for good, `gitship destroy {} --skip-kubernetes` destroys only its Terraform resources",
            session.config.name
        ));
    }
    Err(UserError::new(message, hint).into())
}

fn options(request: &DestroyRequest) -> DestroyOptions {
    DestroyOptions {
        timeout: request.timeout,
        keep_namespace: request.keep_namespace,
        lock: LockOptions {
            timeout: request.lock_timeout,
            lease_duration: request.lock_lease,
        },
        who: gitship_foundation::ci::who(),
        retry: RetryPolicy::default(),
    }
}

/// The Terraform driver, `None` without a Terraform layer or with `--keep-terraform`.
async fn terraform_driver(
    session: &Session,
    request: &DestroyRequest,
) -> Result<Option<Terraform>> {
    if request.keep_terraform {
        return Ok(None);
    }
    match session.terraform_settings() {
        None => Ok(None),
        Some(settings) => Ok(Some(session.terraform_with_progress(settings).await?)),
    }
}

/// `terraform plan -destroy`, saved to apply after the confirmation.
async fn plan_terraform(driver: Option<&Terraform>) -> Result<TerraformPlan> {
    let Some(driver) = driver else {
        return Ok(TerraformPlan::None);
    };
    let planfile = destroy_planfile(driver);
    let summary = driver
        .plan(PlanMode::Destroy, &planfile)
        .await
        .map_err(user_error)?;
    Ok(TerraformPlan::Destroy(summary))
}

fn destroy_planfile(driver: &Terraform) -> PathBuf {
    driver.settings().data_dir.join("gitship-destroy.tfplan")
}

/// The plan for people: each step, the objects in their order, the namespace, Terraform's plan.
pub fn render_plan(plan: &DestroyPlan) -> String {
    use std::fmt::Write as _;
    let mut text = format!("Destroy plan for `{}`:\n", plan.environment);
    let order: Vec<&str> = plan.steps.iter().map(|s| s.as_str()).collect();
    let _ = writeln!(text, "  steps: {}", order.join(" -> "));
    let kubernetes = &plan.kubernetes;
    if !kubernetes.namespace.exists {
        let _ = writeln!(
            text,
            "  namespace `{}` is not there: nothing of the environment is left in the cluster",
            kubernetes.namespace.name
        );
    } else if kubernetes.namespace.terminating {
        let _ = writeln!(
            text,
            "  namespace `{}` is being deleted already: destroy waits until it is gone",
            kubernetes.namespace.name
        );
    } else if !kubernetes.inventory_found {
        text.push_str("  no inventory: no object to delete\n");
    }
    if !kubernetes.objects.is_empty() {
        let _ = writeln!(
            text,
            "  objects, in the order they are deleted ({} to delete):",
            kubernetes.to_delete()
        );
    }
    for object in &kubernetes.objects {
        let _ = writeln!(text, "    {}", object_line(object));
    }
    if kubernetes.namespace.exists && !kubernetes.namespace.terminating {
        let verb = if kubernetes.namespace.delete {
            "delete"
        } else {
            "keep"
        };
        let _ = writeln!(
            text,
            "  namespace `{}`: {verb} ({})",
            kubernetes.namespace.name, kubernetes.namespace.reason
        );
    }
    for record in &kubernetes.records {
        let _ = writeln!(text, "  record: delete {record}");
    }
    match &plan.terraform {
        TerraformPlan::None => text.push_str("  Terraform: none for this environment\n"),
        TerraformPlan::Kept => text.push_str("  Terraform: kept (`--keep-terraform`)\n"),
        TerraformPlan::Destroy(summary) => {
            for line in summary.render_human().lines() {
                let _ = writeln!(text, "  {line}");
            }
        }
    }
    text
}

/// `delete Deployment blog/web (wave 1)`, or why it stays.
fn object_line(object: &kube_destroy::PlannedObject) -> String {
    use gitship_kube::prune::PruneDecision;
    let wave = if object.wave == 0 {
        String::new()
    } else {
        format!(" (wave {})", object.wave)
    };
    let id = &object.id;
    match &object.decision {
        PruneDecision::Delete if object.protected_kind => {
            format!("delete {id}{wave} (a deploy's prune keeps this kind; destroy deletes it)")
        }
        PruneDecision::Delete => format!("delete {id}{wave}"),
        PruneDecision::Gone => format!("gone already: {id}"),
        other => format!("keep {id}: {}", why_kept(other)),
    }
}

/// Why destroy leaves an object (its decision is not to delete it).
fn why_kept(decision: &gitship_kube::prune::PruneDecision) -> String {
    use gitship_kube::prune::PruneDecision;
    match decision {
        PruneDecision::Delete | PruneDecision::Gone => String::new(),
        PruneDecision::KeepAnnotated => "annotated `gitship.dev/prune: \"false\"`".into(),
        PruneDecision::KeepProtected => "protected kind".into(),
        PruneDecision::NotOwned(owner) if owner.is_empty() => {
            "not marked as this environment's".into()
        }
        PruneDecision::NotOwned(owner) => format!("owned by `{owner}`"),
        PruneDecision::OutOfScope(why) => why.clone(),
        PruneDecision::Forbidden(message) => {
            format!("the server refused to read it ({message})")
        }
    }
}

/// A destroy under way.
struct Run<'a> {
    session: &'a Session,
    /// `None`: the cluster comes from Terraform, whose outputs no longer name one (destroyed by
    /// an earlier run, or never made); every Kubernetes step is then already done.
    connection: Option<&'a ClusterConnection>,
    options: DestroyOptions,
    driver: Option<Terraform>,
    lock: Option<DeployLock>,
    report: DestroyReport,
    /// `--skip-kubernetes`: every step but Terraform is skipped.
    skip_kubernetes: bool,
}

impl Run<'_> {
    /// The cluster's client; only steps that found the namespace there ask for it.
    fn client(&self) -> Result<&kube::Client> {
        self.connection
            .map(|connection| &connection.client)
            .ok_or_else(|| anyhow::anyhow!("no cluster to reach: its Terraform outputs name none"))
    }

    async fn all_steps(&mut self) -> Result<()> {
        for step in self.report.plan.steps.clone() {
            if gitship_foundation::process::is_interrupted() {
                return Err(user_error(gitship_kube::KubeError::Interrupted));
            }
            self.session
                .printer
                .status(&format!("destroy: step {}", step.as_str()));
            let (outcome, detail) = match step {
                DestroyStep::Terraform => self.terraform().await?,
                _ if self.skip_kubernetes => ("skipped", "`--skip-kubernetes`".to_string()),
                DestroyStep::Lock => self.lock().await?,
                DestroyStep::Prune => self.prune().await?,
                DestroyStep::Records => self.records().await?,
                DestroyStep::Namespace => self.namespace().await?,
                DestroyStep::Unlock => self.unlock().await?,
            };
            self.session
                .printer
                .status(&format!("destroy: {} {outcome}: {detail}", step.as_str()));
            self.report.steps.push(StepOutcome {
                step,
                outcome: outcome.to_string(),
                detail,
            });
        }
        Ok(())
    }

    fn namespace_exists(&self) -> bool {
        self.report.plan.kubernetes.namespace.exists
    }

    /// The namespace exists and is not being deleted: the lock and the records can be there.
    fn namespace_usable(&self) -> bool {
        let namespace = &self.report.plan.kubernetes.namespace;
        namespace.exists && !namespace.terminating
    }

    /// Why a step has nothing to do when the namespace is gone or going.
    fn namespace_gone(&self) -> &'static str {
        if self.namespace_exists() {
            "the namespace is being deleted already"
        } else {
            "the namespace is gone"
        }
    }

    async fn lock(&mut self) -> Result<(&'static str, String)> {
        if !self.namespace_usable() {
            return Ok((
                "already_done",
                format!("{}: no lock to take", self.namespace_gone()),
            ));
        }
        let environment = self.session.environment();
        let lock = kube_destroy::lock(
            self.client()?,
            &environment,
            &self.options,
            &self.session.printer,
        )
        .await
        .map_err(user_error)?;
        self.lock = Some(lock);
        // A namespace this destroy keeps is not this environment's to delete any more: a re-run
        // (which no longer has the inventory that said why) must keep it too.
        let namespace = &self.report.plan.kubernetes.namespace;
        if !namespace.delete {
            kube_destroy::disown_namespace(
                self.client()?,
                &namespace.name,
                &environment.name,
                &self.options.retry,
            )
            .await
            .map_err(user_error)?;
        }
        events::record(
            self.client()?,
            &environment,
            &self.options.who,
            EventType::Normal,
            "DestroyStarted",
            &format!(
                "`{}` is destroying environment `{}`",
                self.options.who, environment.name
            ),
        )
        .await;
        Ok((
            "done",
            format!("holding the lock of `{}`", environment.name),
        ))
    }

    async fn prune(&mut self) -> Result<(&'static str, String)> {
        let Some(lock) = &self.lock else {
            return Ok((
                "already_done",
                format!("{}: no object left", self.namespace_gone()),
            ));
        };
        let environment = self.session.environment();
        let printer = self.session.printer.clone();
        let removed =
            kube_destroy::prune(self.client()?, &environment, &self.options, lock, |done| {
                printer.status(&removed_line(done))
            })
            .await;
        let removed = removed.map_err(user_error)?;
        let count = |removal: Removal| removed.iter().filter(|r| r.removal == removal).count();
        let detail = format!(
            "{} deleted, {} already gone, {} kept",
            count(Removal::Deleted),
            count(Removal::AlreadyGone),
            count(Removal::Kept)
        );
        let outcome = if count(Removal::Deleted) == 0 && !removed.is_empty() {
            "already_done"
        } else {
            "done"
        };
        self.report.objects = removed;
        Ok((outcome, detail))
    }

    async fn terraform(&mut self) -> Result<(&'static str, String)> {
        let Some(driver) = &self.driver else {
            let why = match self.report.plan.terraform {
                TerraformPlan::Kept => "kept (`--keep-terraform`)",
                _ => "no Terraform layer",
            };
            return Ok(("skipped", why.into()));
        };
        let TerraformPlan::Destroy(summary) = &self.report.plan.terraform else {
            return Ok(("skipped", "no Terraform layer".into()));
        };
        let (outcome, mut detail) = if summary.has_changes {
            driver.apply(&summary.planfile).await.map_err(user_error)?;
            let _ = gitship_foundation::private_file::remove(&summary.planfile);
            ("done", format!("{} destroyed", summary.counts.destroy))
        } else {
            let _ = gitship_foundation::private_file::remove(&summary.planfile);
            ("already_done", "the state holds no resource".to_string())
        };
        // A preview's workspace is its own: it goes too, leaving no state behind. A committed
        // environment keeps its (now empty) workspace, which its next deploy uses.
        if self.session.preview.is_some() && driver.delete_workspace().await.map_err(user_error)? {
            let workspace = driver.settings().workspace.as_deref().unwrap_or_default();
            detail.push_str(&format!("; workspace `{workspace}` deleted"));
        }
        Ok((outcome, detail))
    }

    async fn records(&mut self) -> Result<(&'static str, String)> {
        if !self.namespace_usable() {
            return Ok((
                "already_done",
                format!("{}: no record left", self.namespace_gone()),
            ));
        }
        let environment = self.session.environment();
        let records =
            kube_destroy::delete_records(self.client()?, &environment, &self.options.retry)
                .await
                .map_err(user_error)?;
        let deleted: Vec<&str> = records
            .iter()
            .filter(|record| record.removal == Removal::Deleted)
            .map(|record| record.name.as_str())
            .collect();
        let outcome = if deleted.is_empty() {
            "already_done"
        } else {
            "done"
        };
        let detail = if deleted.is_empty() {
            "none was left".to_string()
        } else {
            format!("deleted {}", deleted.join(", "))
        };
        self.report.records = records;
        Ok((outcome, detail))
    }

    async fn namespace(&mut self) -> Result<(&'static str, String)> {
        let plan = self.report.plan.kubernetes.namespace.clone();
        if !plan.exists {
            return Ok(("already_done", format!("namespace `{}` is gone", plan.name)));
        }
        if !plan.delete {
            return Ok((
                "skipped",
                format!("namespace `{}` {}", plan.name, plan.reason),
            ));
        }
        let client = self.client()?.clone();
        let removal = if plan.terminating {
            Removal::AlreadyGone
        } else {
            kube_destroy::delete_namespace(&client, &plan.name, &self.options.retry)
                .await
                .map_err(user_error)?
        };
        // The Lease goes with the namespace: stop renewing it before the wait.
        self.unlock().await?;
        kube_destroy::wait_namespace_gone(&client, &plan.name, &self.options)
            .await
            .map_err(|e| {
                user_error(kube_destroy::of_environment(e, &self.session.environment()))
            })?;
        Ok(match removal {
            Removal::AlreadyGone => (
                "already_done",
                format!(
                    "namespace `{}` was being deleted already: it is gone",
                    plan.name
                ),
            ),
            _ => (
                "done",
                format!("deleted namespace `{}` (the lock went with it)", plan.name),
            ),
        })
    }

    async fn unlock(&mut self) -> Result<(&'static str, String)> {
        let Some(lock) = self.lock.take() else {
            let namespace = &self.report.plan.kubernetes.namespace;
            if namespace.delete
                && self
                    .report
                    .steps
                    .iter()
                    .any(|s| s.step == DestroyStep::Namespace)
            {
                return Ok(("done", "the lock went with the namespace".into()));
            }
            return Ok(("already_done", "no lock held".into()));
        };
        lock.release(&self.options.retry)
            .await
            .map_err(user_error)?;
        Ok(("done", "released the lock".into()))
    }

    /// Release the lock (on every path), record the outcome (Event, local record, sandbox).
    async fn finish(mut self, result: Result<()>) -> Result<DestroyReport> {
        if let Some(lock) = self.lock.take() {
            let _ = lock.release(&self.options.retry).await;
        }
        // The saved destroy plan holds the variables: never left behind, whatever happened.
        if let TerraformPlan::Destroy(summary) = &self.report.plan.terraform {
            let _ = gitship_foundation::private_file::remove(&summary.planfile);
        }
        self.report.finished = Utc::now();
        if let Err(error) = &result {
            self.report.error = Some(gitship_foundation::diagnostics::render(error));
        }
        self.event(result.is_ok()).await;
        if let Err(error) = write_local_record(self.session, &self.report) {
            self.session.printer.warn(&format!(
                "the local record of this destroy was not written: {}",
                gitship_foundation::diagnostics::render(&error)
            ));
        }
        if let Some(connection) = self.connection {
            connection.save_sandbox()?;
        }
        result.map(|()| self.report)
    }

    /// `Destroyed` (or `DestroyFailed`) about the namespace: stored in `default` when the
    /// namespace is to go (an Event in it would go with it), else in the namespace.
    async fn event(&self, succeeded: bool) {
        // No namespace, or a cluster that went with `terraform destroy`: nowhere to say it.
        let cluster_gone = self.report.plan.steps.last() == Some(&DestroyStep::Terraform)
            && self
                .report
                .steps
                .iter()
                .any(|s| s.step == DestroyStep::Terraform);
        if !self.namespace_exists() || cluster_gone {
            return;
        }
        let Ok(client) = self.client() else {
            return;
        };
        let environment = self.session.environment();
        // An Event in a namespace that goes (or is going: a failed run may have asked) would
        // go with it, or be refused.
        let gone = self.report.plan.kubernetes.namespace.delete;
        let stored_in = if gone {
            "default"
        } else {
            environment.namespace.as_str()
        };
        let (kind, reason, message) = if succeeded {
            (
                EventType::Normal,
                "Destroyed",
                format!(
                    "`{}` destroyed environment `{}`",
                    self.options.who, environment.name
                ),
            )
        } else {
            (
                EventType::Warning,
                "DestroyFailed",
                format!(
                    "`{}` could not destroy environment `{}`: {}",
                    self.options.who,
                    environment.name,
                    self.report.error.as_deref().unwrap_or("")
                ),
            )
        };
        events::record_on_namespace(
            client,
            &environment,
            stored_in,
            &self.options.who,
            kind,
            reason,
            &message,
        )
        .await;
    }
}

/// `deleted Deployment blog/web`, `already gone ...`, `kept ...: why`.
fn removed_line(done: &kube_destroy::RemovedObject) -> String {
    match done.removal {
        Removal::Deleted => format!("deleted {}", done.id),
        Removal::AlreadyGone => format!("already gone: {}", done.id),
        Removal::Kept => format!("kept {}: {}", done.id, why_kept(&done.decision)),
    }
}

/// Append the report as one JSON line to `.gitship/destroy/<env>.jsonl` of the repository.
fn write_local_record(session: &Session, report: &DestroyReport) -> Result<()> {
    let root = &session.user_repo().root;
    let dir = root.join(".gitship").join("destroy");
    gitship_foundation::private_file::create_dir_in(root, &dir)?;
    let mut line = serde_json::to_string(report).context("cannot encode the destroy record")?;
    line.push('\n');
    let file = dir.join(format!("{}.jsonl", report.environment));
    gitship_foundation::private_file::append(&file, line.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitship_foundation::model::ObjectId;
    use gitship_kube::destroy::{NamespacePlan, PlannedObject};
    use gitship_kube::prune::PruneDecision;

    #[test]
    fn kubernetes_steps_come_before_terraform_when_the_cluster_comes_from_it() {
        use DestroyStep::*;
        assert_eq!(
            steps(false),
            vec![Lock, Prune, Terraform, Records, Namespace, Unlock]
        );
        let from_terraform = steps(true);
        assert_eq!(from_terraform.last(), Some(&Terraform));
        let terraform = from_terraform.iter().position(|s| *s == Terraform);
        for step in [Lock, Prune, Records, Namespace, Unlock] {
            assert!(
                from_terraform.iter().position(|s| *s == step) < terraform,
                "{step:?}"
            );
        }
        // Both orders: the lock first, the objects before the records that list them.
        for order in [steps(false), steps(true)] {
            assert_eq!(order.first(), Some(&Lock));
            let at = |step| order.iter().position(|s| *s == step);
            assert!(at(Prune) < at(Records) && at(Records) < at(Namespace));
        }
    }

    fn object(kind: &str, name: &str, decision: PruneDecision, wave: i64) -> PlannedObject {
        PlannedObject {
            id: ObjectId {
                group: String::new(),
                kind: kind.into(),
                namespace: Some("blog".into()),
                name: name.into(),
            },
            api_version: "v1".into(),
            wave,
            decision,
            protected_kind: kind == "PersistentVolumeClaim",
            finalizers: Vec::new(),
        }
    }

    #[test]
    fn the_plan_names_each_object_in_order_the_namespace_and_terraform() {
        let plan = DestroyPlan {
            environment: "production".into(),
            steps: steps(false),
            kubernetes: KubePlan {
                inventory_found: true,
                restored: false,
                objects: vec![
                    object("ConfigMap", "late", PruneDecision::Delete, 2),
                    object("PersistentVolumeClaim", "data", PruneDecision::Delete, 0),
                    object("ConfigMap", "keep", PruneDecision::KeepAnnotated, 0),
                    object(
                        "Secret",
                        "theirs",
                        PruneDecision::NotOwned("staging".into()),
                        0,
                    ),
                ],
                namespace: NamespacePlan {
                    name: "blog".into(),
                    exists: true,
                    terminating: false,
                    delete: true,
                    reason: "created by gitship".into(),
                },
                records: vec!["ConfigMap blog/gitship-production".into()],
            },
            terraform: TerraformPlan::Kept,
        };
        let text = render_plan(&plan);
        let expected = "Destroy plan for `production`:
  steps: lock -> prune -> terraform -> records -> namespace -> unlock
  objects, in the order they are deleted (2 to delete):
    delete ConfigMap blog/late (wave 2)
    delete PersistentVolumeClaim blog/data (a deploy's prune keeps this kind; destroy deletes it)
    keep ConfigMap blog/keep: annotated `gitship.dev/prune: \"false\"`
    keep Secret blog/theirs: owned by `staging`
  namespace `blog`: delete (created by gitship)
  record: delete ConfigMap blog/gitship-production
  Terraform: kept (`--keep-terraform`)
";
        assert_eq!(text, expected);
        let mut gone = plan.clone();
        gone.kubernetes.namespace.exists = false;
        gone.kubernetes.objects.clear();
        gone.kubernetes.records.clear();
        gone.terraform = TerraformPlan::None;
        let text = render_plan(&gone);
        assert!(text.contains("namespace `blog` is not there"), "{text}");
        assert!(text.contains("Terraform: none"), "{text}");
    }
}
