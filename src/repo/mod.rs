//! The repository model: where apps, Terraform, manifests and environment configs live
//! (conventions, overridable by `gitship.yaml`), and the typed environment configs.
//!
//! Loading is strict: a layer that is absent is simply not used; a layer that is present but
//! broken is an error saying what was looked for and where.

pub mod config;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use config::EnvConfig;

/// A gitship repository: its root and what was discovered in it.
#[derive(Debug, Clone)]
pub struct Repository {
    /// Absolute path of the repository root (the directory holding `config/`).
    pub root: PathBuf,
    pub layout: Layout,
    /// Apps in name order.
    pub apps: Vec<App>,
    /// Environment name -> its config file (absolute).
    pub environments: BTreeMap<String, PathBuf>,
}

/// Where each layer lives (absolute paths). A layer that does not exist is `None`.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Directory whose subdirectories holding a Dockerfile are apps (`apps/`).
    pub apps_dir: Option<PathBuf>,
    /// The Terraform root module (`infrastructure/terraform`).
    pub terraform_dir: Option<PathBuf>,
    /// The manifests (`infrastructure/kubernetes`).
    pub kubernetes_dir: Option<PathBuf>,
    /// The environment configs (`config/`).
    pub config_dir: PathBuf,
    /// `terraform` (default) or `tofu`, from `gitship.yaml` `terraform.binary`.
    pub terraform_binary: String,
    /// `docker`, `podman` or `buildah` from `gitship.yaml` `build.builder`; `None` = auto-detect.
    pub builder: Option<String>,
}

/// One app: one container image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The app's name (its directory name unless `gitship.yaml` says otherwise); the image name.
    pub name: String,
    /// Absolute path of the Dockerfile.
    pub dockerfile: PathBuf,
    /// Absolute path of the build context.
    pub context: PathBuf,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
}
