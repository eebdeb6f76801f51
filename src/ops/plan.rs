//! `plan` and `diff`: one plan across images, Terraform and Kubernetes, computed with reads and
//! dry runs only.
//!
//! - images: which apps' content tags are missing from the registry (built by a deploy) and which
//!   are reused (pinned by digest);
//! - Terraform: `terraform plan` saved to `.gitship/plans/`, its resource and output changes,
//!   redacted; the manifests render with the current outputs, and outputs unknown until apply
//!   render as `(known after apply)`;
//! - Kubernetes: a server-side dry-run apply of every rendered object compared with the live
//!   object over the fields gitship manages, plus what a deploy would prune.
//!
//! [`kubernetes`] is `diff`: the Kubernetes part alone, rendered with the current outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::ops::pin::Target;
use crate::ops::preflight::{self, Preflight};
use crate::ops::session::{ClusterConnection, Session};
use crate::plan::{self, Plan, saved};
use crate::render::{self, UnknownOutputs};
use crate::terraform::{self, PlanMode, Terraform};
use gitship_foundation::diagnostics::user_error;
use gitship_foundation::model::{
    ImageRef, Manifest, ObjectId, OutputValue, Outputs, is_cluster_scoped,
};
use gitship_kube::diff::EnvironmentDiff;
use gitship_kube::retry::RetryPolicy;

/// Concurrent dry-runs and reads.
const CONCURRENCY: usize = 16;

/// A computed plan, and everything it was computed from (kept for `plan --out`).
#[derive(Debug)]
pub struct PlanOutcome {
    pub plan: Plan,
    /// The preflight's checks (all passed).
    pub preflight: Preflight,
    /// The saved Terraform plan, when the repository has a Terraform layer.
    pub planfile: Option<PathBuf>,
    /// The rendered manifests (real values: only ever written to a saved plan file).
    pub manifests: Vec<Manifest>,
    pub images: BTreeMap<String, ImageRef>,
    pub kubernetes: Option<EnvironmentDiff>,
}

/// Compute the whole plan of `target`'s revision, after the same preflight as a deploy's (a
/// failed preflight is shown as a status section, then returned as the error).
///
/// A pinned environment is planned at its pinned revision unless `--rev` names one
/// ([`Target::Session`]): a deploy of Git is refused while it is pinned, so what a deploy would
/// do there is put the pinned revision back (the agent's heal, `deploy --rev <pin>`). The plan
/// carries the pin either way, and its `git` is the revision planned. The pin is read after the
/// preflight (of the environment's cluster, registry and Terraform backend, with `session`'s
/// images), which says why when the cluster cannot be reached.
pub async fn plan(session: &Session, target: Target) -> Result<PlanOutcome> {
    session.terraform_values_if_known().await?;
    let connection = match session.has_kubernetes() && !cluster_known_after_apply(session) {
        true => Some(session.connect_announced().await?),
        false => None,
    };
    let terraform = session.terraform().await?;
    let references = session.image_refs()?;
    let preflight = require_preflight(
        session,
        connection.as_ref(),
        &references,
        terraform.as_ref(),
    )
    .await?;
    let pin = match &connection {
        Some(connection) => crate::ops::pin::current(session, connection).await?,
        None => None,
    };
    let mut outcome = match crate::ops::pin::pin_to_compare(pin.as_ref(), target, &session.git.sha)
    {
        Some(pin) => {
            let pinned = crate::ops::pin::open_pinned(session, pin, "plan")?;
            let terraform = pinned.terraform().await?;
            let references = pinned.image_refs()?;
            plan_revision(&pinned, connection, preflight, terraform, references).await?
        }
        None => plan_revision(session, connection, preflight, terraform, references).await?,
    };
    if let Some(pin) = &pin {
        outcome.plan.pin = Some(crate::ops::pin::info(pin, &session.work_tree_sha()?));
    }
    Ok(outcome)
}

