//! One file per verb: settings -> one call into [`crate::ops`] -> print the report. Nothing outside
//! `commands/` imports it (see `ARCHITECTURE.md`).

use anyhow::Result;

use crate::exit::Outcome;
use crate::settings::{CommandSettings, GlobalSettings, Settings};
use gitship_foundation::output::Printer;

pub mod affected;
pub mod agent;
pub mod agent_manifests;
pub mod build;
pub mod ci;
pub mod completions;
pub mod deploy;
pub mod destroy;
pub mod diff;
pub mod drift;
pub mod env_new;
pub mod envs;
pub mod gc;
pub mod history;
pub mod init;
pub mod pin;
pub mod plan;
pub mod render;
pub mod rollback;
pub mod status;
pub mod unlock;
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
        printer: Printer::new(
            settings.global.output,
            settings.global.color,
            settings.global.quiet,
        ),
        global: settings.global,
    };
    // Under a provider that annotates (GitHub Actions), the errors of the commands that point
    // into the repository also become annotations on the pull request's diff.
    if gitship_foundation::ci::provider()
        .is_some_and(gitship_foundation::ci::Provider::annotates_errors)
        && matches!(
            settings.command,
            CommandSettings::Validate { .. }
                | CommandSettings::Plan(_)
                | CommandSettings::Deploy(_)
                | CommandSettings::Drift(_)
        )
    {
        gitship_foundation::diagnostics::enable_github_annotations(
            ctx.global.workspace.repo.as_deref(),
        );
    }
    match settings.command {
        CommandSettings::Envs => crate::ops::block_on(envs::run(&ctx)),
        CommandSettings::Validate {
            env,
            terraform_outputs,
            codequality,
        } => validate::run(
            &ctx,
            env.as_deref(),
            terraform_outputs.as_deref(),
            codequality,
        ),
        CommandSettings::Render {
            env,
            terraform_outputs,
        } => render::run(&ctx, &env, terraform_outputs.as_deref()),
        CommandSettings::EnvNew {
            name,
            from,
            namespace,
            ephemeral: None,
        } => env_new::run(&ctx, &name, &from, namespace.as_deref()),
        CommandSettings::EnvNew {
            name,
            from,
            ephemeral: Some(ephemeral),
            ..
        } => crate::ops::block_on(env_new::ephemeral(&ctx, name, from, ephemeral)),
        CommandSettings::Gc { yes, dry_run } => crate::ops::block_on(gc::run(&ctx, yes, dry_run)),
        CommandSettings::Completions { shell } => completions::run(shell),
        CommandSettings::Init {
            env,
            registry,
            force,
        } => init::run(&ctx, env, registry, force),
        CommandSettings::Plan(s) => crate::ops::block_on(plan::run(&ctx, s)),
        CommandSettings::Deploy(s) => crate::ops::block_on(deploy::run(&ctx, s)),
        CommandSettings::Diff(s) => crate::ops::block_on(diff::run(&ctx, s)),
        CommandSettings::Drift(s) => crate::ops::block_on(drift::run(&ctx, s)),
        CommandSettings::Pin { status, rev } => crate::ops::block_on(pin::pin(&ctx, status, &rev)),
        CommandSettings::Rollback(s) => crate::ops::block_on(rollback::run(&ctx, s)),
        CommandSettings::Resume(s) => crate::ops::block_on(pin::resume(&ctx, s)),
        CommandSettings::Status { status: s, wait } => {
            crate::ops::block_on(status::run(&ctx, s, wait))
        }
        CommandSettings::Suspend { status, reason } => {
            crate::ops::block_on(pin::suspend(&ctx, status, &reason))
        }
        CommandSettings::Sync { status, wait } => {
            crate::ops::block_on(pin::sync(&ctx, status, wait))
        }
        CommandSettings::Unlock { status, force, yes } => {
            crate::ops::block_on(unlock::run(&ctx, status, force, yes))
        }
        CommandSettings::Destroy(s) => crate::ops::block_on(destroy::run(&ctx, s)),
        CommandSettings::History(s) => crate::ops::block_on(history::run(&ctx, s)),
        CommandSettings::Agent(s) => crate::ops::block_on(agent::run(&ctx, s)),
        CommandSettings::AgentManifests(s) => agent_manifests::run(&ctx, s),
        CommandSettings::Affected { since, sandbox } => {
            crate::ops::block_on(affected::run(&ctx, &since, sandbox))
        }
        CommandSettings::CiInit(s) => ci::init(&ctx, s),
        CommandSettings::Build { env, build } => {
            crate::ops::block_on(build::run(&ctx, &env, build))
        }
    }
}

/// Ask `question` on the terminal (`[y/N]`); without a terminal, `--yes` is required for
/// `action` (`rolling back `production``). Anything but yes cancels, changing nothing.
pub fn confirm(question: &str, action: &str) -> Result<()> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(gitship_foundation::diagnostics::UserError::usage(
            format!("{action} needs confirmation, and stdin is not a terminal"),
            "pass `--yes` to go ahead without asking",
        )
        .into());
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        return Ok(());
    }
    Err(gitship_foundation::diagnostics::UserError::new(
        format!("cancelled: {action}"),
        "nothing was changed",
    )
    .into())
}

/// The session of a command that reads or writes the environment's cluster state and nothing
/// of Terraform's (`status`, `pin`, `resume`, `suspend`, `sync`, `unlock`), or runs Terraform
/// without outputs given (`destroy`).
pub async fn cluster_session(
    ctx: &Context,
    settings: crate::settings::StatusSettings,
) -> Result<crate::ops::Session> {
    crate::ops::Session::open(
        &ctx.global.workspace,
        &ctx.printer,
        &crate::ops::session::SessionTarget {
            env: settings.env,
            sandbox: settings.sandbox,
            terraform_outputs: None,
        },
    )
    .await
}

impl Context {
    /// Print `report` on stdout in the chosen format ([`crate::plan::report::render`]).
    pub fn print<R: crate::plan::report::CommandReport>(&self, report: &R) -> Result<()> {
        use anyhow::Context as _;
        let text =
            crate::plan::report::render(report, self.printer.format, self.printer.color_stdout)
                .with_context(|| format!("cannot print `{}`'s report", R::KIND))?;
        self.printer.data(&text)?;
        Ok(())
    }
}
