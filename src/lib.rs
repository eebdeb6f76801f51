//! gitship: make a Git monorepo the single source of truth for a running system.
//!
//! The library does all the work; `src/main.rs` only parses arguments and maps the outcome to an
//! exit code. The layers, from the top (see `ARCHITECTURE.md`): `commands` (one file per verb:
//! settings in, report out), `agent` (the pull-based loop over the operations), `ops` (the operations: one `Session`, one deploy pipeline), `plan`
//! (the cross-layer plan model and its renderers), the stages `image`, `terraform`, `render` and
//! `kube`, and the foundation (`repo`, `git`, `model`, `duration`, `ci`, `process`, `output`,
//! `diagnostics`, `exit`). `cli` and `settings` stop at the command layer.
//!
//! The public surface is what the binary needs (`run`, `cli`, `exit`, `logging`) and
//! [`facade`], the one documented door for the integration tests, the benchmarks and the fuzz
//! targets; every other module is `pub(crate)`. The foundation and `kube` are the crates
//! `gitship-foundation` and `gitship-kube`, re-exported here under their module names.

pub(crate) mod agent;
pub mod cli;
pub(crate) mod commands;
pub mod exit;
pub mod facade;
pub(crate) mod git;
pub(crate) mod image;
pub mod logging;
pub(crate) mod ops;
pub(crate) mod plan;
pub(crate) mod render;
pub(crate) mod repo;
pub(crate) mod settings;
pub(crate) mod terraform;

// The foundation and the Kubernetes stage are workspace crates (`crates/gitship-foundation`,
// `crates/gitship-kube`), named by their crate paths (`gitship_kube::deploy`) everywhere.

pub use exit::Outcome;

/// Run one parsed command line to completion.
pub fn run(cli: cli::Cli) -> anyhow::Result<Outcome> {
    let settings = settings::Settings::from_cli(cli)?;
    commands::dispatch(settings)
}
