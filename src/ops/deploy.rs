//! `deploy`: the one deploy pipeline, one transaction per environment.
//!
//! Every deploy runs the same steps, whatever it deploys ([`DeploySource`]: the work tree, or a
//! saved plan; later a Git revision):
//!
//! 0. when the environment's cluster or registry comes from Terraform outputs
//!    ([`EnvConfig::cluster_from_terraform`], `registry: ${terraform.NAME}`) and the work tree
//!    is deployed with Terraform applied: `terraform plan` and `apply` first, outside the
//!    environment's lock (the cluster that holds it may not exist yet; Terraform's own state
//!    lock serialises it), then steps 1 to 9 against what it made (`bootstrap_terraform`);
//! 1. connect to the cluster (or start the sandbox);
//! 2. the intent: what to build, which Terraform plan to apply, which manifests to apply. For
//!    the work tree, every static check runs here (build requests, Terraform's static checks,
//!    the manifests render with placeholder outputs); for a saved plan, it is refused as stale
//!    when Git or a live object moved since it was made;
//! 3. preflight ([`crate::ops::preflight`]): the cluster answers and accepts the credentials,
//!    the namespace can be read, the registry answers, Terraform's backend initialises. Nothing
//!    has changed when any of 1 to 3 fails (`--skip-preflight` skips 3);
//! 4. the environment's lock: its namespace is created when missing, and its Lease taken (or
//!    waited for up to `--lock-timeout`); it is renewed in the background and held through
//!    every later step, then released last. A pinned environment refuses another revision here,
//!    under the lock, so that a deploy that waited for a rollback's lock sees its pin;
//! 5. build and push the missing images, concurrently with `terraform plan`;
//! 6. `terraform apply` of exactly that plan, then its outputs;
//! 7. the final manifests (rendered with the real outputs and the image digests);
//! 8. the Kubernetes stage ([`gitship_kube::deploy::deploy_objects_locked`]: apply in stages,
//!    wait for health, stop if the lock was lost, prune, record the inventory);
//! 9. release the lock; the sandbox's state is saved when the deploy succeeded (kubesim also
//!    persists every change it accepts, as a real cluster keeps what was applied).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::image::{self, BuildOptions, BuildRequest, BuildResult, Registry};
use crate::ops::build::BuildInputs;
use crate::ops::plan::kubernetes_diff;
use crate::ops::preflight;
use crate::ops::session::{ClusterConnection, Session};
use crate::ops::validate::static_outputs;
use crate::plan::{ImageAction, saved};
use crate::render::UnknownOutputs;
use crate::repo::EnvConfig;
use crate::terraform::{self, PlanMode, Terraform};
use gitship_foundation::diagnostics::{UserError, user_error};
use gitship_foundation::model::{ImageRef, Manifest, Outputs};
use gitship_kube::deploy::{DeployOptions, EnvironmentLock};
/// What a deploy did, object by object, as the Kubernetes stage reports it.
pub use gitship_kube::deploy::{DeployReport, ObjectAction};
use gitship_kube::events::EventType;
use gitship_kube::inventory::{DeployedImage, RecordExtras, RecordSource, TerraformCounts};
use gitship_kube::lock::LockOptions;

/// What a deploy deploys.
#[derive(Debug, Clone, PartialEq)]
pub enum DeploySource {
    /// The repository as it is: build, plan and apply now.
    WorkTree,
    /// A plan saved by `gitship plan ENV --out FILE`: exactly what was reviewed, or nothing.
    SavedPlan(PathBuf),
    /// The work tree, planned now and compared with the plan reviewed on the pull request
    /// (`--reviewed`): applied as that fresh plan, said to be the reviewed one or how it differs.
    Reviewed(crate::ops::reviewed::ReviewedPlan),
    /// The manifests an earlier deploy applied, as stored for it (an exact rollback: no render,
    /// no Terraform, no build).
    Stored(Box<StoredRevision>),
}

/// The manifests a record's deploy applied ([`gitship_kube::revisions`]), and its images.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRevision {
    /// The key they are stored under (the record number that stored them).
    pub key: u64,
    pub manifests: Vec<Manifest>,
    pub images: Vec<DeployedImage>,
}

/// How far a deploy goes: a person's `gitship deploy` builds and applies everything
/// ([`DeployPolicy::default`]); the agent may only deploy images CI pushed, and may leave
/// Terraform to people.
#[derive(Debug, Clone, Default)]
pub struct DeployPolicy {
    pub images: ImagePolicy,
    pub terraform: TerraformPolicy,
    /// What started the deploy (its history record and Event say so).
    pub source: RecordSource,
    /// For a heal: what it puts back (for the record).
    pub healed: Vec<String>,
}

/// Whether a deploy builds the images it needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImagePolicy {
    /// Build and push the missing images.
    #[default]
    Build,
    /// Only deploy images already in the registry: a missing one stops the deploy before
    /// anything changes, with [`ImagesMissing`].
    RequireExisting,
}

/// What a deploy does with Terraform (`agent.terraform`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TerraformPolicy {
    /// Plan, then apply exactly that plan.
    #[default]
    Apply,
    /// Plan and report, apply nothing; the manifests render with the current state's outputs.
    Plan,
    /// Do not plan; the manifests render with the current state's outputs.
    Off,
}

/// The images a [`ImagePolicy::RequireExisting`] deploy needs are not all in the registry.
#[derive(Debug, thiserror::Error)]
#[error("waiting for images: {} not in the registry yet", missing.join(", "))]
pub struct ImagesMissing {
    /// `app (reference)` for each missing image.
    pub missing: Vec<String>,
}

