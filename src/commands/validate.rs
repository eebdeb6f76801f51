//! `gitship validate [ENV]`: every static check for one or all environments, with no side
//! effects: the repository layout, the environment config schema, the image build contexts (their
//! content tags), the templates and the rendered objects' identities.
//!
//! The Terraform module is checked by the Terraform stage's static checks (it parses, and
//! `terraform.vars` fit its `variable` blocks). Without `--terraform-outputs`, `terraform.*`
//! placeholders are checked against the module's `output` blocks (names and sensitivity), their
//! values being unknown.

use std::path::Path;

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::settings::OutputFormat;

pub fn run(ctx: &Context, env: Option<&str>, terraform_outputs: Option<&Path>) -> Result<Outcome> {
    let results =
        crate::ops::validate::validate(ctx.global.repo.as_deref(), env, terraform_outputs)?;
    if ctx.printer.format != OutputFormat::Json {
        for error in results.iter().filter_map(|r| r.error.as_deref()) {
            eprintln!("{error}");
        }
    }
    match ctx.printer.format {
        OutputFormat::Json => ctx.printer.data(&serde_json::to_string_pretty(&results)?)?,
        OutputFormat::Human | OutputFormat::Markdown => {
            let width = results
                .iter()
                .map(|r| r.environment.len())
                .max()
                .unwrap_or(0);
            let mut out = String::new();
            for result in &results {
                let line = if result.valid {
                    format!(
                        "ok      {:width$}  {} objects",
                        result.environment, result.objects
                    )
                } else {
                    format!("FAILED  {}", result.environment)
                };
                out.push_str(&line);
                out.push('\n');
            }
            ctx.printer.data(&out)?;
        }
    }
    let failed = results.iter().filter(|r| !r.valid).count();
    if failed > 0 {
        return Err(UserError::bare(format!(
            "validation failed for {failed} of {} environment{}",
            results.len(),
            if results.len() == 1 { "" } else { "s" }
        ))
        .into());
    }
    Ok(Outcome::Success)
}
