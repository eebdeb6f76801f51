//! `validate`: every static check of one or all environments, with no side effects: the
//! environment config, Terraform's static checks (variables the module needs), and the
//! manifests render (Terraform outputs as placeholders unless given). Other tools' `${...}` that
//! the render left as written are listed, as information.

use std::path::Path;

use anyhow::Result;

use crate::ops::render::load_terraform_outputs;
use crate::ops::render::render_noted;
use crate::render::UnknownOutputs;
use crate::repo::Repository;
use crate::terraform;
use gitship_foundation::diagnostics::{self, UserError, user_error};
use gitship_foundation::model::{OutputValue, Outputs};

/// Version of [`ValidateReport`]'s JSON (`validate -o json`). 1: the results in `environments`
/// (was a bare array).
pub const FORMAT_VERSION: u32 = 1;

/// `gitship validate`'s report: one result per environment, in name order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ValidateReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub environments: Vec<ValidationResult>,
    /// Whether the human text lists the `${...}` left as written (`--quiet` drops them); not in
    /// the JSON, which always has them.
    #[serde(skip)]
    pub show_left_literal: bool,
}

impl ValidateReport {
    /// How many environments failed.
    pub fn failed(&self) -> usize {
        self.environments.iter().filter(|r| !r.valid).count()
    }
}

/// The result for one environment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ValidationResult {
    pub environment: String,
    pub valid: bool,
    pub objects: usize,
    /// The rendered error (`error: ... / caused by: ... / hint: ...`).
    pub error: Option<String>,
    /// Other tools' `${...}` (shell variables) left as written, in file order: information,
    /// not a problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_literal: Vec<LeftLiteral>,
}

/// One `${...}` left as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeftLiteral {
    /// `file:line:column`.
    pub location: String,
    /// The whole `${...}`.
    pub placeholder: String,
}

/// Validate `env`, or every environment.
pub fn validate(
    repo_dir: Option<&Path>,
    env: Option<&str>,
    terraform_outputs: Option<&Path>,
) -> Result<ValidateReport> {
    let repo = Repository::discover(repo_dir).map_err(user_error)?;
    let names: Vec<String> = match env {
        Some(name) => {
            repo.environment_file(name).map_err(user_error)?;
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
    let environments = names
        .iter()
        .map(
            |name| match validate_environment(&repo, name, given_outputs.as_ref()) {
                Ok((objects, left_literal)) => ValidationResult {
                    environment: name.clone(),
                    valid: true,
                    objects,
                    error: None,
                    left_literal,
                },
                Err(err) => ValidationResult {
                    environment: name.clone(),
                    valid: false,
                    objects: 0,
                    error: Some(diagnostics::render(&err)),
                    left_literal: Vec::new(),
                },
            },
        )
        .collect();
    Ok(ValidateReport {
        format_version: FORMAT_VERSION,
        environments,
        show_left_literal: true,
    })
}

/// One environment checked as `validate` checks it (also `init`'s check of what it wrote):
/// the config, the Terraform root's static check, and the render.
pub(crate) fn validate_environment(
    repo: &Repository,
    name: &str,
    given_outputs: Option<&Outputs>,
) -> Result<(usize, Vec<LeftLiteral>)> {
    let config = repo.load_env(name).map_err(user_error)?;
    let module = match terraform::TerraformSettings::for_environment(repo, &config) {
        Some(settings) => {
            Some(terraform::static_check::check_static(&settings).map_err(user_error)?)
        }
        None => None,
    };
    check_output_references(&config, module.as_ref())?;
    let (outputs, unknown_outputs) = match given_outputs {
        Some(outputs) => (outputs.clone(), UnknownOutputs::Error),
        None => (static_outputs(module.as_ref()), UnknownOutputs::Placeholder),
    };
    let images = crate::image::image_refs(repo, &config).map_err(user_error)?;
    let output = render_noted(repo, &config, images, outputs, unknown_outputs)?;
    crate::ops::render::require_objects(repo, &config, output.manifests.len())?;
    let left_literal = output
        .notes
        .left_literal
        .iter()
        .map(|left| LeftLiteral {
            location: left.location.to_string(),
            placeholder: left.placeholder.clone(),
        })
        .collect();
    Ok((output.manifests.len(), left_literal))
}

/// Every `${terraform.NAME}` the environment's cluster and registry name is an output of its
/// Terraform module; the first that is not is an error at its config line.
pub(crate) fn check_output_references(
    config: &crate::repo::EnvConfig,
    module: Option<&terraform::ModuleInfo>,
) -> Result<()> {
    for reference in crate::ops::cluster_source::references(config) {
        let declared = module.and_then(|info| info.outputs.get(&reference.output));
        if let Some(output) = declared {
            // A credential's value would otherwise be printed where Terraform's output changes
            // are (plan, deploy, destroy, the pull request's plan comment): a token, or a
            // kubeconfig (its content holds one; a path output is declared so too, for one rule).
            let credential = matches!(reference.key, "cluster.token" | "cluster.kubeconfig");
            if credential && !output.sensitive {
                return Err(UserError::new(
                    format!(
                        "{}: `{}` names Terraform output `{}`, which is not declared `sensitive = true`",
                        reference.location, reference.key, reference.output
                    ),
                    format!(
                        "add `sensitive = true` to `output \"{}\"` in the environment's Terraform module (and to the variables its value comes from), so that no plan shows the credential",
                        reference.output
                    ),
                )
                .into());
            }
            continue;
        }
        let hint = match module {
            Some(info) if info.outputs.is_empty() => {
                "declare the output in the environment's Terraform module".to_string()
            }
            Some(info) => format!(
                "the module's outputs: {}",
                info.outputs
                    .keys()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "the environment runs no Terraform module (`terraform: false`, or no `infrastructure/terraform`): name the cluster and registry directly".to_string(),
        };
        return Err(UserError::new(
            format!(
                "{}: `{}` names Terraform output `{}`, which the environment's Terraform module does not declare",
                reference.location, reference.key, reference.output
            ),
            hint,
        )
        .into());
    }
    Ok(())
}

/// The module's outputs as placeholders (no values yet, sensitivity as declared).
pub fn static_outputs(module: Option<&terraform::ModuleInfo>) -> Outputs {
    module
        .map(|info| {
            info.outputs
                .values()
                .map(|output| {
                    (
                        output.name.clone(),
                        OutputValue {
                            value: None,
                            sensitive: output.sensitive,
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