/// What a deploy did.
#[derive(Debug)]
pub struct Deployed {
    pub report: DeployReport,
    /// The Terraform plan that was made and not applied ([`TerraformPolicy::Plan`]), when it has
    /// changes.
    pub terraform_pending: Option<terraform::PlanSummary>,
}

/// Version of [`DeployOutput`]'s JSON (`deploy -o json`).
pub const FORMAT_VERSION: u32 = 1;

/// `gitship deploy`'s report: what the Kubernetes stage did, with whether it ran on the sandbox
/// and whether it changed anything. Its JSON keeps the stage report's fields (`environment`,
/// `record_number`, `objects`, `summary`) at the top level.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeployOutput {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// True when deployed to the simulated cluster (`--sandbox`).
    pub sandbox: bool,
    /// False when every object was unchanged or kept.
    pub changed: bool,
    #[serde(flatten)]
    pub report: DeployReport,
}

impl DeployOutput {
    /// The report of `report`, deployed through `session`.
    pub fn new(session: &Session, report: DeployReport) -> Self {
        DeployOutput {
            format_version: FORMAT_VERSION,
            sandbox: session.sandbox,
            changed: !report
                .objects
                .iter()
                .all(|o| matches!(o.action, ObjectAction::Unchanged | ObjectAction::Kept)),
            report,
        }
    }
}

/// What a deploy is asked to do, every value resolved: the pipeline reads nothing else of its
/// caller. `commands/deploy.rs` builds it from the command line over
/// [`DeployRequest::for_environment`] (the one place where flags meet the config is there, in
/// the command layer); the agent and a rollback build it from the environment's config and what they
/// change of it, never from a made-up command line.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// How long each wave may take to become healthy (`--timeout`, `deploy.timeout`).
    pub timeout: Duration,
    /// How long to wait for the deploy lock (`--lock-timeout`, `deploy.lock_timeout`).
    pub lock_timeout: Duration,
    /// The deploy lock's Lease duration, renewed every third of it (`--lock-lease`).
    pub lock_lease: Duration,
    /// Prune what Git no longer declares (`--no-prune` turns it off).
    pub prune: bool,
    /// Prune although Git declares nothing (`--allow-empty`).
    pub allow_empty: bool,
    /// Also prune Namespaces, PVCs and CRDs (`--prune-protected`).
    pub prune_protected: bool,
    /// Skip the preflight (`--skip-preflight`).
    pub skip_preflight: bool,
    /// Deploy over a pin at another revision, or over a history that is gone (`--force`).
    pub force: bool,
    /// The revision as it was named (`--rev`), for the record.
    pub rev: Option<String>,
    pub build: BuildInputs,
    /// How far the deploy goes: build or not, Terraform, what its record says.
    pub policy: DeployPolicy,
}

impl DeployRequest {
    /// A deploy of `config`'s environment as its config says: its timeouts, prune on,
    /// everything built and applied ([`DeployPolicy::default`]).
    pub fn for_environment(config: &EnvConfig) -> DeployRequest {
        DeployRequest {
            timeout: config.deploy.timeout,
            lock_timeout: config.deploy.lock_timeout,
            lock_lease: LockOptions::default().lease_duration,
            prune: true,
            allow_empty: false,
            prune_protected: false,
            skip_preflight: false,
            force: false,
            rev: None,
            build: BuildInputs::default(),
            policy: DeployPolicy::default(),
        }
    }
}

/// Deploy `source` to the session's environment as `request` asks. See the module
/// documentation for the steps. `gitship deploy`, a rollback and the agent's syncs and heals
/// all come through here.
pub async fn deploy(
    session: &Session,
    source: &DeploySource,
    request: &DeployRequest,
) -> Result<Deployed> {
    let policy = &request.policy;
    let started = chrono::Utc::now();
    if session.sandbox {
        session.printer.status(&format!(
            "sandbox: deploying `{}` to a simulated cluster (state in `{}`); images are not built",
            session.config.name,
            session.sandbox_state_file().display()
        ));
    }
    check_revision_terraform(session, policy)?;
    check_allowed_revision(session)?;
    let bootstrapped = bootstrap_terraform(session, source, policy).await?;
    let connection = session.connect().await?;
    let mut intent = checked_intent(session, &connection, source, request, policy).await?;
    if let Some(applied) = bootstrapped {
        intent.terraform = applied;
    }
    // The lock spans every change: builds that push, Terraform, the Kubernetes stages.
    let mut options = record_options(session, request, policy, started);
    if let DeploySource::Stored(stored) = source {
        options.record.stored = Some(stored.key);
    }
    let lock = gitship_kube::deploy::lock_environment(
        &connection.client,
        &session.environment(),
        &intent.checked,
        &options,
        &session.printer,
    )
    .await
    .map_err(user_error)?;
    let result = async {
        check_pin_under_lock(session, &connection, request).await?;
        check_history_under_lock(session, &connection, request, &intent.checked).await?;
        locked(
            session,
            &connection,
            intent,
            request,
            policy,
            &options,
            &lock,
        )
        .await
    }
    .await;
    let released = lock.release(&options.retry).await.map_err(user_error);
    let deployed = result?;
    released?;
    connection.save_sandbox()?;
    record_event(session, &connection, policy, &deployed.report).await;
    Ok(deployed)
}

