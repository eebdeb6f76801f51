//! Validated settings: the clap types of [`crate::cli`] converted once, so that the rest of the
//! code never sees clap. Durations are parsed and `--jobs` checked here; paths are passed on as
//! given (relative ones stay relative), a file to write is checked to be one gitship may write
//! (`plan --out`), and flags are not checked against each other. The command layer's own (see
//! ARCHITECTURE.md, "Layers"): below it, each operation takes a request type it defines, which
//! these settings fill (`DeploySettings::request`, `ops::build::BuildInputs`, ...).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::agent::AgentRequest;
use crate::agent::manifests::ManifestsRequest;
use crate::cli;
use crate::ops::build::BuildInputs;
use crate::ops::ci_init::{CiInitRequest, Platform};
use crate::ops::deploy::DeployRequest;
use crate::ops::rollback::RollbackRequest;
use crate::ops::session::{SessionTarget, Workspace};
use crate::repo::EnvConfig;
use gitship_foundation::diagnostics::UserError;
use gitship_foundation::output::{ColorMode, OutputFormat};

/// Flags that apply to every command.
#[derive(Debug, Clone)]
pub struct GlobalSettings {
    /// `-C DIR` and `--kubeconfig`, as the operations take them.
    pub workspace: Workspace,
    pub output: OutputFormat,
    pub color: ColorMode,
    pub quiet: bool,
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
        /// `--ephemeral` (with `--ttl` and `--set`): a preview, recorded in the cluster.
        ephemeral: Option<EphemeralSettings>,
    },
    Gc {
        yes: bool,
        dry_run: bool,
    },
    Plan(PlanSettings),
    Deploy(DeploySettings),
    Diff(SessionTarget),
    Drift(DriftSettings),
    Build {
        env: String,
        build: BuildInputs,
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
    Destroy(DestroySettings),
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
    Rollback(RollbackRequest),
    History(HistorySettings),
    Agent(AgentRequest),
    AgentManifests(ManifestsRequest),
    /// `gitship affected --since REF [--sandbox]`.
    Affected {
        since: String,
        sandbox: bool,
    },
    CiInit(CiInitRequest),
}

#[derive(Debug, Clone)]
pub struct StatusSettings {
    pub env: String,
    pub sandbox: bool,
}

/// `gitship destroy`'s validated flags.
#[derive(Debug, Clone)]
pub struct DestroySettings {
    pub status: StatusSettings,
    pub yes: bool,
    pub keep_terraform: bool,
    pub keep_namespace: bool,
    pub skip_kubernetes: bool,
    /// `--timeout`, `--lock-timeout`, `--lock-lease`, when given.
    pub timeout: Option<Duration>,
    pub lock_timeout: Option<Duration>,
    pub lock_lease: Option<Duration>,
}

