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
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::output::OutputFormat;

pub fn run(
    ctx: &Context,
    env: Option<&str>,
    terraform_outputs: Option<&Path>,
    codequality: bool,
) -> Result<Outcome> {
    let results = crate::ops::validate::validate(
        ctx.global.workspace.repo.as_deref(),
        env,
        terraform_outputs,
    )?;
    for error in results.iter().filter_map(|r| r.error.as_deref()) {
        if ctx.printer.format != OutputFormat::Json || codequality {
            eprintln!("{error}");
        }
        if let Some(base) = crate::diagnostics::github_annotations_base() {
            for line in crate::diagnostics::github_annotations(error, base) {
                eprintln!("{line}");
            }
        }
    }
    match ctx.printer.format {
        OutputFormat::Json if codequality => {
            ctx.printer
                .data(&serde_json::to_string_pretty(&codequality_report(
                    ctx, &results,
                ))?)?
        }
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
                if !ctx.printer.quiet {
                    write_left_literal(&mut out, &result.left_literal);
                }
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

/// `        left literal: ${FRONTEND_ADDR}  file:line:column (and 2 more)`, per placeholder.
fn write_left_literal(out: &mut String, left_literal: &[crate::ops::validate::LeftLiteral]) {
    let mut seen: Vec<(&str, &str, usize)> = Vec::new();
    for left in left_literal {
        match seen
            .iter_mut()
            .find(|(placeholder, _, _)| *placeholder == left.placeholder)
        {
            Some((_, _, count)) => *count += 1,
            None => seen.push((&left.placeholder, &left.location, 1)),
        }
    }
    for (placeholder, location, count) in seen {
        let more = match count {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        out.push_str(&format!(
            "        left literal: {placeholder}  {location}{more}\n"
        ));
    }
}

/// A GitLab Code Quality report (`-o codequality`): one issue per located problem of each failed
/// environment, else one at the top of its config file. Paths are relative to the checkout.
fn codequality_report(
    ctx: &Context,
    results: &[crate::ops::validate::ValidationResult],
) -> serde_json::Value {
    use sha2::{Digest, Sha256};
    let base = ctx.global.workspace.repo.as_deref();
    let config_files: std::collections::BTreeMap<String, String> =
        crate::ops::envs::environments(base)
            .map(|listing| {
                listing
                    .environments
                    .into_iter()
                    .map(|e| (e.name, e.file))
                    .collect()
            })
            .unwrap_or_default();
    let mut issues = Vec::new();
    // How many issues of the same file and description came before: the fingerprint's
    // tie-breaker instead of the line, which moves whenever a line is inserted above.
    let mut seen: std::collections::HashMap<(String, String), usize> = Default::default();
    for result in results {
        let Some(error) = &result.error else { continue };
        let mut problems = crate::diagnostics::located_problems(error);
        if problems.is_empty() {
            let file = config_files
                .get(&result.environment)
                .cloned()
                .unwrap_or_else(|| format!("config/{}.yaml", result.environment));
            let message = error.trim().strip_prefix("error: ").unwrap_or(error.trim());
            problems.push(crate::diagnostics::LocatedProblem {
                file,
                line: 1,
                column: None,
                message: message.to_string(),
            });
        }
        for problem in problems {
            let path = crate::diagnostics::workspace_relative(&problem.file, base);
            let description = format!("{} (environment `{}`)", problem.message, result.environment);
            let occurrence = seen.entry((path.clone(), description.clone())).or_default();
            *occurrence += 1;
            let fingerprint = hex::encode(Sha256::digest(
                format!("gitship-validate\n{path}\n{description}\n{occurrence}").as_bytes(),
            ));
            issues.push(serde_json::json!({
                "description": description,
                "check_name": "gitship-validate",
                "fingerprint": fingerprint,
                "severity": "major",
                "location": { "path": path, "lines": { "begin": problem.line } },
            }));
        }
    }
    serde_json::Value::Array(issues)
}