/// Step 0: for an environment whose cluster or registry comes from Terraform outputs, deployed
/// from the work tree with Terraform applied, plan and apply Terraform before anything
/// connects, and resolve the cluster and registry from the outputs applied; the step the deploy
/// then runs instead of its own Terraform ([`TerraformStep::Applied`]). `None` for every other
/// deploy (their order does not change; the values then come from the current outputs).
async fn bootstrap_terraform(
    session: &Session,
    source: &DeploySource,
    policy: &DeployPolicy,
) -> Result<Option<TerraformStep>> {
    if !crate::ops::cluster_source::needs_outputs(&session.config) {
        return Ok(None);
    }
    if let Some(outputs) = session.given_outputs()? {
        session.set_terraform_values(&outputs).await?;
        return Ok(None);
    }
    let settings = session.terraform_settings();
    let (DeploySource::WorkTree, TerraformPolicy::Apply, Some(settings)) =
        (source, policy.terraform, settings)
    else {
        return Ok(None);
    };
    let module = terraform::static_check::check_static(&settings).map_err(user_error)?;
    crate::ops::validate::check_output_references(&session.config, Some(&module))?;
    session.printer.status(&format!(
        "terraform: `{}` takes its cluster or registry from Terraform outputs: applying Terraform first",
        session.config.name
    ));
    let driver = session.terraform_with_progress(settings).await?;
    driver.init_if_needed().await.map_err(user_error)?;
    let step = TerraformStep::Plan(driver);
    let planned = plan_terraform(&step).await?;
    let (outputs, counts) = apply_terraform(session, &step, planned, true).await?;
    session.set_terraform_values(&outputs).await?;
    Ok(Some(TerraformStep::Applied { outputs, counts }))
}

/// The intent of `source`, with everything checked that can be without a change: the images
/// the policy requires, the preflight (unless skipped), and what the cluster can refuse (every
/// kind resolves, no Namespace Git declares belongs to another environment), all before any
/// build, push or Terraform apply.
async fn checked_intent(
    session: &Session,
    connection: &ClusterConnection,
    source: &DeploySource,
    request: &DeployRequest,
    policy: &DeployPolicy,
) -> Result<Intent> {
    let mut intent = match source {
        DeploySource::WorkTree => Intent::work_tree(session, request, policy).await?,
        DeploySource::SavedPlan(path) => Intent::saved_plan(session, connection, path).await?,
        DeploySource::Reviewed(reviewed) => {
            Intent::reviewed(session, connection, request, reviewed).await?
        }
        DeploySource::Stored(stored) => Intent::stored(stored),
    };
    if policy.images == ImagePolicy::RequireExisting {
        intent.require_existing_images().await?;
    }
    if request.skip_preflight {
        session
            .printer
            .warn("preflight skipped (`--skip-preflight`)");
    } else {
        let passed = preflight::require(
            session,
            connection,
            &intent.builds,
            intent.terraform.driver(),
            intent.checked.len(),
        )
        .await?;
        session
            .printer
            .status(&format!("preflight: {} checks passed", passed.checks.len()));
    }
    gitship_kube::diff::check_before_changes(
        &connection.client,
        &session.environment(),
        &intent.checked,
        &gitship_kube::retry::RetryPolicy::default(),
    )
    .await
    .map_err(user_error)?;
    Ok(intent)
}

/// The Kubernetes deploy options of this deploy, with what its record says (source, heals,
/// commit subject and author, start, CI run).
fn record_options(
    session: &Session,
    request: &DeployRequest,
    policy: &DeployPolicy,
    started: chrono::DateTime<chrono::Utc>,
) -> DeployOptions {
    let mut options = kube_options(&session.config, request, Some(session.git.sha.clone()));
    options.source = policy.source;
    options.healed = policy.healed.clone();
    let (subject, author) = crate::git::commit_info(&session.repo.root, &session.git.sha).unzip();
    options.record = RecordExtras {
        rev: request.rev.clone(),
        subject,
        author,
        started: Some(started),
        ci_url: gitship_foundation::ci::run_url(),
        ..RecordExtras::default()
    };
    options
}

/// A pinned environment takes only its pinned revision (a heal puts that one back), unless
/// `--force`, which warns that the pin stays. Read under the lock: a rollback that held it
/// before us has pinned its revision.
async fn check_pin_under_lock(
    session: &Session,
    connection: &ClusterConnection,
    request: &DeployRequest,
) -> Result<()> {
    let pin = crate::ops::pin::current(session, connection).await?;
    crate::ops::pin::check_deploy(
        pin.as_ref(),
        &session.git.sha,
        &session.config.name,
        request.force,
    )?;
    if let Some(pin) = pin.filter(|pin| pin.sha != session.git.sha) {
        session.printer.warn(&format!(
            "`{env}` is pinned at {}: deploying {} over it (`--force`); the pin stays, and the agent heals `{env}` back to it until `gitship resume {env}`",
            &pin.sha[..pin.sha.len().min(12)],
            &session.git.sha[..session.git.sha.len().min(12)],
            env = session.config.name
        ));
    }
    Ok(())
}

/// A deploy over an environment whose inventory and its copy are both gone, while objects it
/// deployed run, would start a new history as if nothing had run before: the old history, any
/// pin and what to prune are lost. Refused without `--force` (see ARCHITECTURE.md, "Rollback").
async fn check_history_under_lock(
    session: &Session,
    connection: &ClusterConnection,
    request: &DeployRequest,
    desired: &[Manifest],
) -> Result<()> {
    if request.force || session.inventory(connection).await?.is_some() {
        return Ok(());
    }
    let environment = session.environment();
    let owned = gitship_kube::diff::count_owned(
        &connection.client,
        &environment,
        desired,
        &gitship_kube::retry::RetryPolicy::default(),
    )
    .await
    .map_err(user_error)?;
    if owned == 0 {
        return Ok(());
    }
    Err(UserError::new(
        format!(
            "the inventory ConfigMap `{}` of `{}` and its copy `{}` are gone, although {owned} object(s) it deployed run: its history and any pin are lost, so this deploy cannot tell whether the environment was pinned, and objects removed from Git can no longer be pruned",
            gitship_kube::inventory::configmap_name(&environment.name),
            environment.name,
            gitship_kube::inventory::copy_name(&environment.name)
        ),
        format!(
            "if the environment should run this revision, deploy with `--force` (it starts a new history); otherwise restore the ConfigMaps first (`gitship status {}` shows what is known)",
            environment.name
        ),
    )
    .into())
}

