//! How the operations' reports read: each report's [`CommandReport`] impl (its JSON version, its
//! human and Markdown text), one file per command. The reports are built by their operations;
//! a command prints one with `plan::report::render` and nothing else (see `ARCHITECTURE.md`).
//! The plan and the drift report are rendered by `plan::human` and `plan::markdown`.

pub(crate) use crate::plan::report::CommandReport;

mod affected;
mod build;
mod deploy;
mod destroy;
mod envs;
mod gc;
mod history;
mod init;
mod preview;
mod render;
mod status;
mod validate;
