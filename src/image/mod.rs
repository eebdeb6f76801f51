//! The image stage: the apps' image references ([`image_refs`], content-addressed tags under the
//! environment's registry, computed once per operation), then build only the images whose tag is
//! missing from the registry, push them, and report `<registry>/<app>:<tag>@<digest>` for every
//! app.
//!
//! The tag decides: when `<image_repository>:<tag>` exists in the registry (a HEAD on its
//! manifest, see [`registry`]), the app is reused with the registry's digest and no builder runs
//! at all; otherwise (or with `force`) it is built and pushed with [`Builder`], concurrently up to
//! `jobs` at a time. Progress and builder output go to stderr ([`progress`]). The first failure
//! stops new builds from starting; builds already running finish; nothing is pushed for a
//! failed app.

pub mod builder;
pub mod progress;
pub mod registry;

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;

pub use builder::{Builder, BuilderError};
pub use registry::{Registry, RegistryError};

use crate::repo::{App, EnvConfig, Repository};
use gitship_foundation::model::ImageRef;
use gitship_foundation::output::Printer;
use gitship_foundation::process::ProcessError;
use progress::{AppState, Progress};

/// How many trailing lines of builder output a failure shows.
const FAILURE_TAIL_LINES: usize = 15;
/// How many registry checks run at once.
const REGISTRY_CONCURRENCY: usize = 16;

/// The OCI label carrying the Git revision an image was built from.
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";
/// The OCI label carrying where the image's source lives (repository URL or path).
pub const SOURCE_LABEL: &str = "org.opencontainers.image.source";

/// One app to have an image for, made from the app's [`ImageRef`] ([`BuildRequest::new`],
/// [`build_requests`]).
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub app: App,
    /// `<registry>/<app>` (no tag).
    pub image_repository: String,
    /// The content-addressed tag.
    pub tag: String,
    /// The Git revision (full SHA), recorded as the revision label.
    pub revision: String,
    /// The repository's URL or path, recorded as the source label.
    pub source: String,
}

impl BuildRequest {
    /// The request to have `image`, the image of `app`, built from the Git `revision` of the
    /// repository `source` (the OCI labels).
    pub fn new(app: App, image: &ImageRef, revision: String, source: String) -> BuildRequest {
        BuildRequest {
            app,
            image_repository: image.repository.clone(),
            tag: image.tag.clone(),
            revision,
            source,
        }
    }

    /// `<image_repository>:<tag>`.
    pub fn tagged_reference(&self) -> String {
        format!("{}:{}", self.image_repository, self.tag)
    }

    /// The registry host of the image repository.
    pub fn registry(&self) -> &str {
        registry_host(&self.image_repository)
    }
}

/// The registry host of `image_repository` (`docker.io` when it names none).
pub fn registry_host(image_repository: &str) -> &str {
    match image_repository.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// What the `org.opencontainers.image.source` label says for a repository at `root`: the URL of
/// its `origin` remote (without any credentials in it), or else the repository's path.
pub fn image_source(root: &std::path::Path) -> String {
    let origin = git2::Repository::open(root).ok().and_then(|repository| {
        repository
            .find_remote("origin")
            .ok()?
            .url()
            .ok()
            .map(str::to_string)
    });
    match origin {
        Some(url) => strip_credentials(&url),
        None => root.display().to_string(),
    }
}

/// `url` without a `user:password@` part (tokens in remote URLs must not end up in images).
fn strip_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if path.is_empty() && !rest.contains('/') {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}/{path}")
    }
}

/// Why the build requests of an environment could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The environment has apps but names no registry to push them to.
    #[error("environment `{environment}` has apps but no `registry` in `{}`", file.display())]
    NoRegistry {
        environment: String,
        file: std::path::PathBuf,
    },
    /// Git could not tell the revision being built.
    #[error("cannot read the Git revision of `{}`", root.display())]
    Revision {
        root: std::path::PathBuf,
        #[source]
        source: crate::git::GitError,
    },
    /// An app's content tag could not be computed.
    #[error("cannot compute the image tag of app `{app}`")]
    Tag {
        app: String,
        #[source]
        source: crate::git::GitError,
    },
    /// The work tree has uncommitted changes and the environment requires a clean one.
    #[error(
        "the work tree has uncommitted changes ({}) and environment `{environment}` requires a clean tree",
        shown_paths(files)
    )]
    DirtyTree {
        environment: String,
        /// The first changed or untracked files.
        files: Vec<String>,
    },
}