/// `deploy.allowed_revisions`: the revision must be reachable from the branch the rule names.
fn check_allowed_revision(session: &Session) -> Result<()> {
    let Some(branch) = &session.config.deploy.reachable_from else {
        return Ok(());
    };
    let root = &session.state_repo.as_ref().unwrap_or(&session.repo).root;
    let sha = &session.git.sha;
    let allowed = crate::git::reachable_from(root, sha, branch).map_err(|error| {
        UserError::new(
            format!(
                "`deploy.allowed_revisions` of `{}` names `{branch}`: {error}",
                session.config.name
            ),
            format!("fetch it (`git fetch origin {branch}`) or fix the rule"),
        )
    })?;
    if !allowed {
        return Err(UserError::new(
            format!(
                "{} may not be deployed to `{}`: `deploy.allowed_revisions` allows only commits reachable from `origin/{branch}` ({})",
                &sha[..sha.len().min(12)],
                session.config.name,
                session.config.spans.location("deploy.allowed_revisions")
            ),
            format!("merge it into `{branch}` and fetch, then deploy the merged commit"),
        )
        .into());
    }
    Ok(())
}

/// A revision deploys with the work tree's Terraform module (its state lives there): it may
/// plan or apply only when that module is the revision's, file for file.
fn check_revision_terraform(session: &Session, policy: &DeployPolicy) -> Result<()> {
    let Some(state_repo) = &session.state_repo else {
        return Ok(());
    };
    if policy.terraform == TerraformPolicy::Off {
        return Ok(());
    }
    let Some(work_tree) = &state_repo.layout.terraform_dir else {
        return Ok(());
    };
    if session.revision_module_differs()? {
        return Err(UserError::new(
            format!(
                "the Terraform module at {} differs from the work tree's `{}`, where the state is",
                &session.git.sha[..session.git.sha.len().min(12)],
                state_repo.relative(work_tree).display()
            ),
            "check the revision out to apply its Terraform, or deploy images and Kubernetes only (`gitship rollback` without `--terraform`)",
        )
        .into());
    }
    Ok(())
}

/// The deploy's Event on the inventory (`Deployed` or `Healed`).
async fn record_event(
    session: &Session,
    connection: &ClusterConnection,
    policy: &DeployPolicy,
    report: &DeployReport,
) {
    let revision = match report.record_number {
        Some(number) => format!("{} (#{number})", crate::git::short_sha(&session.git.sha)),
        None => crate::git::short_sha(&session.git.sha).to_string(),
    };
    let who = gitship_foundation::ci::who();
    let (reason, message) = match policy.source {
        RecordSource::Heal => (
            "Healed",
            format!(
                "healed `{}` at {revision}: {}",
                session.config.name,
                policy.healed.join("; ")
            ),
        ),
        RecordSource::Rollback => (
            "RolledBack",
            format!(
                "`{who}` rolled `{}` back to {revision}: {}",
                session.config.name,
                report.summary_line()
            ),
        ),
        source => (
            "Deployed",
            format!(
                "`{who}` deployed {revision} to `{}` ({}): {}",
                session.config.name,
                source.as_str(),
                report.summary_line()
            ),
        ),
    };
    gitship_kube::events::record(
        &connection.client,
        &session.environment(),
        &gitship_foundation::ci::who(),
        EventType::Normal,
        reason,
        &message,
    )
    .await;
}

/// Steps 3 to 6, under the environment's lock.
async fn locked(
    session: &Session,
    connection: &ClusterConnection,
    intent: Intent,
    request: &DeployRequest,
    policy: &DeployPolicy,
    options: &DeployOptions,
    lock: &EnvironmentLock,
) -> Result<Deployed> {
    let (built, planned) = tokio::join!(
        build_images(session, &intent.builds, request),
        plan_terraform(&intent.terraform),
    );
    let (built, planned) = (built?, planned?);
    let (outputs, applied, terraform_pending) = if policy.terraform == TerraformPolicy::Apply {
        let (outputs, applied) =
            apply_terraform(session, &intent.terraform, planned, intent.needs_outputs).await?;
        (outputs, applied, None)
    } else {
        let pending = planned.filter(|plan| plan.has_changes);
        if let Some(plan) = &pending {
            session.printer.warn(&format!(
                "terraform: not applied (`agent.terraform: plan`): {} to add, {} to change, {} to replace, {} to destroy",
                plan.counts.add, plan.counts.change, plan.counts.replace, plan.counts.destroy
            ));
        }
        (state_outputs_of(&intent.terraform).await?, None, pending)
    };
    let (manifests, images) = intent.manifests.finish(session, outputs, &built)?;
    let mut options = options.clone();
    options.record.terraform = applied;
    options.record.images = images;
    let report = kubernetes_stage(session, connection, manifests, &options, lock).await?;
    Ok(Deployed {
        report,
        terraform_pending,
    })
}

/// The current state's outputs, for a deploy that does not apply Terraform.
async fn state_outputs_of(step: &TerraformStep) -> Result<Outputs> {
    match step {
        TerraformStep::None => Ok(Outputs::new()),
        TerraformStep::Given(outputs) | TerraformStep::Applied { outputs, .. } => {
            Ok(outputs.clone())
        }
        TerraformStep::Plan(driver)
        | TerraformStep::Saved { driver, .. }
        | TerraformStep::Outputs(driver) => {
            driver.init_if_needed().await.map_err(user_error)?;
            driver.outputs().await.map_err(user_error)
        }
    }
}

