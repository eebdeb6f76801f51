//! `gitship build`.

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::settings::BuildSettings;

pub async fn run(ctx: &Context, env: &str, settings: BuildSettings) -> Result<Outcome> {
    let _ = (ctx, env, settings);
    Err(UserError::new(
        "`gitship build` is not available yet",
        "see the image-stage issue",
    )
    .into())
}
