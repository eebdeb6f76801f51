//! `gitship agent ENV`: pull-based GitOps. See `ARCHITECTURE.md` ("`src/agent/`").
//!
//! The agent is a loop over the operations, not a pipeline of its own: every sync and every
//! heal is one [`crate::ops::deploy::deploy`] of a commit checked out in the agent's own
//! clone, under the same deploy lock as `gitship deploy`; every drift check is
//! [`crate::ops::drift::drift_with`].
//!
//! - [`crate::git::clone`]: its clone in the cache directory, fetched with git2;
//! - [`decide`]: what to do next (sync, heal, wait, back off), a pure function of the agent's
//!   memory, what it observed and the time;
//! - [`reconcile`]: the loop that observes, asks [`decide`] and carries the decision out (fetch,
//!   drift check, deploy, status, metrics, Events);
//! - [`leader`]: leader election over a Lease, so that several replicas can run;
//! - [`state`]: the status and metrics the loop shares with the HTTP server;
//! - [`notify`]: commit statuses on GitHub or GitLab for each sync;
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, `/status`, `/status/objects`, `/` and
//!   `POST /hooks/git`; [`page`]: the status page `/` shows;
//! - [`manifests`]: what runs the agent in the cluster.

pub mod decide;
pub mod http;
pub mod leader;
pub mod manifests;
pub mod metrics;
pub mod notify;
pub mod page;
pub mod reconcile;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::agent::notify::{Notifier, Tokens};
use crate::agent::reconcile::Agent;
use crate::agent::state::{AgentState, Liveness, Status, WebhookSecrets};
use crate::exit::Outcome;
use crate::git::clone::GitSource;
use crate::ops::session::Workspace;
use crate::repo::Repository;
use crate::repo::config::{AgentConfig, AgentTerraform, NotifyConfig};
use gitship_foundation::diagnostics::{UserError, user_error};
use gitship_foundation::output::Printer;

/// `gitship agent ENV`: what the command line asked for; `agent:` in the environment's config fills what they leave
/// unset (see [`crate::agent::AgentOptions`]).
#[derive(Debug, Clone)]
pub struct AgentRequest {
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

/// The default poll interval (`--interval`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The default drift-check interval (`--heal-interval`).
pub const DEFAULT_HEAL_INTERVAL: Duration = Duration::from_secs(60);
/// The default leader Lease duration (`--lease-duration`), as Kubernetes' own controllers.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// The agent's settings: the flags, then `agent:` in the environment's config, then defaults.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub env: String,
    /// The Git URL or path (may hold credentials: print [`crate::git::clone::display_url`] of it).
    pub source: String,
    pub branch: Option<String>,
    /// The gitship repository below the Git root.
    pub path: PathBuf,
    pub cache: PathBuf,
    pub interval: Duration,
    pub heal_interval: Duration,
    pub listen: Option<SocketAddr>,
    pub lease_duration: Duration,
    pub once: bool,
    pub sandbox: bool,
    pub build: bool,
    pub terraform: AgentTerraform,
    pub self_heal: bool,
    /// `agent.notify` of the `-C` repository; each revision's own then decides.
    pub notify: Option<NotifyConfig>,
    pub kubeconfig: Option<PathBuf>,
}

