//! Validated settings: the clap types of [`crate::cli`] converted once, so that the rest of the
//! code never sees clap. Durations are parsed and `--jobs` checked here; paths are passed on as
//! given (relative ones stay relative), a file to write is checked to be one gitship may write
//! (`plan --out`), and flags are not checked against each other.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::cli;
use crate::diagnostics::UserError;

/// Where data goes and how it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
    Markdown,
}

/// Whether to color human output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    Auto,
    Always,
    Never,
}

/// Flags that apply to every command.
#[derive(Debug, Clone)]
pub struct GlobalSettings {
    /// `-C DIR`; `None` means the enclosing Git work tree of the current directory.
    pub repo: Option<PathBuf>,
    pub output: OutputFormat,
    pub color: ColorMode,
    pub quiet: bool,
    pub verbose: u8,
    pub kubeconfig: Option<PathBuf>,
}

/// The whole validated command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub global: GlobalSettings,
    pub command: CommandSettings,
}

/// One variant per verb.
#[derive(Debug, Clone)]
pub enum CommandSettings {
    Envs,
    Validate {
        env: Option<String>,
        terraform_outputs: Option<PathBuf>,
        /// `-o codequality`: a GitLab Code Quality report on stdout.
        codequality: bool,
    },
    Render {
        env: String,
        terraform_outputs: Option<PathBuf>,
    },
    EnvNew {
        name: String,
        from: String,
        namespace: Option<String>,
    },
    Plan(PlanSettings),
    Deploy(DeploySettings),
    Diff(ClusterSettings),
    Drift(DriftSettings),
    Build {
        env: String,
        build: BuildSettings,
    },
    Completions {
        shell: clap_complete::Shell,
    },
    Status {
        status: StatusSettings,
        /// `--wait`: the revision (as given) and how long.
        wait: Option<(String, Duration)>,
    },
    Suspend {
        status: StatusSettings,
        reason: String,
    },
    Unlock {
        status: StatusSettings,
        force: bool,
        yes: bool,
    },
    Sync {
        status: StatusSettings,
        /// `None` with `--no-wait`.
        wait: Option<Duration>,
    },
    Init {
        env: String,
        registry: Option<String>,
        force: bool,
    },
    Pin {
        status: StatusSettings,
        rev: String,
    },
    Resume(StatusSettings),
    Rollback(RollbackSettings),
    History(HistorySettings),
    Agent(AgentSettings),
    AgentManifests(AgentManifestsSettings),
    /// `gitship affected --since REF [--sandbox]`.
    Affected {
        since: String,
        sandbox: bool,
    },
    CiInit(CiInitSettings),
}

/// The CI platform `ci init` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CiPlatform {
    Github,
    Gitlab,
}

impl CiPlatform {
    /// The platform's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CiPlatform::Github => "github",
            CiPlatform::Gitlab => "gitlab",
        }
    }
}

/// `gitship ci init github|gitlab`: what [`crate::ops::ci_init::ci_init`] is asked for.
#[derive(Debug, Clone)]
pub struct CiInitSettings {
    pub platform: CiPlatform,
    /// `--plan-env`, each planned on pull requests; empty: `staging` when it exists (else the
    /// first environment, in name order, that is not `production`) and every deployed one.
    pub plan_envs: Vec<String>,
    /// `--deploy-env`, in deploy order; empty: the default (`production` when it exists).
    pub deploy_envs: Vec<String>,
    /// `--branch`: the branch whose pushes deploy (GitHub only; GitLab's pipeline names the
    /// project's default branch itself). Default: the repository's default branch.
    pub branch: Option<String>,
    /// `--force`: overwrite files that exist.
    pub force: bool,
}

#[derive(Debug, Clone)]
pub struct StatusSettings {
    pub env: String,
    pub sandbox: bool,
}

/// How long `gitship status --wait` waits without `--timeout`.
pub const DEFAULT_STATUS_WAIT: Duration = Duration::from_secs(600);
/// How long `gitship sync` waits for the agent's answer without `--timeout`.
pub const DEFAULT_SYNC_WAIT: Duration = Duration::from_secs(300);

/// How many records `gitship history` shows without `--limit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 20;