/// The registry of image references made before Terraform has given the environment's
/// registry (`registry: ${terraform.NAME}` on the first run): shown by `plan`, never built or
/// pushed to.
pub const REGISTRY_KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// The image references of an environment's apps, by app name: each app's content tag
/// ([`crate::git::content_tag_of`]) under the environment's registry. The one place they are
/// computed: a content tag hashes the app's whole build context, so an operation computes them
/// once and passes them on (to `render`, to its build requests, to its report and record).
pub fn image_refs(
    repo: &Repository,
    config: &EnvConfig,
) -> Result<BTreeMap<String, ImageRef>, RequestError> {
    let mut images = BTreeMap::new();
    if repo.apps.is_empty() {
        return Ok(images);
    }
    let registry = config
        .registry
        .as_deref()
        .or(config
            .registry_output
            .as_ref()
            .map(|_| REGISTRY_KNOWN_AFTER_APPLY))
        .ok_or_else(|| RequestError::NoRegistry {
            environment: config.name.clone(),
            file: config.file.clone(),
        })?;
    for app in &repo.apps {
        let tag =
            crate::git::content_tag_of(&repo.root, &app.build_inputs()).map_err(|source| {
                RequestError::Tag {
                    app: app.name.clone(),
                    source,
                }
            })?;
        images.insert(
            app.name.clone(),
            ImageRef::new(registry, &app.name, tag.tag()),
        );
    }
    Ok(images)
}

/// Refuse a dirty work tree when the environment requires a clean one to build from
/// (`deploy.require_clean_tree`, the default for `production`) unless `allow_dirty`; a
/// repository without apps builds nothing and is never refused.
pub fn require_clean_tree(
    repo: &Repository,
    config: &EnvConfig,
    allow_dirty: bool,
) -> Result<(), RequestError> {
    if repo.apps.is_empty() || !config.deploy.require_clean_tree || allow_dirty {
        return Ok(());
    }
    let files = crate::git::dirty_paths(&repo.root, DIRTY_PATHS_SHOWN + 1).map_err(|source| {
        RequestError::Revision {
            root: repo.root.clone(),
            source,
        }
    })?;
    if !files.is_empty() {
        return Err(RequestError::DirtyTree {
            environment: config.name.clone(),
            files,
        });
    }
    Ok(())
}

/// How many changed files a dirty-tree error names.
const DIRTY_PATHS_SHOWN: usize = 5;

/// `` `a`, `b` `` and `and more` past [`DIRTY_PATHS_SHOWN`].
fn shown_paths(files: &[String]) -> String {
    let mut shown: Vec<String> = files
        .iter()
        .take(DIRTY_PATHS_SHOWN)
        .map(|file| format!("`{}`", file.escape_default()))
        .collect();
    if files.len() > DIRTY_PATHS_SHOWN {
        shown.push("and more".into());
    }
    shown.join(", ")
}

/// The build requests of `references` (images of the apps of `repo`, from [`image_refs`] or a
/// saved plan) at the Git `revision`, in their order; a reference to an app `repo` does not
/// have is left out.
pub fn build_requests<'a>(
    repo: &Repository,
    revision: &str,
    references: impl IntoIterator<Item = &'a ImageRef>,
) -> Vec<BuildRequest> {
    let source = image_source(&repo.root);
    references
        .into_iter()
        .filter_map(|image| {
            let app = repo.app(&image.app)?.clone();
            Some(BuildRequest::new(
                app,
                image,
                revision.to_string(),
                source.clone(),
            ))
        })
        .collect()
}

