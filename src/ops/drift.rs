//! `drift`: what runs differs from Git.
//!
//! Kubernetes: managed fields changed by someone else (the field, live and Git values, and the
//! manager that owns the live value, from `managedFields`) and inventory objects that were
//! deleted; Terraform: changes made outside Terraform and changes a deploy would make. The
//! environment's `drift.ignore` rules suppress expected drift. Reads and Terraform plans only:
//! the live objects are LISTed, one request per kind ([`crate::kube::live`]).

use anyhow::Result;

use crate::diagnostics::user_error;
use crate::git::short_sha;
use crate::ops::session::Session;
use crate::plan::{DriftReport, kubernetes};
use crate::render::{self, UnknownOutputs};

/// The environment's drift report.
pub async fn drift(session: &Session) -> Result<DriftReport> {
    drift_with(session, true).await
}

/// [`drift`], with Terraform's drift only when `terraform` is set (the agent's heal checks skip
/// it under `agent.terraform: off`).
pub async fn drift_with(session: &Session, terraform: bool) -> Result<DriftReport> {
    let mut report = DriftReport::new(&session.config.name, session.git.clone(), session.sandbox);
    let driver = if terraform {
        session.terraform().await?
    } else {
        None
    };
    if let Some(driver) = driver {
        session.printer.status(&format!(
            "checking Terraform drift of `{}`...",
            session.config.name
        ));
        let drift = driver.drift().await.map_err(user_error)?;
        report.terraform = crate::plan::terraform::drift_changes(&drift);
    }

    let outputs = session.current_outputs().await?;
    let (_, images) = session.images().await?;
    let manifests = session.render(images, outputs.clone(), UnknownOutputs::Placeholder)?;
    if manifests.is_empty() {
        return Ok(report);
    }
    let connection = session.connect_announced().await?;
    let environment = session.environment();
    let environment_diff =
        crate::kube::live::compare_live(&connection.client, &environment, &manifests)
            .await
            .map_err(user_error)?;
    let (inventory, pin) = session.inventory_and_pin(&connection).await?;
    if inventory.is_none() {
        let ours = environment_diff
            .objects
            .iter()
            .filter_map(|(_, diff)| diff.live.as_ref())
            .filter(|live| {
                crate::model::annotation(live, crate::model::OWNED_BY_ANNOTATION)
                    == Some(environment.name.as_str())
            })
            .count();
        if ours > 0 {
            session.printer.warn(&format!(
                "the inventory ConfigMap `{}` is missing although {ours} object(s) of environment `{}` exist: objects removed from Git since the last deploy can no longer be pruned",
                crate::model::reserved_name(&environment.name),
                environment.name
            ));
        }
    }
    if let Some(pin) = pin
        && pin.sha != session.git.sha
    {
        session.printer.warn(&format!(
            "`{}` is pinned at {}, Git at {}: the cluster is meant to run the pinned revision (`gitship resume {}` follows Git again)",
            environment.name,
            short_sha(&pin.sha),
            short_sha(&session.git.sha),
            environment.name
        ));
    }
    let inventory = inventory.unwrap_or_default();
    let redactor = render::Redactor::new(&outputs);
    let (drifted, ignored) = kubernetes::drift(
        &environment_diff,
        &inventory.objects,
        &session.config.drift.ignore,
        &redactor,
    );
    report.kubernetes = drifted;
    report.ignored = ignored;
    Ok(report)
}
