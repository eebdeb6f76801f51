//! `gitship drift ENV`: what runs differs from Git ([`crate::ops::drift`]). Exit 2 when drifted,
//! 0 in sync.

use anyhow::Result;

use crate::commands::Context;
use crate::commands::plan::MARKDOWN_LIMIT;
use crate::exit::Outcome;
use crate::ops::Session;
use crate::settings::{ClusterSettings, OutputFormat};

pub async fn run(ctx: &Context, settings: ClusterSettings) -> Result<Outcome> {
    let session = Session::open(&ctx.global, &ctx.printer, &settings)?;
    let report = crate::ops::drift::drift(&session).await?;
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