/// How the stage runs.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `docker`, `podman` or `buildah`; `None` = the first that works.
    pub builder: Option<String>,
    /// How many builds run at once (at least 1).
    pub jobs: usize,
    /// Build and push even when the tag already exists.
    pub force: bool,
    /// Variables set for builder processes on top of the ones kept from gitship's environment
    /// (e.g. a different `PATH` or `CONTAINERS_STORAGE_CONF`).
    pub environment: BTreeMap<OsString, OsString>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            builder: None,
            jobs: 1,
            force: false,
            environment: BTreeMap::new(),
        }
    }
}

/// What happened to an app's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildAction {
    Built,
    Reused,
}

/// An app's image after the stage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildResult {
    pub app: String,
    /// `<image_repository>:<tag>@<digest>`.
    pub reference: String,
    /// `<registry>/<app>` (no tag).
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub action: BuildAction,
    /// Why it was built or reused.
    pub reason: String,
}

/// What `plan` says will happen to an app's image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImagePlan {
    pub app: String,
    /// `<image_repository>:<tag>`.
    pub reference: String,
    #[serde(flatten)]
    pub action: PlannedAction,
}

/// Build (and why) or reuse (and what).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum PlannedAction {
    Build { reason: String },
    Reuse { digest: String },
}

/// The image stage failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The registry could not tell whether the app's tag exists.
    #[error("cannot check the image of app `{app}` in registry `{registry}`")]
    Registry {
        app: String,
        registry: String,
        #[source]
        source: RegistryError,
    },
    /// No usable builder.
    #[error(transparent)]
    Builder(#[from] BuilderError),
    /// The builder failed to build an app; nothing was pushed for it.
    #[error(
        "building app `{app}` with {builder} failed ({status}); last lines of its output:\n{tail}"
    )]
    BuildFailed {
        app: String,
        builder: &'static str,
        status: String,
        tail: String,
    },
    /// The builder could not be run for an app.
    #[error("building app `{app}` with {builder} failed")]
    BuilderRun {
        app: String,
        builder: &'static str,
        #[source]
        source: Box<ProcessError>,
    },
    /// Pushing an app's image failed.
    #[error(
        "pushing `{reference}` (app `{app}`) with {builder} failed{}",
        tail_suffix(tail)
    )]
    PushFailed {
        app: String,
        reference: String,
        builder: &'static str,
        tail: String,
    },
    /// The digest of a pushed image could not be established.
    #[error("cannot find the digest of `{reference}` (app `{app}`) after pushing it: {message}")]
    Digest {
        app: String,
        reference: String,
        message: String,
    },
    /// Several apps failed.
    #[error("{} apps failed to build:\n{}", .0.len(), .0.iter().map(|e| format!("- {e}")).collect::<Vec<_>>().join("\n"))]
    Several(Vec<BuildError>),
    /// gitship was interrupted while building.
    #[error("interrupted while building images")]
    Interrupted,
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; last lines of its output:\n{tail}")
    }
}

