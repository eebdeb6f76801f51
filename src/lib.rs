//! gitship: make a Git monorepo the single source of truth for a running system.
//!
//! The library does all the work; `src/main.rs` only parses arguments and maps the outcome to an
//! exit code. The layers, from the top (see `ARCHITECTURE.md`): `commands` (one file per verb:
//! settings in, report out), `agent` (the pull-based loop over the operations), `ops` (the operations: one `Session`, one deploy pipeline), `plan`
//! (the cross-layer plan model and its renderers), the stages `image`, `terraform`, `render` and
//! `kube`, and the foundation (`repo`, `git`, `model`, `duration`, `ci`, `process`, `output`,
//! `diagnostics`, `exit`). `cli` and `settings` stop at the command layer.

pub mod agent;
pub mod ci;
pub mod cli;
pub mod commands;
pub mod exit;
pub mod git;
pub mod image;
pub mod logging;
pub mod ops;
pub mod plan;
pub mod render;
pub mod repo;
pub mod settings;
pub mod terraform;

// The foundation and the Kubernetes stage are workspace crates (`crates/gitship-foundation`,
// `crates/gitship-kube`); their modules keep their paths here.
pub use gitship_foundation::{diagnostics, duration, model, output, private_file, process, tls};
pub use gitship_kube as kube;

pub use exit::Outcome;

/// Run one parsed command line to completion.
pub fn run(cli: cli::Cli) -> anyhow::Result<Outcome> {
    let settings = settings::Settings::from_cli(cli)?;
    commands::dispatch(settings)
}
