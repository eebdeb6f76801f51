//! The `gitship` binary: parse arguments, initialise logging, run, map the result to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match gitship::cli::Cli::try_parse_args() {
        Ok(cli) => cli,
        Err(err) => return gitship::exit::clap_error(err),
    };
    gitship::logging::init(&cli.global);
    let outcome = gitship::run(cli);
    gitship::exit::report(outcome)
}
