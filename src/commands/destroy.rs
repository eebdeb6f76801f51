//! `gitship destroy ENV [--yes] [--keep-terraform] [--keep-namespace] [--timeout D]`: one call
//! to [`crate::ops::destroy`], which shows its plan and asks here, then the report.

use std::io::IsTerminal as _;

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::settings::DestroySettings;
use gitship_foundation::diagnostics::UserError;

pub async fn run(ctx: &Context, settings: DestroySettings) -> Result<Outcome> {
    let env = settings.status.env.clone();
    // Refused before anything is read: off a terminal there is no one to ask.
    if !settings.yes && !std::io::stdin().is_terminal() {
        return Err(UserError::usage(
            format!("destroying `{env}` needs confirmation, and stdin is not a terminal; nothing was changed"),
            format!("run it on a terminal to see the plan and answer, or pass `--yes` (`gitship destroy {env} --yes`)"),
        )
        .into());
    }
    let session = crate::commands::cluster_session(ctx, settings.status.clone()).await?;
    let request = settings.request(&session.config);
    let yes = settings.yes;
    let report = crate::ops::destroy::destroy(&session, &request, |_plan| {
        if yes {
            return Ok(());
        }
        crate::commands::confirm(
            &format!("Destroy `{env}` as planned above? This cannot be undone."),
            &format!("destroying `{env}`"),
        )
    })
    .await?;
    ctx.print(&report)?;
    Ok(Outcome::Success)
}
