//! `gitship render`.

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;

pub fn run(
    ctx: &Context,
    env: &str,
    terraform_outputs: Option<&std::path::Path>,
) -> Result<Outcome> {
    let _ = (ctx, env, terraform_outputs);
    Err(UserError::new(
        "`gitship render` is not available yet",
        "see the foundation issue",
    )
    .into())
}
