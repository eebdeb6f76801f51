//! `gitship plan`.

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::settings::PlanSettings;

pub async fn run(ctx: &Context, settings: PlanSettings) -> Result<Outcome> {
    let _ = (ctx, settings);
    Err(UserError::new("`gitship plan` is not available yet", "see the plan issue").into())
}