impl AgentOptions {
    /// Resolve the flags against the `-C` repository's config (when there is one): each flag
    /// that is given wins over `agent:` of the config, which wins over the defaults.
    pub fn resolve(settings: &AgentRequest, workspace: &Workspace) -> Result<AgentOptions> {
        let local = Repository::discover(workspace.repo.as_deref()).ok();
        let agent = match &local {
            Some(repo) => repo.load_env(&settings.env).map_err(user_error)?.agent,
            None => AgentConfig {
                self_heal: true,
                ..AgentConfig::default()
            },
        };
        let (source, path, branch) = git_source(settings, &agent, local.as_ref())?;
        if settings.sandbox && !settings.once {
            return Err(UserError::usage(
                "`agent --sandbox` runs with `--once` only: the simulated cluster lives in one process at a time, which a running agent and its deploys cannot share",
                "add `--once`, or run the agent against a cluster (kubesim's binary is one: `cargo run -p kubesim -- --kubeconfig FILE`)",
            )
            .into());
        }
        if !crate::repo::files::lexically_inside(&path) {
            return Err(UserError::usage(
                format!("`--path {}` leaves the Git repository", path.display()),
                "give a relative path below the repository's root, e.g. `examples/blog-infra`",
            )
            .into());
        }
        Ok(AgentOptions {
            env: settings.env.clone(),
            source,
            branch,
            path,
            cache: settings
                .cache
                .clone()
                .unwrap_or_else(crate::git::clone::default_cache),
            interval: at_least(
                "--interval",
                settings.interval.or(agent.interval),
                DEFAULT_INTERVAL,
            )?,
            heal_interval: at_least(
                "--heal-interval",
                settings.heal_interval.or(agent.heal_interval),
                DEFAULT_HEAL_INTERVAL,
            )?,
            listen: listen_address(settings.listen, agent.listen.as_deref())?,
            lease_duration: at_least(
                "--lease-duration",
                settings.lease_duration.or(agent.lease_duration),
                DEFAULT_LEASE_DURATION,
            )?,
            once: settings.once,
            sandbox: settings.sandbox,
            build: agent.build,
            terraform: agent.terraform,
            self_heal: agent.self_heal,
            notify: agent.notify,
            kubeconfig: workspace.kubeconfig.clone(),
        })
    }
}

/// The Git source, the path below its root and the branch: `--source` or `agent.source`, else
/// the Git work tree of the `-C` repository (its path below the root, its current branch).
fn git_source(
    settings: &AgentRequest,
    agent: &AgentConfig,
    local: Option<&Repository>,
) -> Result<(String, PathBuf, Option<String>)> {
    if let Some(source) = settings.source.as_ref().or(agent.source.as_ref()) {
        return Ok((
            source.clone(),
            settings.path.clone().unwrap_or_default(),
            settings.branch.clone().or_else(|| agent.branch.clone()),
        ));
    }
    let Some(repo) = local else {
        return Err(UserError::usage(
            "the agent needs a Git source: no `--source`, and no repository here",
            "pass `--source URL` (file://, https://, ssh:// or a path), or run it in the repository (or `-C DIR`)",
        )
        .into());
    };
    let git_root = crate::git::work_tree_root(&repo.root).ok_or_else(|| {
        UserError::new(
            format!("`{}` is not inside a Git work tree", repo.root.display()),
            "pass `--source URL`",
        )
    })?;
    let path = repo
        .root
        .strip_prefix(&git_root)
        .map(PathBuf::from)
        .unwrap_or_default();
    let branch = settings
        .branch
        .clone()
        .or_else(|| agent.branch.clone())
        .or_else(|| current_branch(&git_root));
    Ok((
        git_root.to_string_lossy().into_owned(),
        settings.path.clone().unwrap_or(path),
        branch,
    ))
}

/// `--listen`, else `agent.listen` (checked to be an address).
fn listen_address(flag: Option<SocketAddr>, config: Option<&str>) -> Result<Option<SocketAddr>> {
    match (flag, config) {
        (Some(listen), _) => Ok(Some(listen)),
        (None, Some(text)) => Ok(Some(text.parse().map_err(|_| {
            UserError::new(
                format!("`agent.listen: {text}` is not an address to listen on"),
                "give IP:PORT, e.g. `0.0.0.0:8080`",
            )
        })?)),
        (None, None) => Ok(None),
    }
}

/// `value` (else `default`), at least 100ms (benchmarks), or 1s for a Lease, which counts whole
/// seconds.
fn at_least(flag: &str, value: Option<Duration>, default: Duration) -> Result<Duration, UserError> {
    let value = value.unwrap_or(default);
    let least = if flag == "--lease-duration" {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(100)
    };
    if value < least {
        return Err(UserError::usage(
            format!("`{flag}` must be at least {least:?}"),
            "e.g. `--interval 30s`",
        ));
    }
    Ok(value)
}

/// The branch `HEAD` names in the Git repository at `root`.
fn current_branch(root: &std::path::Path) -> Option<String> {
    let repository = git2::Repository::open(root).ok()?;
    let head = repository.head().ok()?;
    if !head.is_branch() {
        return None;
    }
    head.shorthand().ok().map(str::to_string)
}

/// The environment variable naming the address other replicas reach this one at
/// (`http://HOST:PORT`); else `POD_IP` (the downward API, as `agent manifests` sets it) with the
/// listen port, else the listen address when it names one host.
pub const ADDRESS_VARIABLE: &str = "GITSHIP_AGENT_ADDRESS";

