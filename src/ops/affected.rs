//! `affected`: which environments and apps the commits since a revision touch, for CI matrices
//! and for skipping jobs a change cannot affect. Read-only: Git trees and the environment
//! configs, nothing else.
//!
//! The rules, per changed file (committed changes between the merge base of `REF` and `HEAD`
//! and `HEAD`; the work tree is not looked at):
//! - `gitship.yaml` touches every environment and every app;
//! - `config/<env>.yaml` touches that environment;
//! - a manifest touches every environment that renders it: a file of the manifests directory
//!   touches the environments without a `kubernetes.path` (they render it recursively), a file
//!   inside an environment's own `kubernetes.path` that environment too, and any other file of
//!   the manifests directory (a shared base) also every environment whose `kubernetes.path` lies
//!   inside it; a file of a Helm chart an environment renders (`kubernetes.helm`), or one of its
//!   values files, touches that environment;
//! - a Terraform file touches every environment (they all plan the one root module);
//! - a file in an app's build context that its `.dockerignore` keeps (or its Dockerfile)
//!   touches that app and every environment that builds it (every environment with a
//!   `registry`); a file below the apps directory in no known app (a removed app) touches the
//!   app named by its directory, likewise;
//! - anything else touches nothing.
//!
//! The rules apply in that order, the first that matches deciding: manifests and Terraform come
//! before the apps, because an app whose build context is the repository root holds every file,
//! and their environments must hear of them whether or not they build images.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::git::GitError;
use crate::ops::Session;
use crate::repo::{Repository, SETTINGS_FILE};
use gitship_foundation::diagnostics::{UserError, user_error};
use gitship_kube::inventory::DeployOutcome;

/// Version of [`Affected`]'s JSON (`affected -o json`; generated CI files read its
/// `environments` with jq).
pub const FORMAT_VERSION: u32 = 1;

/// What the changes since a revision touch: `gitship affected`'s report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Affected {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The revision as given (`--since`).
    pub since: String,
    /// The commit the comparison starts from: the merge base of `since` and `HEAD`; `None` for
    /// `deployed:ENV` of an environment never deployed (everything is affected).
    pub base: Option<String>,
    /// `HEAD`'s commit.
    pub head: String,
    /// `gitship.yaml` changed (or, with no `base`, the environment was never deployed):
    /// everything is affected.
    pub everything: bool,
    /// The affected environments, in name order (only those that exist at `HEAD`).
    pub environments: Vec<String>,
    /// The affected apps, in name order.
    pub apps: Vec<String>,
    /// Every changed file below the repository root and what it touches, in path order.
    pub files: Vec<ChangedFile>,
}

/// One changed file and why it matters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangedFile {
    /// Relative to the repository root, `/`-separated.
    pub path: String,
    pub touches: Touches,
}

/// What one changed file touches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Touches {
    /// `gitship.yaml`: everything.
    Settings,
    /// An environment's config.
    Environment { name: String },
    /// The config of an environment that no longer exists at `HEAD`: nothing deploys it, and
    /// what it deployed stays until it is destroyed.
    RemovedEnvironment { name: String },
    /// An app's build context.
    App { name: String },
    /// Manifests rendered by these environments.
    Manifests { environments: Vec<String> },
    /// The Terraform root module.
    Terraform,
    /// Nothing gitship deploys.
    Nothing,
}

/// What one environment's config says about how it is built and rendered.
struct EnvironmentShape {
    name: String,
    /// The environment has a `registry`: it builds the apps (also assumed when its config does
    /// not load, so that a broken config never hides an environment).
    builds_apps: bool,
    /// `kubernetes.path` (absolute), when the environment has its own.
    manifests_dir: Option<PathBuf>,
    /// `terraform: false`: the repository's Terraform module is not this environment's.
    without_terraform: bool,
    /// `kubernetes: false`: no manifest is this environment's.
    without_kubernetes: bool,
    /// The chart directories and values files of its `kubernetes.helm` (absolute).
    helm_paths: Vec<PathBuf>,
}

