//! Talking to the environment's agent through the cluster: `suspend` (no sync, no heal),
//! `sync` (ask the leader for a sync now and wait for its answer) and `status --wait` (wait
//! until the agent runs a revision, healthy). `resume` lives with `pin` ([`crate::ops::pin`]).
//! See ARCHITECTURE.md ("`src/agent/`").

use std::time::Duration;

use anyhow::Result;
use chrono::Utc;

use crate::git::short_sha;
use crate::ops::agent_status::{Status, SyncState};
use crate::ops::session::{ClusterConnection, Session};
use gitship_foundation::diagnostics::{UserError, user_error};
use gitship_kube::events::{self, EventType};
use gitship_kube::pin::{self, Suspension};
use gitship_kube::retry::RetryPolicy;

/// How often a wait reads the agent's status.
const POLL: Duration = Duration::from_secs(1);

/// Suspend the environment's agent: it neither syncs nor heals until `gitship resume`. The
/// agent is asked for a sync, so that it sees the suspension at once.
pub async fn suspend(session: &Session, reason: &str) -> Result<Suspension> {
    let connection = session.connect_announced().await?;
    session.deployed_inventory(&connection, "suspend").await?;
    let environment = session.environment();
    let suspension = Suspension {
        who: gitship_foundation::ci::who(),
        time: Utc::now(),
        reason: reason.to_string(),
    };
    let client = &connection.client;
    pin::store_suspension(
        client,
        &environment,
        Some(&suspension),
        &RetryPolicy::default(),
    )
    .await
    .map_err(user_error)?;
    events::record(
        client,
        &environment,
        &gitship_foundation::ci::who(),
        EventType::Normal,
        "Suspended",
        &format!(
            "`{}` suspended by {}{}: the agent neither syncs nor heals it until `gitship resume`",
            environment.name,
            suspension.who,
            if reason.is_empty() {
                String::new()
            } else {
                format!(" ({reason})")
            }
        ),
    )
    .await;
    gitship_kube::sync_request::request(client, &environment)
        .await
        .map_err(user_error)?;
    connection.save_sandbox()?;
    Ok(suspension)
}

/// What the agent answered to a sync request.
#[derive(Debug, Clone)]
pub enum SyncAnswer {
    /// Asked; not waited for (`--no-wait`).
    Requested,
    /// The leader synced (and healed): its status after it.
    Answered(Box<Status>),
}

/// Ask the environment's agent for a sync now (through its status ConfigMap) and, with
/// `wait`, wait up to that long for the leader's answer.
pub async fn sync(session: &Session, wait: Option<Duration>) -> Result<SyncAnswer> {
    let connection = session.connect_announced().await?;
    session.deployed_inventory(&connection, "sync").await?;
    let environment = session.environment();
    let requested = gitship_kube::sync_request::request(&connection.client, &environment)
        .await
        .map_err(user_error)?;
    let Some(timeout) = wait else {
        connection.save_sandbox()?;
        return Ok(SyncAnswer::Requested);
    };
    let started = tokio::time::Instant::now();
    loop {
        if let Some(status) = published(session, &connection).await?
            && status
                .sync_request_handled
                .is_some_and(|handled| handled >= requested)
        {
            return Ok(SyncAnswer::Answered(Box::new(status)));
        }
        if started.elapsed() >= timeout {
            return Err(UserError::new(
                format!(
                    "the agent of `{}` did not answer the sync request within {}",
                    environment.name,
                    gitship_foundation::output::duration_text(timeout)
                ),
                format!(
                    "is an agent running for it? `gitship status {}` shows its leader; the request stays, and the agent answers it when it runs",
                    environment.name
                ),
            )
            .into());
        }
        gitship_foundation::process::sleep_interruptible(POLL).await?;
    }
}

/// What `status --wait` waits for.
#[derive(Debug, Clone)]
pub struct ReadyTarget {
    /// The commit the agent must run (or run a descendant of).
    pub sha: String,
    pub timeout: Duration,
}

/// Wait until the agent runs `target.sha` (or a descendant of it, as far as the repository
/// knows) and reports it synced: the Ready condition CI gates on. The agent's status after it.
pub async fn wait_ready(session: &Session, target: &ReadyTarget) -> Result<Status> {
    let connection = session.connect_announced().await?;
    let environment = session.environment();
    let started = tokio::time::Instant::now();
    let mut said = String::new();
    loop {
        let status = published(session, &connection).await?;
        let seen = match &status {
            Some(status) => {
                let running = status.revision.as_ref().map(|r| r.sha.as_str());
                let contains = running.is_some_and(|running| {
                    running == target.sha
                        || crate::git::contains(&session.user_repo().root, running, &target.sha)
                });
                if contains && status.state == SyncState::Synced {
                    return Ok(status.clone());
                }
                format!(
                    "the agent runs {} ({})",
                    running.map_or("nothing yet", short_sha),
                    status.state.as_str()
                )
            }
            None => "no agent has published a status".to_string(),
        };
        if seen != said {
            session.printer.status(&format!(
                "waiting for `{}` to run {}: {seen}",
                environment.name,
                short_sha(&target.sha)
            ));
            said = seen;
        }
        if started.elapsed() >= target.timeout {
            return Err(UserError::new(
                format!(
                    "`{}` is not ready at {} after {}: {said}",
                    environment.name,
                    short_sha(&target.sha),
                    gitship_foundation::output::duration_text(target.timeout)
                ),
                format!(
                    "`gitship status {}` shows the agent's last error; is the commit pushed to the branch the agent follows?",
                    environment.name
                ),
            )
            .into());
        }
        gitship_foundation::process::sleep_interruptible(POLL).await?;
    }
}

/// The agent's status as its leader last published it.
async fn published(session: &Session, connection: &ClusterConnection) -> Result<Option<Status>> {
    crate::ops::agent_status::load_published(&connection.client, &session.environment())
        .await
        .map(|published| published.status)
        .map_err(user_error)
}
