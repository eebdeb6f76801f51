//! `gitship rollback ENV [--to REV | --steps N] [--terraform] [--render] [--yes]`: the target
//! from the history, how it is restored (its stored manifests, else rendered again), the diff
//! of exactly that, a confirmation, then [`crate::ops::rollback::rollback`].

use anyhow::Result;

use crate::commands::Context;
use crate::commands::plan::print_plan;
use crate::exit::Outcome;
use crate::git::short_sha;
use crate::ops::Session;
use crate::ops::rollback::Restore;
use crate::ops::rollback::RollbackRequest;
use crate::ops::session::SessionTarget;

pub async fn run(ctx: &Context, settings: RollbackRequest) -> Result<Outcome> {
    let cluster = SessionTarget {
        env: settings.env.clone(),
        sandbox: settings.sandbox,
        terraform_outputs: None,
    };
    let session = Session::open(&ctx.global.workspace, &ctx.printer, &cluster).await?;
    let target = crate::ops::rollback::target(&session, &settings).await?;
    let revision = Session::open_revision(
        &ctx.global.workspace,
        &ctx.printer,
        &cluster,
        &target.target,
    )
    .await?;
    ctx.printer.status(&format!(
        "rollback of `{}` from {} to {}: images and Kubernetes{}",
        settings.env,
        short_sha(&target.current),
        short_sha(&target.target),
        if settings.terraform {
            " and Terraform"
        } else {
            " only (Terraform is not rolled back without `--terraform`)"
        }
    ));
    // With Terraform, the preview is the whole plan (Terraform's changes, and the manifests with
    // the outputs it plans), saved and applied exactly as shown; without, the Kubernetes diff.
    let saved = tempfile::Builder::new()
        .prefix("gitship-rollback-")
        .tempdir()?;
    let source = if settings.terraform {
        let outcome = crate::ops::plan::plan(&revision, crate::ops::pin::Target::Session).await?;
        print_plan(ctx, &outcome.plan)?;
        let file = saved.path().join("rollback.plan");
        crate::ops::plan::save(&file, &outcome, &revision.repo.root)?;
        crate::ops::DeploySource::SavedPlan(file)
    } else {
        // The manifests the target's deploy applied, exactly; else the revision rendered again.
        let restore = crate::ops::rollback::restore(&revision, &target, settings.render).await?;
        let plan = match &restore {
            Restore::Stored(stored) => {
                ctx.printer.status(&format!(
                    "re-applying the manifests record #{} applied ({} objects; not rendered again)",
                    target.record.as_ref().map_or(stored.key, |r| r.number),
                    stored.manifests.len()
                ));
                crate::ops::plan::kubernetes_of(&revision, &stored.manifests).await?
            }
            Restore::Render(why) => {
                if !settings.render {
                    ctx.printer.warn(&format!(
                        "rendering {} again with today's Terraform outputs: {why}",
                        short_sha(&target.target)
                    ));
                }
                crate::ops::plan::kubernetes(&revision).await?
            }
        };
        print_plan(ctx, &plan)?;
        restore.source()
    };
    if !settings.yes {
        crate::commands::confirm(
            &format!("Roll `{}` back as shown?", settings.env),
            &format!("rolling back `{}`", settings.env),
        )?;
    }
    let report = crate::ops::rollback::rollback(&revision, &settings, &source).await?;
    ctx.printer.data(&format!(
        "rolled `{env}` back to {to}: {summary}\n`{env}` is pinned at {to}: the agent heals it there and does not sync, and `deploy` refuses other revisions.\nMake Git the truth again: `git revert` the bad change ({from}), push, then `gitship resume {env}`.\n",
        env = settings.env,
        to = short_sha(&target.target),
        from = short_sha(&target.current),
        summary = report.summary_line()
    ))?;
    Ok(Outcome::Success)
}