/// What one deploy will do, known before anything changes.
struct Intent {
    /// The images to build and push.
    builds: Vec<BuildRequest>,
    /// The manifests as checked before any change (placeholder outputs for the work tree).
    checked: Vec<Manifest>,
    terraform: TerraformStep,
    /// The manifests need Terraform's outputs after apply.
    needs_outputs: bool,
    manifests: ManifestSource,
}

/// The Terraform part of a deploy.
enum TerraformStep {
    /// No Terraform layer.
    None,
    /// `--terraform-outputs FILE`: Terraform is not run.
    Given(Outputs),
    /// Plan now, then apply that plan.
    Plan(Terraform),
    /// Apply the saved plan's planfile.
    Saved {
        driver: Terraform,
        planfile: PathBuf,
        /// What the saved plan's Terraform part changes.
        counts: TerraformCounts,
    },
    /// Neither plan nor apply: the current state's outputs ([`TerraformPolicy::Off`]).
    Outputs(Terraform),
    /// Planned and applied before the deploy connected (step 0: the cluster or registry comes
    /// from Terraform): its outputs, and what it applied.
    Applied {
        outputs: Outputs,
        counts: Option<TerraformCounts>,
    },
}

/// Where the applied manifests come from.
enum ManifestSource {
    /// Render the work tree with the outputs after apply and the images just built or found.
    Render { images: BTreeMap<String, ImageRef> },
    /// The saved plan's manifests, the images it still had to build pinned by the digests
    /// pushed ([`crate::render::digests`]); rendered again (same commit, same images) only when
    /// they hold outputs that were unknown at plan time.
    Saved {
        manifests: Vec<Manifest>,
        images: BTreeMap<String, ImageRef>,
    },
    /// An earlier deploy's manifests, applied as they were.
    Stored(Box<StoredRevision>),
}

impl TerraformStep {
    /// The driver this step runs, if any.
    fn driver(&self) -> Option<&Terraform> {
        match self {
            TerraformStep::Plan(driver)
            | TerraformStep::Saved { driver, .. }
            | TerraformStep::Outputs(driver) => Some(driver),
            TerraformStep::None | TerraformStep::Given(_) | TerraformStep::Applied { .. } => None,
        }
    }
}

impl Intent {
    /// Under [`ImagePolicy::RequireExisting`]: every image is in the registry (its digest pins
    /// the manifests), or nothing happens and the error says which are missing.
    async fn require_existing_images(&mut self) -> Result<()> {
        if self.builds.is_empty() {
            return Ok(());
        }
        let planned = image::plan_images(&self.builds, &Registry::new())
            .await
            .map_err(user_error)?;
        let mut missing = Vec::new();
        for image in planned {
            match image.action {
                image::PlannedAction::Build { .. } => {
                    missing.push(format!("`{}` ({})", image.app, image.reference));
                }
                image::PlannedAction::Reuse { digest } => {
                    if let ManifestSource::Render { images } | ManifestSource::Saved { images, .. } =
                        &mut self.manifests
                        && let Some(reference) = images.get_mut(&image.app)
                    {
                        reference.digest = Some(digest);
                    }
                }
            }
        }
        if !missing.is_empty() {
            return Err(ImagesMissing { missing }.into());
        }
        self.builds.clear();
        Ok(())
    }

    /// The work tree's intent, after every static check.
    async fn work_tree(
        session: &Session,
        request: &DeployRequest,
        policy: &DeployPolicy,
    ) -> Result<Intent> {
        if !session.sandbox {
            image::require_clean_tree(&session.repo, &session.config, request.build.allow_dirty)
                .map_err(user_error)?;
        }
        // The one content-tag computation of this deploy: what it builds, checks, renders and
        // records are these references.
        let images = session.image_refs()?;
        let builds = if session.sandbox {
            Vec::new()
        } else {
            session.build_requests(images.values())
        };
        let given = session.given_outputs()?;
        let terraform_settings = match given {
            Some(_) => None,
            None => session.terraform_settings(),
        };
        let module = terraform_settings
            .as_ref()
            .map(terraform::static_check::check_static)
            .transpose()
            .map_err(user_error)?;
        // The manifests must render before anything changes: with the given outputs, or with
        // placeholders for the module's outputs.
        let (check_outputs, unknown) = match &given {
            Some(outputs) => (outputs.clone(), UnknownOutputs::Error),
            None => (static_outputs(module.as_ref()), UnknownOutputs::Placeholder),
        };
        let checked = session.render(images.clone(), check_outputs, unknown)?;
        if !request.allow_empty {
            crate::ops::render::require_objects(&session.repo, &session.config, checked.len())?;
        }
        let builds = only_used(session, builds, &checked, &images);
        if session.sandbox {
            for image in images.values() {
                session.printer.status(&format!(
                    "sandbox: image `{}` not built: {}",
                    image.app,
                    image.reference()
                ));
            }
        }
        let terraform = match (given, terraform_settings) {
            (Some(outputs), _) => TerraformStep::Given(outputs),
            (None, Some(settings)) => {
                let driver = session.terraform_with_progress(settings).await?;
                match policy.terraform {
                    TerraformPolicy::Off => TerraformStep::Outputs(driver),
                    TerraformPolicy::Apply | TerraformPolicy::Plan => TerraformStep::Plan(driver),
                }
            }
            (None, None) => TerraformStep::None,
        };
        Ok(Intent {
            builds,
            checked,
            terraform,
            needs_outputs: true,
            manifests: ManifestSource::Render { images },
        })
    }

