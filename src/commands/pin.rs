//! `gitship pin ENV --rev REV` and `gitship resume ENV`: one call each to [`crate::ops::pin`].

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::git::short_sha;
use crate::ops::Session;
use crate::ops::pin::Resumed;
use crate::settings::{ClusterSettings, StatusSettings};

fn open(ctx: &Context, settings: StatusSettings) -> Result<Session> {
    Session::open(
        &ctx.global,
        &ctx.printer,
        &ClusterSettings {
            env: settings.env,
            sandbox: settings.sandbox,
            terraform_outputs: None,
        },
    )
}

pub async fn pin(ctx: &Context, settings: StatusSettings, revision: &str) -> Result<Outcome> {
    let session = open(ctx, settings)?;
    let pin = crate::ops::pin::pin(&session, revision, "pin").await?;
    ctx.printer.data(&format!(
        "pinned `{}` at {}: `deploy` refuses other revisions (unless `--force`) and the agent heals to it without syncing; `gitship resume {}` undoes it\n",
        session.config.name,
        short_sha(&pin.sha),
        session.config.name
    ))?;
    Ok(Outcome::Success)
}

pub async fn resume(ctx: &Context, settings: StatusSettings) -> Result<Outcome> {
    let session = open(ctx, settings)?;
    let text = match crate::ops::pin::resume(&session).await? {
        Resumed::Unpinned(previous) => format!(
            "resumed `{}`: it follows Git again (it was pinned at {})\n",
            session.config.name,
            short_sha(&previous.sha)
        ),
        Resumed::UnreadableRemoved(message) => format!(
            "resumed `{}`: it follows Git again (its pin was unreadable and is removed: {message})\n",
            session.config.name
        ),
        Resumed::NotPinned => format!("`{}` is not pinned\n", session.config.name),
    };
    ctx.printer.data(&text)?;
    Ok(Outcome::Success)
}
