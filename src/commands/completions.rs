//! `gitship completions SHELL`: print a completion script.

use anyhow::Result;
use clap::CommandFactory;

use crate::exit::Outcome;

pub fn run(shell: clap_complete::Shell) -> Result<Outcome> {
    let mut command = crate::cli::Cli::command();
    clap_complete::generate(shell, &mut command, "gitship", &mut std::io::stdout());
    Ok(Outcome::Success)
}
