//! `gitship render ENV`: print the environment's manifests as multi-document YAML on stdout.
//!
//! This is the one output that shows sensitive values, and only inside Secrets (the engine refuses
//! them anywhere else). With `-o json` the objects are printed redacted.

use std::path::Path;

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::render::{self, Manifest, RenderInputs, UnknownOutputs};
use crate::repo::{EnvConfig, Repository};
use crate::settings::OutputFormat;
use crate::terraform;

pub fn run(ctx: &Context, env: &str, terraform_outputs: Option<&Path>) -> Result<Outcome> {
    let repo = Repository::discover(ctx.global.repo.as_deref()).map_err(UserError::from)?;
    let config = repo.load_env(env).map_err(UserError::from)?;
    // Without `--terraform-outputs`, Terraform's current state is read only when the manifests
    // use `terraform.*` (rendering without outputs fails on exactly those placeholders).
    let mut outputs = match terraform_outputs {
        Some(path) => load_terraform_outputs(path)?,
        None => terraform::Outputs::new(),
    };
    let mut rendered = render_with(&repo, &config, outputs.clone(), UnknownOutputs::Error);
    if let Err(error) = &rendered
        && terraform_outputs.is_none()
        && mentions_terraform(error)
        && terraform::TerraformSettings::for_environment(&repo, &config).is_some()
    {
        outputs = current_outputs(&repo, &config)?;
        rendered = render_with(&repo, &config, outputs.clone(), UnknownOutputs::Error).map_err(
            |error| {
                error.context(UserError::new(
                    format!(
                        "a Terraform output the manifests use has no value yet in the state of environment `{}`",
                        config.name
                    ),
                    format!(
                        "apply Terraform first (`gitship deploy {}`), or pass `--terraform-outputs FILE`",
                        config.name
                    ),
                ))
            },
        );
    }
    let manifests = rendered?;
    match ctx.printer.format {
        OutputFormat::Json => {
            let redactor = render::Redactor::new(&outputs);
            ctx.printer
                .data(&serde_json::to_string_pretty(&json_manifests(
                    &manifests, &redactor,
                ))?)?;
        }
        OutputFormat::Human | OutputFormat::Markdown => {
            ctx.printer.data(&render::to_yaml_stream(&manifests))?;
        }
    }
    ctx.printer.status(&format!(
        "rendered {} object{} for environment `{}`",
        manifests.len(),
        if manifests.len() == 1 { "" } else { "s" },
        config.name
    ));
    Ok(Outcome::Success)
}

/// The current outputs of `config`'s Terraform state (`init` when needed, then
/// `output -json`); empty without a Terraform layer.
fn current_outputs(repo: &Repository, config: &EnvConfig) -> Result<terraform::Outputs> {
    let Some(settings) = terraform::TerraformSettings::for_environment(repo, config) else {
        return Ok(terraform::Outputs::new());
    };
    crate::commands::block_on(async move {
        let driver = terraform::Terraform::new(settings)
            .await
            .map_err(|e| e.into_anyhow())?;
        driver.init_if_needed().await.map_err(|e| e.into_anyhow())?;
        driver.outputs().await.map_err(|e| e.into_anyhow())
    })
}

fn mentions_terraform(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.to_string().contains("terraform."))
}

/// Render `config`'s manifests with the given Terraform outputs.
pub fn render_with(
    repo: &Repository,
    config: &EnvConfig,
    outputs: terraform::Outputs,
    unknown_outputs: UnknownOutputs,
) -> Result<Vec<Manifest>> {
    let inputs = RenderInputs::for_environment(repo, config, outputs).map_err(UserError::from)?;
    let manifests = render::render_environment(repo, config, &inputs, unknown_outputs)
        .map_err(UserError::from)?;
    Ok(manifests)
}

/// Manifests as JSON for `-o json`, with sensitive values redacted.
pub fn json_manifests(manifests: &[Manifest], redactor: &render::Redactor) -> serde_json::Value {
    serde_json::Value::Array(
        manifests
            .iter()
            .map(|manifest| {
                serde_json::json!({
                    "id": manifest.id().to_string(),
                    "source": manifest.source.to_string(),
                    "object": render::redact_sensitive(&manifest.object, redactor),
                })
            })
            .collect(),
    )
}

/// Read a file in `terraform output -json` format.
pub fn load_terraform_outputs(path: &Path) -> Result<terraform::Outputs> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        UserError::new(
            format!(
                "cannot read Terraform outputs from `{}`: {err}",
                path.display()
            ),
            "pass the file written by `terraform output -json > FILE`",
        )
    })?;
    terraform::parse_outputs_json(&text).map_err(|err| {
        // serde_json errors name only a position, never the value.
        UserError::new(
            format!(
                "`{}` is not in `terraform output -json` format: line {}, column {}: {}",
                path.display(),
                err.line(),
                err.column(),
                classify(&err)
            ),
            "expected an object of `{\"name\": {\"value\": ..., \"sensitive\": bool}}`, as printed by `terraform output -json`",
        )
        .into()
    })
}

fn classify(err: &serde_json::Error) -> &'static str {
    match err.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "unexpected end of file",
    }
}
