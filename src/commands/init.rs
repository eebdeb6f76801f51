//! `gitship init [--env NAME] [--registry PREFIX] [--force]`: one call to [`crate::ops::init`],
//! then what it found, assumed and wrote, and the next command.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::init::InitOptions;

pub fn run(ctx: &Context, env: String, registry: Option<String>, force: bool) -> Result<Outcome> {
    let root = match &ctx.global.workspace.repo {
        Some(dir) => std::path::absolute(dir)?,
        None => {
            let cwd = std::env::current_dir()?;
            crate::git::work_tree_root(&cwd).unwrap_or(cwd)
        }
    };
    let report = crate::ops::init::init(
        &root,
        &InitOptions {
            env,
            registry,
            force,
        },
    )?;
    ctx.print(&report)?;
    Ok(Outcome::Success)
}
