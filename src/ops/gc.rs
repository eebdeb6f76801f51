//! `gitship gc`: destroy every expired preview environment (`env new --ephemeral --ttl`),
//! each through the one destroy of an environment (`ops::destroy::destroy`), after one
//! confirmation for all of them. The previews are found as `envs` finds them
//! (`ops::preview::find`): every cluster of the committed environments asked once.

use anyhow::Result;
use chrono::Utc;

use crate::ops::envs::PreviewSummary;
use crate::ops::session::{Session, Workspace};
use crate::repo::Repository;
use gitship_foundation::diagnostics::user_error;
use gitship_foundation::output::Printer;
use gitship_kube::preview::PreviewRecord;

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
    /// The preview records that do not decode, with why: left alone.
    #[serde(default)]
    pub unreadable: Vec<gitship_kube::preview::UnreadableRecord>,
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
/// still destroyed). Just before its destroy, each preview's record is read again: one extended
/// meanwhile (a CI push) is kept, one gone or unreadable is not destroyed. An unreadable record
/// is never destroyed (`envs` lists it with why).
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
        unreadable: found.unreadable,
        unreachable: found.unreachable,
    };
    if dry_run || expired.is_empty() {
        report.destroyed = expired;
        return Ok(report);
    }
    confirm(&expired)?;
    for preview in expired {
        match reread_record(&repo, workspace, &preview).await {
            Ok(record) if record.is_expired(Utc::now()) => {
                destroy_one(workspace, printer, record, preview, &mut report).await;
            }
            Ok(record) => {
                printer.status(&format!(
                    "preview `{}` (of `{}`) was extended meanwhile: kept",
                    preview.name, preview.base
                ));
                report.kept.push(PreviewSummary::of(&record, Utc::now()));
            }
            Err(error) => report.failed.push(GcFailure {
                preview,
                error: format!("{error:#}"),
            }),
        }
    }
    Ok(report)
}

async fn destroy_one(
    workspace: &Workspace,
    printer: &Printer,
    record: PreviewRecord,
    preview: PreviewSummary,
    report: &mut GcReport,
) {
    printer.status(&format!(
        "destroying preview `{}` (of `{}`, expired {})",
        preview.name,
        preview.base,
        record
            .expires_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    match destroy_preview(workspace, printer, record).await {
        Ok(()) => report.destroyed.push(preview),
        Err(error) => report.failed.push(GcFailure {
            preview,
            error: format!("{error:#}"),
        }),
    }
}

/// The preview's record read again now; an error when it is gone, unreadable or cannot be read.
async fn reread_record(
    repo: &Repository,
    workspace: &Workspace,
    preview: &PreviewSummary,
) -> Result<PreviewRecord> {
    let found = reread(repo, workspace, preview).await;
    if let Some(unreadable) = found.unreadable.first() {
        return Err(crate::ops::preview::unreadable_error(unreadable));
    }
    match found.previews.into_iter().next() {
        Some((record, _)) => Ok(record),
        None if !found.unreachable.is_empty() => Err(anyhow::anyhow!(
            "cannot read the record of preview `{}` again: {}",
            preview.name,
            found.unreachable.join("; ")
        )),
        None => Err(anyhow::anyhow!(
            "preview `{}` is no longer recorded in namespace `{}` (destroyed meanwhile?): not \
             destroyed",
            preview.name,
            preview.namespace
        )),
    }
}

/// The previews (readable or not) recorded now with the name, base and namespace of `preview`.
async fn reread(
    repo: &Repository,
    workspace: &Workspace,
    preview: &PreviewSummary,
) -> crate::ops::preview::Found {
    let mut found =
        crate::ops::preview::find(repo, workspace.kubeconfig.as_deref(), Some(&preview.name)).await;
    found
        .previews
        .retain(|(record, _)| record.base == preview.base && record.namespace == preview.namespace);
    found
        .unreadable
        .retain(|record| record.base == preview.base && record.namespace == preview.namespace);
    found
}

/// Destroy the preview of `record`: its session opened from the record (never by name: a
/// committed environment of that name would be opened instead), then the environment's one
/// destroy, already confirmed.
async fn destroy_preview(
    workspace: &Workspace,
    printer: &Printer,
    record: PreviewRecord,
) -> Result<()> {
    let session = Session::open_preview(workspace, printer, record)?;
    destroy_environment(&session).await
}

/// The environment's destroy (`ops::destroy::destroy`), confirmed already.
async fn destroy_environment(session: &Session) -> Result<()> {
    let request = crate::ops::destroy::DestroyRequest::for_environment(&session.config);
    crate::ops::destroy::destroy(session, &request, |_plan| Ok(())).await?;
    Ok(())
}
