//! `gitship drift ENV [--rev REV]`: what runs differs from Git, or from the pinned revision of a
//! pinned environment, or from `REV` ([`crate::ops::drift`]). Exit 2 when drifted, 0 in sync.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::settings::DriftSettings;

pub async fn run(ctx: &Context, settings: DriftSettings) -> Result<Outcome> {
    let (session, target) =
        crate::commands::plan::open(ctx, &settings.cluster, settings.rev.as_deref()).await?;
    let report = crate::ops::drift::drift(&session, target).await?;
    ctx.print(&report)?;
    ctx.printer
        .step_summary(&crate::plan::report::CommandReport::markdown(&report));
    Ok(if report.drifted() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}