impl DestroySettings {
    /// The request: the environment's config with these flags over it.
    pub fn request(
        &self,
        config: &crate::repo::config::EnvConfig,
    ) -> crate::ops::destroy::DestroyRequest {
        let mut request = crate::ops::destroy::DestroyRequest::for_environment(config);
        request.keep_terraform = self.keep_terraform;
        request.keep_namespace = self.keep_namespace;
        request.skip_kubernetes = self.skip_kubernetes;
        if let Some(timeout) = self.timeout {
            request.timeout = timeout;
        }
        if let Some(timeout) = self.lock_timeout {
            request.lock_timeout = timeout;
        }
        if let Some(lease) = self.lock_lease {
            request.lock_lease = lease;
        }
        request
    }
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

#[derive(Debug, Clone)]
pub struct PlanSettings {
    pub cluster: SessionTarget,
    pub exit_code: bool,
    pub out: Option<PathBuf>,
    /// `--report FILE`: the plan's JSON report written there too.
    pub report: Option<PathBuf>,
    pub rev: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DriftSettings {
    pub cluster: SessionTarget,
    /// `--rev REV`: compare with that revision, checked out in gitship's own clone, instead of
    /// the work tree or the pinned revision.
    pub rev: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DeploySettings {
    pub cluster: SessionTarget,
    pub build: BuildInputs,
    pub plan: Option<PathBuf>,
    /// `--reviewed FILE` (and `--require-reviewed`): plan again, compare, apply.
    pub reviewed: Option<crate::ops::reviewed::ReviewedPlan>,
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

impl DeploySettings {
    /// The deploy these flags ask for in the environment `config`: each flag that is given
    /// overrides what the config says ([`DeployRequest::for_environment`]). The one place where
    /// a deploy's flags meet its config.
    pub fn request(&self, config: &EnvConfig) -> DeployRequest {
        let defaults = DeployRequest::for_environment(config);
        DeployRequest {
            timeout: self.timeout.unwrap_or(defaults.timeout),
            lock_timeout: self.lock_timeout.unwrap_or(defaults.lock_timeout),
            lock_lease: self.lock_lease.unwrap_or(defaults.lock_lease),
            prune: !self.no_prune,
            allow_empty: self.allow_empty,
            prune_protected: self.prune_protected,
            skip_preflight: self.skip_preflight,
            force: self.force,
            rev: self.rev.clone(),
            build: self.build.clone(),
            ..defaults
        }
    }
}

impl Settings {
    /// Convert and validate the parsed command line.
    pub fn from_cli(cli: cli::Cli) -> Result<Self> {
        let codequality = cli.global.output == cli::OutputArg::Codequality;
        if codequality && !matches!(cli.command, cli::Command::Validate(_)) {
            return Err(UserError::usage(
                "`-o codequality` is a report of `gitship validate` only",
                "use `gitship validate -o codequality`; other commands take `-o human|json|markdown`",
            )
            .into());
        }
        Ok(Settings {
            global: global(cli.global),
            command: command(cli.command, codequality)?,
        })
    }
}

fn global(g: cli::GlobalArgs) -> GlobalSettings {
    GlobalSettings {
        workspace: Workspace {
            repo: g.repo,
            kubeconfig: g.kubeconfig,
        },
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
    }
}

/// `env new --ephemeral`'s flags, checked: the TTL parsed and not zero, each `--set` a
/// `values.KEY=VALUE`.
#[derive(Debug, Clone)]
pub struct EphemeralSettings {
    pub ttl: std::time::Duration,
    pub sets: Vec<crate::repo::preview::ValueOverride>,
}

fn env_new(a: cli::EnvNewArgs) -> Result<CommandSettings> {
    let ephemeral = if a.ephemeral {
        let ttl = gitship_foundation::duration::parse_positive_flag("`--ttl`", &a.ttl)?;
        let sets = a
            .set
            .iter()
            .map(|given| crate::repo::preview::parse_set(given))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| {
                use gitship_foundation::diagnostics::StageError as _;
                gitship_foundation::diagnostics::UserError::usage(
                    error.to_string(),
                    error.hint().unwrap_or_default(),
                )
            })?;
        Some(EphemeralSettings { ttl, sets })
    } else {
        None
    };
    Ok(CommandSettings::EnvNew {
        name: a.name,
        from: a.from,
        namespace: a.namespace,
        ephemeral,
    })
}

/// One verb's settings; the verbs with more to check than a move of fields have a function each.
fn command(command: cli::Command, codequality: bool) -> Result<CommandSettings> {
    Ok(match command {
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
        cli::Command::Env(cli::EnvCommand::New(a)) => env_new(a)?,
        cli::Command::Gc(a) => CommandSettings::Gc {
            yes: a.yes,
            dry_run: a.dry_run,
        },
        cli::Command::Plan(a) => CommandSettings::Plan(PlanSettings {
            cluster: cluster(a.cluster),
            exit_code: a.exit_code,
            out: a.out.map(saved_plan_file).transpose()?,
            report: a.report.map(report_file).transpose()?,
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
        cli::Command::Destroy(a) => destroy(a)?,
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
        cli::Command::History(a) => history(a)?,
        cli::Command::Agent(a) => agent(a)?,
        cli::Command::Affected(a) => CommandSettings::Affected {
            since: a.since,
            sandbox: a.sandbox,
        },
        cli::Command::Ci(cli::CiCommand::Init(a)) => ci_init(a),
    })
}

fn history(a: cli::HistoryArgs) -> Result<CommandSettings> {
    let limit = match a.limit {
        Some(0) => {
            return Err(UserError::usage("`--limit` must be at least 1", "try `--limit 1`").into());
        }
        Some(n) => n,
        None => DEFAULT_HISTORY_LIMIT,
    };
    Ok(CommandSettings::History(HistorySettings {
        env: a.env,
        limit,
        diff: a.diff.and_then(|pair| match <[String; 2]>::try_from(pair) {
            Ok([from, to]) => Some((from, to)),
            Err(_) => None,
        }),
        sandbox: a.sandbox,
    }))
}

fn ci_init(a: cli::CiInitArgs) -> CommandSettings {
    CommandSettings::CiInit(CiInitRequest {
        platform: match a.platform {
            cli::CiPlatformArg::Github => Platform::GitHub,
            cli::CiPlatformArg::Gitlab => Platform::GitLab,
        },
        plan_envs: a.plan_env,
        deploy_envs: a.deploy_env,
        branch: a.branch,
        image: a.image,
        aws: a.aws_role.map(|deploy_role| crate::ops::ci_init::AwsRoles {
            plan_role: a.aws_plan_role.unwrap_or_else(|| deploy_role.clone()),
            deploy_role,
            region: a.aws_region.unwrap_or_default(),
        }),
        force: a.force,
        preview: a
            .preview_from
            .map(|from| crate::ops::ci_init::PreviewRequest {
                from,
                url: a.preview_url,
            }),
    })
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
                    Some(text) => {
                        gitship_foundation::duration::parse_positive_flag("--timeout", text)?
                    }
                    None => DEFAULT_STATUS_WAIT,
                },
            )),
        },
    })
}

