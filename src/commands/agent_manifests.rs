//! `gitship agent manifests ENV --image REF`. STUB: being written by a helper.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::settings::AgentManifestsSettings;

pub fn run(_ctx: &Context, _settings: AgentManifestsSettings) -> Result<Outcome> {
    Ok(Outcome::Success)
}
