//! [`Session`]: one environment opened for one operation.
//!
//! It opens the repository, the environment's config and the Git revision once, and knows how to
//! reach everything else the operation needs (the cluster or its sandbox, the Terraform driver,
//! the Terraform outputs, the image references), so that `plan`, `deploy`, `diff` and `drift`
//! compose the same pieces instead of each opening them its own way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::image::{self, BuildRequest, Registry};
use crate::ops::cluster_source::{self, TerraformValues};
use crate::ops::render::{load_terraform_outputs, state_outputs};
use crate::plan::{GitInfo, ImageAction, ImageChange};
use crate::render::{self, UnknownOutputs};
use crate::repo::{EnvConfig, Repository};
use crate::terraform::{Terraform, TerraformSettings};
use gitship_foundation::diagnostics::{UserError, user_error};
use gitship_foundation::model::{Environment, ImageRef, Manifest, Outputs};
use gitship_foundation::output::Printer;
use gitship_kube::client::ClusterIdentity;
use gitship_kube::inventory::Inventory;
use gitship_kube::pin::Pin;
use gitship_kube::preview::PreviewRecord;
use gitship_kube::retry::RetryPolicy;
use gitship_kube::sandbox::Sandbox;

/// Where an operation finds the repository and the cluster's credentials: `-C DIR` and
/// `--kubeconfig` of the command line, or the agent's clone.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    /// `None`: the enclosing Git work tree of the current directory.
    pub repo: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
}

/// Which environment an operation opens, and how: what every cluster-facing verb shares.
#[derive(Debug, Clone)]
pub struct SessionTarget {
    pub env: String,
    pub sandbox: bool,
    pub terraform_outputs: Option<PathBuf>,
}