    /// A stored revision's intent: its manifests as they were applied, nothing to build and no
    /// Terraform (its images are referenced by the digests they had).
    fn stored(stored: &StoredRevision) -> Intent {
        Intent {
            builds: Vec::new(),
            checked: stored.manifests.clone(),
            terraform: TerraformStep::None,
            needs_outputs: false,
            manifests: ManifestSource::Stored(Box::new(stored.clone())),
        }
    }

    /// A saved plan's intent, or the reason it is stale.
    async fn saved_plan(
        session: &Session,
        connection: &ClusterConnection,
        path: &Path,
    ) -> Result<Intent> {
        let plan = saved::load(path)?;
        check_saved_plan(session, &plan, path)?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        Intent::of_saved(
            session,
            connection,
            plan,
            dir,
            &|reason: saved::StaleReason| saved::stale(path, reason),
        )
        .await
    }

    /// The work tree's plan made now, compared with the reviewed one
    /// ([`crate::ops::reviewed`]), as a saved plan's intent.
    async fn reviewed(
        session: &Session,
        connection: &ClusterConnection,
        request: &DeployRequest,
        reviewed: &crate::ops::reviewed::ReviewedPlan,
    ) -> Result<Intent> {
        if !session.sandbox {
            image::require_clean_tree(&session.repo, &session.config, request.build.allow_dirty)
                .map_err(user_error)?;
        }
        let fresh = crate::ops::reviewed::fresh_plan(session, reviewed).await?;
        Intent::of_saved(
            session,
            connection,
            fresh.saved,
            &fresh.dir,
            &crate::ops::reviewed::stale,
        )
        .await
    }

    /// The intent of `plan`, its Terraform planfile in `dir`: stale (`stale` says why) when a
    /// live object moved since it was made.
    async fn of_saved(
        session: &Session,
        connection: &ClusterConnection,
        plan: saved::SavedPlan,
        dir: &Path,
        stale: &dyn Fn(saved::StaleReason) -> anyhow::Error,
    ) -> Result<Intent> {
        let environment_diff = kubernetes_diff(connection, session, &plan.manifests).await?;
        let current = environment_diff
            .objects
            .iter()
            .map(|(id, object_diff)| {
                (
                    id.clone(),
                    object_diff.live.as_ref().and_then(saved::resource_version),
                )
            })
            .collect();
        saved::check_live(&plan, &current).map_err(stale)?;

        let terraform = match &plan.terraform_planfile {
            None => TerraformStep::None,
            Some(name) => {
                let planfile = dir.join(name);
                let Some(driver) = session.terraform().await? else {
                    return Err(UserError::new(
                        "the saved plan has a Terraform plan but the repository has no Terraform layer",
                        "run `gitship plan --out` again",
                    )
                    .into());
                };
                let counts = plan.plan.terraform_counts();
                let counts = TerraformCounts {
                    add: counts.create,
                    change: counts.update,
                    replace: counts.replace,
                    destroy: counts.delete,
                };
                TerraformStep::Saved {
                    driver,
                    planfile,
                    counts,
                }
            }
        };
        let missing: Vec<&ImageRef> =
            plan.images
                .iter()
                .filter(|image| {
                    plan.plan.images.iter().any(|planned| {
                        planned.app == image.app && planned.action == ImageAction::Build
                    })
                })
                .collect();
        let builds = if session.sandbox {
            Vec::new()
        } else {
            session.build_requests(missing)
        };
        let needs_outputs = saved::mentions_unknown(&plan.manifests);
        let images = plan
            .images
            .iter()
            .map(|image| (image.app.clone(), image.clone()))
            .collect();
        Ok(Intent {
            builds,
            checked: plan.manifests.clone(),
            terraform,
            needs_outputs,
            manifests: ManifestSource::Saved {
                manifests: plan.manifests,
                images,
            },
        })
    }
}

/// A saved plan is for this environment, this sandbox setting and this Git commit.
fn check_saved_plan(session: &Session, plan: &saved::SavedPlan, path: &Path) -> Result<()> {
    if plan.environment != session.config.name {
        return Err(UserError::new(
            format!(
                "the saved plan `{}` is for environment `{}`, not `{}`",
                path.display(),
                plan.environment,
                session.config.name
            ),
            format!(
                "deploy it with `gitship deploy {} --plan ...`",
                plan.environment
            ),
        )
        .into());
    }
    if plan.sandbox != session.sandbox {
        return Err(UserError::new(
            format!(
                "the saved plan `{}` was made {} the sandbox",
                path.display(),
                if plan.sandbox { "in" } else { "outside" }
            ),
            "deploy it with the same `--sandbox` setting as the plan",
        )
        .into());
    }
    let tree = crate::git::tree_of(&session.repo.root, &session.git.sha);
    let current = saved::Current {
        sha: &session.git.sha,
        tree: tree.as_deref(),
        dirty: session.git.dirty,
    };
    saved::check_git(plan, current).map_err(|reason| {
        match plan.plan.pin.as_ref().filter(|pin| pin.sha == plan.git.sha) {
            // The plan of a pinned environment is its pinned revision's: deployed as that one.
            Some(pin) => UserError::new(
                format!(
                    "the saved plan `{}` is the plan of `{}`'s pinned revision {}, not of {}",
                    path.display(),
                    plan.environment,
                    crate::git::short_sha(&pin.sha),
                    crate::git::short_sha(&session.git.sha)
                ),
                format!(
                    "deploy it as that revision: `gitship deploy {} --rev {} --plan {}`",
                    plan.environment,
                    pin.sha,
                    path.display()
                ),
            )
            .into(),
            None => saved::stale(path, reason),
        }
    })
}

