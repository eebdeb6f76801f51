//! `gitship envs`: list environments (name, namespace, cluster context) and live previews.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use gitship_foundation::output::OutputFormat;

pub async fn run(ctx: &Context) -> Result<Outcome> {
    let listing = crate::ops::envs::environments(&ctx.global.workspace).await?;
    for cluster in &listing.unreachable {
        ctx.printer
            .warn(&format!("could not look for previews in {cluster}"));
    }
    if listing.environments.is_empty() && ctx.printer.format == OutputFormat::Human {
        ctx.printer.status(&format!(
            "no environments: create `{}/<env>.yaml`",
            listing.config_dir.display()
        ));
        return Ok(Outcome::Success);
    }
    ctx.print(&listing)?;
    Ok(Outcome::Success)
}
