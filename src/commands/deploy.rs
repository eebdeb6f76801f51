//! `gitship deploy ENV [--plan FILE]`: one call to the deploy pipeline ([`crate::ops::deploy`]),
//! then the report.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::{DeploySource, Session};
use crate::settings::DeploySettings;

pub async fn run(ctx: &Context, settings: DeploySettings) -> Result<Outcome> {
    let session = match &settings.rev {
        Some(revision) => {
            Session::open_revision(
                &ctx.global.workspace,
                &ctx.printer,
                &settings.cluster,
                revision,
            )
            .await?
        }
        None => Session::open(&ctx.global.workspace, &ctx.printer, &settings.cluster).await?,
    };
    if let Some(warning) = session
        .preview
        .as_ref()
        .and_then(|preview| crate::ops::preview::expiry_warning(preview, chrono::Utc::now()))
    {
        ctx.printer.warn(&warning);
    }
    let source = match (&settings.plan, &settings.reviewed) {
        (Some(path), _) => DeploySource::SavedPlan(path.clone()),
        (None, Some(reviewed)) => DeploySource::Reviewed(reviewed.clone()),
        (None, None) => DeploySource::WorkTree,
    };
    let request = settings.request(&session.config);
    let report = match crate::ops::deploy::deploy(&session, &source, &request).await {
        Ok(deployed) => deployed.report,
        Err(error) if settings.atomic && crate::ops::deploy::is_unhealthy(&error) => {
            ctx.printer.warn(&format!(
                "the workloads of `{}` did not become healthy: `--atomic` rolls back",
                settings.cluster.env
            ));
            let back = match crate::ops::rollback::undo_failed(
                &ctx.global.workspace,
                &ctx.printer,
                &settings.cluster,
            )
            .await
            {
                Ok(back) => back,
                Err(undo) => {
                    return Err(error.context(gitship_foundation::diagnostics::UserError::new(
                        format!(
                            "the deploy of `{}` failed its health check, and `--atomic` could not roll back: {}",
                            settings.cluster.env,
                            gitship_foundation::diagnostics::render(&undo)
                        ),
                        "`gitship rollback` rolls back by hand",
                    )));
                }
            };
            return Err(error.context(gitship_foundation::diagnostics::UserError::new(
                format!(
                    "the deploy of {} to `{}` failed its health check, and `--atomic` rolled it back to {}",
                    crate::git::short_sha(&session.git.sha),
                    settings.cluster.env,
                    crate::git::short_sha(&back),
                ),
                format!(
                    "`gitship history {}` shows both records; fix the workloads and deploy again",
                    settings.cluster.env
                ),
            )));
        }
        Err(error) => return Err(error),
    };
    ctx.print(&crate::ops::deploy::DeployOutput::new(&session, report))?;
    Ok(Outcome::Success)
}
