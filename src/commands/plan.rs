//! `gitship plan ENV`: one plan across images, Terraform and Kubernetes, without side effects.
//!
//! - images: per app, build (the content tag is missing in the registry) or reuse (with the
//!   registry's digest); nothing is built or pushed. With `--sandbox` the registry is not asked.
//! - terraform: `plan -out` (saved under `.gitship/plans/`), its resource and output changes,
//!   redacted; the manifests render with the current outputs, and outputs unknown until apply
//!   render as `(known after apply)`.
//! - kubernetes: a server-side dry-run apply of every rendered object compared with the live
//!   object over the fields gitship manages, plus what a deploy would prune (reads and dry-runs
//!   only).
//!
//! The composition helpers here ([`open`], [`images`], [`desired_objects`],
//! [`kubernetes_diff`]) are shared with `diff`, `drift` and `deploy --plan`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::build::{self, BuildRequest, Registry};
use crate::commands::Context;
use crate::commands::deploy::{self, ClusterConnection};
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::kube::deploy::Environment;
use crate::kube::diff::EnvironmentDiff;
use crate::kube::retry::RetryPolicy;
use crate::kube::{DesiredObject, ObjectId};
use crate::plan::{self, GitInfo, ImageAction, ImageChange, Plan};
use crate::render::{self, ImageRef, Manifest, RenderInputs, UnknownOutputs};
use crate::repo::{EnvConfig, Repository};
use crate::settings::{ClusterSettings, OutputFormat, PlanSettings};
use crate::terraform::{self, PlanMode, Terraform, TerraformSettings};

/// Markdown output stays below GitHub's comment limit.
pub const MARKDOWN_LIMIT: usize = 65_000;

/// Concurrent dry-runs and reads.
const CONCURRENCY: usize = 16;

