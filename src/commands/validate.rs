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
    let given_outputs = terraform_outputs.map(load_terraform_outputs).transpose()?;

    let mut results = Vec::new();
    for name in &names {
        let outcome = validate_environment(&repo, name, given_outputs.as_ref());
        let result = match outcome {
            Ok(objects) => ValidationResult {
                environment: name.clone(),
                valid: true,
                objects,
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

/// Every static check of one environment; the number of rendered objects.
///
/// The config loads; the Terraform module (when there is one) parses and fits the environment's
/// `terraform.vars`; the manifests render. Without given outputs, `terraform.*` placeholders are
/// checked against the module's `output` blocks (names and sensitivity), values unknown.
fn validate_environment(
    repo: &Repository,
    name: &str,
    given_outputs: Option<&terraform::Outputs>,
) -> Result<usize> {
    let config = repo.load_env(name).map_err(UserError::from)?;
    let module = match terraform::TerraformSettings::for_environment(repo, &config) {
        Some(settings) => Some(
            terraform::static_check::check_static(&settings)
                .map_err(terraform::TerraformError::into_anyhow)?,
        ),
        None => None,
    };
    let (outputs, unknown_outputs) = match given_outputs {
        Some(outputs) => (outputs.clone(), UnknownOutputs::Error),
        None => (static_outputs(module.as_ref()), UnknownOutputs::Placeholder),
    };
    let manifests = render_with(repo, &config, outputs, unknown_outputs)?;
    Ok(manifests.len())
}

/// The outputs a Terraform module declares, values unknown until apply.
pub fn static_outputs(module: Option<&terraform::ModuleInfo>) -> terraform::Outputs {
    module
        .map(|info| {
            info.outputs
                .values()
                .map(|output| {
                    (
                        output.name.clone(),
                        terraform::OutputValue {
                            value: None,
                            sensitive: output.sensitive,
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
