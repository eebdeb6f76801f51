//! `gitship init [--env NAME] [--registry PREFIX] [--force]`: one call to [`crate::ops::init`],
//! then what it found, assumed and wrote, and the next command.

use std::fmt::Write as _;

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::init::InitOptions;
use crate::output::OutputFormat;

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
    let text = match ctx.printer.format {
        OutputFormat::Json => serde_json::to_string_pretty(&report)?,
        OutputFormat::Human | OutputFormat::Markdown => {
            let mut out = String::new();
            for line in &report.found {
                let _ = writeln!(out, "found: {line}");
            }
            for line in &report.assumed {
                let _ = writeln!(out, "assumed: {line}");
            }
            for file in &report.written {
                let _ = writeln!(out, "wrote: {}", file.display());
            }
            let _ = writeln!(out, "next: {}", report.next);
            out
        }
    };
    ctx.printer.data(&text)?;
    Ok(Outcome::Success)
}
