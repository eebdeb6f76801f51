//! `gitship agent ENV`: one call to [`crate::agent::run`].

use anyhow::Result;

use crate::agent::AgentRequest;
use crate::commands::Context;
use crate::exit::Outcome;

pub async fn run(ctx: &Context, settings: AgentRequest) -> Result<Outcome> {
    crate::agent::run(&settings, &ctx.global.workspace, &ctx.printer).await
}