/// The references of `images`, as the deploy record keeps them.
fn deployed_images(images: &BTreeMap<String, ImageRef>) -> Vec<DeployedImage> {
    images
        .values()
        .map(|image| DeployedImage {
            app: image.app.clone(),
            reference: image.reference(),
        })
        .collect()
}

impl ManifestSource {
    /// The manifests to apply, with the outputs after apply and the images as built; and the
    /// image references they are pinned to.
    fn finish(
        self,
        session: &Session,
        outputs: Outputs,
        built: &[BuildResult],
    ) -> Result<(Vec<Manifest>, Vec<DeployedImage>)> {
        match self {
            ManifestSource::Render { mut images } => {
                pin_built(&mut images, built);
                let manifests = session.render(images.clone(), outputs, UnknownOutputs::Error)?;
                // The record names the images the objects run, not the apps left unbuilt.
                let used = crate::render::used_images::used_apps(&manifests, &images);
                images.retain(|app, _| used.contains(app));
                Ok((manifests, deployed_images(&images)))
            }
            ManifestSource::Stored(stored) => Ok((stored.manifests, stored.images)),
            ManifestSource::Saved {
                mut manifests,
                mut images,
            } => {
                // The images the plan still had to build are pinned by the digests just pushed,
                // as a deploy of the work tree renders them.
                pin_built(&mut images, built);
                let deployed = deployed_images(&images);
                if !saved::mentions_unknown(&manifests) {
                    crate::render::digests::pin_digests(&mut manifests, &images);
                    return Ok((manifests, deployed));
                }
                // Outputs were unknown at plan time: render the same commit with the real ones.
                let manifests = session.render(images, outputs, UnknownOutputs::Placeholder)?;
                if saved::mentions_unknown(&manifests) {
                    return Err(UserError::new(
                        "a Terraform output the manifests use still has no value after apply",
                        "check the module's outputs",
                    )
                    .into());
                }
                Ok((manifests, deployed))
            }
        }
    }
}

/// Give each image of `images` that was just `built` (same app, same tag) its pushed digest.
fn pin_built(images: &mut BTreeMap<String, ImageRef>, built: &[BuildResult]) {
    for image in built {
        if let Some(reference) = images.get_mut(&image.app)
            && reference.tag == image.tag
        {
            reference.digest = Some(image.digest.clone());
        }
    }
}

/// The builds of the apps `checked` (the environment's rendered objects) uses: an app no object
/// names is neither built nor pushed ([`crate::render::used_images`]).
fn only_used(
    session: &Session,
    mut builds: Vec<BuildRequest>,
    checked: &[Manifest],
    images: &BTreeMap<String, ImageRef>,
) -> Vec<BuildRequest> {
    let used = crate::render::used_images::used_apps(checked, images);
    builds.retain(|build| {
        let keep = used.contains(&build.app.name);
        if !keep {
            session.printer.status(&format!(
                "image `{}` not built: not used by `{}`",
                build.app.name, session.config.name
            ));
        }
        keep
    });
    builds
}

/// Build and push `requests` (nothing to do in the sandbox or when every tag exists).
async fn build_images(
    session: &Session,
    requests: &[BuildRequest],
    request: &DeployRequest,
) -> Result<Vec<BuildResult>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let options = BuildOptions {
        builder: session.repo.layout.builder.clone(),
        jobs: request.build.jobs.max(1),
        force: request.build.force_build,
        environment: Default::default(),
    };
    image::build_images(requests, &options, &Registry::new(), &session.printer)
        .await
        .map_err(user_error)
}

/// `terraform plan` of the work tree's deploy (the saved plan's step has its planfile already).
async fn plan_terraform(step: &TerraformStep) -> Result<Option<terraform::PlanSummary>> {
    let TerraformStep::Plan(driver) = step else {
        return Ok(None);
    };
    let planfile = driver.settings().data_dir.join("gitship-deploy.tfplan");
    driver
        .plan(PlanMode::Normal, &planfile)
        .await
        .map(Some)
        .map_err(user_error)
}

/// Apply exactly the planned (or saved) Terraform plan; then the outputs the manifests use, and
/// the counts of the plan applied (`None` when nothing was applied).
async fn apply_terraform(
    session: &Session,
    step: &TerraformStep,
    planned: Option<terraform::PlanSummary>,
    needs_outputs: bool,
) -> Result<(Outputs, Option<TerraformCounts>)> {
    let printer = &session.printer;
    let mut applied = None;
    let driver = match step {
        TerraformStep::None => return Ok((Outputs::new(), None)),
        TerraformStep::Outputs(driver) => driver,
        TerraformStep::Given(outputs) => return Ok((outputs.clone(), None)),
        TerraformStep::Applied { outputs, counts } => return Ok((outputs.clone(), *counts)),
        TerraformStep::Plan(driver) => {
            let Some(plan) = planned else {
                return Ok((Outputs::new(), None));
            };
            if plan.has_changes {
                printer.status(&format!(
                    "terraform: applying {} to add, {} to change, {} to replace, {} to destroy",
                    plan.counts.add, plan.counts.change, plan.counts.replace, plan.counts.destroy
                ));
                driver.apply(&plan.planfile).await.map_err(user_error)?;
                applied = Some(TerraformCounts {
                    add: plan.counts.add,
                    change: plan.counts.change,
                    replace: plan.counts.replace,
                    destroy: plan.counts.destroy,
                });
            } else {
                printer.status("terraform: no changes");
            }
            let _ = std::fs::remove_file(&plan.planfile);
            driver
        }
        TerraformStep::Saved {
            driver,
            planfile,
            counts,
        } => {
            printer.status(&format!(
                "applying the saved Terraform plan `{}`",
                planfile.display()
            ));
            driver.apply(planfile).await.map_err(user_error)?;
            // As for a fresh plan: a plan without changes applied nothing.
            applied = (*counts != TerraformCounts::default()).then_some(*counts);
            driver
        }
    };
    if !needs_outputs {
        return Ok((Outputs::new(), applied));
    }
    let outputs = driver.outputs().await.map_err(user_error)?;
    Ok((outputs, applied))
}

