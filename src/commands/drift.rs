//! `gitship drift ENV`: what runs differs from Git.
//!
//! Kubernetes: managed fields changed by someone else (the field, live and Git values, and the
//! manager that owns the live value, from `managedFields`) and inventory objects that were
//! deleted; Terraform: changes made outside Terraform and changes a deploy would make. The
//! environment's `drift.ignore` rules suppress expected drift. Exit 2 when drifted, 0 in sync.
//! Reads, dry-runs and Terraform plans only.

use anyhow::Result;

use crate::commands::Context;
use crate::commands::diff::current_outputs;
use crate::commands::plan;
use crate::exit::Outcome;
use crate::kube::retry::RetryPolicy;
use crate::plan::{DriftReport, kubernetes};
use crate::render;
use crate::settings::{ClusterSettings, OutputFormat};

pub async fn run(ctx: &Context, settings: ClusterSettings) -> Result<Outcome> {
    let session = plan::open(ctx, &settings)?;
    let mut report = DriftReport::new(&session.config.name, session.git.clone(), session.sandbox);

    if let Some(driver) = plan::terraform_driver(&session).await? {
        ctx.printer.status(&format!(
            "checking Terraform drift of `{}`...",
            session.config.name
        ));
        let drift = driver.drift().await.map_err(|e| e.into_anyhow())?;
        report.terraform = drift.to_plan_changes();
    }

    let outputs = current_outputs(&session, &settings).await?;
    let (_, images) = plan::images(&session).await?;
    let manifests = plan::render_manifests(&session, images, outputs.clone())?;
    if !manifests.is_empty() {
        let connection = plan::connect(ctx, &session).await?;
        let environment_diff = plan::kubernetes_diff(
            &connection.client,
            &session,
            plan::desired_objects(&manifests),
        )
        .await?;
        let environment = session.environment();
        let inventory = crate::kube::inventory::load(
            &connection.client,
            &environment.name,
            &environment.namespace,
            &RetryPolicy::default(),
        )
        .await
        .map_err(crate::commands::deploy::user_error)?
        .unwrap_or_default();
        let redactor = render::Redactor::new(&outputs);
        let (drifted, ignored) = kubernetes::drift(
            &environment_diff,
            &inventory.objects,
            &session.config.drift.ignore,
            &redactor,
        );
        report.kubernetes = drifted;
        report.ignored = ignored;
    }

    let text = match ctx.printer.format {
        OutputFormat::Json => serde_json::to_string_pretty(&report)?,
        OutputFormat::Markdown => {
            crate::plan::markdown::render_drift(&report, plan::MARKDOWN_LIMIT)
        }
        OutputFormat::Human => crate::plan::human::render_drift(&report, ctx.printer.color_stdout),
    };
    ctx.printer.data(&text)?;
    Ok(if report.drifted() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}
