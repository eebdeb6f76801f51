//! `gitship validate`.

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;

pub fn run(
    ctx: &Context,
    env: Option<&str>,
    terraform_outputs: Option<&std::path::Path>,
) -> Result<Outcome> {
    let _ = (ctx, env, terraform_outputs);
    Err(UserError::new(
        "`gitship validate` is not available yet",
        "see the foundation issue",
    )
    .into())
}