/// The preflight of `session` with the images of `references` (none checked in the sandbox);
/// a failed one is shown as a status section, then returned as the error.
async fn require_preflight(
    session: &Session,
    connection: Option<&ClusterConnection>,
    references: &BTreeMap<String, ImageRef>,
    terraform: Option<&Terraform>,
) -> Result<Preflight> {
    let images_to_check = match session.sandbox || session.registry_unknown() {
        true => Vec::new(),
        false => session.build_requests(references.values()),
    };
    let preflight =
        preflight::preflight(session, connection, &images_to_check, terraform, None).await;
    if !preflight.passed() {
        session.printer.status(preflight.render().trim_end());
        return Err(preflight.error(&session.config.name, false));
    }
    Ok(preflight)
}

/// [`plan`] of `session`'s own revision after the preflight, through `connection` when there
/// is one, with its Terraform driver and image references.
async fn plan_revision(
    session: &Session,
    connection: Option<ClusterConnection>,
    preflight: Preflight,
    terraform: Option<Terraform>,
    references: BTreeMap<String, ImageRef>,
) -> Result<PlanOutcome> {
    let mut plan = Plan::new(&session.config.name, session.git.clone(), session.sandbox);
    if !session.git.dirty {
        plan.tree = crate::git::tree_of(&session.repo.root, &session.git.sha);
    }
    session.terraform_values_if_known().await?;
    plan.known_after_apply = known_after_apply(session);
    plan.ci_run = gitship_foundation::ci::run_url();
    if terraform.is_some() {
        session.warn_if_module_differs()?;
    }
    plan.preflight = preflight.checks.clone();
    let (image_changes, images) = session.images_for(references).await?;
    plan.images = image_changes;
    // Terraform: plan, then the outputs the manifests render with.
    let mut outputs = Outputs::new();
    let mut planfile = None;
    if let Some(terraform) = &terraform {
        let file = planfile_path(session);
        session.printer.status(&format!(
            "planning Terraform for `{}`...",
            session.config.name
        ));
        let summary = terraform
            .plan(PlanMode::Normal, &file)
            .await
            .map_err(user_error)?;
        plan.terraform = Some(plan::terraform::plan_part(&summary));
        outputs = terraform.outputs().await.map_err(user_error)?;
        apply_planned_outputs(&mut outputs, &summary);
        planfile = Some(summary.planfile.clone());
    }
    if let Some(given) = session.given_outputs()? {
        outputs = given;
    }

    let (manifests, substitutions) = render_noted(session, images.clone(), outputs.clone())?;
    plan.image_substitutions = substitutions;
    mark_unused(&mut plan, &manifests, &images);
    let mut kubernetes = None;
    if cluster_known_after_apply(session) && !manifests.is_empty() {
        plan.kubernetes = Some(all_created(session, &manifests));
    }
    let connection = match connection {
        Some(connection) => Some(connection),
        None if cluster_known_after_apply(session) => None,
        None if !manifests.is_empty() => Some(session.connect_announced().await?),
        None => None,
    };
    if let Some(connection) = &connection {
        let environment_diff = kubernetes_diff(connection, session, &manifests).await?;
        plan.kubernetes = Some(plan_part(session, &environment_diff, &manifests, &outputs));
        kubernetes = Some(environment_diff);
    }
    Ok(PlanOutcome {
        plan,
        preflight,
        planfile,
        manifests,
        images,
        kubernetes,
    })
}

/// Whether the environment's cluster comes from Terraform outputs that have no value yet (a
/// first deploy creates it): nothing can be read from it, every object is to be created.
fn cluster_known_after_apply(session: &Session) -> bool {
    session.config.cluster_from_terraform()
        && session.kubeconfig.is_none()
        && !session.sandbox
        && session.terraform_values.get().is_none()
}

/// The plan's entries for the cluster and registry known only after apply.
fn known_after_apply(session: &Session) -> Vec<plan::KnownAfterApply> {
    let config = &session.config;
    let mut unknown = Vec::new();
    if cluster_known_after_apply(session)
        && let Some(cluster) = &config.cluster.from_terraform
    {
        unknown.extend(
            cluster
                .references()
                .into_iter()
                .map(|reference| ("cluster", reference)),
        );
    }
    if session.registry_unknown()
        && let Some(reference) = &config.registry_output
    {
        unknown.push(("registry", reference));
    }
    unknown
        .into_iter()
        .map(|(target, reference)| plan::KnownAfterApply {
            target: target.into(),
            output: reference.output.clone(),
            config: reference.location.to_string(),
        })
        .collect()
}

