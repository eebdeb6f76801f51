//! `gitship deploy ENV [--plan FILE]`: one call to the deploy pipeline ([`crate::ops::deploy`]),
//! then the report.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::deploy::{DeployReport, ObjectAction};
use crate::ops::{DeploySource, Session};
use crate::output::OutputFormat;
use crate::output::Printer;
use crate::settings::DeploySettings;

pub async fn run(ctx: &Context, settings: DeploySettings) -> Result<Outcome> {
    let session = match &settings.rev {
        Some(revision) => Session::open_revision(
            &ctx.global.workspace,
            &ctx.printer,
            &settings.cluster,
            revision,
        )?,
        None => Session::open(&ctx.global.workspace, &ctx.printer, &settings.cluster)?,
    };
    let source = match &settings.plan {
        Some(path) => DeploySource::SavedPlan(path.clone()),
        None => DeploySource::WorkTree,
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
                    return Err(error.context(crate::diagnostics::UserError::new(
                        format!(
                            "the deploy of `{}` failed its health check, and `--atomic` could not roll back: {}",
                            settings.cluster.env,
                            crate::diagnostics::render(&undo)
                        ),
                        "`gitship rollback` rolls back by hand",
                    )));
                }
            };
            return Err(error.context(crate::diagnostics::UserError::new(
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
    print_report(&ctx.printer, &report, session.sandbox)?;
    Ok(Outcome::Success)
}

/// Print the report: JSON as data with `--output json`, otherwise a per-kind table and a summary.
fn print_report(printer: &Printer, report: &DeployReport, sandbox: bool) -> Result<()> {
    match printer.format {
        OutputFormat::Json => {
            let mut value = serde_json::to_value(report)?;
            value["sandbox"] = serde_json::Value::Bool(sandbox);
            value["changed"] = serde_json::Value::Bool(!is_no_op(report));
            printer.data(&serde_json::to_string_pretty(&value)?)?;
        }
        OutputFormat::Human | OutputFormat::Markdown => {
            let simulated = if sandbox {
                " (sandbox: simulated cluster)"
            } else {
                ""
            };
            let mut text = report.render_table();
            let summary = if is_no_op(report) {
                format!("no changes ({})", report.summary_line())
            } else {
                report.summary_line()
            };
            text.push_str(&format!(
                "deployed `{}`{simulated}: {summary}\n",
                report.environment,
            ));
            printer.data(&text)?;
        }
    }
    Ok(())
}

/// Whether the deploy changed no object (every one unchanged or kept).
fn is_no_op(report: &DeployReport) -> bool {
    report
        .objects
        .iter()
        .all(|o| matches!(o.action, ObjectAction::Unchanged | ObjectAction::Kept))
}
