//! `envs`: the repository's environments.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::repo::Repository;
use gitship_foundation::diagnostics::user_error;

/// One environment of the listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnvironmentSummary {
    pub name: String,
    pub namespace: String,
    /// `None`: the kubeconfig's current context.
    pub context: Option<String>,
    /// The Terraform output the cluster comes from (`cluster.kubeconfig` or `cluster.server`
    /// as `${terraform.NAME}`), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_output: Option<String>,
    /// The config file, relative to the repository root.
    pub file: String,
}

/// Version of [`Listing`]'s JSON (`envs -o json`). 1: the environments in `environments` (was
/// a bare array).
pub const FORMAT_VERSION: u32 = 1;

/// `gitship envs`'s report: the environments, and where their configs live (relative to the
/// repository).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listing {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub environments: Vec<EnvironmentSummary>,
    pub config_dir: PathBuf,
}

/// Every environment, with its namespace and cluster context.
pub fn environments(repo_dir: Option<&Path>) -> Result<Listing> {
    let repo = Repository::discover(repo_dir).map_err(user_error)?;
    let mut environments = Vec::new();
    for name in repo.environments.keys() {
        let config = repo.load_env(name).map_err(user_error)?;
        environments.push(EnvironmentSummary {
            name: config.name.clone(),
            namespace: config.cluster.namespace.clone(),
            context: config.cluster.context.clone(),
            cluster_output: config
                .cluster
                .from_terraform
                .as_ref()
                .and_then(|cluster| cluster.references().first().map(|r| r.output.clone())),
            file: config.spans.file.display().to_string(),
        });
    }
    Ok(Listing {
        format_version: FORMAT_VERSION,
        environments,
        config_dir: repo.relative(&repo.layout.config_dir).to_path_buf(),
    })
}