impl EnvironmentShape {
    /// What `name`'s config says; a config that does not load is assumed to build and render
    /// everything, so that a broken config never hides an environment.
    fn of(repo: &Repository, name: &str) -> EnvironmentShape {
        match repo.load_env(name) {
            Ok(config) => EnvironmentShape {
                name: name.to_string(),
                builds_apps: config.registry.is_some(),
                manifests_dir: config.kubernetes.dir.clone(),
                without_terraform: config.terraform.disabled,
                without_kubernetes: config.kubernetes.disabled,
                helm_paths: config
                    .kubernetes
                    .helm
                    .iter()
                    .flat_map(|r| std::iter::once(&r.chart_dir).chain(&r.values_files))
                    .cloned()
                    .collect(),
            },
            Err(_) => EnvironmentShape {
                name: name.to_string(),
                builds_apps: true,
                manifests_dir: None,
                without_terraform: false,
                without_kubernetes: false,
                helm_paths: Vec::new(),
            },
        }
    }
}

/// What the commits between `since` and `HEAD` touch in the repository of `repo_dir` (`-C`).
pub fn affected(repo_dir: Option<&Path>, since: &str) -> Result<Affected> {
    let repo = Repository::discover(repo_dir).map_err(user_error)?;
    let changed = crate::git::diff_since(&repo.root, since).map_err(|err| match err {
        GitError::NotACommit { .. } => anyhow::Error::from(err).context(UserError::new(
            format!("cannot compare with `{since}`: it names no commit here"),
            "give a SHA, tag or branch that exists locally, e.g. `--since origin/main`; in CI, \
             fetch the history first (GitHub: `actions/checkout` with `fetch-depth: 0`; GitLab: \
             `GIT_DEPTH: 0`)",
        )),
        GitError::NoCommits { .. } => anyhow::Error::from(err).context(UserError::new(
            format!("cannot read the changes since `{since}`"),
            "`affected` compares commits: commit the changes first",
        )),
        other => anyhow::Error::from(other).context(UserError::bare(format!(
            "cannot read the changes since `{since}`"
        ))),
    })?;
    let shapes: Vec<EnvironmentShape> = repo
        .environments
        .keys()
        .map(|name| EnvironmentShape::of(&repo, name))
        .collect();

    let mut ignores = Vec::with_capacity(repo.apps.len());
    for app in &repo.apps {
        ignores.push(crate::git::DockerIgnore::load(&app.context)?);
    }

    let mut environments = BTreeSet::new();
    let mut apps = BTreeSet::new();
    let mut everything = false;
    let mut files = Vec::new();
    for path in &changed.paths {
        let Ok(relative) = path.strip_prefix(&repo.root) else {
            continue;
        };
        let touches = classify(&repo, &shapes, &ignores, path, relative);
        match &touches {
            Touches::Settings => everything = true,
            Touches::Environment { name } => {
                environments.insert(name.clone());
            }
            Touches::App { name } => {
                apps.insert(name.clone());
                environments.extend(building(&shapes));
            }
            Touches::Manifests {
                environments: names,
            } => {
                environments.extend(names.iter().cloned());
            }
            Touches::Terraform => environments.extend(
                shapes
                    .iter()
                    .filter(|s| !s.without_terraform)
                    .map(|s| s.name.clone()),
            ),
            Touches::RemovedEnvironment { .. } | Touches::Nothing => {}
        }
        files.push(ChangedFile {
            path: slashed(relative),
            touches,
        });
    }
    if everything {
        environments.extend(shapes.iter().map(|s| s.name.clone()));
        apps.extend(repo.apps.iter().map(|a| a.name.clone()));
    }
    Ok(Affected {
        format_version: FORMAT_VERSION,
        since: since.to_string(),
        base: Some(changed.base),
        head: changed.head,
        everything,
        environments: environments.into_iter().collect(),
        apps: apps.into_iter().collect(),
        files,
    })
}

/// The prefix of `--since deployed:ENV`.
pub const DEPLOYED: &str = "deployed:";