fn destroy(a: cli::DestroyArgs) -> Result<CommandSettings> {
    let flag = |name: &str, text: Option<&str>| {
        text.map(|text| gitship_foundation::duration::parse_positive_flag(name, text))
            .transpose()
    };
    Ok(CommandSettings::Destroy(DestroySettings {
        status: status_of(a.status),
        yes: a.yes,
        keep_terraform: a.keep_terraform,
        keep_namespace: a.keep_namespace,
        skip_kubernetes: a.skip_kubernetes,
        timeout: flag("--timeout", a.timeout.as_deref())?,
        lock_timeout: flag("--lock-timeout", a.lock_timeout.as_deref())?,
        lock_lease: flag("--lock-lease", a.lock_lease.as_deref())?,
    }))
}

fn sync(a: cli::SyncArgs) -> Result<CommandSettings> {
    Ok(CommandSettings::Sync {
        status: status_of(a.status),
        wait: match (a.no_wait, &a.timeout) {
            (true, _) => None,
            (false, Some(text)) => Some(gitship_foundation::duration::parse_positive_flag(
                "--timeout",
                text,
            )?),
            (false, None) => Some(DEFAULT_SYNC_WAIT),
        },
    })
}

fn deploy(a: cli::DeployArgs) -> Result<CommandSettings> {
    Ok(CommandSettings::Deploy(DeploySettings {
        cluster: cluster(a.cluster),
        build: build(a.build)?,
        plan: a.plan,
        reviewed: a.reviewed.map(|report| crate::ops::reviewed::ReviewedPlan {
            report,
            require: a.require_reviewed,
        }),
        allow_empty: a.allow_empty,
        prune_protected: a.prune_protected,
        no_prune: a.no_prune,
        timeout: a
            .timeout
            .as_deref()
            .map(|d| gitship_foundation::duration::parse_positive_flag("--timeout", d))
            .transpose()?,
        lock_timeout: a
            .lock_timeout
            .as_deref()
            .map(|d| gitship_foundation::duration::parse_flag("--lock-timeout", d))
            .transpose()?,
        lock_lease: a
            .lock_lease
            .as_deref()
            .map(|d| gitship_foundation::duration::parse_positive_flag("--lock-lease", d))
            .transpose()?,
        skip_preflight: a.skip_preflight,
        force: a.force,
        rev: a.rev,
        atomic: a.atomic,
    }))
}