/// The Kubernetes stage: lock, apply, wait, prune, record, unlock.
async fn kubernetes_stage(
    session: &Session,
    connection: &ClusterConnection,
    manifests: Vec<Manifest>,
    options: &DeployOptions,
    lock: &EnvironmentLock,
) -> Result<DeployReport> {
    let simulated = if session.sandbox {
        " (sandbox: simulated cluster)"
    } else {
        ""
    };
    session.printer.status(&format!(
        "applying {} objects to `{}`{simulated}",
        manifests.len(),
        session.config.name
    ));
    let deployed = gitship_kube::deploy::deploy_objects_locked(
        &connection.client,
        &session.environment(),
        manifests,
        options,
        &session.printer,
        lock,
    )
    .await;
    if let Err(error) = &deployed {
        // The Warning beside the failed record, naming why (the record keeps it too).
        gitship_kube::events::record(
            &connection.client,
            &session.environment(),
            &gitship_foundation::ci::who(),
            EventType::Warning,
            "DeployFailed",
            &format!(
                "{} failed to deploy {} to `{}`: {}",
                options.who,
                crate::git::short_sha(&session.git.sha),
                session.config.name,
                error
            ),
        )
        .await;
    }
    deployed.map_err(user_error).map_err(|error| {
        if session.sandbox {
            // Says so even with `-q`, where the status lines are not shown.
            error.context(format!(
                "sandbox deploy of `{}` failed (a simulated cluster; no real cluster was touched)",
                session.config.name
            ))
        } else {
            error
        }
    })
}

/// Whether a deploy failed because its workloads did not become healthy (what `deploy --atomic`
/// rolls back).
pub fn is_unhealthy(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<gitship_kube::KubeError>(),
            Some(gitship_kube::KubeError::Unhealthy { .. })
        )
    })
}

/// The Kubernetes stage's options for a deploy of `config`'s environment under `request`.
fn kube_options(config: &EnvConfig, request: &DeployRequest, sha: Option<String>) -> DeployOptions {
    DeployOptions {
        force_conflicts: config.cluster.force_conflicts,
        timeout: request.timeout,
        lock: LockOptions {
            timeout: request.lock_timeout,
            lease_duration: request.lock_lease,
        },
        prune: request.prune,
        allow_empty: request.allow_empty,
        prune_protected: request.prune_protected,
        history: config.deploy.history,
        sha,
        who: gitship_foundation::ci::who(),
        ..DeployOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::config::{ClusterConfig, DeployConfig, DriftConfig, SpanMap, TerraformConfig};
    use gitship_kube::KubeError;

    fn config() -> EnvConfig {
        EnvConfig {
            name: "production".into(),
            file: "config/production.yaml".into(),
            cluster: ClusterConfig {
                context: Some("prod".into()),
                namespace: "blog".into(),
                kubeconfig: None,
                force_conflicts: false,
                from_terraform: None,
            },
            registry: None,
            registry_output: None,
            terraform: TerraformConfig::default(),
            deploy: DeployConfig {
                timeout: Duration::from_secs(120),
                lock_timeout: Duration::from_secs(60),
                require_clean_tree: true,
                history: 7,
                reachable_from: None,
            },
            drift: DriftConfig::default(),
            agent: Default::default(),
            kubernetes: Default::default(),
            protected: false,
            values: serde_json::json!({}),
            spans: SpanMap::default(),
        }
    }

    #[test]
    fn a_request_for_the_environment_takes_its_config() {
        let request = DeployRequest::for_environment(&config());
        assert_eq!(request.timeout, Duration::from_secs(120));
        assert_eq!(request.lock_timeout, Duration::from_secs(60));
        assert!(request.prune && !request.prune_protected && !request.allow_empty);
        assert!(!request.force && !request.skip_preflight);
        assert!(request.build.jobs >= 1);
        let request = DeployRequest {
            timeout: Duration::from_secs(9),
            ..request
        };
        let options = kube_options(&config(), &request, Some("abc".into()));
        assert_eq!(options.timeout, Duration::from_secs(9));
        assert_eq!(options.lock.timeout, Duration::from_secs(60));
        assert!(!options.force_conflicts);
        assert!(options.prune && !options.prune_protected && !options.allow_empty);
        assert_eq!(options.history, 7);
        assert_eq!(options.sha.as_deref(), Some("abc"));
        let client =
            crate::ops::cluster_source::client_options(Some(Path::new("/k")), &config().cluster);
        assert_eq!(client.kubeconfig.as_deref(), Some(Path::new("/k")));
        assert_eq!(client.context.as_deref(), Some("prod"));
    }

    #[test]
    fn kube_errors_keep_their_hint() {
        let error = user_error(KubeError::EmptyDesiredSet {
            env: "production".into(),
            count: 4,
        });
        let rendered = gitship_foundation::diagnostics::render(&error);
        assert!(
            rendered.starts_with("error: refusing to prune all 4 object(s)"),
            "{rendered}"
        );
        assert!(
            rendered.contains("hint: pass `--allow-empty`"),
            "{rendered}"
        );
        let interrupted = user_error(KubeError::Interrupted);
        assert_eq!(
            gitship_foundation::diagnostics::class_of(&interrupted),
            gitship_foundation::diagnostics::ErrorClass::Interrupted
        );
    }
}
