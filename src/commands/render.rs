//! `gitship render ENV`: print the environment's manifests as multi-document YAML on stdout.
//!
//! This is the one output that shows sensitive values, and only inside Secrets (the engine refuses
//! them anywhere else). With `-o json` the objects are printed redacted.

use std::path::Path;

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;

pub fn run(ctx: &Context, env: &str, terraform_outputs: Option<&Path>) -> Result<Outcome> {
    let rendered =
        crate::ops::render::render(ctx.global.workspace.repo.as_deref(), env, terraform_outputs)?;
    let manifests = &rendered.manifests;
    ctx.print(&rendered.report())?;
    ctx.printer.status(&format!(
        "rendered {} object{} for environment `{}`",
        manifests.len(),
        if manifests.len() == 1 { "" } else { "s" },
        rendered.environment
    ));
    Ok(Outcome::Success)
}