fn rollback(a: cli::RollbackArgs) -> Result<CommandSettings> {
    Ok(CommandSettings::Rollback(RollbackRequest {
        env: a.env,
        to: a.to,
        lock_timeout: a
            .lock_timeout
            .as_deref()
            .map(|d| gitship_foundation::duration::parse_flag("--lock-timeout", d))
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
        return Ok(CommandSettings::AgentManifests(ManifestsRequest {
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
            .map(|d| gitship_foundation::duration::parse_positive_flag(flag, d))
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
    Ok(CommandSettings::Agent(AgentRequest {
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

fn cluster(a: cli::ClusterArgs) -> SessionTarget {
    SessionTarget {
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

/// `plan --report FILE`: a file gitship may write ([`file_to_write`]).
fn report_file(path: PathBuf) -> Result<PathBuf> {
    file_to_write("`--report`", &path)?;
    Ok(path)
}

/// A file a flag (`what`) names for gitship to write, refused before anything runs when
/// gitship would refuse to write it ([`gitship_foundation::private_file::check`]: a symlink, a device, a
/// FIFO, a socket or a directory is there).
fn file_to_write(what: &str, path: &Path) -> Result<()> {
    use gitship_foundation::diagnostics::StageError as _;
    gitship_foundation::private_file::check(path, None).map_err(|error| {
        let hint = error
            .hint()
            .unwrap_or_else(|| "name a new file, or a regular file to replace".to_string());
        UserError::usage(format!("{what}: {error}"), hint)
    })?;
    Ok(())
}

fn build(a: cli::BuildOptions) -> Result<BuildInputs> {
    let jobs = match a.jobs {
        Some(0) => {
            return Err(UserError::usage("`--jobs` must be at least 1", "try `--jobs 1`").into());
        }
        Some(n) => n,
        None => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    Ok(BuildInputs {
        force_build: a.force_build,
        jobs,
        allow_dirty: a.allow_dirty,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn flags() -> DeploySettings {
        DeploySettings {
            cluster: SessionTarget {
                env: "production".into(),
                sandbox: false,
                terraform_outputs: None,
            },
            build: BuildInputs {
                force_build: true,
                jobs: 3,
                allow_dirty: false,
            },
            plan: None,
            reviewed: None,
            allow_empty: false,
            prune_protected: true,
            no_prune: false,
            timeout: Some(Duration::from_secs(9)),
            lock_timeout: None,
            lock_lease: None,
            skip_preflight: false,
            force: false,
            rev: Some("v1".into()),
            atomic: false,
        }
    }

    #[test]
    fn deploy_flags_override_the_environment_config_and_only_when_given() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::create_dir_all(dir.path().join("config")).expect("mkdir");
        std::fs::write(
            dir.path().join("config/production.yaml"),
            "cluster:\n  namespace: blog\ndeploy:\n  timeout: 2m\n  lock_timeout: 1m\n",
        )
        .expect("write");
        let repo = crate::repo::Repository::discover(Some(dir.path())).expect("repository");
        let config = repo.load_env("production").expect("config");
        let request = flags().request(&config);
        assert_eq!(request.timeout, Duration::from_secs(9), "the flag");
        assert_eq!(request.lock_timeout, Duration::from_secs(60), "the config");
        assert!(request.prune && request.prune_protected && !request.allow_empty);
        assert_eq!(request.build.jobs, 3);
        assert_eq!(request.rev.as_deref(), Some("v1"));
        assert_eq!(
            request.policy.images,
            crate::ops::deploy::ImagePolicy::Build,
            "a person's deploy builds"
        );
    }
}
