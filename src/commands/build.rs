//! `gitship build ENV`: build and push the images of the environment's apps whose content tag is
//! missing from the registry, reuse the others, and print every app's image reference.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::build::BuildInputs;

pub async fn run(ctx: &Context, env: &str, settings: BuildInputs) -> Result<Outcome> {
    let report = crate::ops::build::build(
        ctx.global.workspace.repo.as_deref(),
        env,
        &settings,
        &ctx.printer,
    )
    .await?;
    ctx.printer.status(&report.summary());
    ctx.print(&report)?;
    Ok(Outcome::Success)
}