/// `gitship history ENV`.
#[derive(Debug, Clone)]
pub struct HistorySettings {
    pub env: String,
    /// How many records to show (at least 1).
    pub limit: usize,
    /// `--diff A B`: compare what records A and B applied instead of listing the records.
    pub diff: Option<(String, String)>,
    pub sandbox: bool,
}

/// `gitship agent ENV`: the flags; `agent:` in the environment's config fills what they leave
/// unset (see [`crate::agent::AgentOptions`]).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub env: String,
    pub source: Option<String>,
    pub branch: Option<String>,
    pub path: Option<PathBuf>,
    pub cache: Option<PathBuf>,
    pub interval: Option<Duration>,
    pub heal_interval: Option<Duration>,
    pub listen: Option<std::net::SocketAddr>,
    pub lease_duration: Option<Duration>,
    pub once: bool,
    pub sandbox: bool,
}

#[derive(Debug, Clone)]
pub struct AgentManifestsSettings {
    pub env: String,
    pub image: String,
    pub source: Option<String>,
    pub branch: Option<String>,
    pub path: Option<PathBuf>,
}

/// What every cluster-facing verb shares.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub env: String,
    pub sandbox: bool,
    pub terraform_outputs: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct PlanSettings {
    pub cluster: ClusterSettings,
    pub exit_code: bool,
    pub out: Option<PathBuf>,
    pub rev: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DriftSettings {
    pub cluster: ClusterSettings,
    /// `--rev REV`: compare with that revision, checked out in gitship's own clone, instead of
    /// the work tree or the pinned revision.
    pub rev: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BuildSettings {
    pub force_build: bool,
    pub jobs: usize,
    pub allow_dirty: bool,
}

#[derive(Debug, Clone)]
pub struct DeploySettings {
    pub cluster: ClusterSettings,
    pub build: BuildSettings,
    pub plan: Option<PathBuf>,
    pub allow_empty: bool,
    pub prune_protected: bool,
    pub no_prune: bool,
    pub timeout: Option<Duration>,
    pub lock_timeout: Option<Duration>,
    /// `--lock-lease`: the Lease's duration (renewed every third of it).
    pub lock_lease: Option<Duration>,
    pub skip_preflight: bool,
    /// `--force`: deploy although the environment is pinned at another revision.
    pub force: bool,
    /// `--rev REV`: deploy that revision, checked out in gitship's own clone.
    pub rev: Option<String>,
    /// `--atomic`: roll back to the previous good revision when the health wait fails.
    pub atomic: bool,
}

#[derive(Debug, Clone)]
pub struct RollbackSettings {
    pub env: String,
    pub to: Option<String>,
    pub steps: usize,
    /// `--lock-timeout`: else the environment's `deploy.lock_timeout`.
    pub lock_timeout: Option<Duration>,
    pub terraform: bool,
    /// `--render`: render the revision again instead of re-applying its stored manifests.
    pub render: bool,
    pub yes: bool,
    pub sandbox: bool,
}

impl Settings {
    /// Convert and validate the parsed command line.
    pub fn from_cli(cli: cli::Cli) -> Result<Self> {
        let g = cli.global;
        let codequality = g.output == cli::OutputArg::Codequality;
        if codequality && !matches!(cli.command, cli::Command::Validate(_)) {
            return Err(UserError::usage(
                "`-o codequality` is a report of `gitship validate` only",
                "use `gitship validate -o codequality`; other commands take `-o human|json|markdown`",
            )
            .into());
        }
        let global = GlobalSettings {
            repo: g.repo,
            output: match g.output {
                cli::OutputArg::Human => OutputFormat::Human,
                // The Code Quality report is JSON; `validate` says which JSON.
                cli::OutputArg::Json | cli::OutputArg::Codequality => OutputFormat::Json,
                cli::OutputArg::Markdown => OutputFormat::Markdown,
            },
            color: match g.color {
                cli::ColorArg::Auto => ColorMode::Auto,
                cli::ColorArg::Always => ColorMode::Always,
                cli::ColorArg::Never => ColorMode::Never,
            },
            quiet: g.quiet,
            verbose: g.verbose,
            kubeconfig: g.kubeconfig,
        };
        let command = match cli.command {
            cli::Command::Envs => CommandSettings::Envs,
            cli::Command::Validate(a) => CommandSettings::Validate {
                env: a.env,
                terraform_outputs: a.terraform_outputs,
                codequality,
            },
            cli::Command::Render(a) => CommandSettings::Render {
                env: a.env,
                terraform_outputs: a.terraform_outputs,
            },
            cli::Command::Env(cli::EnvCommand::New(a)) => CommandSettings::EnvNew {
                name: a.name,
                from: a.from,
                namespace: a.namespace,
            },
            cli::Command::Plan(a) => CommandSettings::Plan(PlanSettings {
                cluster: cluster(a.cluster),
                exit_code: a.exit_code,
                out: a.out.map(saved_plan_file).transpose()?,
                rev: a.rev,
            }),
            cli::Command::Deploy(a) => deploy(a)?,
            cli::Command::Diff(a) => CommandSettings::Diff(cluster(a)),
            cli::Command::Drift(a) => CommandSettings::Drift(DriftSettings {
                cluster: cluster(a.cluster),
                rev: a.rev,
            }),
            cli::Command::Build(a) => CommandSettings::Build {
                env: a.env,
                build: build(a.build)?,
            },
            cli::Command::Completions(a) => CommandSettings::Completions { shell: a.shell },
            cli::Command::Init(a) => CommandSettings::Init {
                env: a.env,
                registry: a.registry,
                force: a.force,
            },
            cli::Command::Status(a) => status(a)?,
            cli::Command::Suspend(a) => CommandSettings::Suspend {
                status: status_of(a.status),
                reason: a.reason.unwrap_or_default(),
            },
            cli::Command::Unlock(a) => CommandSettings::Unlock {
                status: status_of(a.status),
                force: a.force,
                yes: a.yes,
            },
            cli::Command::Sync(a) => sync(a)?,
            cli::Command::Pin(a) => CommandSettings::Pin {
                status: StatusSettings {
                    env: a.env,
                    sandbox: a.sandbox,
                },
                rev: a.rev,
            },
            cli::Command::Rollback(a) => rollback(a)?,
            cli::Command::Resume(a) => CommandSettings::Resume(StatusSettings {
                env: a.env,
                sandbox: a.sandbox,
            }),
            cli::Command::History(a) => CommandSettings::History(HistorySettings {
                env: a.env,
                limit: match a.limit {
                    Some(0) => {
                        return Err(UserError::usage(
                            "`--limit` must be at least 1",
                            "try `--limit 1`",
                        )
                        .into());
                    }
                    Some(n) => n,
                    None => DEFAULT_HISTORY_LIMIT,
                },
                diff: a.diff.and_then(|pair| match <[String; 2]>::try_from(pair) {
                    Ok([from, to]) => Some((from, to)),
                    Err(_) => None,
                }),
                sandbox: a.sandbox,
            }),
            cli::Command::Agent(a) => agent(a)?,
            cli::Command::Affected(a) => CommandSettings::Affected {
                since: a.since,
                sandbox: a.sandbox,
            },
            cli::Command::Ci(cli::CiCommand::Init(a)) => CommandSettings::CiInit(CiInitSettings {
                platform: match a.platform {
                    cli::CiPlatformArg::Github => CiPlatform::Github,
                    cli::CiPlatformArg::Gitlab => CiPlatform::Gitlab,
                },
                plan_envs: a.plan_env,
                deploy_envs: a.deploy_env,
                branch: a.branch,
                force: a.force,
            }),
        };
        Ok(Settings { global, command })
    }
}

fn status_of(a: cli::StatusArgs) -> StatusSettings {
    StatusSettings {
        env: a.env,
        sandbox: a.sandbox,
    }
}

fn status(a: cli::ShowStatusArgs) -> Result<CommandSettings> {
    Ok(CommandSettings::Status {
        status: status_of(a.status),
        wait: match a.wait {
            false => None,
            true => Some((
                a.rev.unwrap_or_else(|| "HEAD".to_string()),
                match &a.timeout {
                    Some(text) => parse_positive_duration("--timeout", text)?,
                    None => DEFAULT_STATUS_WAIT,
                },
            )),
        },
    })
}

fn sync(a: cli::SyncArgs) -> Result<CommandSettings> {
    Ok(CommandSettings::Sync {
        status: status_of(a.status),
        wait: match (a.no_wait, &a.timeout) {
            (true, _) => None,
            (false, Some(text)) => Some(parse_positive_duration("--timeout", text)?),
            (false, None) => Some(DEFAULT_SYNC_WAIT),
        },
    })
}

fn deploy(a: cli::DeployArgs) -> Result<CommandSettings> {
    Ok(CommandSettings::Deploy(DeploySettings {
        cluster: cluster(a.cluster),
        build: build(a.build)?,
        plan: a.plan,
        allow_empty: a.allow_empty,
        prune_protected: a.prune_protected,
        no_prune: a.no_prune,
        timeout: a
            .timeout
            .as_deref()
            .map(|d| parse_positive_duration("--timeout", d))
            .transpose()?,
        lock_timeout: a
            .lock_timeout
            .as_deref()
            .map(|d| parse_duration("--lock-timeout", d))
            .transpose()?,
        lock_lease: a
            .lock_lease
            .as_deref()
            .map(|d| parse_positive_duration("--lock-lease", d))
            .transpose()?,
        skip_preflight: a.skip_preflight,
        force: a.force,
        rev: a.rev,
        atomic: a.atomic,
    }))
}

fn rollback(a: cli::RollbackArgs) -> Result<CommandSettings> {
    Ok(CommandSettings::Rollback(RollbackSettings {
        env: a.env,
        to: a.to,
        lock_timeout: a
            .lock_timeout
            .as_deref()
            .map(|d| parse_duration("--lock-timeout", d))
            .transpose()?,
        steps: match a.steps {
            Some(0) => {
                return Err(UserError::usage(
                    "`--steps 0` would roll back to the current revision",
                    "give `--steps 1` (the default) or more",
                )
                .into());
            }
            Some(steps) => steps,
            None => 1,
        },
        terraform: a.terraform,
        render: a.render,
        yes: a.yes,
        sandbox: a.sandbox,
    }))
}

fn agent(a: cli::AgentArgs) -> Result<CommandSettings> {
    if let Some(cli::AgentCommand::Manifests(m)) = a.command {
        return Ok(CommandSettings::AgentManifests(AgentManifestsSettings {
            env: m.env,
            image: m.image,
            source: m.source,
            branch: m.branch,
            path: m.path,
        }));
    }
    let r = a.run;
    let duration = |flag: &str, value: Option<String>| {
        value
            .as_deref()
            .map(|d| parse_positive_duration(flag, d))
            .transpose()
    };
    let listen = r
        .listen
        .as_deref()
        .map(|address| {
            address.parse::<std::net::SocketAddr>().map_err(|_| {
                UserError::new(
                    format!("`--listen {address}` is not an address to listen on"),
                    "give IP:PORT, e.g. `--listen 0.0.0.0:8080` or `--listen 127.0.0.1:9090`",
                )
            })
        })
        .transpose()?;
    Ok(CommandSettings::Agent(AgentSettings {
        // clap requires ENV unless a subcommand is given.
        env: r.env.unwrap_or_default(),
        source: r.source,
        branch: r.branch,
        path: r.path,
        cache: r.cache,
        interval: duration("--interval", r.interval)?,
        heal_interval: duration("--heal-interval", r.heal_interval)?,
        listen,
        lease_duration: duration("--lease-duration", r.lease_duration)?,
        once: r.once,
        sandbox: r.sandbox,
    }))
}

fn cluster(a: cli::ClusterArgs) -> ClusterSettings {
    ClusterSettings {
        env: a.env,
        sandbox: a.sandbox,
        terraform_outputs: a.terraform_outputs,
    }
}

/// `plan --out FILE`: FILE, and `FILE.tfplan` beside it (where `plan::saved` copies
/// Terraform's plan), are files gitship may write ([`file_to_write`]).
fn saved_plan_file(out: PathBuf) -> Result<PathBuf> {
    file_to_write("`--out`", &out)?;
    let mut sidecar = out.clone().into_os_string();
    sidecar.push(".tfplan");
    file_to_write(
        "`--out` (Terraform's plan goes beside it)",
        Path::new(&sidecar),
    )?;
    Ok(out)
}

/// A file a flag (`what`) names for gitship to write, refused before anything runs when
/// gitship would refuse to write it ([`crate::private_file::check`]: a symlink, a device, a
/// FIFO, a socket or a directory is there).
fn file_to_write(what: &str, path: &Path) -> Result<()> {
    use crate::diagnostics::StageError as _;
    crate::private_file::check(path, None).map_err(|error| {
        let hint = error
            .hint()
            .unwrap_or_else(|| "name a new file, or a regular file to replace".to_string());
        UserError::usage(format!("{what}: {error}"), hint)
    })?;
    Ok(())
}

fn build(a: cli::BuildOptions) -> Result<BuildSettings> {
    let jobs = match a.jobs {
        Some(0) => {
            return Err(UserError::usage("`--jobs` must be at least 1", "try `--jobs 1`").into());
        }
        Some(n) => n,
        None => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    Ok(BuildSettings {
        force_build: a.force_build,
        jobs,
        allow_dirty: a.allow_dirty,
    })
}

/// The longest duration gitship accepts (`--timeout`, `--lock-timeout`, `deploy.timeout`, ...):
/// 7 days. Longer waits are mistakes, and a bound keeps `Instant + duration` from overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a number with a unit.
    #[error("expected a number with a unit, e.g. `90s`, `5m`, `1h30m` or `500ms`")]
    Invalid,
    /// More than [`MAX_DURATION`] (or more than a `u64` can count).
    #[error("longer than the maximum of `168h` (7 days)")]
    TooLong,
}

/// Parse a duration like `90s`, `5m`, `1h30m`, `500ms` or a bare number of seconds; at most
/// [`MAX_DURATION`]. Arithmetic is checked: no input can overflow.
pub fn parse_duration_value(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Invalid);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: seconds (too many digits for a `u64` is simply too long).
        let secs = text.parse::<u64>().map_err(|_| DurationError::TooLong)?;
        return bounded(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::Invalid);
        }
        let number = &rest[..digits];
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(DurationError::Invalid),
        };
        let number: u64 = number.parse().map_err(|_| DurationError::TooLong)?;
        let millis = number
            .checked_mul(millis_per_unit)
            .ok_or(DurationError::TooLong)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or(DurationError::TooLong)?;
        bounded(total)?;
    }
    Ok(total)
}

