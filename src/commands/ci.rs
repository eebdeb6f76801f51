//! `gitship ci init github|gitlab`: write the CI configuration ([`crate::ops::ci_init`]) and say
//! what was written and which secrets to set.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::ci_init::CiInitRequest;

pub fn init(ctx: &Context, settings: CiInitRequest) -> Result<Outcome> {
    let report = crate::ops::ci_init::ci_init(ctx.global.workspace.repo.as_deref(), &settings)?;
    ctx.print(&report)?;
    Ok(Outcome::Success)
}