/// One environment of one repository, opened for one operation.
#[derive(Debug)]
pub struct Session {
    pub repo: Repository,
    pub config: EnvConfig,
    pub git: GitInfo,
    /// The cluster is kubesim, in process, with its state under `.gitship/sandbox/`.
    pub sandbox: bool,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--terraform-outputs FILE`: outputs given instead of read from Terraform.
    pub terraform_outputs: Option<PathBuf>,
    pub printer: Printer,
    /// For a revision checked out in gitship's own clone (`--rev`): the user's repository, whose
    /// Terraform module and state, and whose sandbox, the operation uses (the state lives next to
    /// the module, not in the commit).
    pub state_repo: Option<Repository>,
    /// The environment is a preview (no config file): its record in the base's cluster.
    pub preview: Option<PreviewRecord>,
    /// The cluster and registry taken from Terraform outputs, resolved once
    /// ([`Session::terraform_values`]).
    pub terraform_values: tokio::sync::OnceCell<TerraformValues>,
}

/// The config of the environment `cluster.env` names, and its preview record when it is one (a
/// sandbox is one environment's simulated cluster, where no preview is recorded).
async fn load_config(
    repo: &Repository,
    printer: &Printer,
    cluster: &SessionTarget,
    workspace: &Workspace,
) -> Result<(EnvConfig, Option<PreviewRecord>)> {
    if cluster.sandbox {
        return Ok((repo.load_env(&cluster.env).map_err(user_error)?, None));
    }
    crate::ops::preview::load_env(repo, &cluster.env, workspace.kubeconfig.as_deref(), printer)
        .await
}

/// A connection to an environment's cluster; keeps the sandbox server alive when there is one.
pub struct ClusterConnection {
    pub client: kube::Client,
    /// Which server, through which context, as which user.
    pub identity: ClusterIdentity,
    pub sandbox: Option<Sandbox>,
}

impl std::fmt::Debug for ClusterConnection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClusterConnection")
            .field("identity", &self.identity)
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

impl ClusterConnection {
    /// Persist the sandbox's state (a real cluster keeps its own).
    pub fn save_sandbox(&self) -> Result<()> {
        if let Some(sandbox) = &self.sandbox {
            sandbox.server.save_state().with_context(|| {
                format!(
                    "cannot save the sandbox state `{}`",
                    sandbox.state_file.display()
                )
            })?;
        }
        Ok(())
    }
}

impl Session {
    /// Find the repository, load the environment (a config file, or a preview recorded in a
    /// committed environment's cluster: `ops::preview::load_env`), read Git's state.
    pub async fn open(
        workspace: &Workspace,
        printer: &Printer,
        cluster: &SessionTarget,
    ) -> Result<Session> {
        let repo = Repository::discover(workspace.repo.as_deref()).map_err(user_error)?;
        let (config, preview) = load_config(&repo, printer, cluster, workspace).await?;
        Session::open_loaded(
            repo,
            config,
            preview,
            printer,
            cluster,
            workspace.kubeconfig.clone(),
        )
    }

    /// The session of the preview `record` (as listed by `ops::preview::find`): its config
    /// derived from its base's and the record, never resolved by name again (a committed
    /// environment of that name would win the resolution: `gc` must destroy the preview it
    /// listed, nothing else).
    pub fn open_preview(
        workspace: &Workspace,
        printer: &Printer,
        record: PreviewRecord,
    ) -> Result<Session> {
        let repo = Repository::discover(workspace.repo.as_deref()).map_err(user_error)?;
        let config = crate::ops::preview::derive_at(&repo, &record)?;
        crate::ops::preview::refuse_shared_workspace(&repo, &config)?;
        let target = SessionTarget {
            env: record.name.clone(),
            sandbox: false,
            terraform_outputs: None,
        };
        Session::open_loaded(
            repo,
            config,
            Some(record),
            printer,
            &target,
            workspace.kubeconfig.clone(),
        )
    }

    /// [`Session::open`] of a committed environment only (a config file; no cluster is asked
    /// for previews): the agent's, which runs one committed environment.
    pub fn open_committed(
        workspace: &Workspace,
        printer: &Printer,
        cluster: &SessionTarget,
    ) -> Result<Session> {
        let repo = Repository::discover(workspace.repo.as_deref()).map_err(user_error)?;
        let config = repo.load_env(&cluster.env).map_err(user_error)?;
        Session::open_loaded(
            repo,
            config,
            None,
            printer,
            cluster,
            workspace.kubeconfig.clone(),
        )
    }

    /// The session of `repo` with the environment's config loaded.
    fn open_loaded(
        repo: Repository,
        config: EnvConfig,
        preview: Option<PreviewRecord>,
        printer: &Printer,
        cluster: &SessionTarget,
        kubeconfig: Option<PathBuf>,
    ) -> Result<Session> {
        let sha = crate::git::head_sha(&repo.root).with_context(|| {
            format!("cannot read the Git revision of `{}`", repo.root.display())
        })?;
        let dirty = crate::git::is_dirty(&repo.root)
            .with_context(|| format!("cannot read the Git status of `{}`", repo.root.display()))?;
        Ok(Session {
            repo,
            config,
            git: GitInfo { sha, dirty },
            sandbox: cluster.sandbox,
            kubeconfig,
            terraform_outputs: cluster.terraform_outputs.clone(),
            printer: printer.clone(),
            state_repo: None,
            preview,
            terraform_values: tokio::sync::OnceCell::new(),
        })
    }

    /// [`Session::open`] for the commit `revision` (SHA, tag or branch) of the repository,
    /// checked out in gitship's own clone (never in the work tree, which stays untouched).
    pub async fn open_revision(
        workspace: &Workspace,
        printer: &Printer,
        cluster: &SessionTarget,
        revision: &str,
    ) -> Result<Session> {
        let repo = Repository::discover(workspace.repo.as_deref()).map_err(user_error)?;
        let (_, preview) = load_config(&repo, printer, cluster, workspace).await?;
        let sha = resolve_revision(&repo.root, revision, &cluster.env)?;
        Session::checkout(
            repo,
            &sha,
            printer,
            cluster,
            workspace.kubeconfig.clone(),
            preview,
        )
    }

    /// This session's environment at the commit `sha` of the user's repository, checked out in
    /// gitship's own clone, as [`Session::open_revision`] opens it (`drift` and `plan` of a
    /// pinned environment, `drift --rev`).
    pub fn at_commit(&self, sha: &str) -> Result<Session> {
        let cluster = SessionTarget {
            env: self.config.name.clone(),
            sandbox: self.sandbox,
            terraform_outputs: self.terraform_outputs.clone(),
        };
        Session::checkout(
            self.user_repo().clone(),
            sha,
            &self.printer,
            &cluster,
            self.kubeconfig.clone(),
            self.preview.clone(),
        )
    }

    /// Check the commit `sha` of `repo` out in gitship's own clone and open the environment
    /// there (a preview: derived from its base's config at that commit); `repo` stays the
    /// state's repository.
    fn checkout(
        repo: Repository,
        sha: &str,
        printer: &Printer,
        cluster: &SessionTarget,
        kubeconfig: Option<PathBuf>,
        preview: Option<PreviewRecord>,
    ) -> Result<Session> {
        let git_root = crate::git::work_tree_root(&repo.root)
            .with_context(|| format!("`{}` is not in a Git work tree", repo.root.display()))?;
        let path = repo
            .root
            .strip_prefix(&git_root)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let cache = crate::git::clone::default_cache().join("revisions");
        let source =
            crate::git::clone::GitSource::open(&git_root.to_string_lossy(), Some("HEAD"), &cache)?;
        source.fetch_all()?;
        source.checkout(sha, crate::git::clone::LargeFiles::Include)?;
        let clone_root = source.work_tree()?.join(path);
        printer.status(&format!(
            "revision {} checked out in `{}` (the work tree is not touched)",
            crate::git::short_sha(sha),
            clone_root.display()
        ));
        let clone = Repository::discover(Some(&clone_root)).map_err(user_error)?;
        let config = match &preview {
            Some(record) => crate::ops::preview::derive_at(&clone, record)?,
            None => clone.load_env(&cluster.env).map_err(user_error)?,
        };
        let mut session =
            Session::open_loaded(clone, config, preview, printer, cluster, kubeconfig)?;
        session.state_repo = Some(repo);
        Ok(session)
    }

    /// The user's repository: the one opened, or for a revision the one it was checked out of.
    pub fn user_repo(&self) -> &Repository {
        self.state_repo.as_ref().unwrap_or(&self.repo)
    }

    /// The commit the user's work tree is at (`HEAD`): what a deploy without `--rev` deploys.
    pub fn work_tree_sha(&self) -> Result<String> {
        if self.state_repo.is_none() {
            return Ok(self.git.sha.clone());
        }
        let root = &self.user_repo().root;
        crate::git::head_sha(root)
            .with_context(|| format!("cannot read the Git revision of `{}`", root.display()))
    }

    /// The full SHA of `revision` (SHA, tag or branch) in the user's repository.
    pub fn resolve_revision(&self, revision: &str) -> Result<String> {
        resolve_revision(&self.user_repo().root, revision, &self.config.name)
    }

    /// Where the environment's state lives: the user's repository (also for a revision).
    fn state_root(&self) -> &Path {
        &self.user_repo().root
    }

    /// Whether the environment has manifests to deploy (a Kubernetes layer).
    pub fn has_kubernetes(&self) -> bool {
        !self.config.kubernetes.disabled
            && (self.repo.layout.kubernetes_dir.is_some()
                || self.config.kubernetes.dir.is_some()
                || !self.config.kubernetes.helm.is_empty())
    }

    /// Whether this revision's Terraform module differs from the work tree's, where the state is
    /// (false for the work tree itself, or without a module).
    pub fn revision_module_differs(&self) -> Result<bool> {
        let Some(state_repo) = &self.state_repo else {
            return Ok(false);
        };
        let (Some(revision), Some(work_tree)) = (
            &self.repo.layout.terraform_dir,
            &state_repo.layout.terraform_dir,
        ) else {
            return Ok(false);
        };
        Ok(module_files(revision)? != module_files(work_tree)?)
    }

    /// For a revision whose Terraform module differs from the work tree's: say that Terraform
    /// runs the work tree's module, where the state is (`plan` and `drift` of a revision).
    pub fn warn_if_module_differs(&self) -> Result<()> {
        if self.revision_module_differs()? {
            self.printer.warn(&format!(
                "the Terraform module at {} differs from the work tree's: Terraform runs the work tree's module, where the state of `{}` is",
                crate::git::short_sha(&self.git.sha),
                self.config.name
            ));
        }
        Ok(())
    }

    /// The environment as the Kubernetes stage sees it.
    pub fn environment(&self) -> Environment {
        Environment {
            name: self.config.name.clone(),
            namespace: self.config.cluster.namespace.clone(),
        }
    }

    /// Where the sandbox keeps this environment's state, relative to the repository.
    pub fn sandbox_state_file(&self) -> PathBuf {
        self.user_repo()
            .relative(&gitship_kube::sandbox::state_file(
                self.state_root(),
                &self.config.name,
            ))
            .to_path_buf()
    }

    /// The environment's inventory, read through `connection`; `None` when gitship never
    /// deployed it.
    pub async fn inventory(&self, connection: &ClusterConnection) -> Result<Option<Inventory>> {
        let environment = self.environment();
        gitship_kube::inventory::load(
            &connection.client,
            &environment.name,
            &environment.namespace,
            &RetryPolicy::default(),
        )
        .await
        .map_err(user_error)
    }

    /// [`Session::inventory`] of an environment that must have been deployed: when it never
    /// was, an error saying there is nothing to `nothing_to` (`pin`, `roll back`) yet.
    pub async fn deployed_inventory(
        &self,
        connection: &ClusterConnection,
        nothing_to: &str,
    ) -> Result<Inventory> {
        let name = &self.config.name;
        self.inventory(connection).await?.ok_or_else(|| {
            UserError::new(
                format!("`{name}` has never been deployed: there is nothing to {nothing_to}"),
                format!("deploy it first: `gitship deploy {name}`"),
            )
            .into()
        })
    }

    /// The environment's inventory and its pin, from one read of the inventory ConfigMap
    /// ([`gitship_kube::pin::load_with_inventory`]).
    pub async fn inventory_and_pin(
        &self,
        connection: &ClusterConnection,
    ) -> Result<(Option<Inventory>, Option<Pin>)> {
        gitship_kube::pin::load_with_inventory(
            &connection.client,
            &self.environment(),
            &RetryPolicy::default(),
        )
        .await
        .map_err(user_error)
    }

    /// Connect to the environment's cluster, or start its sandbox.
    pub async fn connect(&self) -> Result<ClusterConnection> {
        if self.sandbox {
            let sandbox = gitship_kube::sandbox::start(self.state_root(), &self.config.name)
                .await
                .map_err(user_error)?;
            return Ok(ClusterConnection {
                client: sandbox.client.clone(),
                identity: ClusterIdentity {
                    server: sandbox.server.url(),
                    context: None,
                    user: None,
                },
                sandbox: Some(sandbox),
            });
        }
        let mut options = crate::ops::cluster_source::client_options(
            self.kubeconfig.as_deref(),
            &self.config.cluster,
        );
        if self.kubeconfig.is_none() && self.config.cluster_from_terraform() {
            let values = self.terraform_values().await?;
            options.kubeconfig = values.and_then(|values| values.kubeconfig.clone());
        }
        let (client, identity) = gitship_kube::client::connect_with_identity(&options)
            .await
            .map_err(user_error)?;
        Ok(ClusterConnection {
            client,
            identity,
            sandbox: None,
        })
    }

    /// Connect, saying so when the cluster is simulated (for the read-only operations).
    pub async fn connect_announced(&self) -> Result<ClusterConnection> {
        let connection = self.connect().await?;
        if self.sandbox {
            self.printer.status(&format!(
                "sandbox: simulated cluster, state in `{}`",
                self.sandbox_state_file().display()
            ));
        }
        Ok(connection)
    }

    /// The environment's Terraform settings; `None` without a Terraform layer.
    pub fn terraform_settings(&self) -> Option<TerraformSettings> {
        // A revision's own config (its variables), with the user's module and state.
        TerraformSettings::for_environment(
            self.state_repo.as_ref().unwrap_or(&self.repo),
            &self.config,
        )
    }

    /// Whether the environment's Terraform root module keeps its state in local files (no
    /// backend declared, or `backend "local"`); `false` without a Terraform layer.
    pub fn local_terraform_state(&self) -> bool {
        self.terraform_settings().is_some_and(|settings| {
            let (info, _) = crate::terraform::static_check::inspect_module(
                &settings.module_dir,
                &settings.display_root,
            );
            info.local_state()
        })
    }

    /// The environment's Terraform driver, `None` without a Terraform layer.
    pub async fn terraform(&self) -> Result<Option<Terraform>> {
        let Some(settings) = self.terraform_settings() else {
            return Ok(None);
        };
        Ok(Some(Terraform::new(settings).await.map_err(user_error)?))
    }

    /// A driver for `settings` that reports Terraform's progress as status lines (a deploy's).
    pub async fn terraform_with_progress(&self, settings: TerraformSettings) -> Result<Terraform> {
        let status = self.printer.clone();
        Ok(Terraform::new(settings)
            .await
            .map_err(user_error)?
            .with_progress(Arc::new(move |line: &str| {
                status.status(&format!("terraform: {line}"))
            })))
    }

    /// The outputs given with `--terraform-outputs FILE`, if any.
    pub fn given_outputs(&self) -> Result<Option<Outputs>> {
        self.terraform_outputs
            .as_deref()
            .map(load_terraform_outputs)
            .transpose()
    }

    /// The outputs the manifests render with outside `plan` and `deploy`: the given file, or the
    /// current state's (`terraform output -json`, after `init` when needed).
    pub async fn current_outputs(&self) -> Result<Outputs> {
        if let Some(outputs) = self.given_outputs()? {
            return Ok(outputs);
        }
        state_outputs(self.terraform_settings()).await
    }

    /// The apps' image references (content tags under the environment's registry): computed
    /// here once per operation ([`image::image_refs`]), then passed to whatever needs them (the
    /// build requests, the render, the report).
    pub fn image_refs(&self) -> Result<BTreeMap<String, ImageRef>> {
        match self.resolved_registry() {
            Some(registry) => {
                let config = crate::repo::EnvConfig {
                    registry: Some(registry.to_string()),
                    ..self.config.clone()
                };
                image::image_refs(&self.repo, &config).map_err(user_error)
            }
            None => image::image_refs(&self.repo, &self.config).map_err(user_error),
        }
    }

    /// The registry `registry: ${terraform.NAME}` resolved to, once it is.
    fn resolved_registry(&self) -> Option<&str> {
        self.terraform_values.get()?.registry.as_deref()
    }

    /// Whether the registry comes from a Terraform output that has not been resolved: the image
    /// references are under [`image::REGISTRY_KNOWN_AFTER_APPLY`] (`plan`'s first run).
    pub fn registry_unknown(&self) -> bool {
        self.config.registry_output.is_some() && self.resolved_registry().is_none()
    }

    /// The cluster and registry this environment takes from Terraform outputs, resolved once
    /// from the current outputs (`None` when it takes neither); an error naming the output
    /// and its config line when one has no value yet (a cluster made by a first deploy).
    pub async fn terraform_values(&self) -> Result<Option<&TerraformValues>> {
        if !cluster_source::needs_outputs(&self.config) {
            return Ok(None);
        }
        let values = self
            .terraform_values
            .get_or_try_init(|| async {
                let outputs = self.current_outputs().await?;
                self.resolve_values(&outputs)
            })
            .await?;
        Ok(Some(values))
    }

    /// [`Session::terraform_values`] when every output they need has a value; `None` when one
    /// is still known only after apply (`plan` of an environment never deployed).
    pub async fn terraform_values_if_known(&self) -> Result<Option<&TerraformValues>> {
        if !cluster_source::needs_outputs(&self.config) || self.terraform_values.get().is_some() {
            return self.terraform_values().await;
        }
        let outputs = self.current_outputs().await?;
        if !cluster_source::unknown(&self.config, &outputs, self.wants_cluster()).is_empty() {
            return Ok(None);
        }
        let values = self.resolve_values(&outputs)?;
        Ok(Some(
            self.terraform_values.get_or_init(|| async { values }).await,
        ))
    }

    /// Resolve the values from `outputs` just applied (a deploy that creates the cluster); the
    /// session keeps them.
    pub async fn set_terraform_values(&self, outputs: &Outputs) -> Result<()> {
        let values = self.resolve_values(outputs)?;
        self.terraform_values.get_or_init(|| async { values }).await;
        Ok(())
    }

    fn resolve_values(&self, outputs: &Outputs) -> Result<TerraformValues> {
        let settings = self.terraform_settings();
        cluster_source::resolve(
            &self.config,
            outputs,
            settings
                .as_ref()
                .map(|settings| settings.module_dir.as_path()),
            self.wants_cluster(),
        )
    }

    /// Whether the cluster is reached through what the config names (not the sandbox, not
    /// `--kubeconfig`).
    fn wants_cluster(&self) -> bool {
        !self.sandbox && self.kubeconfig.is_none()
    }

    /// The image part of the plan, and the references the manifests render with (pinned by
    /// digest where the registry has the image). The sandbox does not look at a registry.
    pub async fn images(&self) -> Result<(Vec<ImageChange>, BTreeMap<String, ImageRef>)> {
        if self.config.registry_output.is_some() {
            self.terraform_values().await?;
        }
        self.images_for(self.image_refs()?).await
    }

    /// [`Session::images`] for references already computed ([`Session::image_refs`]).
    pub async fn images_for(
        &self,
        mut references: BTreeMap<String, ImageRef>,
    ) -> Result<(Vec<ImageChange>, BTreeMap<String, ImageRef>)> {
        if self.registry_unknown() {
            let changes = references
                .values()
                .map(|reference| ImageChange {
                    app: reference.app.clone(),
                    reference: reference.reference(),
                    action: ImageAction::Build,
                    reason: Some("the registry is known after apply".into()),
                })
                .collect();
            return Ok((changes, references));
        }
        if self.sandbox {
            let changes = references
                .values()
                .map(|reference| ImageChange {
                    app: reference.app.clone(),
                    reference: reference.reference(),
                    action: ImageAction::Unchecked,
                    reason: None,
                })
                .collect();
            return Ok((changes, references));
        }
        let requests = self.build_requests(references.values());
        let planned = image::plan_images(&requests, &Registry::new())
            .await
            .map_err(user_error)?;
        for image in &planned {
            if let image::PlannedAction::Reuse { digest } = &image.action
                && let Some(reference) = references.get_mut(&image.app)
            {
                reference.digest = Some(digest.clone());
            }
        }
        Ok((planned.iter().map(image_change).collect(), references))
    }

    /// Build requests for `references` at this session's revision.
    pub fn build_requests<'a>(
        &self,
        references: impl IntoIterator<Item = &'a ImageRef>,
    ) -> Vec<BuildRequest> {
        image::build_requests(&self.repo, &self.git.sha, references)
    }

    /// Render the environment's manifests with `images` and `outputs`.
    pub fn render(
        &self,
        images: BTreeMap<String, ImageRef>,
        outputs: Outputs,
        unknown: UnknownOutputs,
    ) -> Result<Vec<Manifest>> {
        self.render_noted(images, outputs, unknown)
            .map(|output| output.manifests)
    }

    /// [`Session::render`], with what the render left literal and substituted.
    pub fn render_noted(
        &self,
        images: BTreeMap<String, ImageRef>,
        outputs: Outputs,
        unknown: UnknownOutputs,
    ) -> Result<render::RenderOutput> {
        crate::ops::render::render_noted(&self.repo, &self.config, images, outputs, unknown)
    }
}

/// The image stage's plan of one app as an entry of the cross-layer plan: a reused image carries
/// its digest.
fn image_change(image: &image::ImagePlan) -> ImageChange {
    match &image.action {
        image::PlannedAction::Build { reason } => ImageChange {
            app: image.app.clone(),
            reference: image.reference.clone(),
            action: ImageAction::Build,
            reason: Some(reason.clone()),
        },
        image::PlannedAction::Reuse { digest } => ImageChange {
            app: image.app.clone(),
            reference: format!("{}@{digest}", image.reference),
            action: ImageAction::Reuse,
            reason: None,
        },
    }
}

/// The full SHA of the commit `revision` (SHA, tag or branch) names in the repository at `root`,
/// for environment `environment`; an error naming both, with a hint, when it names none.
pub fn resolve_revision(root: &Path, revision: &str, environment: &str) -> Result<String> {
    crate::git::resolve_revision(root, revision).map_err(|error| {
        anyhow::Error::new(error).context(UserError::new(
            format!(
                "`{revision}` names no commit of the repository `{}` (environment `{environment}`)",
                root.display()
            ),
            "give a commit SHA, a tag or a branch of this repository (`git log --oneline`, `git tag`); fetch it first when it was pushed from elsewhere (`git fetch`)",
        ))
    })
}

/// A module's files (relative path -> contents), without Terraform's own state and caches.
fn module_files(dir: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .with_context(|| format!("cannot read the directory `{}`", current.display()))?;
        for entry in entries {
            let entry = entry
                .with_context(|| format!("cannot read the directory `{}`", current.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == ".terraform" || name.starts_with("terraform.tfstate") {
                continue;
            }
            let path = entry.path();
            let file_type = entry
                .file_type()
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            if file_type.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read `{}`", path.display()))?;
                files.insert(relative.to_path_buf(), bytes);
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::build::BuildInputs;
    use crate::ops::deploy::{DeployRequest, DeploySource};
    use gitship_foundation::output::OutputFormat;

    /// Two apps, `api` and `web`, whose images a ConfigMap shows, and environment `staging`
    /// pushing to a registry that refuses connections; committed.
    fn two_apps() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            (".gitignore", ".gitship/\n"),
            ("apps/api/Dockerfile", "FROM scratch\nCOPY api.txt /\n"),
            ("apps/api/api.txt", "api\n"),
            ("apps/web/Dockerfile", "FROM scratch\nCOPY index.html /\n"),
            ("apps/web/index.html", "<p>web</p>\n"),
            (
                "infrastructure/kubernetes/images.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: images\ndata:\n  api: ${images.api}\n  web: ${images.web}\n",
            ),
            (
                "config/staging.yaml",
                "cluster:\n  namespace: images\nregistry: 127.0.0.1:1/blog\n",
            ),
        ];
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let repository = git2::Repository::init(dir.path()).unwrap();
        let mut index = repository.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.write().unwrap();
        let tree = repository.find_tree(index.write_tree().unwrap()).unwrap();
        let author = git2::Signature::now("test", "test@example.com").unwrap();
        repository
            .commit(Some("HEAD"), &author, &author, "two apps", &tree, &[])
            .unwrap();
        dir
    }

    fn printer() -> Printer {
        Printer {
            quiet: true,
            ..Printer::plain(OutputFormat::Human)
        }
    }

    fn target() -> SessionTarget {
        SessionTarget {
            env: "staging".into(),
            sandbox: true,
            terraform_outputs: None,
        }
    }

    fn build_inputs() -> BuildInputs {
        BuildInputs {
            jobs: 1,
            ..BuildInputs::default()
        }
    }

    #[test]
    fn image_plans_become_plan_image_changes() {
        let reuse = image::ImagePlan {
            app: "api".into(),
            reference: "r/api:t".into(),
            action: image::PlannedAction::Reuse {
                digest: "sha256:abc".into(),
            },
        };
        let change = image_change(&reuse);
        assert_eq!(change.reference, "r/api:t@sha256:abc");
        assert_eq!(change.action, ImageAction::Reuse);
        let build = image::ImagePlan {
            app: "web".into(),
            reference: "r/web:t".into(),
            action: image::PlannedAction::Build {
                reason: "tag `t` missing in `r`".into(),
            },
        };
        assert_eq!(
            image_change(&build).reason.as_deref(),
            Some("tag `t` missing in `r`")
        );
    }

    /// `app -> reference` of `pairs`.
    fn by_app<'a>(pairs: impl Iterator<Item = (&'a str, String)>) -> BTreeMap<String, String> {
        pairs
            .map(|(app, reference)| (app.to_string(), reference))
            .collect()
    }

    /// Content tags hash each app's whole build context: `plan`, `deploy` and `build` each
    /// compute every app's once (the image stage's references, handed to the render, the build
    /// requests and the record), and all three name the same images.
    #[tokio::test]
    async fn plan_deploy_and_build_compute_each_tag_once_and_agree() {
        let dir = two_apps();
        let workspace = Workspace {
            repo: Some(dir.path().to_path_buf()),
            kubeconfig: None,
        };
        let session = Session::open(&workspace, &printer(), &target())
            .await
            .unwrap();
        let root = session.repo.root.clone();
        let apps = session.repo.apps.len();
        assert_eq!(apps, 2);
        let computed = || crate::git::tags_computed::of(&root);

        let before = computed();
        let outcome = crate::ops::plan::plan(&session, crate::ops::pin::Target::FollowPin)
            .await
            .unwrap();
        assert_eq!(computed() - before, apps, "plan: one content tag per app");
        let planned = by_app(
            outcome
                .plan
                .images
                .iter()
                .map(|image| (image.app.as_str(), image.reference.clone())),
        );
        assert_eq!(planned.len(), apps, "{planned:?}");

        let before = computed();
        let request = DeployRequest {
            build: build_inputs(),
            ..DeployRequest::for_environment(&session.config)
        };
        crate::ops::deploy::deploy(&session, &DeploySource::WorkTree, &request)
            .await
            .unwrap();
        assert_eq!(computed() - before, apps, "deploy: one content tag per app");
        let connection = session.connect().await.unwrap();
        let inventory = session.inventory(&connection).await.unwrap().unwrap();
        let deployed = by_app(
            inventory.history[0]
                .images
                .iter()
                .map(|image| (image.app.as_str(), image.reference.clone())),
        );
        assert_eq!(deployed, planned, "deploy records what plan showed");
        drop(connection);

        let before = computed();
        let refused =
            crate::ops::build::build(Some(dir.path()), "staging", &build_inputs(), &printer())
                .await
                .expect_err("the registry refuses connections");
        assert!(
            format!("{refused:#}").contains("127.0.0.1:1"),
            "{refused:#}"
        );
        assert_eq!(computed() - before, apps, "build: one content tag per app");
        let (requests, unused) =
            crate::ops::build::requests(&session.repo, &session.config, false).unwrap();
        assert!(unused.is_empty(), "{unused:?}");
        let built = by_app(
            requests
                .iter()
                .map(|request| (request.app.name.as_str(), request.tagged_reference())),
        );
        assert_eq!(built, planned, "build builds what plan showed");
    }
}
