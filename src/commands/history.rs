//! `gitship history ENV`: the environment's deploys, newest first, as its inventory in the
//! cluster records them ([`crate::ops::history`]): a table for people, the records as JSON, or a
//! Markdown table. Exit 0, also before the first deploy.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::Session;
use crate::ops::session::SessionTarget;
use crate::settings::HistorySettings;

pub async fn run(ctx: &Context, settings: HistorySettings) -> Result<Outcome> {
    let cluster = SessionTarget {
        env: settings.env,
        sandbox: settings.sandbox,
        terraform_outputs: None,
    };
    let session = Session::open(&ctx.global.workspace, &ctx.printer, &cluster).await?;
    if let Some((from, to)) = &settings.diff {
        let diff = crate::ops::history::diff(&session, from, to).await?;
        ctx.print(&diff)?;
        return Ok(Outcome::Success);
    }
    let report = crate::ops::history::history(&session, settings.limit).await?;
    ctx.print(&report)?;
    Ok(Outcome::Success)
}
