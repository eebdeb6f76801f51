//! `gitship drift`.

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::settings::ClusterSettings;

pub async fn run(ctx: &Context, settings: ClusterSettings) -> Result<Outcome> {
    let _ = (ctx, settings);
    Err(UserError::new("`gitship drift` is not available yet", "see the plan issue").into())
}
