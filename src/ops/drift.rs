//! `drift`: what runs differs from Git.
//!
//! Kubernetes: managed fields changed by someone else (the field, live and Git values, and the
//! manager that owns the live value, from `managedFields`) and inventory objects that were
//! deleted; Terraform: changes made outside Terraform and changes a deploy would make. The
//! environment's `drift.ignore` rules suppress expected drift. Reads and Terraform plans only:
//! the live objects are LISTed, one request per kind ([`gitship_kube::live`]).
//!
//! The revision compared is the session's (the work tree, or `--rev REV`), except for a pinned
//! environment ([`gitship_kube::pin`]) without `--rev`: the cluster is meant to run the pinned
//! revision, so that one is checked out in gitship's own clone and compared. The report carries
//! the pin either way, and `git` is the revision compared.

use anyhow::Result;

use crate::ops::pin::Target;
use crate::ops::session::{ClusterConnection, Session};
use crate::plan::{DriftReport, kubernetes};
use crate::render::{self, UnknownOutputs};
use gitship_foundation::diagnostics::user_error;
use gitship_kube::inventory::Inventory;

/// The environment's drift report: the cluster compared with `target`'s revision.
pub async fn drift(session: &Session, target: Target) -> Result<DriftReport> {
    let connection = match session.has_kubernetes() {
        true => Some(session.connect_announced().await?),
        false => None,
    };
    // One read of the inventory ConfigMap, for the inventory and the pin alike.
    let (inventory, pin) = match &connection {
        Some(connection) => session.inventory_and_pin(connection).await?,
        None => (None, None),
    };
    let pinned = crate::ops::pin::pin_to_compare(pin.as_ref(), target, &session.git.sha)
        .map(|pin| crate::ops::pin::open_pinned(session, pin, "drift"))
        .transpose()?;
    let compared = pinned.as_ref().unwrap_or(session);
    let mut report = compare(compared, connection, inventory, true).await?;
    if let Some(pin) = &pin {
        report.pin = Some(crate::ops::pin::info(pin, &session.work_tree_sha()?));
    }
    Ok(report)
}

/// The drift of the revision `session` is at (the agent's heal check: the revision the cluster
/// runs), with Terraform's drift only when `terraform` is set (the agent's heal checks skip it
/// under `agent.terraform: off`).
pub async fn drift_with(session: &Session, terraform: bool) -> Result<DriftReport> {
    let connection = match session.has_kubernetes() {
        true => Some(session.connect_announced().await?),
        false => None,
    };
    // The pin is read (an unreadable one stops the check) but not followed: the agent heals
    // the revision it runs.
    let inventory = match &connection {
        Some(connection) => session.inventory_and_pin(connection).await?.0,
        None => None,
    };
    compare(session, connection, inventory, terraform).await
}

/// Compare the cluster (through `connection`, or a new one when the manifests need it) with
/// `session`'s revision; `inventory` is the environment's, read before.
async fn compare(
    session: &Session,
    connection: Option<ClusterConnection>,
    inventory: Option<Inventory>,
    terraform: bool,
) -> Result<DriftReport> {
    let mut report = DriftReport::new(&session.config.name, session.git.clone(), session.sandbox);
    if terraform {
        report.terraform = terraform_drift(session).await?;
    }
    let outputs = session.current_outputs().await?;
    let (_, images) = session.images().await?;
    let manifests = session.render(images, outputs.clone(), UnknownOutputs::Placeholder)?;
    crate::ops::render::require_objects(&session.repo, &session.config, manifests.len())?;
    if manifests.is_empty() {
        return Ok(report);
    }
    let connection = match connection {
        Some(connection) => connection,
        None => session.connect_announced().await?,
    };
    let environment = session.environment();
    let hooks = crate::plan::kubernetes::planned_hooks(&manifests, &environment.namespace).len();
    if hooks > 0 {
        session.printer.status(&format!(
            "{hooks} hook(s) and skipped object(s) are not drift-checked: a hook runs in its phase of a deploy, it is no desired object"
        ));
    }
    let environment_diff =
        gitship_kube::live::compare_live(&connection.client, &environment, &manifests)
            .await
            .map_err(user_error)?;
    if inventory
        .as_ref()
        .is_some_and(|inventory| inventory.restored)
    {
        session.printer.warn(&format!(
            "the inventory ConfigMap `{}` is gone: its objects, history and pin are read from its copy `{}`; the next deploy writes it again",
            gitship_kube::inventory::configmap_name(&environment.name),
            gitship_kube::inventory::copy_name(&environment.name)
        ));
    }
    if inventory.is_none() {
        warn_missing_inventory(session, &environment_diff);
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

/// Terraform's drift of the environment (nothing without a Terraform layer).
async fn terraform_drift(session: &Session) -> Result<Vec<crate::plan::ResourceChange>> {
    let Some(driver) = session.terraform().await? else {
        return Ok(Vec::new());
    };
    session.warn_if_module_differs()?;
    session.printer.status(&format!(
        "checking Terraform drift of `{}`...",
        session.config.name
    ));
    let drift = driver.drift().await.map_err(user_error)?;
    Ok(crate::plan::terraform::drift_changes(&drift))
}

/// The inventory is missing although objects of the environment exist: say what that costs.
fn warn_missing_inventory(
    session: &Session,
    environment_diff: &gitship_kube::diff::EnvironmentDiff,
) {
    let environment = session.environment();
    let ours = environment_diff
        .objects
        .iter()
        .filter_map(|(_, diff)| diff.live.as_ref())
        .filter(|live| {
            gitship_foundation::model::annotation(
                live,
                gitship_foundation::model::OWNED_BY_ANNOTATION,
            ) == Some(environment.name.as_str())
        })
        .count();
    if ours > 0 {
        session.printer.warn(&format!(
            "the inventory ConfigMap `{}` is missing although {ours} object(s) of environment `{}` exist: objects removed from Git since the last deploy can no longer be pruned",
            gitship_foundation::model::reserved_name(&environment.name),
            environment.name
        ));
    }
}
