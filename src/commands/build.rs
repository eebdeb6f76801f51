//! `gitship build ENV`: build and push the images of the environment's apps whose content tag is
//! missing from the registry, reuse the others, and print every app's image reference.

use anyhow::Result;

use crate::build::{
    self, BuildAction, BuildError, BuildOptions, BuildResult, BuilderError, Registry,
    RegistryError, RequestError,
};
use crate::commands::Context;
use crate::diagnostics::{UserError, with_hint};
use crate::exit::Outcome;
use crate::repo::Repository;
use crate::settings::{BuildSettings, OutputFormat};

pub async fn run(ctx: &Context, env: &str, settings: BuildSettings) -> Result<Outcome> {
    let repo = Repository::discover(ctx.global.repo.as_deref()).map_err(UserError::from)?;
    let config = repo.load_env(env).map_err(UserError::from)?;
    let requests =
        build::requests_for(&repo, &config, settings.allow_dirty).map_err(request_error)?;
    if requests.is_empty() {
        ctx.printer
            .status(&format!("environment `{env}` has no apps to build"));
    }
    let options = BuildOptions {
        builder: repo.layout.builder.clone(),
        jobs: settings.jobs,
        force: settings.force_build,
        environment: Default::default(),
    };
    let results = build::build_images(&requests, &options, &Registry::new(), &ctx.printer)
        .await
        .map_err(stage_error)?;
    ctx.printer.status(&summary(&results));
    ctx.printer.data(&render(&results, ctx.printer.format)?)?;
    Ok(Outcome::Success)
}

/// A request error with the hint that fixes it.
pub fn request_error(error: RequestError) -> anyhow::Error {
    let hint = match &error {
        RequestError::NoRegistry { .. } => {
            Some("add `registry: <host>/<path>` to the environment's config")
        }
        RequestError::DirtyTree { .. } => {
            Some("commit or stash your changes, or pass `--allow-dirty`")
        }
        _ => None,
    };
    match hint {
        Some(hint) => UserError::new(error.to_string(), hint).into(),
        None => error.into(),
    }
}

/// The stage's error with a hint where one helps; an interrupt exits 130.
pub fn stage_error(error: BuildError) -> anyhow::Error {
    let hint = match &error {
        BuildError::Interrupted => return UserError::interrupted().into(),
        BuildError::Registry { registry, source, .. } => match source {
            RegistryError::Unreachable { .. } => Some(format!(
                "check that `{registry}` is up and reachable from here, and the environment's `registry` setting"
            )),
            RegistryError::Unauthorized { .. } => Some(format!(
                "log in to `{registry}` (`docker login {registry}`); gitship reads `~/.docker/config.json`"
            )),
            _ => None,
        },
        BuildError::Builder(BuilderError::NoneAvailable) => Some(
            "install docker, podman or buildah, or name one in `gitship.yaml` under `build.builder`".to_string(),
        ),
        BuildError::Builder(BuilderError::Unavailable { .. }) => Some(
            "check that the builder is installed and works (for docker: that the engine runs)".to_string(),
        ),
        _ => None,
    };
    match hint {
        Some(hint) => with_hint(error.into(), hint),
        None => error.into(),
    }
}

/// One status line summing up the stage.
fn summary(results: &[BuildResult]) -> String {
    let built = results
        .iter()
        .filter(|r| r.action == BuildAction::Built)
        .count();
    let plural = |n: usize| if n == 1 { "image" } else { "images" };
    format!(
        "{built} {} built and pushed, {} reused",
        plural(built),
        results.len() - built
    )
}

fn render(results: &[BuildResult], format: OutputFormat) -> Result<String> {
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(results)?,
        OutputFormat::Markdown => {
            let mut text = String::from("| app | action | image |\n| --- | --- | --- |\n");
            for result in results {
                text.push_str(&format!(
                    "| {} | {} | `{}` |\n",
                    result.app,
                    action_word(result),
                    result.reference
                ));
            }
            text
        }
        OutputFormat::Human => {
            let width = results.iter().map(|r| r.app.len()).max().unwrap_or(0);
            results
                .iter()
                .map(|r| {
                    format!(
                        "{:<width$}  {:<6}  {}\n",
                        r.app,
                        action_word(r),
                        r.reference
                    )
                })
                .collect()
        }
    })
}

fn action_word(result: &BuildResult) -> &'static str {
    match result.action {
        BuildAction::Built => "built",
        BuildAction::Reused => "reused",
    }
}
