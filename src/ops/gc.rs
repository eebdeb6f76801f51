//! `gitship gc`: destroy every expired preview environment (`env new --ephemeral --ttl`),
//! each through the one destroy of an environment (`ops::destroy::destroy`), after one
//! confirmation for all of them. The previews are found as `envs` finds them
//! (`ops::preview::find`): every cluster of the committed environments asked once.

use anyhow::Result;
use chrono::Utc;

use crate::ops::envs::PreviewSummary;
use crate::ops::session::{Session, SessionTarget, Workspace};
use crate::repo::Repository;
use gitship_foundation::diagnostics::user_error;
use gitship_foundation::output::Printer;

/// Version of [`GcReport`]'s JSON (`gc -o json`).
pub const FORMAT_VERSION: u32 = 1;

/// `gc`'s report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// `--dry-run`: nothing was destroyed; `expired` is what would be.
    pub dry_run: bool,
    /// The expired previews: destroyed (or, with `--dry-run`, to be destroyed), but the failed.
    pub destroyed: Vec<PreviewSummary>,
    /// The expired previews whose destroy failed, with why.
    pub failed: Vec<GcFailure>,
    /// The live previews that have not expired (left alone).
    pub kept: Vec<PreviewSummary>,
    /// The clusters that could not be asked for previews, with why.
    pub unreachable: Vec<String>,
}

/// One preview `gc` could not destroy.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GcFailure {
    pub preview: PreviewSummary,
    pub error: String,
}

/// Find the expired previews, have `confirm` approve destroying them (not asked for a dry run
/// or when none expired), then destroy each in turn (a failure is reported and the next one
/// still destroyed).
pub async fn gc(
    workspace: &Workspace,
    printer: &Printer,
    dry_run: bool,
    confirm: impl FnOnce(&[PreviewSummary]) -> Result<()>,
) -> Result<GcReport> {
    let repo = Repository::discover(workspace.repo.as_deref()).map_err(user_error)?;
    let found = crate::ops::preview::find(&repo, workspace.kubeconfig.as_deref(), None).await;
    let now = Utc::now();
    let (expired, kept): (Vec<_>, Vec<_>) = found
        .previews
        .iter()
        .map(|(record, _)| PreviewSummary::of(record, now))
        .partition(|summary| summary.expired);
    let mut report = GcReport {
        format_version: FORMAT_VERSION,
        dry_run,
        destroyed: Vec::new(),
        failed: Vec::new(),
        kept,
        unreachable: found.unreachable,
    };
    if dry_run || expired.is_empty() {
        report.destroyed = expired;
        return Ok(report);
    }
    confirm(&expired)?;
    for preview in expired {
        printer.status(&format!(
            "destroying preview `{}` (of `{}`, expired {})",
            preview.name,
            preview.base,
            preview
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
        match destroy_preview(workspace, printer, &preview.name).await {
            Ok(()) => report.destroyed.push(preview),
            Err(error) => report.failed.push(GcFailure {
                preview,
                error: format!("{error:#}"),
            }),
        }
    }
    Ok(report)
}

/// Destroy the preview `name`: its session opened by name (resolved as a preview, as
/// `gitship destroy NAME` resolves it), then the environment's one destroy, already confirmed.
async fn destroy_preview(workspace: &Workspace, printer: &Printer, name: &str) -> Result<()> {
    let target = SessionTarget {
        env: name.to_string(),
        sandbox: false,
        terraform_outputs: None,
    };
    let session = Session::open(workspace, printer, &target).await?;
    destroy_environment(&session).await
}

/// The environment's destroy (`ops::destroy::destroy`), confirmed already.
async fn destroy_environment(session: &Session) -> Result<()> {
    let request = crate::ops::destroy::DestroyRequest::for_environment(&session.config);
    crate::ops::destroy::destroy(session, &request, |_plan| Ok(())).await?;
    Ok(())
}
