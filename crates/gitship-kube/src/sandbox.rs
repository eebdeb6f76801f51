//! `--sandbox`: an in-process kubesim instead of a real cluster.
//!
//! The simulated cluster's state persists in `.gitship/sandbox/<env>.json` below the repository
//! root, so successive `deploy`, `plan`, `diff` and `drift` runs see what earlier ones did
//! (prune, drift and no-op deploys behave as against a real cluster). The server lives as long as
//! the returned [`Sandbox`]; the client is built from its config like any other.

use std::path::{Path, PathBuf};

use kube::Client;

use crate::KubeError;

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
    /// The state directory or file could not be prepared, or gitship refused to write there
    /// ([`gitship_foundation::private_file`]: a symlink or a special file is there).
    #[error("cannot keep the sandbox state of `{environment}`")]
    State {
        environment: String,
        #[source]
        source: gitship_foundation::private_file::WriteError,
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
    prepare_state(root, &state_file).map_err(|source| SandboxError::State {
        environment: environment.to_string(),
        source,
    })?;
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
    let client = crate::client::client_from(server.kube_config())?;
    Ok(Sandbox {
        server,
        client,
        state_file,
    })
}

/// The state's directory (private when gitship creates it), its `.gitignore`, and a check that
/// the state file is nothing or a regular file: kubesim reads it, then renames a new one over
/// it, neither through a symlink nor over a special file.
fn prepare_state(
    root: &Path,
    state_file: &Path,
) -> Result<(), gitship_foundation::private_file::WriteError> {
    use gitship_foundation::private_file::{self, Existing};
    if let Some(directory) = state_file.parent() {
        private_file::create_dir_in(root, directory)?;
        // Simulated state is not source: keep it out of Git even when `.gitship/` is not ignored.
        private_file::write_in(root, &directory.join(".gitignore"), b"*\n", Existing::Keep)?;
    }
    private_file::check(state_file, Some(root))
}

impl gitship_foundation::diagnostics::StageError for SandboxError {
    fn hint(&self) -> Option<String> {
        match self {
            SandboxError::State { source, .. } => source.hint(),
            SandboxError::Start { .. } => None,
            SandboxError::Client(error) => error.hint(),
        }
    }

    fn class(&self) -> gitship_foundation::diagnostics::ErrorClass {
        match self {
            SandboxError::Client(error) => error.class(),
            _ => gitship_foundation::diagnostics::ErrorClass::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::{DeployOptions, ObjectAction};
    use crate::deploy_objects;
    use gitship_foundation::model::Environment;
    use gitship_foundation::model::Manifest;
    use gitship_foundation::output::OutputFormat;
    use gitship_foundation::output::Printer;
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
                source: gitship_foundation::diagnostics::Location::new("cm.yaml", 1, 1),
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
