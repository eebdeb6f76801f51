//! `gitship status ENV`. STUB: being written by a helper.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::settings::StatusSettings;

pub async fn run(_ctx: &Context, _settings: StatusSettings) -> Result<Outcome> {
    Ok(Outcome::Success)
}