fn bounded(duration: Duration) -> Result<Duration, DurationError> {
    if duration > MAX_DURATION {
        Err(DurationError::TooLong)
    } else {
        Ok(duration)
    }
}

/// [`parse_duration`] for a duration that must not be zero (a timeout to wait for health, an
/// interval, a lease): zero would fail every deploy after its changes, or spin.
pub fn parse_positive_duration(what: &str, text: &str) -> Result<Duration, UserError> {
    let duration = parse_duration(what, text)?;
    if duration.is_zero() {
        return Err(UserError::usage(
            format!("duration `{text}` for {what} is zero"),
            "give at least `1s` (e.g. `90s`, `5m`)",
        ));
    }
    Ok(duration)
}

/// [`parse_duration_value`] for the command line: a usage error naming the flag.
pub fn parse_duration(what: &str, text: &str) -> Result<Duration, UserError> {
    parse_duration_value(text).map_err(|err| match err {
        DurationError::Invalid => UserError::usage(
            format!("invalid duration `{text}` for {what}"),
            "use a number with a unit, e.g. `90s`, `5m`, `1h30m` or `500ms`",
        ),
        DurationError::TooLong => UserError::usage(
            format!("duration `{text}` for {what} is {err}"),
            "use at most `168h`",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("t", "90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("t", "5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_duration("t", "1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("t", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("t", "12").unwrap(), Duration::from_secs(12));
        assert!(parse_duration("t", "5 minutes").is_err());
        assert!(parse_duration("t", "").is_err());
        assert!(parse_duration("t", "m5").is_err());
    }

    #[test]
    fn durations_never_overflow() {
        for text in [
            "18446744073709551615",
            "18446744073709551615s1s",
            "5124095576030432h",
            "99999999999999999999999s",
            "18446744073709551615ms",
            "169h",
            "604801",
        ] {
            assert_eq!(
                parse_duration_value(text),
                Err(DurationError::TooLong),
                "{text}"
            );
        }
        assert_eq!(parse_duration_value("168h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration_value("604800"), Ok(MAX_DURATION));
        let err = parse_duration("`--timeout`", "18446744073709551615").unwrap_err();
        assert_eq!(
            err.message,
            "duration `18446744073709551615` for `--timeout` is longer than the maximum of `168h` (7 days)"
        );
    }
}
