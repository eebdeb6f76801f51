//! `gitship pin ENV --rev REV` and `gitship resume ENV`: one call each to [`crate::ops::pin`].

use anyhow::Result;

use crate::commands::Context;
use crate::commands::cluster_session as open;
use crate::exit::Outcome;
use crate::git::short_sha;
use crate::ops::pin::Resumed;
use crate::settings::StatusSettings;

pub async fn pin(ctx: &Context, settings: StatusSettings, revision: &str) -> Result<Outcome> {
    let session = open(ctx, settings).await?;
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
    let session = open(ctx, settings).await?;
    let env = &session.config.name;
    let resumed = crate::ops::pin::resume(&session).await?;
    let mut was = Vec::new();
    match &resumed.pin {
        Resumed::Unpinned(previous) => {
            was.push(format!("it was pinned at {}", short_sha(&previous.sha)))
        }
        Resumed::UnreadableRemoved(message) => {
            was.push(format!("its pin was unreadable and is removed: {message}"))
        }
        Resumed::NotPinned => {}
    }
    if let Some(suspension) = &resumed.suspension {
        was.push(format!("it was suspended by {}", suspension.who));
    }
    let text = if was.is_empty() {
        format!("`{env}` is neither pinned nor suspended\n")
    } else {
        format!(
            "resumed `{env}`: it follows Git again ({}); the agent is asked to sync now\n",
            was.join("; ")
        )
    };
    ctx.printer.data(&text)?;
    Ok(Outcome::Success)
}

/// `gitship suspend ENV [--reason TEXT]`.
pub async fn suspend(ctx: &Context, settings: StatusSettings, reason: &str) -> Result<Outcome> {
    let session = open(ctx, settings).await?;
    crate::ops::agent_control::suspend(&session, reason).await?;
    ctx.printer.data(&format!(
        "suspended `{}`: its agent neither syncs nor heals it until `gitship resume {}` (`deploy` still works)\n",
        session.config.name, session.config.name
    ))?;
    Ok(Outcome::Success)
}

/// `gitship sync ENV [--no-wait] [--timeout D]`.
pub async fn sync(
    ctx: &Context,
    settings: StatusSettings,
    wait: Option<std::time::Duration>,
) -> Result<Outcome> {
    use crate::ops::agent_control::SyncAnswer;
    use crate::ops::agent_status::SyncState;
    let session = open(ctx, settings).await?;
    let env = session.config.name.clone();
    match crate::ops::agent_control::sync(&session, wait).await? {
        SyncAnswer::Requested => {
            ctx.printer.data(&format!(
                "asked the agent of `{env}` to sync now (`gitship status {env}` shows its answer)\n"
            ))?;
            Ok(Outcome::Success)
        }
        SyncAnswer::Answered(status) => {
            let running = status
                .revision
                .as_ref()
                .map_or("nothing".to_string(), |r| short_sha(&r.sha).to_string());
            ctx.printer.data(&format!(
                "`{env}`: {} at {running}{}\n",
                status.state.as_str(),
                status
                    .last_error
                    .as_ref()
                    .map_or(String::new(), |e| format!("\n{e}"))
            ))?;
            match status.state {
                SyncState::Error | SyncState::Degraded => {
                    Err(gitship_foundation::diagnostics::UserError::new(
                        format!(
                            "the agent's sync of `{env}` did not succeed: it is {}",
                            status.state.as_str()
                        ),
                        format!("`gitship status {env}` shows the agent's last error"),
                    )
                    .into())
                }
                _ => Ok(Outcome::Success),
            }
        }
    }
}
