//! `gitship validate [ENV]`: every static check for one or all environments, with no side
//! effects: the repository layout, the environment config schema, the image build contexts (their
//! content tags), the templates and the rendered objects' identities.
//!
//! The Terraform module is checked by the Terraform stage's static checks (it parses, and
//! `terraform.vars` fit its `variable` blocks). Without `--terraform-outputs`, `terraform.*`
//! placeholders are checked against the module's `output` blocks (names and sensitivity), their
//! values being unknown.
//!
//! Other tools' `${...}` that the render leaves as written (shell variables in a container's
//! script) are listed below the environment's line, one line per placeholder with where it is
//! first written: information, not a warning (`--quiet` drops them).

use std::path::Path;

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use gitship_foundation::diagnostics::UserError;
use gitship_foundation::output::OutputFormat;

pub fn run(
    ctx: &Context,
    env: Option<&str>,
    terraform_outputs: Option<&Path>,
    codequality: bool,
) -> Result<Outcome> {
    let mut report = crate::ops::validate::validate(
        ctx.global.workspace.repo.as_deref(),
        env,
        terraform_outputs,
    )?;
    report.show_left_literal = !ctx.printer.quiet;
    for error in report
        .environments
        .iter()
        .filter_map(|r| r.error.as_deref())
    {
        if ctx.printer.format != OutputFormat::Json || codequality {
            eprintln!("{error}");
        }
        if let Some(base) = gitship_foundation::diagnostics::github_annotations_base() {
            for line in gitship_foundation::diagnostics::github_annotations(error, base) {
                eprintln!("{line}");
            }
        }
    }
    if codequality {
        let issues = report.codequality(ctx.global.workspace.repo.as_deref());
        ctx.printer.data(&serde_json::to_string_pretty(&issues)?)?;
    } else {
        ctx.print(&report)?;
    }
    let failed = report.failed();
    if failed > 0 {
        let count = report.environments.len();
        return Err(UserError::bare(format!(
            "validation failed for {failed} of {count} environment{}",
            if count == 1 { "" } else { "s" }
        ))
        .into());
    }
    Ok(Outcome::Success)
}
