//! `render` and the render checks every other operation starts with.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use crate::image;
use crate::render::{self, RenderInputs, UnknownOutputs};
use crate::repo::{EnvConfig, Repository};
use crate::terraform::{self, Terraform, TerraformSettings};
use gitship_foundation::diagnostics::{UserError, user_error};
use gitship_foundation::model::{ImageRef, Manifest, Outputs};

/// Version of [`RenderReport`]'s JSON (`render -o json`). 1: the manifests in `manifests` (was
/// a bare array).
pub const FORMAT_VERSION: u32 = 1;

/// `gitship render`'s report: the manifests, redacted in JSON ([`Rendered::redacted_json`]),
/// as written in YAML for people.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RenderReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub environment: String,
    /// Each manifest's `id`, `source` and `object` (sensitive values redacted).
    pub manifests: serde_json::Value,
    /// The multi-document YAML (the human output; not in the JSON).
    #[serde(skip)]
    pub yaml: String,
}

/// An environment's rendered manifests, and the outputs they were rendered with (for redaction).
#[derive(Debug)]
pub struct Rendered {
    pub environment: String,
    pub manifests: Vec<Manifest>,
    pub outputs: Outputs,
}

impl Rendered {
    /// The manifests as multi-document YAML, as written (sensitive values only inside Secrets).
    pub fn yaml_stream(&self) -> String {
        render::to_yaml_stream(&self.manifests)
    }

    /// `render`'s report.
    pub fn report(&self) -> RenderReport {
        RenderReport {
            format_version: FORMAT_VERSION,
            environment: self.environment.clone(),
            manifests: self.redacted_json(),
            yaml: self.yaml_stream(),
        }
    }

    /// The manifests as JSON: identity, source and the object, redacted.
    pub fn redacted_json(&self) -> serde_json::Value {
        let redactor = render::Redactor::new(&self.outputs);
        serde_json::Value::Array(
            self.manifests
                .iter()
                .map(|manifest| {
                    serde_json::json!({
                        "id": manifest.qualified_name(),
                        "source": manifest.source.to_string(),
                        "object": render::redact_sensitive(&manifest.object, &redactor),
                    })
                })
                .collect(),
        )
    }
}

