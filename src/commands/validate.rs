//! `gitship validate [ENV]`: every static check for one or all environments, with no side
//! effects: the repository layout, the environment config schema, the image build contexts (their
//! content tags), the templates and the rendered objects' identities.
//!
//! Without `--terraform-outputs`, `terraform.*` placeholders are checked against the `output`
//! blocks of the Terraform root module (names and sensitivity), their values being unknown.

use std::path::Path;

use anyhow::Result;

use crate::commands::Context;
use crate::commands::render::{load_terraform_outputs, render_with};
use crate::diagnostics::{self, UserError};
use crate::exit::Outcome;
use crate::render::UnknownOutputs;
use crate::repo::Repository;
use crate::settings::OutputFormat;
use crate::terraform;

/// The result for one environment (the `-o json` schema).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ValidationResult {
    pub environment: String,
    pub valid: bool,
    /// Number of rendered objects when valid.
    pub objects: usize,
    /// The rendered error when invalid (never contains sensitive values).
    pub error: Option<String>,
}

pub fn run(ctx: &Context, env: Option<&str>, terraform_outputs: Option<&Path>) -> Result<Outcome> {
    let repo = Repository::discover(ctx.global.repo.as_deref()).map_err(UserError::from)?;
    let names: Vec<String> = match env {
        Some(name) => {
            repo.environment_file(name).map_err(UserError::from)?;
            vec![name.to_string()]
        }
        None => repo.environments.keys().cloned().collect(),
    };
    if names.is_empty() {
        return Err(UserError::new(
            "no environments to validate",
            format!(
                "create `{}/<env>.yaml`",
                repo.relative(&repo.layout.config_dir).display()
            ),
        )
        .into());
    }
    let (outputs, unknown_outputs) = match terraform_outputs {
        Some(path) => (load_terraform_outputs(path)?, UnknownOutputs::Error),
        None => (static_outputs(&repo)?, UnknownOutputs::Placeholder),
    };

    let mut results = Vec::new();
    for name in &names {
        let outcome = repo
            .load_env(name)
            .map_err(|err| anyhow::Error::from(UserError::from(err)))
            .and_then(|config| render_with(&repo, &config, outputs.clone(), unknown_outputs));
        let result = match outcome {
            Ok(manifests) => ValidationResult {
                environment: name.clone(),
                valid: true,
                objects: manifests.len(),
                error: None,
            },
            Err(err) => {
                let rendered = diagnostics::render(&err);
                if ctx.printer.format != OutputFormat::Json {
                    eprintln!("{rendered}");
                }
                ValidationResult {
                    environment: name.clone(),
                    valid: false,
                    objects: 0,
                    error: Some(rendered),
                }
            }
        };
        results.push(result);
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

/// The outputs the Terraform root module declares, values unknown: `output "name" { ... }` blocks
/// of its `*.tf` files, with their `sensitive` flag.
pub fn static_outputs(repo: &Repository) -> Result<terraform::Outputs> {
    let mut outputs = terraform::Outputs::new();
    let Some(dir) = &repo.layout.terraform_dir else {
        return Ok(outputs);
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|err| {
            UserError::bare(format!(
                "cannot read `{}`: {err}",
                repo.relative(dir).display()
            ))
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "tf"))
        .collect();
    files.sort();
    for file in files {
        let shown = repo.relative(&file);
        let text = std::fs::read_to_string(&file)
            .map_err(|err| UserError::bare(format!("cannot read `{}`: {err}", shown.display())))?;
        let body = hcl::parse(&text).map_err(|err| {
            UserError::new(
                format!("`{}` is not valid HCL: {err}", shown.display()),
                "run `terraform validate` in the Terraform directory for details",
            )
        })?;
        for block in body.blocks().filter(|b| b.identifier() == "output") {
            let Some(label) = block.labels().first() else {
                continue;
            };
            let sensitive = block
                .body()
                .attributes()
                .any(|a| a.key() == "sensitive" && matches!(a.expr(), hcl::Expression::Bool(true)));
            outputs.insert(
                label.as_str().to_string(),
                terraform::OutputValue {
                    value: None,
                    sensitive,
                },
            );
        }
    }
    Ok(outputs)
}
