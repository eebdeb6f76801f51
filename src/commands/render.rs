//! `gitship render ENV`: print the environment's manifests as multi-document YAML on stdout.
//!
//! This is the one output that shows sensitive values, and only inside Secrets (the engine refuses
//! them anywhere else). With `-o json` the objects are printed redacted.

use std::path::Path;

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::model::Manifest;
use crate::render;
use crate::settings::OutputFormat;

pub fn run(ctx: &Context, env: &str, terraform_outputs: Option<&Path>) -> Result<Outcome> {
    let rendered = crate::ops::render::render(ctx.global.repo.as_deref(), env, terraform_outputs)?;
    let manifests = &rendered.manifests;
    match ctx.printer.format {
        OutputFormat::Json => {
            let redactor = render::Redactor::new(&rendered.outputs);
            ctx.printer
                .data(&serde_json::to_string_pretty(&json_manifests(
                    manifests, &redactor,
                ))?)?;
        }
        OutputFormat::Human | OutputFormat::Markdown => {
            ctx.printer.data(&render::to_yaml_stream(manifests))?;
        }
    }
    ctx.printer.status(&format!(
        "rendered {} object{} for environment `{}`",
        manifests.len(),
        if manifests.len() == 1 { "" } else { "s" },
        rendered.environment
    ));
    Ok(Outcome::Success)
}

/// The manifests as JSON: identity, source and the object, redacted.
fn json_manifests(manifests: &[Manifest], redactor: &render::Redactor) -> serde_json::Value {
    serde_json::Value::Array(
        manifests
            .iter()
            .map(|manifest| {
                serde_json::json!({
                    "id": manifest.id().qualified(),
                    "source": manifest.source.to_string(),
                    "object": render::redact_sensitive(&manifest.object, redactor),
                })
            })
            .collect(),
    )
}
