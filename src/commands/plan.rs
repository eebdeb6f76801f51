//! `gitship plan ENV [--out FILE] [--exit-code]`: one plan across images, Terraform and
//! Kubernetes ([`crate::ops::plan`]), printed; optionally saved for `deploy --plan`.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::Session;
use crate::ops::pin::Target;
use crate::ops::session::SessionTarget;
use crate::plan::{self, Plan};
use crate::settings::PlanSettings;

pub async fn run(ctx: &Context, settings: PlanSettings) -> Result<Outcome> {
    let (session, target) = open(ctx, &settings.cluster, settings.rev.as_deref()).await?;
    let outcome = crate::ops::plan::plan(&session, target).await?;
    ctx.printer.status(&format!(
        "preflight: {} checks passed",
        outcome.preflight.checks.len()
    ));
    print_plan(ctx, &outcome.plan)?;
    ctx.printer
        .step_summary(&plan::report::CommandReport::markdown(&outcome.plan));
    if let Some(report) = &settings.report {
        crate::ops::plan::write_report(report, &outcome.plan)?;
        ctx.printer.status(&format!(
            "wrote the plan's report to `{}`",
            report.display()
        ));
    }
    if let Some(out) = &settings.out {
        crate::ops::plan::save(out, &outcome, &session.repo.root)?;
        ctx.printer
            .status(&format!("saved the plan to `{}`", out.display()));
        // The plan of a pinned revision or of `--rev`: `deploy --plan` alone would find it
        // stale (it deploys the work tree's commit).
        if outcome.plan.git.sha != session.work_tree_sha()? {
            ctx.printer.status(&format!(
                "it is the plan of {}, not of the work tree: deploy it with `gitship deploy {} --rev {} --plan {}`",
                crate::git::short_sha(&outcome.plan.git.sha),
                outcome.plan.environment,
                outcome.plan.git.sha,
                out.display()
            ));
        }
    }
    Ok(if settings.exit_code && outcome.plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// The session of the revision `rev` names (checked out in gitship's own clone), compared
/// whatever the pin; without one, the work tree's, which a pinned environment trades for its
/// pinned revision. What `plan` and `drift` open.
pub async fn open(
    ctx: &Context,
    cluster: &SessionTarget,
    rev: Option<&str>,
) -> Result<(Session, Target)> {
    Ok(match rev {
        Some(revision) => (
            Session::open_revision(&ctx.global.workspace, &ctx.printer, cluster, revision).await?,
            Target::Session,
        ),
        None => (
            Session::open(&ctx.global.workspace, &ctx.printer, cluster).await?,
            Target::FollowPin,
        ),
    })
}

/// Print `plan` in the chosen format (data on stdout).
pub fn print_plan(ctx: &Context, plan: &Plan) -> Result<()> {
    ctx.print(plan)
}