pub async fn run(ctx: &Context, settings: PlanSettings) -> Result<Outcome> {
    let session = open(ctx, &settings.cluster)?;
    let computed = compute(ctx, &session, &settings.cluster).await?;
    print_plan(ctx, &computed.plan)?;
    if let Some(out) = &settings.out {
        crate::plan::saved::save(out, &session, &computed)?;
        ctx.printer
            .status(&format!("saved the plan to `{}`", out.display()));
    }
    Ok(if settings.exit_code && computed.plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// The environment being planned.
#[derive(Debug)]
pub struct Session {
    pub repo: Repository,
    pub config: EnvConfig,
    pub git: GitInfo,
    pub sandbox: bool,
}

impl Session {
    /// The environment as the Kubernetes stage sees it.
    pub fn environment(&self) -> Environment {
        Environment {
            name: self.config.name.clone(),
            namespace: self.config.cluster.namespace.clone(),
        }
    }
}

/// Find the repository, load the environment, read Git's state.
pub fn open(ctx: &Context, cluster: &ClusterSettings) -> Result<Session> {
    let repo = Repository::discover(ctx.global.repo.as_deref()).map_err(UserError::from)?;
    let config = repo.load_env(&cluster.env).map_err(UserError::from)?;
    let sha = crate::git::head_sha(&repo.root)
        .with_context(|| format!("cannot read the Git revision of `{}`", repo.root.display()))?;
    let dirty = crate::git::is_dirty(&repo.root)
        .with_context(|| format!("cannot read the Git status of `{}`", repo.root.display()))?;
    Ok(Session {
        repo,
        config,
        git: GitInfo { sha, dirty },
        sandbox: cluster.sandbox,
    })
}

/// Everything a plan was computed from, kept for `--out`.
#[derive(Debug)]
pub struct Computed {
    pub plan: Plan,
    /// The saved Terraform plan, when the repository has a Terraform layer.
    pub planfile: Option<PathBuf>,
    /// The rendered manifests (real values: only written to the saved plan file).
    pub manifests: Vec<Manifest>,
    pub images: BTreeMap<String, ImageRef>,
    pub kubernetes: Option<EnvironmentDiff>,
}

/// Compute the whole plan.
pub async fn compute(
    ctx: &Context,
    session: &Session,
    cluster: &ClusterSettings,
) -> Result<Computed> {
    let mut plan = Plan::new(&session.config.name, session.git.clone(), session.sandbox);
    let (image_changes, images) = self::images(session).await?;
    plan.images = image_changes;

    // Terraform: plan, then the outputs the manifests render with.
    let mut outputs = terraform::Outputs::new();
    let mut planfile = None;
    if let Some(terraform) = terraform_driver(session).await? {
        let file = planfile_path(&session.repo, &session.config.name);
        ctx.printer.status(&format!(
            "planning Terraform for `{}`...",
            session.config.name
        ));
        let summary = terraform
            .plan(PlanMode::Normal, &file)
            .await
            .map_err(|e| e.into_anyhow())?;
        plan.terraform = Some(summary.to_plan_part());
        outputs = terraform.outputs().await.map_err(|e| e.into_anyhow())?;
        apply_planned_outputs(&mut outputs, &summary);
        planfile = Some(summary.planfile.clone());
    }
    if let Some(path) = &cluster.terraform_outputs {
        outputs = crate::commands::render::load_terraform_outputs(path)?;
    }

    let manifests = render_manifests(session, images.clone(), outputs.clone())?;
    let redactor = render::Redactor::new(&outputs);
    let mut kubernetes = None;
    if !manifests.is_empty() || session.repo.layout.kubernetes_dir.is_some() {
        let connection = connect(ctx, session).await?;
        let environment_diff =
            kubernetes_diff(&connection.client, session, desired_objects(&manifests)).await?;
        let sources = source_lookup(&manifests, &session.config.cluster.namespace);
        plan.kubernetes = Some(plan::kubernetes::plan_part(
            &environment_diff,
            &|id| sources.get(id).cloned(),
            &redactor,
        ));
        kubernetes = Some(environment_diff);
    }
    Ok(Computed {
        plan,
        planfile,
        manifests,
        images,
        kubernetes,
    })
}

/// Print `plan` in the chosen format (data on stdout).
pub fn print_plan(ctx: &Context, plan: &Plan) -> Result<()> {
    let text = match ctx.printer.format {
        OutputFormat::Json => serde_json::to_string_pretty(plan)?,
        OutputFormat::Markdown => plan::markdown::render_plan(plan, MARKDOWN_LIMIT),
        OutputFormat::Human => plan::human::render_plan(plan, ctx.printer.color_stdout),
    };
    ctx.printer.data(&text)?;
    Ok(())
}

/// The image part of the plan, and the references the manifests render with (pinned by digest
/// where the registry has the image).
pub async fn images(session: &Session) -> Result<(Vec<ImageChange>, BTreeMap<String, ImageRef>)> {
    let mut references =
        render::image_refs(&session.repo, &session.config).map_err(UserError::from)?;
    if session.sandbox {
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
    let source = build::image_source(&session.repo.root);
    let requests: Vec<BuildRequest> = references
        .values()
        .filter_map(|reference| {
            let app = session.repo.app(&reference.app)?.clone();
            Some(BuildRequest {
                app,
                image_repository: reference.repository.clone(),
                tag: reference.tag.clone(),
                revision: session.git.sha.clone(),
                source: source.clone(),
            })
        })
        .collect();
    let planned = build::plan_images(&requests, &Registry::new()).await?;
    for image in &planned {
        if let build::PlannedAction::Reuse { digest } = &image.action
            && let Some(reference) = references.get_mut(&image.app)
        {
            reference.digest = Some(digest.clone());
        }
    }
    Ok((planned.iter().map(|p| p.to_change()).collect(), references))
}

/// The Terraform driver of the environment, `None` without a Terraform layer.
pub async fn terraform_driver(session: &Session) -> Result<Option<Terraform>> {
    let Some(settings) = TerraformSettings::for_environment(&session.repo, &session.config) else {
        return Ok(None);
    };
    Ok(Some(
        Terraform::new(settings)
            .await
            .map_err(|e| e.into_anyhow())?,
    ))
}

/// Where `plan` saves the Terraform plan of `environment`.
pub fn planfile_path(repo: &Repository, environment: &str) -> PathBuf {
    repo.root
        .join(".gitship")
        .join("plans")
        .join(format!("{environment}.tfplan"))
}

/// Outputs the plan creates or changes: known values replace the current ones (sensitive ones
/// excepted: the plan only has them redacted), unknown ones render as `(known after apply)`.
fn apply_planned_outputs(outputs: &mut terraform::Outputs, summary: &terraform::PlanSummary) {
    use crate::terraform::ChangeAction;
    for change in &summary.output_changes {
        match change.action {
            ChangeAction::Delete | ChangeAction::Forget => {
                outputs.remove(&change.name);
            }
            ChangeAction::NoOp | ChangeAction::Read => {}
            ChangeAction::Create | ChangeAction::Update | ChangeAction::Replace => {
                let known = change
                    .after
                    .as_ref()
                    .filter(|v| v.as_str() != Some(plan::KNOWN_AFTER_APPLY));
                let value = match known {
                    Some(value) if !change.sensitive => Some(value.clone()),
                    _ if change.sensitive && change.action != ChangeAction::Create => outputs
                        .get(&change.name)
                        .and_then(|current| current.value.clone()),
                    _ => None,
                };
                outputs.insert(
                    change.name.clone(),
                    terraform::OutputValue {
                        value,
                        sensitive: change.sensitive,
                    },
                );
            }
        }
    }
}

/// Render the environment's manifests; unknown outputs render as `(known after apply)`.
pub fn render_manifests(
    session: &Session,
    images: BTreeMap<String, ImageRef>,
    outputs: terraform::Outputs,
) -> Result<Vec<Manifest>> {
    let mut inputs = RenderInputs::for_environment(&session.repo, &session.config, outputs)
        .map_err(UserError::from)?;
    inputs.images = images;
    Ok(render::render_environment(
        &session.repo,
        &session.config,
        &inputs,
        UnknownOutputs::Placeholder,
    )
    .map_err(UserError::from)?)
}

/// Rendered manifests as the Kubernetes stage's input.
pub fn desired_objects(manifests: &[Manifest]) -> Vec<DesiredObject> {
    manifests
        .iter()
        .map(|manifest| DesiredObject {
            source: manifest.source.clone(),
            object: manifest.object.clone(),
        })
        .collect()
}

/// Object identity -> where it is declared.
pub fn source_lookup(manifests: &[Manifest], namespace: &str) -> BTreeMap<ObjectId, String> {
    manifests
        .iter()
        .filter_map(|manifest| {
            let mut id = ObjectId::of(&manifest.object)?;
            if id.namespace.is_none()
                && !render::is_cluster_scoped(&id.group, &id.kind)
                && !namespace.is_empty()
            {
                id.namespace = Some(namespace.to_string());
            }
            Some((id, manifest.source.to_string()))
        })
        .collect()
}

/// Connect to the environment's cluster (or its sandbox), saying so when simulated.
pub async fn connect(ctx: &Context, session: &Session) -> Result<ClusterConnection> {
    let root = session.sandbox.then_some(session.repo.root.as_path());
    let connection = deploy::connect(&ctx.global, &session.config, root).await?;
    if session.sandbox {
        ctx.printer.status(&format!(
            "sandbox: simulated cluster, state in `{}`",
            display_relative(
                &session.repo.root,
                &crate::kube::sandbox::state_file(&session.repo.root, &session.config.name)
            )
        ));
    }
    Ok(connection)
}

fn display_relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Compare the desired objects with the cluster (reads and dry-runs only).
pub async fn kubernetes_diff(
    client: &kube::Client,
    session: &Session,
    desired: Vec<DesiredObject>,
) -> Result<EnvironmentDiff> {
    crate::kube::diff::diff_environment(
        client,
        &session.environment(),
        &desired,
        session.config.cluster.force_conflicts,
        CONCURRENCY,
        &RetryPolicy::default(),
    )
    .await
    .map_err(deploy::user_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terraform::{ChangeAction, ChangeCounts, OutputChange, PlanSummary};
    use serde_json::json;

    fn output(value: Option<serde_json::Value>, sensitive: bool) -> terraform::OutputValue {
        terraform::OutputValue { value, sensitive }
    }

    fn change(name: &str, action: ChangeAction, sensitive: bool, after: &str) -> OutputChange {
        OutputChange {
            name: name.into(),
            action,
            sensitive,
            before: None,
            after: Some(json!(after)),
        }
    }

    #[test]
    fn planned_outputs_replace_current_ones_unknown_and_sensitive_stay_safe() {
        let mut outputs = terraform::Outputs::from([
            ("name".to_string(), output(Some(json!("old")), false)),
            (
                "password".to_string(),
                output(Some(json!("current-secret")), true),
            ),
            ("gone".to_string(), output(Some(json!("x")), false)),
        ]);
        let summary = PlanSummary {
            environment: "staging".into(),
            mode: PlanMode::Normal,
            changes: vec![],
            drift: vec![],
            output_changes: vec![
                change("name", ChangeAction::Update, false, "new"),
                change("password", ChangeAction::Update, true, plan::REDACTED),
                change("url", ChangeAction::Create, false, plan::KNOWN_AFTER_APPLY),
                change("token", ChangeAction::Create, true, plan::REDACTED),
                change("gone", ChangeAction::Delete, false, ""),
            ],
            counts: ChangeCounts::default(),
            has_changes: true,
            planfile: PathBuf::from("p"),
        };
        apply_planned_outputs(&mut outputs, &summary);
        assert_eq!(outputs["name"].value, Some(json!("new")));
        // A redacted planned value never replaces the real one (it could land in a Secret).
        assert_eq!(outputs["password"].value, Some(json!("current-secret")));
        assert_eq!(outputs["url"].value, None, "renders as (known after apply)");
        assert_eq!(outputs["token"].value, None);
        assert!(outputs["token"].sensitive);
        assert!(!outputs.contains_key("gone"));
    }
}
