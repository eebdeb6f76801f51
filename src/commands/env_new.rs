//! `gitship env new`.

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;

pub fn run(ctx: &Context, name: &str, from: &str, namespace: Option<&str>) -> Result<Outcome> {
    let _ = (ctx, name, from, namespace);
    Err(UserError::new(
        "`gitship env new` is not available yet",
        "see the foundation issue",
    )
    .into())
}
