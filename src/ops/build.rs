//! `build`: build and push the images whose content tag is not in the registry yet.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;

use crate::image::{self, BuildOptions, BuildRequest, Registry};
/// What `build` returns per app, as the image stage reports it.
pub use crate::image::{BuildAction, BuildResult};
use crate::repo::{EnvConfig, Repository};
use gitship_foundation::diagnostics::user_error;
use gitship_foundation::model::ImageRef;
use gitship_foundation::output::Printer;

/// Version of [`BuildReport`]'s JSON (`build -o json`). 1: the images in `images` (was a bare
/// array).
pub const FORMAT_VERSION: u32 = 1;

/// `gitship build`'s report: every app's image, built or reused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BuildReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub environment: String,
    pub images: Vec<BuildResult>,
}

impl BuildReport {
    /// `1 image built and pushed, 2 reused`.
    pub fn summary(&self) -> String {
        let built = self
            .images
            .iter()
            .filter(|r| r.action == BuildAction::Built)
            .count();
        let plural = |n: usize| if n == 1 { "image" } else { "images" };
        format!(
            "{built} {} built and pushed, {} reused",
            plural(built),
            self.images.len().saturating_sub(built)
        )
    }
}

/// Build `env`'s missing images; the report names every app, built or reused.
pub async fn build(
    repo_dir: Option<&Path>,
    env: &str,
    settings: &BuildInputs,
    printer: &Printer,
) -> Result<BuildReport> {
    let repo = Repository::discover(repo_dir).map_err(user_error)?;
    let mut config = repo.load_env(env).map_err(user_error)?;
    if let Some(reference) = config.registry_output.clone() {
        // `registry: ${terraform.NAME}`: the current state's value (an error until applied).
        let settings = crate::terraform::TerraformSettings::for_environment(&repo, &config);
        let outputs = crate::ops::render::state_outputs(settings).await?;
        config.registry = Some(crate::ops::cluster_source::registry(
            &config, &outputs, &reference,
        )?);
    }
    let (requests, unused) = requests(&repo, &config, settings.allow_dirty)?;
    for app in &unused {
        printer.status(&format!("image `{app}` not built: not used by `{env}`"));
    }
    if requests.is_empty() {
        printer.status(&format!("environment `{env}` has no apps to build"));
    }
    let options = BuildOptions {
        builder: repo.layout.builder.clone(),
        jobs: settings.jobs,
        force: settings.force_build,
        environment: Default::default(),
    };
    let images = image::build_images(&requests, &options, &Registry::new(), printer)
        .await
        .map_err(user_error)?;
    Ok(BuildReport {
        format_version: FORMAT_VERSION,
        environment: config.name.clone(),
        images,
    })
}

/// What `build` builds: one request per app the environment uses, from the apps' image
/// references (computed once, as for a plan or a deploy) at `HEAD`; and the apps it does not
/// use (no rendered object names their image: not built). A dirty work tree is refused where
/// the environment requires a clean one, unless `allow_dirty`.
pub fn requests(
    repo: &Repository,
    config: &EnvConfig,
    allow_dirty: bool,
) -> Result<(Vec<BuildRequest>, Vec<String>)> {
    if repo.apps.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    image::require_clean_tree(repo, config, allow_dirty).map_err(user_error)?;
    let mut references = image::image_refs(repo, config).map_err(user_error)?;
    let used = used_apps(repo, config, &references)?;
    let unused = references
        .keys()
        .filter(|app| !used.contains(*app))
        .cloned()
        .collect();
    references.retain(|app, _| used.contains(app));
    let revision = crate::git::head_sha(&repo.root).map_err(|source| {
        user_error(image::RequestError::Revision {
            root: repo.root.clone(),
            source,
        })
    })?;
    Ok((
        image::build_requests(repo, &revision, references.values()),
        unused,
    ))
}

/// The apps whose image the environment's objects name, rendered as `validate` renders them
/// (Terraform's outputs as placeholders).
fn used_apps(
    repo: &Repository,
    config: &EnvConfig,
    references: &BTreeMap<String, ImageRef>,
) -> Result<BTreeSet<String>> {
    let module = crate::terraform::TerraformSettings::for_environment(repo, config)
        .map(|settings| crate::terraform::static_check::check_static(&settings))
        .transpose()
        .map_err(user_error)?;
    let outputs = crate::ops::validate::static_outputs(module.as_ref());
    let manifests = crate::ops::render::render_noted(
        repo,
        config,
        references.clone(),
        outputs,
        crate::render::UnknownOutputs::Placeholder,
    )?
    .manifests;
    Ok(crate::render::used_images::used_apps(
        &manifests, references,
    ))
}

/// What `build` and a deploy are asked of the image stage: `--force-build`, `--jobs`,
/// `--allow-dirty`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInputs {
    pub force_build: bool,
    pub jobs: usize,
    pub allow_dirty: bool,
}

impl Default for BuildInputs {
    /// Build what is missing, as many at once as there are cores, from a clean tree.
    fn default() -> Self {
        BuildInputs {
            force_build: false,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            allow_dirty: false,
        }
    }
}
