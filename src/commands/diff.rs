//! `gitship diff ENV`: the Kubernetes part of the plan only, like `kubectl diff --server-side`
//! over the whole environment, including what a deploy would prune. Exit 2 when different.

use anyhow::Result;

use crate::commands::Context;
use crate::commands::plan::print_plan;
use crate::exit::Outcome;
use crate::ops::Session;
use crate::ops::session::SessionTarget;

pub async fn run(ctx: &Context, settings: SessionTarget) -> Result<Outcome> {
    let session = Session::open(&ctx.global.workspace, &ctx.printer, &settings).await?;
    let result = crate::ops::plan::kubernetes(&session).await?;
    print_plan(ctx, &result)?;
    Ok(if result.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}