/// Check every request's tag in the registry, concurrently; `None` where the tag is missing.
async fn check_tags(
    requests: &[BuildRequest],
    registry: &Registry,
) -> Result<Vec<Option<String>>, BuildError> {
    let checks = requests.iter().map(|request| async move {
        registry
            .manifest_digest(&request.image_repository, &request.tag)
            .await
            .map_err(|source| BuildError::Registry {
                app: request.app.name.clone(),
                registry: request.registry().to_string(),
                source,
            })
    });
    let results: Vec<Result<Option<String>, BuildError>> = futures::stream::iter(checks)
        .buffered(REGISTRY_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect()
}

fn missing_reason(request: &BuildRequest) -> String {
    format!("tag `{}` missing in `{}`", request.tag, request.registry())
}

/// What building would do, without building: per app, build (and which tag is missing) or reuse
/// (and the registry's digest).
pub async fn plan_images(
    requests: &[BuildRequest],
    registry: &Registry,
) -> Result<Vec<ImagePlan>, BuildError> {
    let digests = check_tags(requests, registry).await?;
    Ok(requests
        .iter()
        .zip(digests)
        .map(|(request, digest)| ImagePlan {
            app: request.app.name.clone(),
            reference: request.tagged_reference(),
            action: match digest {
                Some(digest) => PlannedAction::Reuse { digest },
                None => PlannedAction::Build {
                    reason: missing_reason(request),
                },
            },
        })
        .collect())
}

/// Make sure every request's image exists in its registry: reuse existing tags, build and push
/// the others. Results come back in request order.
pub async fn build_images(
    requests: &[BuildRequest],
    options: &BuildOptions,
    registry: &Registry,
    printer: &Printer,
) -> Result<Vec<BuildResult>, BuildError> {
    let names: Vec<&str> = requests.iter().map(|r| r.app.name.as_str()).collect();
    let progress = Progress::new(printer, &names);
    let outcome = run_stage(requests, options, registry, &progress).await;
    progress.finish();
    outcome
}

async fn run_stage(
    requests: &[BuildRequest],
    options: &BuildOptions,
    registry: &Registry,
    progress: &Progress,
) -> Result<Vec<BuildResult>, BuildError> {
    let existing = if options.force {
        vec![None; requests.len()]
    } else {
        for request in requests {
            progress.set_state(&request.app.name, AppState::Checking, "");
        }
        check_tags(requests, registry).await?
    };

    let mut results: Vec<Option<BuildResult>> = vec![None; requests.len()];
    let mut to_build = Vec::new();
    for (index, (request, digest)) in requests.iter().zip(existing).enumerate() {
        match digest {
            Some(digest) => {
                let reference = format!("{}@{digest}", request.tagged_reference());
                progress.set_state(&request.app.name, AppState::Reused, &reference);
                results[index] = Some(BuildResult {
                    app: request.app.name.clone(),
                    reference,
                    repository: request.image_repository.clone(),
                    tag: request.tag.clone(),
                    digest,
                    action: BuildAction::Reused,
                    reason: format!("tag `{}` exists in `{}`", request.tag, request.registry()),
                });
            }
            None => {
                progress.set_state(&request.app.name, AppState::Queued, "");
                to_build.push(index);
            }
        }
    }

    if !to_build.is_empty() {
        let environment = builder::builder_environment(&options.environment);
        let builder = Builder::detect_in(options.builder.as_deref(), &environment).await?;
        let stop = AtomicBool::new(false);
        let context = StageContext {
            builder,
            environment: &environment,
            registry,
            progress,
            stop: &stop,
        };
        let builds = to_build.iter().map(|&index| {
            let request = &requests[index];
            let reason = if options.force {
                "forced rebuild".to_string()
            } else {
                missing_reason(request)
            };
            let context = &context;
            async move { (index, build_one(request, reason, context).await) }
        });
        let outcomes: Vec<(usize, Result<Option<BuildResult>, BuildError>)> =
            futures::stream::iter(builds)
                .buffer_unordered(options.jobs.max(1))
                .collect()
                .await;
        let mut errors: Vec<(usize, BuildError)> = Vec::new();
        for (index, outcome) in outcomes {
            match outcome {
                Ok(result) => results[index] = result,
                Err(error) => errors.push((index, error)),
            }
        }
        errors.sort_by_key(|(index, _)| *index);
        let mut errors: Vec<BuildError> = errors.into_iter().map(|(_, error)| error).collect();
        if errors.iter().any(|e| matches!(e, BuildError::Interrupted)) {
            return Err(BuildError::Interrupted);
        }
        match errors.len() {
            0 => {}
            1 => return Err(errors.remove(0)),
            _ => return Err(BuildError::Several(errors)),
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// What the concurrent builds share.
struct StageContext<'a> {
    builder: Builder,
    environment: &'a BTreeMap<OsString, OsString>,
    registry: &'a Registry,
    progress: &'a Progress,
    /// Set by the first failure: builds not yet started are skipped.
    stop: &'a AtomicBool,
}

/// The last lines of a builder's output, for error messages.
struct OutputTail(Mutex<VecDeque<String>>);

impl OutputTail {
    fn new() -> Self {
        OutputTail(Mutex::new(VecDeque::new()))
    }

    fn push(&self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let mut lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() == FAILURE_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line.trim_end().to_string());
    }

    fn text(&self) -> String {
        let lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        lines
            .iter()
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Build, push and find the digest of one app; `Ok(None)` when skipped after another failure.
async fn build_one(
    request: &BuildRequest,
    reason: String,
    context: &StageContext<'_>,
) -> Result<Option<BuildResult>, BuildError> {
    let app = request.app.name.as_str();
    let builder = context.builder;
    if context.stop.load(Ordering::SeqCst) {
        context
            .progress
            .set_state(app, AppState::Skipped, "(another app failed)");
        return Ok(None);
    }
    let outcome = build_and_push(request, context).await;
    match outcome {
        Ok(digest) => {
            let reference = format!("{}@{digest}", request.tagged_reference());
            context.progress.set_state(app, AppState::Done, &reference);
            Ok(Some(BuildResult {
                app: app.to_string(),
                reference,
                repository: request.image_repository.clone(),
                tag: request.tag.clone(),
                digest,
                action: BuildAction::Built,
                reason,
            }))
        }
        Err(error) => {
            context.stop.store(true, Ordering::SeqCst);
            context.progress.set_state(app, AppState::Failed, "");
            tracing::debug!(app, builder = builder.name(), %error, "image failed");
            Err(error)
        }
    }
}

async fn build_and_push(
    request: &BuildRequest,
    context: &StageContext<'_>,
) -> Result<String, BuildError> {
    let reference = request.tagged_reference();
    build_image(request, &reference, context).await?;
    match push_image(request, &reference, context).await? {
        Some(digest) => Ok(digest),
        None => digest_after_push(request, reference, context).await,
    }
}

/// Build `request` as `reference`, with gitship's OCI labels.
async fn build_image(
    request: &BuildRequest,
    reference: &str,
    context: &StageContext<'_>,
) -> Result<(), BuildError> {
    let app = request.app.name.as_str();
    let builder = context.builder;
    let labels = BTreeMap::from([
        (REVISION_LABEL.to_string(), request.revision.clone()),
        (SOURCE_LABEL.to_string(), request.source.clone()),
    ]);
    let spec = builder::ImageSpec {
        reference,
        dockerfile: &request.app.dockerfile,
        context: &request.app.context,
        build_args: &request.app.build_args,
        target: request.app.target.as_deref(),
        labels: &labels,
    };
    context
        .progress
        .set_state(app, AppState::Building, &format!("with {}", builder.name()));
    let tail = OutputTail::new();
    let built = builder
        .build(&spec, context.environment, |line| {
            tail.push(line);
            context.progress.output_line(app, AppState::Building, line);
        })
        .await;
    match built {
        Ok(_) => Ok(()),
        Err(ProcessError::Interrupted { .. }) => Err(BuildError::Interrupted),
        Err(ProcessError::Failed { status, .. }) => Err(BuildError::BuildFailed {
            app: app.to_string(),
            builder: builder.name(),
            status,
            tail: tail.text(),
        }),
        Err(source) => Err(BuildError::BuilderRun {
            app: app.to_string(),
            builder: builder.name(),
            source: Box::new(source),
        }),
    }
}

/// Push `reference`; the digest when the builder reports it.
async fn push_image(
    request: &BuildRequest,
    reference: &str,
    context: &StageContext<'_>,
) -> Result<Option<String>, BuildError> {
    let app = request.app.name.as_str();
    let builder = context.builder;
    context
        .progress
        .set_state(app, AppState::Pushing, reference);
    let push_tail = OutputTail::new();
    let insecure = registry::is_loopback(request.registry());
    let pushed = builder
        .push(reference, insecure, context.environment, |line| {
            push_tail.push(line);
            context.progress.output_line(app, AppState::Pushing, line);
        })
        .await;
    let failed = |tail: String| BuildError::PushFailed {
        app: app.to_string(),
        reference: reference.to_string(),
        builder: builder.name(),
        tail,
    };
    match pushed {
        Ok(digest) => Ok(digest),
        Err(builder::PushError::Process(process)) => match *process {
            ProcessError::Interrupted { .. } => Err(BuildError::Interrupted),
            ProcessError::Failed { stderr_tail, .. } => {
                let streamed = push_tail.text();
                Err(failed(if streamed.is_empty() {
                    stderr_tail
                } else {
                    streamed
                }))
            }
            other => Err(failed(format!("  {other}"))),
        },
        Err(error) => Err(failed(format!("  {error}"))),
    }
}

/// The digest of a tag just pushed, from the registry (for builders that do not report it).
async fn digest_after_push(
    request: &BuildRequest,
    reference: String,
    context: &StageContext<'_>,
) -> Result<String, BuildError> {
    let app = request.app.name.as_str();
    let digest = context
        .registry
        .manifest_digest(&request.image_repository, &request.tag)
        .await
        .map_err(|error| BuildError::Digest {
            app: app.to_string(),
            reference: reference.clone(),
            message: error.to_string(),
        })?;
    digest.ok_or_else(|| BuildError::Digest {
        app: app.to_string(),
        reference,
        message: "the registry does not have the tag that was just pushed".to_string(),
    })
}

impl gitship_foundation::diagnostics::StageError for RequestError {
    fn hint(&self) -> Option<String> {
        match self {
            RequestError::NoRegistry { .. } => {
                Some("add `registry: <host>/<path>` to the environment's config".into())
            }
            RequestError::DirtyTree { .. } => {
                Some("commit or stash your changes, or pass `--allow-dirty`".into())
            }
            _ => None,
        }
    }
}

impl gitship_foundation::diagnostics::StageError for BuildError {
    fn hint(&self) -> Option<String> {
        match self {
            BuildError::Registry {
                registry, source, ..
            } => match source {
                RegistryError::Unreachable { .. } => Some(format!(
                    "check that `{registry}` is up and reachable from here, and the environment's `registry` setting"
                )),
                RegistryError::Unauthorized { .. } => Some(format!(
                    "log in to `{registry}` (`docker login {registry}`); gitship reads `~/.docker/config.json`"
                )),
                _ => None,
            },
            BuildError::Builder(BuilderError::NoneAvailable) => Some(
                "install docker, podman or buildah, or name one in `gitship.yaml` under `build.builder`"
                    .to_string(),
            ),
            BuildError::Builder(BuilderError::Unavailable { .. }) => Some(
                "check that the builder is installed and works (for docker: that the engine runs)"
                    .to_string(),
            ),
            _ => None,
        }
    }

    fn class(&self) -> gitship_foundation::diagnostics::ErrorClass {
        match self {
            BuildError::Interrupted => gitship_foundation::diagnostics::ErrorClass::Interrupted,
            _ => gitship_foundation::diagnostics::ErrorClass::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_host_is_the_first_component_when_it_looks_like_a_host() {
        assert_eq!(registry_host("127.0.0.1:5000/web"), "127.0.0.1:5000");
        assert_eq!(registry_host("ghcr.io/acme/blog/web"), "ghcr.io");
        assert_eq!(registry_host("localhost/web"), "localhost");
        assert_eq!(registry_host("acme/web"), "docker.io");
        assert_eq!(registry_host("web"), "docker.io");
    }

    #[test]
    fn image_source_never_carries_credentials() {
        assert_eq!(
            strip_credentials("https://user:ghp_token@github.com/acme/blog.git"),
            "https://github.com/acme/blog.git"
        );
        assert_eq!(
            strip_credentials("https://github.com/acme/blog"),
            "https://github.com/acme/blog"
        );
        assert_eq!(
            strip_credentials("git@github.com:acme/blog.git"),
            "git@github.com:acme/blog.git"
        );
        assert_eq!(strip_credentials("ssh://git@host"), "ssh://host");
    }

    #[test]
    fn image_source_falls_back_to_the_path() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(image_source(dir.path()), dir.path().display().to_string());
        let repository = git2::Repository::init(dir.path()).unwrap();
        repository
            .remote("origin", "https://token@git.example.com/acme/blog.git")
            .unwrap();
        assert_eq!(
            image_source(dir.path()),
            "https://git.example.com/acme/blog.git"
        );
    }

    #[test]
    fn plans_serialise_with_the_action_inline() {
        let plan = ImagePlan {
            app: "web".into(),
            reference: "r/web:t".into(),
            action: PlannedAction::Build {
                reason: "tag `t` missing in `r`".into(),
            },
        };
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["action"], "build");
        assert_eq!(json["reason"], "tag `t` missing in `r`");
    }
}
