//! `gitship agent ENV`: one call to [`crate::agent::run`].

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::settings::AgentSettings;

pub async fn run(ctx: &Context, settings: AgentSettings) -> Result<Outcome> {
    crate::agent::run(&settings, &ctx.global, &ctx.printer).await
}
