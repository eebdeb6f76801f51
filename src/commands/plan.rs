//! `gitship plan ENV [--out FILE] [--exit-code]`: one plan across images, Terraform and
//! Kubernetes ([`crate::ops::plan`]), printed; optionally saved for `deploy --plan`.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::Session;
use crate::plan::{self, Plan};
use crate::settings::{OutputFormat, PlanSettings};

/// Markdown output stays below GitHub's comment limit.
pub const MARKDOWN_LIMIT: usize = 65_000;

pub async fn run(ctx: &Context, settings: PlanSettings) -> Result<Outcome> {
    let session = match &settings.rev {
        Some(revision) => {
            Session::open_revision(&ctx.global, &ctx.printer, &settings.cluster, revision)?
        }
        None => Session::open(&ctx.global, &ctx.printer, &settings.cluster)?,
    };
    let outcome = crate::ops::plan::plan(&session).await?;
    ctx.printer.status(&format!(
        "preflight: {} checks passed",
        outcome.preflight.checks.len()
    ));
    print_plan(ctx, &outcome.plan)?;
    ctx.printer
        .step_summary(&plan::markdown::render_plan(&outcome.plan, MARKDOWN_LIMIT));
    if let Some(out) = &settings.out {
        crate::ops::plan::save(out, &session, &outcome)?;
        ctx.printer
            .status(&format!("saved the plan to `{}`", out.display()));
    }
    Ok(if settings.exit_code && outcome.plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// Print `plan` in the chosen format (data on stdout).
pub fn print_plan(ctx: &Context, plan: &Plan) -> Result<()> {
    let text = match ctx.printer.format {
        OutputFormat::Json => serde_json::to_string_pretty(plan)?,
        OutputFormat::Markdown => plan::markdown::render_plan(plan, MARKDOWN_LIMIT),
        OutputFormat::Human => plan::human::render_plan(plan, ctx.printer.color_stdout),
    };
    ctx.printer.data(&text)?;
    Ok(())
}