/// Render `env`'s manifests: with `--terraform-outputs FILE`, or without outputs, or (when the
/// manifests use Terraform outputs) with the current state's.
pub fn render(
    repo_dir: Option<&Path>,
    env: &str,
    terraform_outputs: Option<&Path>,
) -> Result<Rendered> {
    let repo = Repository::discover(repo_dir).map_err(user_error)?;
    let mut config = repo.load_env(env).map_err(user_error)?;
    let mut outputs = match terraform_outputs {
        Some(path) => load_terraform_outputs(path)?,
        None => Outputs::new(),
    };
    if let Some(reference) = config.registry_output.clone() {
        // `registry: ${terraform.NAME}`: the given or current value, else known after apply.
        if terraform_outputs.is_none() {
            let settings = terraform::TerraformSettings::for_environment(&repo, &config);
            outputs = crate::ops::block_on(state_outputs(settings))?;
        }
        if crate::ops::cluster_source::unknown(&config, &outputs, false).is_empty() {
            let registry = crate::ops::cluster_source::registry(&config, &outputs, &reference)?;
            config.registry = Some(registry);
        }
    }
    let images = image::image_refs(&repo, &config).map_err(user_error)?;
    let render = |outputs: Outputs| {
        render_noted(
            &repo,
            &config,
            images.clone(),
            outputs,
            UnknownOutputs::Error,
        )
        .map(|output| output.manifests)
        .and_then(|manifests| {
            require_objects(&repo, &config, manifests.len())?;
            Ok(manifests)
        })
    };
    let mut rendered = render(outputs.clone());
    if let Err(error) = &rendered
        && terraform_outputs.is_none()
        && mentions_terraform(error)
        && terraform::TerraformSettings::for_environment(&repo, &config).is_some()
    {
        let settings = terraform::TerraformSettings::for_environment(&repo, &config);
        outputs = crate::ops::block_on(state_outputs(settings))?;
        rendered = render(outputs.clone()).map_err(
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
    Ok(Rendered {
        environment: config.name.clone(),
        manifests: rendered?,
        outputs,
    })
}

/// Render `config`'s manifests with `outputs` at the work tree's revision, with the apps' image
/// references computed here (for a caller that needs nothing else of the image stage).
pub fn render_with(
    repo: &Repository,
    config: &EnvConfig,
    outputs: Outputs,
    unknown_outputs: UnknownOutputs,
) -> Result<Vec<Manifest>> {
    let images = image::image_refs(repo, config).map_err(user_error)?;
    render_noted(repo, config, images, outputs, unknown_outputs).map(|output| output.manifests)
}

/// Render `config`'s manifests with `images` (the image stage's references, or a saved plan's)
/// and `outputs` at the repository's revision, and what the render left literal and
/// substituted. Every render of an environment's manifests comes here.
pub fn render_noted(
    repo: &Repository,
    config: &EnvConfig,
    images: BTreeMap<String, ImageRef>,
    outputs: Outputs,
    unknown_outputs: UnknownOutputs,
) -> Result<render::RenderOutput> {
    if config.kubernetes.disabled {
        return Ok(render::RenderOutput::default());
    }
    let inputs =
        RenderInputs::for_environment(repo, config, images, outputs).map_err(user_error)?;
    render::render_environment_noted(repo, config, &inputs, unknown_outputs).map_err(user_error)
}

/// An environment that renders no object is an error unless it says `kubernetes: false` (or a
/// deploy says `--allow-empty`): an operation on nothing must not succeed in silence
/// (ARCHITECTURE.md, "Invariants"). `rendered`: how many objects the render gave.
pub fn require_objects(repo: &Repository, config: &EnvConfig, rendered: usize) -> Result<()> {
    if rendered > 0 || config.kubernetes.disabled {
        return Ok(());
    }
    Err(renders_nothing(repo, config).into())
}

fn renders_nothing(repo: &Repository, config: &EnvConfig) -> UserError {
    let env_file = repo.relative(&config.file);
    let source = match (&config.kubernetes.dir, &repo.layout.kubernetes_dir) {
        (Some(dir), _) => format!(
            "its `kubernetes.path` `{}` holds no object",
            repo.relative(dir).display()
        ),
        (None, Some(dir)) => format!(
            "the manifests directory `{}` holds no object",
            repo.relative(dir).display()
        ),
        (None, None) => format!(
            "the repository has no manifests directory (looked for `infrastructure/kubernetes`; `paths.kubernetes` in `{}` names another)",
            crate::repo::SETTINGS_FILE
        ),
    };
    UserError::new(
        format!(
            "environment `{}` renders no Kubernetes object: {source}",
            config.name
        ),
        format!(
            "point `paths.kubernetes` in `{}` (or `kubernetes.path` in `{}`) at the manifests (`gitship init --force` finds them), or write `kubernetes: false` in `{}` if `{}` deploys no Kubernetes objects (to remove what it deployed: `deploy --allow-empty`)",
            crate::repo::SETTINGS_FILE,
            env_file.display(),
            env_file.display(),
            config.name
        ),
    )
}

fn mentions_terraform(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.to_string().contains("terraform."))
}

/// The outputs in the current Terraform state (`terraform output -json`, after `init` when
/// needed); none without a Terraform layer.
pub async fn state_outputs(settings: Option<TerraformSettings>) -> Result<Outputs> {
    let Some(settings) = settings else {
        return Ok(Outputs::new());
    };
    let driver = Terraform::new(settings).await.map_err(user_error)?;
    driver.init_if_needed().await.map_err(user_error)?;
    driver.outputs().await.map_err(user_error)
}

/// Read `terraform output -json` output from a file (`--terraform-outputs FILE`).
pub fn load_terraform_outputs(path: &Path) -> Result<Outputs> {
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
