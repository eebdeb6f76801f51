//! `gitship drift ENV [--rev REV]`: what runs differs from Git, or from the pinned revision of a
//! pinned environment, or from `REV` ([`crate::ops::drift`]). Exit 2 when drifted, 0 in sync.

use anyhow::Result;

use crate::commands::Context;
use crate::commands::plan::MARKDOWN_LIMIT;
use crate::exit::Outcome;
use crate::output::OutputFormat;
use crate::settings::DriftSettings;

pub async fn run(ctx: &Context, settings: DriftSettings) -> Result<Outcome> {
    let (session, target) =
        crate::commands::plan::open(ctx, &settings.cluster, settings.rev.as_deref())?;
    let report = crate::ops::drift::drift(&session, target).await?;
    let text = match ctx.printer.format {
        OutputFormat::Json => serde_json::to_string_pretty(&report)?,
        OutputFormat::Markdown => crate::plan::markdown::render_drift(&report, MARKDOWN_LIMIT),
        OutputFormat::Human => crate::plan::human::render_drift(&report, ctx.printer.color_stdout),
    };
    ctx.printer.data(&text)?;
    ctx.printer
        .step_summary(&crate::plan::markdown::render_drift(
            &report,
            MARKDOWN_LIMIT,
        ));
    Ok(if report.drifted() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}
