//! `gitship affected --since REF`: which environments and apps the commits since `REF` touch
//! ([`crate::ops::affected`]), as a summary and one line per changed file, or JSON.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::Session;
use crate::ops::affected::DEPLOYED;
use crate::ops::session::SessionTarget;

pub async fn run(ctx: &Context, since: &str, sandbox: bool) -> Result<Outcome> {
    let affected = match since.strip_prefix(DEPLOYED) {
        Some(env) => {
            let target = SessionTarget {
                env: env.to_string(),
                sandbox,
                terraform_outputs: None,
            };
            let session = Session::open(&ctx.global.workspace, &ctx.printer, &target).await?;
            crate::ops::affected::since_deployed(&session).await?
        }
        None => crate::ops::affected::affected(ctx.global.workspace.repo.as_deref(), since)?,
    };
    ctx.print(&affected)?;
    Ok(Outcome::Success)
}
