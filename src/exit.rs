//! Exit codes (ARCHITECTURE.md): 0 success / no changes, 1 failure, 2 changes or drift present,
//! 64 usage error, 130 interrupted.

use std::io::Write;
use std::process::ExitCode;

use gitship_foundation::diagnostics::{self, ErrorClass};

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 2: changes or drift are present (for `plan --exit-code`, `diff`, `drift`).
    Changes,
}

pub const SUCCESS: u8 = 0;
pub const FAILURE: u8 = 1;
pub const CHANGES: u8 = 2;
pub const USAGE: u8 = 64;
pub const INTERRUPTED: u8 = 130;

/// Print the error (if any) to stderr and return the process exit code. Under GitHub Actions
/// (when the command turned annotations on), the error is also printed as `::error` workflow
/// commands ([`diagnostics::github_annotations`]).
pub fn report(outcome: anyhow::Result<Outcome>) -> ExitCode {
    match outcome {
        Ok(Outcome::Success) => ExitCode::from(SUCCESS),
        Ok(Outcome::Changes) => ExitCode::from(CHANGES),
        Err(err) => {
            let rendered = diagnostics::render(&err);
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{rendered}");
            if let Some(base) = diagnostics::github_annotations_base()
                && diagnostics::class_of(&err) != ErrorClass::Interrupted
            {
                for line in diagnostics::github_annotations(&rendered, base) {
                    let _ = writeln!(stderr, "{line}");
                }
            }
            drop(stderr);
            ExitCode::from(match diagnostics::class_of(&err) {
                ErrorClass::Failure => FAILURE,
                ErrorClass::Usage => USAGE,
                ErrorClass::Interrupted => INTERRUPTED,
            })
        }
    }
}

/// Print a clap error; `--help` and `--version` exit 0, usage errors exit 64.
pub fn clap_error(err: clap::Error) -> ExitCode {
    let _ = err.print();
    match err.kind() {
        clap::error::ErrorKind::DisplayHelp
        | clap::error::ErrorKind::DisplayVersion
        | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            ExitCode::from(SUCCESS)
        }
        _ => ExitCode::from(USAGE),
    }
}