/// The Kubernetes part of a plan whose cluster is known only after apply: every rendered
/// object is created (the hooks as rendered).
fn all_created(session: &Session, manifests: &[Manifest]) -> plan::KubernetesPart {
    let namespace = &session.config.cluster.namespace;
    let sources = source_lookup(manifests, namespace);
    let objects = manifests
        .iter()
        .filter(|manifest| {
            matches!(
                gitship_foundation::model::hook::role_of(&manifest.object),
                Ok(gitship_foundation::model::hook::Role::Object)
            )
        })
        .filter_map(|manifest| {
            let mut id = ObjectId::of(&manifest.object)?;
            if id.namespace.is_none() && !is_cluster_scoped(&id.group, &id.kind) {
                id.namespace = Some(namespace.clone());
            }
            Some(plan::ObjectChange {
                object: plan::kubernetes::object_ref(&id, &manifest.object),
                action: plan::ObjectAction::Create,
                source: sources.get(&id).cloned(),
                fields: Vec::new(),
                diff: None,
            })
        })
        .collect();
    plan::KubernetesPart {
        objects,
        hooks: plan::kubernetes::planned_hooks(manifests, namespace),
    }
}

/// The plan's images that no rendered object names: not built, and said so (a deploy of this
/// plan builds only what is marked [`plan::ImageAction::Build`]).
fn mark_unused(plan: &mut Plan, manifests: &[Manifest], images: &BTreeMap<String, ImageRef>) {
    let used = crate::render::used_images::used_apps(manifests, images);
    for image in &mut plan.images {
        if !used.contains(&image.app) {
            image.action = plan::ImageAction::Unused;
            image.reason = Some(format!("not used by {}: not built", plan.environment));
        }
    }
}

/// `diff`: the Kubernetes part of the plan alone. Terraform is not planned: the manifests render
/// with the current outputs (or `--terraform-outputs FILE`), unknown ones as `(known after
/// apply)`.
pub async fn kubernetes(session: &Session) -> Result<Plan> {
    let (_, images) = session.images().await?;
    let outputs = session.current_outputs().await?;
    let (manifests, substitutions) = render_noted(session, images, outputs.clone())?;
    let connection = session.connect_announced().await?;
    let environment_diff = kubernetes_diff(&connection, session, &manifests).await?;
    let mut result = Plan::new(&session.config.name, session.git.clone(), session.sandbox);
    result.image_substitutions = substitutions;
    result.kubernetes = Some(plan_part(session, &environment_diff, &manifests, &outputs));
    Ok(result)
}

/// The Kubernetes plan of applying `manifests` as they are (a stored revision's: no render, no
/// Terraform). Their Secrets' values are never shown, as in every plan.
pub async fn kubernetes_of(session: &Session, manifests: &[Manifest]) -> Result<Plan> {
    let connection = session.connect_announced().await?;
    let environment_diff = kubernetes_diff(&connection, session, manifests).await?;
    let mut result = Plan::new(&session.config.name, session.git.clone(), session.sandbox);
    let outputs = Outputs::new();
    result.kubernetes = Some(plan_part(session, &environment_diff, manifests, &outputs));
    Ok(result)
}

/// [`Session::render`] (outputs unknown until apply as placeholders), with the bare image names
/// the render replaced, as plan entries.
fn render_noted(
    session: &Session,
    images: BTreeMap<String, ImageRef>,
    outputs: Outputs,
) -> Result<(Vec<Manifest>, Vec<plan::ImageSubstitution>)> {
    let output = session.render_noted(images, outputs, UnknownOutputs::Placeholder)?;
    crate::ops::render::require_objects(&session.repo, &session.config, output.manifests.len())?;
    let substitutions = output
        .notes
        .bare_images
        .iter()
        .map(plan::images::image_substitution)
        .collect();
    Ok((output.manifests, substitutions))
}

/// Write `outcome` to `out` as a saved plan (and its Terraform planfile to `out.tfplan`), for
/// the environment and revision it was planned for (with that commit's tree, read from the
/// repository at `root`).
pub fn save(out: &Path, outcome: &PlanOutcome, root: &Path) -> Result<()> {
    let mut saved_plan = saved_plan(outcome, root);
    saved::write(out, &mut saved_plan, outcome.planfile.as_deref())
}

