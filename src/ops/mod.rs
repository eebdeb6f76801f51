//! The operations: one function per thing gitship does to an environment, each returning a typed
//! report and printing nothing to stdout (progress goes to stderr through the session's
//! [`gitship_foundation::output::Printer`]). `commands/` turns settings into one call here and prints the
//! report; the stages below (`image`, `terraform`, `render`, `kube`) know nothing of each other,
//! and this layer composes them. See `ARCHITECTURE.md`.
//!
//! - [`session`]: one environment opened once: repository, config, Git, cluster, Terraform.
//! - [`plan`]: the plan across images, Terraform and Kubernetes; `diff`'s Kubernetes part.
//! - [`deploy`]: the one deploy pipeline, for the work tree or a saved plan.
//! - [`drift`]: what runs differs from Git.
//! - [`preflight`]: the outside world checked before a deploy changes anything.
//! - [`status`]: the inventory, the deploy lock and the agent, as the cluster shows them;
//!   [`agent_status`] what the agent publishes, [`agent_view`] what its status page shows of the
//!   objects.
//! - [`render`], [`validate`], [`build`], [`env_new`], [`envs`]: the operations that need no
//!   cluster.
//! - [`affected`]: what the commits since a revision touch; [`ci_init`]: the CI configuration.
//! - [`repo_files`]: how `init`, `ci init` and `env new` write the repository's files.

pub mod affected;
pub mod agent_control;
pub mod agent_status;
pub mod agent_view;
pub mod build;
pub mod ci_init;
pub mod cluster_source;
pub mod deploy;
pub mod destroy;
pub mod drift;
pub mod env_new;
pub mod envs;
pub mod gc;
pub mod history;
pub mod init;
pub mod pin;
pub mod plan;
pub mod preflight;
pub mod preview;
pub mod render;
pub mod repo_files;
pub mod reports;
pub mod reviewed;
pub mod rollback;
pub mod session;
pub mod status;
pub mod unlock;
pub mod validate;

pub use deploy::DeploySource;
pub use session::Session;

use anyhow::Result;

/// Run a future on a fresh runtime with SIGINT/SIGTERM turned into gitship's interrupt flag.
pub fn block_on<T, F: std::future::Future<Output = Result<T>>>(future: F) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        gitship_foundation::process::install_signal_handlers();
        future.await
    })
}
