//! `--sandbox`: an in-process kubesim instead of a real cluster.
//!
//! The simulated cluster's state persists in `.gitship/sandbox/<env>.json` below the repository
//! root, so successive `deploy`, `plan`, `diff` and `drift` runs see what earlier ones did
//! (prune, drift and no-op deploys behave as against a real cluster). The server lives as long as
//! the returned [`Sandbox`]; the client is built from its config like any other.

use std::path::{Path, PathBuf};

use kube::Client;

use crate::kube::KubeError;

/// A running sandbox cluster.
pub struct Sandbox {
    /// The simulated API server (stops when dropped).
    pub server: kubesim::KubeSim,
    pub client: Client,
    /// The state file.
    pub state_file: PathBuf,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Sandbox")
            .field("server", &self.server)
            .field("state_file", &self.state_file)
            .finish()
    }
}

/// Errors starting the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The state directory could not be created.
    #[error("cannot create the sandbox directory `{}`", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The simulator did not start (or its state file is unreadable).
    #[error("cannot start the sandbox cluster (state `{}`)", path.display())]
    Start {
        path: PathBuf,
        #[source]
        source: kubesim::Error,
    },
    #[error(transparent)]
    Client(#[from] KubeError),
}

/// The sandbox state file of `environment` in the repository at `root`.
pub fn state_file(root: &Path, environment: &str) -> PathBuf {
    root.join(".gitship")
        .join("sandbox")
        .join(format!("{environment}.json"))
}

/// Start the sandbox of `environment` for the repository at `root`.
pub async fn start(root: &Path, environment: &str) -> Result<Sandbox, SandboxError> {
    let state_file = state_file(root, environment);
    if let Some(directory) = state_file.parent() {
        let failed = |source| SandboxError::Directory {
            path: directory.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(directory).map_err(failed)?;
        // Simulated state is not source: keep it out of Git even when `.gitship/` is not ignored.
        let ignore = directory.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(&ignore, "*\n").map_err(failed)?;
        }
    }
    let options = kubesim::Options {
        state_file: Some(state_file.clone()),
        ..kubesim::Options::default()
    };
    let server = kubesim::KubeSim::start_with(options)
        .await
        .map_err(|source| SandboxError::Start {
            path: state_file.clone(),
            source,
        })?;
    let client = crate::kube::client::client_from(server.kube_config())?;
    Ok(Sandbox {
        server,
        client,
        state_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::deploy::{DeployOptions, ObjectAction};
    use crate::kube::deploy_objects;
    use crate::model::Environment;
    use crate::model::Manifest;
    use crate::output::Printer;
    use crate::settings::OutputFormat;
    use serde_json::json;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn state_persists_between_sandbox_runs() {
        let root = tempfile::tempdir().unwrap();
        let environment = Environment {
            name: "development".into(),
            namespace: "blog-dev".into(),
        };
        let desired = || {
            vec![Manifest {
                source: crate::diagnostics::Location::new("cm.yaml", 1, 1),
                object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}),
            }]
        };
        let options = DeployOptions {
            who: "test".into(),
            ..DeployOptions::default()
        };
        let printer = Printer::plain(OutputFormat::Human);
        {
            let sandbox = start(root.path(), "development").await.unwrap();
            let report =
                deploy_objects(&sandbox.client, &environment, desired(), &options, &printer)
                    .await
                    .unwrap();
            assert_eq!(report.count(ObjectAction::Created), 1);
            sandbox.server.save_state().unwrap();
        }
        assert!(state_file(root.path(), "development").is_file());
        let sandbox = start(root.path(), "development").await.unwrap();
        let report = deploy_objects(&sandbox.client, &environment, desired(), &options, &printer)
            .await
            .unwrap();
        assert_eq!(report.count(ObjectAction::Unchanged), 1, "{report:?}");
    }
}