/// Write `plan`'s JSON report (exactly `plan -o json`: redacted, no planfile) to `path`, for
/// `deploy --reviewed` ([`crate::ops::reviewed`]).
pub fn write_report(path: &Path, planned: &Plan) -> Result<()> {
    let json = plan::report::render(
        planned,
        gitship_foundation::output::OutputFormat::Json,
        false,
    )?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        gitship_foundation::private_file::create_dir(parent)
            .with_context(|| format!("cannot create the directory `{}`", parent.display()))?;
    }
    gitship_foundation::private_file::write(path, json.as_bytes())
        .with_context(|| format!("cannot write the plan's report `{}`", path.display()))
}

/// `outcome` as a saved plan, without its Terraform planfile's name (which [`saved::write`]
/// sets when it copies the file).
pub fn saved_plan(outcome: &PlanOutcome, root: &Path) -> saved::SavedPlan {
    let live = outcome
        .kubernetes
        .iter()
        .flat_map(|diff| &diff.objects)
        .map(|(id, object_diff)| saved::LiveVersion {
            object: id.clone(),
            resource_version: object_diff.live.as_ref().and_then(saved::resource_version),
        })
        .collect();
    saved::SavedPlan {
        format_version: saved::SAVED_FORMAT_VERSION,
        environment: outcome.plan.environment.clone(),
        sandbox: outcome.plan.sandbox,
        git: outcome.plan.git.clone(),
        tree: crate::git::tree_of(root, &outcome.plan.git.sha),
        plan: outcome.plan.clone(),
        terraform_planfile: None,
        images: outcome.images.values().cloned().collect(),
        manifests: outcome.manifests.clone(),
        live,
    }
}

/// Compare `manifests` with the cluster (reads and dry-runs only).
pub async fn kubernetes_diff(
    connection: &ClusterConnection,
    session: &Session,
    manifests: &[Manifest],
) -> Result<EnvironmentDiff> {
    gitship_kube::diff::diff_environment(
        &connection.client,
        &session.environment(),
        manifests,
        session.config.cluster.force_conflicts,
        CONCURRENCY,
        &RetryPolicy::default(),
    )
    .await
    .map_err(user_error)
}

/// The Kubernetes part of a plan, redacted, each object with where it is declared.
fn plan_part(
    session: &Session,
    environment_diff: &EnvironmentDiff,
    manifests: &[Manifest],
    outputs: &Outputs,
) -> plan::KubernetesPart {
    let redactor = render::Redactor::new(outputs);
    let namespace = &session.config.cluster.namespace;
    let sources = source_lookup(manifests, namespace);
    let mut part =
        plan::kubernetes::plan_part(environment_diff, &|id| sources.get(id).cloned(), &redactor);
    part.hooks = plan::kubernetes::planned_hooks(manifests, namespace);
    part
}

/// Where `plan` saves the Terraform plan of the environment.
fn planfile_path(session: &Session) -> PathBuf {
    session
        .repo
        .root
        .join(".gitship")
        .join("plans")
        .join(format!("{}.tfplan", session.config.name))
}

/// Object identity -> where it is declared.
fn source_lookup(manifests: &[Manifest], namespace: &str) -> BTreeMap<ObjectId, String> {
    manifests
        .iter()
        .filter_map(|manifest| {
            let mut id = ObjectId::of(&manifest.object)?;
            if id.namespace.is_none()
                && !is_cluster_scoped(&id.group, &id.kind)
                && !namespace.is_empty()
            {
                id.namespace = Some(namespace.to_string());
            }
            Some((id, manifest.source.to_string()))
        })
        .collect()
}

/// Outputs the plan creates or changes: known values replace the current ones (sensitive ones
/// excepted: the plan only has them redacted), unknown ones render as `(known after apply)`.
fn apply_planned_outputs(outputs: &mut Outputs, summary: &terraform::PlanSummary) {
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
                    OutputValue {
                        value,
                        sensitive: change.sensitive,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terraform::plan::ChangeCounts;
    use crate::terraform::{ChangeAction, OutputChange, PlanSummary};
    use serde_json::json;

    fn output(value: Option<serde_json::Value>, sensitive: bool) -> OutputValue {
        OutputValue { value, sensitive }
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
        let mut outputs = Outputs::from([
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
