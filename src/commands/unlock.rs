//! `gitship unlock ENV --force [--yes]`: one call to [`crate::ops::unlock`].

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::settings::StatusSettings;
use gitship_foundation::diagnostics::UserError;

pub async fn run(
    ctx: &Context,
    settings: StatusSettings,
    force: bool,
    yes: bool,
) -> Result<Outcome> {
    let env = settings.env.clone();
    if !force {
        return Err(UserError::usage(
            format!("`unlock` breaks the deploy lock of `{env}` under a deploy that may still be running"),
            "pass `--force` when that deploy is stuck or gone (`gitship status` shows who holds the lock)",
        )
        .into());
    }
    if !yes {
        crate::commands::confirm(
            &format!(
                "Break the deploy lock of `{env}`? The deploy holding it stops before its next write."
            ),
            &format!("breaking the deploy lock of `{env}`"),
        )?;
    }
    let session = crate::commands::cluster_session(ctx, settings).await?;
    let text = match crate::ops::unlock::unlock(&session).await? {
        Some(holder) => format!(
            "broke the deploy lock of `{env}`, held by `{holder}`: that deploy stops before its next write\n"
        ),
        None => format!("the deploy lock of `{env}` is not held\n"),
    };
    ctx.printer.data(&text)?;
    Ok(Outcome::Success)
}