/// What the commits since the revision the session's environment last deployed successfully
/// touch (`--since deployed:ENV`): the base CI needs, since a push whose deploy was cancelled,
/// rejected or failed has not reached the environment, whatever the previous push was. An
/// environment never deployed has everything affected.
pub async fn since_deployed(session: &Session) -> Result<Affected> {
    let since = format!("{DEPLOYED}{}", session.config.name);
    let connection = session.connect_announced().await?;
    let deployed = session.inventory(&connection).await?.and_then(|inventory| {
        inventory
            .history
            .into_iter()
            .find(|record| record.outcome == DeployOutcome::Succeeded)
            .and_then(|record| record.sha)
    });
    let root = &session.repo.root;
    match deployed {
        Some(sha) => {
            let mut affected = affected(Some(root), &sha)?;
            affected.since = since;
            Ok(affected)
        }
        None => {
            let repo = Repository::discover(Some(root)).map_err(user_error)?;
            let head = crate::git::head_sha(&repo.root)?;
            Ok(Affected {
                format_version: FORMAT_VERSION,
                since,
                base: None,
                head,
                everything: true,
                environments: repo.environments.keys().cloned().collect(),
                apps: repo.apps.iter().map(|app| app.name.clone()).collect(),
                files: Vec::new(),
            })
        }
    }
}

/// What the changed file at `path` (absolute; `relative` to the repository root) touches;
/// `ignores` are the apps' `.dockerignore` rules, in the order of `repo.apps`.
fn classify(
    repo: &Repository,
    shapes: &[EnvironmentShape],
    ignores: &[crate::git::DockerIgnore],
    path: &Path,
    relative: &Path,
) -> Touches {
    if relative == Path::new(SETTINGS_FILE) {
        return Touches::Settings;
    }
    if let Ok(inside) = path.strip_prefix(&repo.layout.config_dir)
        && inside.components().count() == 1
        && matches!(
            inside.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        )
        && let Some(stem) = inside.file_stem().and_then(|s| s.to_str())
    {
        let name = stem.to_string();
        return if repo.environments.contains_key(stem) {
            Touches::Environment { name }
        } else {
            Touches::RemovedEnvironment { name }
        };
    }
    let kubernetes_dir = repo.layout.kubernetes_dir.as_deref();
    let in_shared = kubernetes_dir.is_some_and(|dir| path.starts_with(dir));
    let in_own_dir_of_any = shapes.iter().any(|s| {
        s.manifests_dir
            .as_ref()
            .is_some_and(|d| path.starts_with(d))
    });
    let charted = |shape: &EnvironmentShape| shape.helm_paths.iter().any(|p| path.starts_with(p));
    let in_chart = shapes.iter().any(charted);
    let environments: Vec<String> = shapes
        .iter()
        .filter(|shape| !shape.without_kubernetes)
        .filter(|shape| {
            charted(shape)
                || match &shape.manifests_dir {
                    // The repository's manifests directory, recursively.
                    None => in_shared,
                    Some(own) => {
                        path.starts_with(own)
                    // A shared base of overlays kept in the manifests directory.
                    || (in_shared
                        && !in_own_dir_of_any
                        && kubernetes_dir.is_some_and(|dir| own.starts_with(dir)))
                    }
                }
        })
        .map(|shape| shape.name.clone())
        .collect();
    if in_shared || in_own_dir_of_any || in_chart {
        return Touches::Manifests { environments };
    }
    if let Some(dir) = &repo.layout.terraform_dir
        && path.starts_with(dir)
    {
        return Touches::Terraform;
    }
    if let Some(app) = repo.apps.iter().zip(ignores).find_map(|(app, ignore)| {
        let in_context = path.strip_prefix(&app.context).is_ok_and(|inside| {
            !ignore.is_ignored(&slashed(inside)) || inside == Path::new(".dockerignore")
        });
        (in_context || path == app.dockerfile).then_some(app)
    }) {
        return Touches::App {
            name: app.name.clone(),
        };
    }
    if let Some(apps_dir) = &repo.layout.apps_dir
        && let Ok(inside) = path.strip_prefix(apps_dir)
        && inside.components().count() > 1
        && let Some(name) = inside.components().next()
        && !repo.apps.iter().any(|app| {
            let dir = apps_dir.join(name);
            app.context.starts_with(&dir) || app.dockerfile.starts_with(&dir)
        })
    {
        // A file of an app that no longer exists (or lost its Dockerfile).
        return Touches::App {
            name: name.as_os_str().to_string_lossy().into_owned(),
        };
    }
    Touches::Nothing
}

/// The environments that build the apps.
fn building(shapes: &[EnvironmentShape]) -> impl Iterator<Item = String> + '_ {
    shapes
        .iter()
        .filter(|s| s.builds_apps)
        .map(|s| s.name.clone())
}

fn slashed(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
