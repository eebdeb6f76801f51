//! `gitship envs`.

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;

pub fn run(ctx: &Context) -> Result<Outcome> {
    let _ = ctx;
    Err(UserError::new(
        "`gitship envs` is not available yet",
        "see the foundation issue",
    )
    .into())
}
