//! `gitship deploy`.

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::settings::DeploySettings;

pub async fn run(ctx: &Context, settings: DeploySettings) -> Result<Outcome> {
    let _ = (ctx, settings);
    Err(UserError::new(
        "`gitship deploy` is not available yet",
        "see the Kubernetes-stage issue",
    )
    .into())
}
