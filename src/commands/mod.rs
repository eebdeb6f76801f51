//! One file per verb. Each command is a thin composition of stages from the concept modules.

use anyhow::Result;

use crate::exit::Outcome;
use crate::output::Printer;
use crate::settings::{CommandSettings, GlobalSettings, Settings};

pub mod build;
pub mod completions;
pub mod deploy;
pub mod diff;
pub mod drift;
pub mod env_new;
pub mod envs;
pub mod plan;
pub mod render;
pub mod validate;

/// What every command receives.
#[derive(Debug, Clone)]
pub struct Context {
    pub global: GlobalSettings,
    pub printer: Printer,
}

/// Run the command; async commands get a multi-threaded tokio runtime with signal handling.
pub fn dispatch(settings: Settings) -> Result<Outcome> {
    let ctx = Context {
        printer: Printer::new(&settings.global),
        global: settings.global,
    };
    match settings.command {
        CommandSettings::Envs => envs::run(&ctx),
        CommandSettings::Validate {
            env,
            terraform_outputs,
        } => validate::run(&ctx, env.as_deref(), terraform_outputs.as_deref()),
        CommandSettings::Render {
            env,
            terraform_outputs,
        } => render::run(&ctx, &env, terraform_outputs.as_deref()),
        CommandSettings::EnvNew {
            name,
            from,
            namespace,
        } => env_new::run(&ctx, &name, &from, namespace.as_deref()),
        CommandSettings::Completions { shell } => completions::run(shell),
        CommandSettings::Plan(s) => block_on(plan::run(&ctx, s)),
        CommandSettings::Deploy(s) => block_on(deploy::run(&ctx, s)),
        CommandSettings::Diff(s) => block_on(diff::run(&ctx, s)),
        CommandSettings::Drift(s) => block_on(drift::run(&ctx, s)),
        CommandSettings::Build { env, build } => block_on(build::run(&ctx, &env, build)),
    }
}

/// Run a future on a fresh runtime with SIGINT/SIGTERM turned into gitship's interrupt flag.
pub fn block_on<T, F: std::future::Future<Output = Result<T>>>(future: F) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        crate::process::install_signal_handlers();
        future.await
    })
}