/// Where the other replicas reach this one's HTTP server (see [`ADDRESS_VARIABLE`]); `None`
/// when it listens on all addresses and nothing says which one is this pod's.
fn advertised_address(listen: SocketAddr, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let given = |key: &str| {
        env(key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(address) = given(ADDRESS_VARIABLE) {
        return Some(address.trim_end_matches('/').to_string());
    }
    if let Some(ip) = given("POD_IP").and_then(|ip| ip.parse::<std::net::IpAddr>().ok()) {
        return Some(format!("http://{}", SocketAddr::new(ip, listen.port())));
    }
    (!listen.ip().is_unspecified()).then(|| format!("http://{listen}"))
}

/// The webhook secrets from the environment; empty values count as unset.
fn webhook_secrets() -> WebhookSecrets {
    let read = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    WebhookSecrets {
        github: read(http::GITHUB_SECRET_VARIABLE),
        gitlab: read(http::GITLAB_TOKEN_VARIABLE),
    }
}

/// Run the agent until SIGTERM/SIGINT (exit 0), or once (`--once`: deploy's exit codes).
pub async fn run(
    settings: &AgentRequest,
    workspace: &Workspace,
    printer: &Printer,
) -> Result<Outcome> {
    let options = AgentOptions::resolve(settings, workspace)?;
    let source = GitSource::open(&options.source, options.branch.as_deref(), &options.cache)?;
    let identity = format!(
        "{} {}",
        gitship_foundation::ci::who(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let status = Status::new(
        &options.env,
        &source.display_url(),
        &source.branch,
        &identity,
    );
    let mut status = status;
    status.address = options
        .listen
        .and_then(|listen| advertised_address(listen, |key| std::env::var(key).ok()));
    let state = Arc::new(
        AgentState::new(status, webhook_secrets())
            .with_liveness(Liveness::for_lease(options.lease_duration)),
    );
    printer.status(&format!(
        "agent: `{}` from {} (branch `{}`{}), every {:?}, heal every {:?}",
        options.env,
        source.display_url(),
        source.branch,
        if options.path.as_os_str().is_empty() {
            String::new()
        } else {
            format!(", path `{}`", options.path.display())
        },
        options.interval,
        options.heal_interval
    ));
    let (stop_http, http) = match options.listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|err| {
                    UserError::new(
                        format!("cannot listen on `{address}`: {err}"),
                        "pick a free port with `--listen`",
                    )
                })?;
            printer.status(&format!(
                "agent: serving /healthz, /readyz, /metrics, /status, / and POST /hooks/git on http://{}",
                listener.local_addr().unwrap_or(address)
            ));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(http::serve(listener, state.clone(), async move {
                let _ = stopped.await;
            }));
            (Some(stop), Some(server))
        }
        None => (None, None),
    };
    let notifier = Notifier::new(
        &options.source,
        &options.env,
        options.notify.as_ref(),
        Tokens::from_env(),
        printer.clone(),
    );
    let mut agent =
        Agent::new(options, source, state, identity, printer.clone()).notifying(notifier);
    let result = agent.run().await;
    if let Some(stop) = stop_http {
        let _ = stop.send(());
    }
    if let Some(server) = http {
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_address_is_the_variable_the_pod_ip_or_the_listen_address() {
        let listen: SocketAddr = "0.0.0.0:8080".parse().expect("address");
        let none = |_: &str| None;
        assert_eq!(advertised_address(listen, none), None);
        let pod = |key: &str| (key == "POD_IP").then(|| "10.1.2.3".to_string());
        assert_eq!(
            advertised_address(listen, pod).as_deref(),
            Some("http://10.1.2.3:8080")
        );
        let pod6 = |key: &str| (key == "POD_IP").then(|| "fd00::1".to_string());
        assert_eq!(
            advertised_address(listen, pod6).as_deref(),
            Some("http://[fd00::1]:8080")
        );
        let given = |key: &str| (key == ADDRESS_VARIABLE).then(|| "http://agent:9/".to_string());
        assert_eq!(
            advertised_address(listen, given).as_deref(),
            Some("http://agent:9")
        );
        let loopback: SocketAddr = "127.0.0.1:9090".parse().expect("address");
        assert_eq!(
            advertised_address(loopback, none).as_deref(),
            Some("http://127.0.0.1:9090")
        );
    }
}
