//! `gitship agent ENV`: one call to [`crate::agent::run`].

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::settings::AgentSettings;

pub async fn run(_ctx: &Context, _settings: AgentSettings) -> Result<Outcome> {
    Ok(Outcome::Success)
}
