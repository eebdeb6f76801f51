//! `gitship diff ENV`: the Kubernetes part of the plan only, like `kubectl diff --server-side`
//! over the whole environment, including what a deploy would prune. Exit 2 when different.
//!
//! Terraform is not planned: the manifests render with the current Terraform outputs (or
//! `--terraform-outputs FILE`), unknown ones as `(known after apply)`.

use anyhow::Result;

use crate::commands::Context;
use crate::commands::plan::{self, Session};
use crate::exit::Outcome;
use crate::plan::{Plan, kubernetes};
use crate::render;
use crate::settings::ClusterSettings;
use crate::terraform;

pub async fn run(ctx: &Context, settings: ClusterSettings) -> Result<Outcome> {
    let session = plan::open(ctx, &settings)?;
    let (_, images) = plan::images(&session).await?;
    let outputs = current_outputs(&session, &settings).await?;
    let manifests = plan::render_manifests(&session, images, outputs.clone())?;
    let connection = plan::connect(ctx, &session).await?;
    let environment_diff = plan::kubernetes_diff(
        &connection.client,
        &session,
        plan::desired_objects(&manifests),
    )
    .await?;
    let redactor = render::Redactor::new(&outputs);
    let sources = plan::source_lookup(&manifests, &session.config.cluster.namespace);
    let mut result = Plan::new(&session.config.name, session.git.clone(), session.sandbox);
    result.kubernetes = Some(kubernetes::plan_part(
        &environment_diff,
        &|id| sources.get(id).cloned(),
        &redactor,
    ));
    plan::print_plan(ctx, &result)?;
    Ok(if result.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// The outputs the manifests render with outside `plan`: `--terraform-outputs FILE`, or the
/// current state's (`terraform output -json`, after `init` when needed).
pub async fn current_outputs(
    session: &Session,
    settings: &ClusterSettings,
) -> Result<terraform::Outputs> {
    if let Some(path) = &settings.terraform_outputs {
        return crate::commands::render::load_terraform_outputs(path);
    }
    match plan::terraform_driver(session).await? {
        Some(driver) => {
            driver.init_if_needed().await.map_err(|e| e.into_anyhow())?;
            driver.outputs().await.map_err(|e| e.into_anyhow())
        }
        None => Ok(terraform::Outputs::new()),
    }
}
