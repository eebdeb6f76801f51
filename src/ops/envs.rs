//! `envs`: the repository's environments, and the live previews of them.

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::ops::session::Workspace;
use gitship_kube::preview::PreviewRecord;

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
/// a bare array). 2: the live previews in `previews`, the clusters that could not be asked for
/// them in `unreachable`.
pub const FORMAT_VERSION: u32 = 2;

/// One live preview environment (`env new --ephemeral`), as its record in the cluster says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreviewSummary {
    pub name: String,
    /// The committed environment it derives from.
    pub base: String,
    pub namespace: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Seconds since it was created (when listed).
    pub age_seconds: u64,
    /// Whether it has expired (`gitship gc` destroys it).
    pub expired: bool,
    /// Its `--set` overrides: dotted key below `values` -> value.
    pub values: std::collections::BTreeMap<String, serde_json::Value>,
}

impl PreviewSummary {
    /// The summary of `record` at `now`.
    pub fn of(record: &PreviewRecord, now: DateTime<Utc>) -> PreviewSummary {
        let age = now.signed_duration_since(record.created_at).num_seconds();
        PreviewSummary {
            name: record.name.clone(),
            base: record.base.clone(),
            namespace: record.namespace.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            age_seconds: u64::try_from(age).unwrap_or(0),
            expired: record.is_expired(now),
            values: record.values.clone(),
        }
    }
}

/// `gitship envs`'s report: the environments, and where their configs live (relative to the
/// repository).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listing {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub environments: Vec<EnvironmentSummary>,
    /// The live previews found in the committed environments' clusters, by name.
    pub previews: Vec<PreviewSummary>,
    /// The preview records that do not decode, with why (never destroyed by `gc`).
    #[serde(default)]
    pub unreadable: Vec<gitship_kube::preview::UnreadableRecord>,
    /// The clusters that could not be asked for previews, with why.
    pub unreachable: Vec<String>,
    pub config_dir: PathBuf,
}

/// The committed environments (a config file each), with their namespace and cluster context.
pub fn committed(
    repo_dir: Option<&std::path::Path>,
) -> Result<(Repository, Vec<EnvironmentSummary>)> {
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
    Ok((repo, environments))
}

/// Every environment, with its namespace and cluster context, and the live previews (each
/// cluster of the committed environments asked once, `ops::preview::find`).
pub async fn environments(workspace: &Workspace) -> Result<Listing> {
    let (repo, environments) = committed(workspace.repo.as_deref())?;
    let found = crate::ops::preview::find(&repo, workspace.kubeconfig.as_deref(), None).await;
    let now = Utc::now();
    Ok(Listing {
        format_version: FORMAT_VERSION,
        environments,
        previews: found
            .previews
            .iter()
            .map(|(record, _)| PreviewSummary::of(record, now))
            .collect(),
        unreadable: found.unreadable,
        unreachable: found.unreachable,
        config_dir: repo.relative(&repo.layout.config_dir).to_path_buf(),
    })
}
