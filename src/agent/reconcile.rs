//! One agent: its loop, which observes, decides ([`crate::agent::decide`]) and acts.
//!
//! Each turn of the loop connects (once), contends for the leader Lease, and, as the
//! [`Schedule`] says, syncs and heals; it then publishes the status and waits. This file only
//! observes and carries decisions out; what to do is decided in [`crate::agent::decide`], a pure
//! function of the agent's [`Memory`], what it observed and the time (ARCHITECTURE.md,
//! "`src/agent/`").
//!
//! - **Sync** (every `interval`, or at once on a push webhook or `gitship sync`): fetch the
//!   branch and read the pin and the suspension; when [`Memory::sync`] says so, check the new
//!   commit out in the agent's clone and deploy it through the one pipeline
//!   ([`crate::ops::deploy::deploy`]), without building (unless `agent.build`) and with
//!   Terraform as `agent.terraform` says. A failed commit leaves the cluster at the last good
//!   revision (the pipeline's static checks and preflight run before anything changes), and is
//!   tried again after its back-off; missing images make the agent wait ("waiting for images").
//! - **Heal** (every `heal_interval`): a drift check of the revision the cluster runs
//!   ([`crate::ops::drift::drift_with`], with the environment's `drift.ignore` rules); what
//!   [`Memory::heal`] decides to put back is deployed again from that revision, recorded as a
//!   `heal` in the deploy history and as an Event; fields that flap are reported (log, Event,
//!   status) and wait out their back-off.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::Utc;

use crate::agent::AgentOptions;
use crate::agent::decide::{
    self, Controls, HealAction, HealDecision, HealPolicy, Memory, Schedule, SyncDecision,
    SyncFailure,
};
use crate::agent::leader::{self, Contention, Leadership};
use crate::agent::metrics::SyncResult;
use crate::agent::notify::{CommitState, Notifier, failure_description};
use crate::agent::state::{AgentState, Heal, LeaderView, Revision, SyncState};
use crate::exit::Outcome;
use crate::git::clone::{FetchFailed, FetchFailure, GitSource, LargeFiles};
use crate::git::short_sha;
use crate::ops::deploy::{DeployPolicy, ImagePolicy, ImagesMissing, TerraformPolicy};
use crate::ops::session::{SessionTarget, Workspace};
use crate::ops::{DeploySource, Session};
use crate::plan::DriftReport;
use crate::repo::config::AgentTerraform;
use gitship_foundation::diagnostics::user_error;
use gitship_foundation::model::Environment;
use gitship_foundation::output::Printer;
use gitship_kube::KubeError;
use gitship_kube::events::{self, EventType};
use gitship_kube::inventory::{DeployOutcome, RecordSource};
use gitship_kube::pin::{Pin, Suspension};

/// The agent of one environment.
pub struct Agent {
    options: AgentOptions,
    source: GitSource,
    state: Arc<AgentState>,
    identity: String,
    printer: Printer,
    /// The revision the cluster runs (the last good sync, the pin, or a degraded commit).
    applied: Option<Revision>,
    /// What the decisions remember: the failed commit's retry, the flapping fields.
    memory: Memory,
    /// The status as last published to the cluster.
    published: Option<String>,
    /// The cluster and the environment, known from the first commit that opens.
    cluster: Option<(kube::Client, Environment)>,
    /// Whether the last fetch succeeded: with a heal that succeeds after it, an `error` state
    /// that a lost remote or an outage left behind clears.
    fetched: bool,
    /// The message of the fetch failure an Event reported, until a fetch succeeds.
    fetch_failure: Option<String>,
    /// The environment is suspended (as the last sync found): no sync, no heal.
    suspension: bool,
    /// The connection `cluster` came from, kept open (with `--sandbox`, its simulated cluster).
    connection: Option<crate::ops::session::ClusterConnection>,
    /// Commit statuses on GitHub or GitLab, per the `agent.notify` of the revision last opened.
    notifier: Notifier,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Agent")
            .field("options", &self.options)
            .field("source", &self.source)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

/// What a turn of the loop leads to.
enum Turn {
    /// Begin the next turn at once (the leader election waited already).
    Again,
    /// Wait until then (or a webhook, or SIGTERM).
    Wait(Instant),
}

impl Agent {
    pub fn new(
        options: AgentOptions,
        source: GitSource,
        state: Arc<AgentState>,
        identity: String,
        printer: Printer,
    ) -> Agent {
        Agent {
            notifier: Notifier::off(printer.clone()),
            options,
            source,
            state,
            identity,
            printer,
            applied: None,
            memory: Memory::default(),
            fetched: false,
            fetch_failure: None,
            suspension: false,
            connection: None,
            published: None,
            cluster: None,
        }
    }

    /// Post commit statuses with `notifier`.
    pub fn notifying(mut self, notifier: Notifier) -> Agent {
        self.notifier = notifier;
        self
    }

    /// Run until interrupted (exit 0), or once.
    pub async fn run(&mut self) -> Result<Outcome> {
        if self.options.once {
            return self.once().await;
        }
        let mut interrupt = gitship_foundation::process::interrupt_receiver();
        let mut leadership: Option<Leadership> = None;
        let mut schedule = Schedule::new(Instant::now(), self.options.heal_interval);
        loop {
            self.state.tick();
            if gitship_foundation::process::is_interrupted() {
                break;
            }
            let wake = match self.turn(&mut leadership, &mut schedule).await {
                Turn::Again => continue,
                Turn::Wait(at) => at,
            };
            if wait_until(&mut interrupt, &self.state, wake).await {
                break;
            }
            if self.state.take_trigger() {
                schedule.fetch_now(Instant::now());
            }
        }
        self.stop(leadership).await;
        Ok(Outcome::Success)
    }

    /// One turn of the loop: connect, lead, then sync and heal as `schedule` says.
    async fn turn(&mut self, leadership: &mut Option<Leadership>, schedule: &mut Schedule) -> Turn {
        if self.cluster.is_none() {
            if let Err(error) = self.connect().await {
                self.report_error(&error);
                let now = Instant::now();
                let wait = decide::reconnect_after(self.options.interval);
                return Turn::Wait(now.checked_add(wait).unwrap_or(now));
            }
            schedule.fetch_now(Instant::now());
        }
        let Some((client, environment)) = self.cluster.clone() else {
            return Turn::Again;
        };
        let election = leadership.get_or_insert_with(|| {
            Leadership::new(&environment, &self.identity, self.options.lease_duration)
        });
        if !election.is_leader() {
            if !self.lead(election, &client).await {
                return Turn::Again;
            }
            schedule.fetch_now(Instant::now());
        }
        let now = Instant::now();
        if self.sync_requested().await {
            self.memory.sync_requested(now);
            schedule.requested(now);
        }
        let due = schedule.due(now);
        if due.sync {
            self.sync().await;
            schedule.synced(Instant::now(), self.options.interval);
        }
        schedule.retry(self.memory.retry_at());
        if due.heal {
            self.heal().await;
            schedule.healed(Instant::now(), self.options.heal_interval);
        }
        self.publish().await;
        Turn::Wait(schedule.wake(Instant::now(), self.options.lease_duration))
    }

    /// Stop: a leader says so in its status and gives the Lease up.
    async fn stop(&mut self, leadership: Option<Leadership>) {
        if let Some(mut election) = leadership {
            if election.is_leader() {
                self.state.update(|s| s.leader = false);
                self.publish().await;
            }
            if let Err(error) = election.resign().await {
                self.printer.warn(&format!(
                    "agent: could not give up the leader Lease: {error}"
                ));
            }
        }
        self.printer.status("agent: stopped");
    }

    /// Try to lead; whether this replica now leads.
    async fn lead(&mut self, election: &mut Leadership, client: &kube::Client) -> bool {
        self.state.metrics.set_leader(false);
        self.state.update(|s| {
            s.leader = false;
        });
        match election.contend(client, &self.printer).await {
            Ok(Contention::Leading) => {
                self.printer.status(&format!(
                    "agent: leading `{}` as `{}`",
                    self.options.env, self.identity
                ));
                self.state.metrics.set_leader(true);
                let identity = self.identity.clone();
                self.state.update(|s| {
                    s.leader = true;
                    s.leader_identity = Some(identity);
                    if s.state == SyncState::Follower {
                        s.state = SyncState::Starting;
                    }
                });
                self.state.set_leader_view(None);
                // The leader before us may have applied commits: start from the inventory.
                self.applied = self.applied_from_inventory().await;
                self.published = None;
                // Requests made before this replica led are answered by its first sync.
                if let Some((_, environment)) = &self.cluster
                    && let Ok(published) = leader::load_published(client, environment).await
                {
                    let handled = published.sync_requested;
                    self.state.update(|s| s.sync_request_handled = handled);
                }
                true
            }
            Ok(Contention::Following { leader }) => {
                let known = self.state.status().leader_identity;
                if known.is_some() && known.as_deref() != Some(leader.as_str()) {
                    self.printer.status(&format!(
                        "agent: following `{leader}`, the new leader of `{}`",
                        self.options.env
                    ));
                }
                let published = match &self.cluster {
                    Some((_, environment)) => leader::load_published(client, environment)
                        .await
                        .map_err(|error| tracing::debug!(%error, "cannot read the leader's status"))
                        .ok(),
                    None => None,
                };
                self.follow(leader, published.and_then(|p| p.status));
                false
            }
            Err(KubeError::Interrupted) => false,
            Err(error) => {
                self.report_error(&user_error(error));
                tokio::time::sleep(decide::BACKOFF_MIN).await;
                false
            }
        }
    }

    /// Follow `leader`: remember where it serves and show what it last published (the
    /// revisions, the last sync and heal), so a follower's own status is not frozen at start.
    fn follow(&self, leader: String, published: Option<crate::agent::state::Status>) {
        let view = published.as_ref().map(|status| LeaderView {
            identity: leader.clone(),
            // An address published by an earlier leader is not this one's.
            address: status.address.clone().filter(|_| status.identity == leader),
            status: status.clone(),
        });
        self.state.set_leader_view(view);
        self.state.update(|s| {
            s.state = SyncState::Follower;
            s.leader_identity = Some(leader);
            if let Some(published) = published {
                s.git_revision = published.git_revision;
                s.revision = published.revision;
                s.pinned = published.pinned;
                s.last_sync = published.last_sync;
                s.last_heal = published.last_heal;
            }
        });
    }

    /// Whether `gitship sync` (or `resume`) asked for a sync this replica has not answered: it
    /// is answered by the sync that follows (at once, past any back-off).
    async fn sync_requested(&mut self) -> bool {
        let Some((client, environment)) = &self.cluster else {
            return false;
        };
        let published = match leader::load_published(client, environment).await {
            Ok(published) => published,
            Err(error) => {
                tracing::debug!(%error, "cannot read sync requests");
                return false;
            }
        };
        let Some(requested) = published.sync_requested else {
            return false;
        };
        if self
            .state
            .status()
            .sync_request_handled
            .is_some_and(|handled| handled >= requested)
        {
            return false;
        }
        self.printer.status(&format!(
            "agent: a sync of `{}` was requested",
            self.options.env
        ));
        self.state
            .update(|s| s.sync_request_handled = Some(requested));
        true
    }

    /// `--once`: one sync when the branch moved, else one heal; errors are deploy's.
    async fn once(&mut self) -> Result<Outcome> {
        self.connect().await?;
        let head = self.fetch()?;
        self.applied = self.applied_from_inventory().await;
        let (pin, suspension) = self.read_controls().await?;
        // Every read of its own is done. A sandbox's simulated cluster saves its state when its
        // connection closes: close it now, unchanged, before the deploy's own connection loads,
        // changes and saves that state (else the stale copy would be saved over it at exit).
        if self.options.sandbox {
            self.connection = None;
            self.cluster = None;
        }
        let decision = self.decide_sync(&head, pin, suspension);
        match decision {
            SyncDecision::Suspended => {
                self.printer.status(&format!(
                    "agent: `{}` is suspended: nothing to do",
                    self.options.env
                ));
                Ok(Outcome::Success)
            }
            SyncDecision::Sync { .. } => {
                self.deploy(&head, Purpose::Sync).await?;
                self.printer.status(&format!(
                    "agent: synced {} ({})",
                    short_sha(&head.sha),
                    head.subject
                ));
                Ok(Outcome::Success)
            }
            SyncDecision::Pinned | SyncDecision::UpToDate | SyncDecision::BackOff { .. } => {
                self.printer.status(&format!(
                    "agent: `{}` runs {} already; checking for drift",
                    self.options.env,
                    short_sha(&head.sha)
                ));
                match self.heal_once().await? {
                    Some(error) => Err(error),
                    None => Ok(Outcome::Success),
                }
            }
        }
    }

    /// Open the newest commit to learn the environment's cluster and namespace.
    async fn connect(&mut self) -> Result<()> {
        let head = self.fetch()?;
        self.source.checkout(&head.sha, SKIP_LARGE)?;
        let session = self.session()?;
        self.notifier
            .configure(session.config.agent.notify.as_ref());
        let connection = session.connect().await?;
        self.cluster = Some((connection.client.clone(), session.environment()));
        // A sandbox's simulated cluster serves only while its connection lives (`--once`).
        self.connection = Some(connection);
        Ok(())
    }

    fn fetch(&self) -> Result<Revision> {
        let head = self.source.fetch()?;
        let fetched = head.clone();
        self.state.update(|s| s.git_revision = Some(fetched));
        Ok(head)
    }

    /// The revision of the newest successful record in the inventory.
    async fn applied_from_inventory(&self) -> Option<Revision> {
        let (client, environment) = self.cluster.as_ref()?;
        let inventory = gitship_kube::inventory::load(
            client,
            &environment.name,
            &environment.namespace,
            &gitship_kube::retry::RetryPolicy::default(),
        )
        .await
        .ok()??;
        let succeeded = inventory
            .history
            .iter()
            .find(|record| record.outcome == DeployOutcome::Succeeded)?;
        let sha = succeeded.sha.clone()?;
        // The last sync, as the history knows it (a heal is not a sync), so that a restarted
        // agent does not say "never".
        let last_sync = inventory
            .history
            .iter()
            .find(|record| {
                record.outcome == DeployOutcome::Succeeded && record.source != RecordSource::Heal
            })
            .map(|record| record.time);
        let revision = self.source.revision(&sha).unwrap_or(Revision {
            sha,
            subject: String::new(),
            author: String::new(),
        });
        let applied = revision.clone();
        self.state.update(|s| {
            s.revision = Some(applied);
            if s.last_sync.is_none() {
                s.last_sync = last_sync;
            }
        });
        self.state.metrics.set_revision(&revision.sha);
        if let Some(time) = last_sync {
            self.state.metrics.set_last_sync(time);
        }
        Some(revision)
    }

    /// The session for the commit checked out in the clone.
    fn session(&self) -> Result<Session> {
        let root: PathBuf = self.source.work_tree()?.join(&self.options.path);
        let workspace = Workspace {
            repo: Some(root),
            kubeconfig: self.options.kubeconfig.clone(),
        };
        Session::open_committed(
            &workspace,
            &self.printer,
            &SessionTarget {
                env: self.options.env.clone(),
                sandbox: self.options.sandbox,
                terraform_outputs: None,
            },
        )
    }

    /// What a deploy for `purpose` may do. A sync follows the `agent:` settings of the revision
    /// being deployed (already in `self.options`); a heal never builds nor touches Terraform.
    fn policy(&self, purpose: Purpose) -> DeployPolicy {
        match purpose {
            Purpose::Sync => DeployPolicy {
                images: if self.options.build {
                    ImagePolicy::Build
                } else {
                    ImagePolicy::RequireExisting
                },
                terraform: match self.options.terraform {
                    AgentTerraform::Off => TerraformPolicy::Off,
                    AgentTerraform::Plan => TerraformPolicy::Plan,
                    AgentTerraform::Apply => TerraformPolicy::Apply,
                },
                source: RecordSource::Agent,
                healed: Vec::new(),
            },
            Purpose::Heal(healed) => DeployPolicy {
                images: ImagePolicy::RequireExisting,
                terraform: TerraformPolicy::Off,
                source: RecordSource::Heal,
                healed,
            },
        }
    }

    /// Check `revision` out and deploy it through the one pipeline, under the policy its own
    /// `agent:` settings give (a commit that turns `agent.build` on is built by that very sync).
    async fn deploy(
        &mut self,
        revision: &Revision,
        purpose: Purpose,
    ) -> Result<crate::ops::deploy::Deployed> {
        // Large files only when the revision builds images (a heal never does).
        let builds = |build: bool| match (build, &purpose) {
            (true, Purpose::Sync) => LargeFiles::Include,
            _ => SKIP_LARGE,
        };
        let checked_out = builds(self.options.build);
        self.source.checkout(&revision.sha, checked_out)?;
        let mut session = self.session()?;
        if builds(session.config.agent.build) != checked_out {
            self.source
                .checkout(&revision.sha, builds(session.config.agent.build))?;
            session = self.session()?;
        }
        self.options.build = session.config.agent.build;
        self.options.terraform = session.config.agent.terraform;
        self.options.self_heal = session.config.agent.self_heal;
        self.notifier
            .configure(session.config.agent.notify.as_ref());
        if purpose_runs_terraform(&purpose, self.options.terraform)
            && session.local_terraform_state()
        {
            return Err(local_state_refused(&self.options.env));
        }
        let policy = self.policy(purpose);
        let request = crate::ops::deploy::DeployRequest {
            policy,
            ..crate::ops::deploy::DeployRequest::for_environment(&session.config)
        };
        crate::ops::deploy::deploy(&session, &DeploySource::WorkTree, &request).await
    }

    /// One sync: fetch, read the pin and the suspension, decide, and deploy the branch's newest
    /// commit when the decision says so.
    async fn sync(&mut self) {
        let started = Instant::now();
        let head = match self.fetch() {
            Ok(head) => head,
            Err(error) => {
                self.fetched = false;
                self.state.metrics.fetch_failed();
                self.fetch_failed(&error).await;
                return;
            }
        };
        self.fetched = true;
        self.fetch_failure = None;
        let (pin, suspension) = match self.read_controls().await {
            Ok(controls) => controls,
            Err(error) => {
                // Neither sync nor heal without knowing the pin: it may forbid either.
                self.report_error(&error);
                return;
            }
        };
        match self.decide_sync(&head, pin, suspension) {
            SyncDecision::Suspended | SyncDecision::Pinned | SyncDecision::BackOff { .. } => {}
            SyncDecision::UpToDate => {
                self.state.update(|s| {
                    if matches!(s.state, SyncState::Starting | SyncState::Progressing) {
                        s.state = SyncState::Synced;
                    }
                });
            }
            SyncDecision::Sync { .. } => self.sync_head(&head, started).await,
        }
    }

    /// Deploy the branch's `head`, a sync that began at `started`.
    async fn sync_head(&mut self, head: &Revision, started: Instant) {
        self.printer.status(&format!(
            "agent: syncing {} ({}) by {}",
            short_sha(&head.sha),
            head.subject,
            head.author
        ));
        self.state.update(|s| s.state = SyncState::Progressing);
        self.notifier
            .send(&head.sha, CommitState::Running, "deploying");
        let result = self.deploy(head, Purpose::Sync).await;
        let elapsed = started.elapsed();
        match result {
            Ok(deployed) => self.synced(head, deployed, elapsed),
            Err(error) => self.sync_failed(head, error, elapsed).await,
        }
    }

    fn synced(
        &mut self,
        head: &Revision,
        deployed: crate::ops::deploy::Deployed,
        elapsed: Duration,
    ) {
        let now = Utc::now();
        self.printer.status(&format!(
            "agent: synced {} in {:.1}s: {}",
            short_sha(&head.sha),
            elapsed.as_secs_f64(),
            deployed.report.summary_line()
        ));
        let pending: Vec<String> = deployed
            .terraform_pending
            .iter()
            .flat_map(|plan| plan.changes.iter())
            .map(|change| {
                format!(
                    "{} {} (planned, not applied)",
                    change.action.symbol(),
                    change.address
                )
            })
            .collect();
        let pending_count = pending.len();
        self.applied = Some(head.clone());
        self.memory.synced();
        let revision = head.clone();
        self.state.update(|s| {
            s.state = SyncState::Synced;
            s.revision = Some(revision);
            s.last_sync = Some(now);
            s.last_error = None;
            s.waiting_for_images.clear();
            s.terraform_drift = pending;
        });
        self.notifier
            .send(&head.sha, CommitState::Success, "synced");
        let metrics = &self.state.metrics;
        metrics.set_terraform_drift(pending_count as u64);
        metrics.sync_finished(SyncResult::Synced, elapsed);
        metrics.set_revision(&head.sha);
        metrics.set_last_sync(now);
    }

    /// Whether the failed deploy of `head` wrote objects before it failed: its record (the
    /// newest of the inventory's history) counts objects created or configured.
    async fn wrote(&self, head: &Revision) -> bool {
        let Some((client, environment)) = &self.cluster else {
            return false;
        };
        let retry = gitship_kube::retry::RetryPolicy::default();
        let stored = gitship_kube::inventory::load(
            client,
            &environment.name,
            &environment.namespace,
            &retry,
        )
        .await;
        let Ok(Some(inventory)) = stored else {
            return false;
        };
        inventory.history.first().is_some_and(|record| {
            record.sha.as_deref() == Some(head.sha.as_str())
                && record.outcome == DeployOutcome::Failed
                && record.counts.created + record.counts.configured > 0
        })
    }

    /// How the sync of `head` failed with `error`.
    async fn failure_of(&self, head: &Revision, error: &anyhow::Error) -> SyncFailure {
        if error.downcast_ref::<ImagesMissing>().is_some() {
            return SyncFailure::ImagesMissing;
        }
        // Applied, not healthy; or failed after its first write (a later wave, a webhook that
        // ignores dry runs): the cluster runs (part of) it.
        let unhealthy = matches!(
            error.downcast_ref::<KubeError>(),
            Some(KubeError::Unhealthy { .. })
        );
        if unhealthy || self.wrote(head).await {
            SyncFailure::Degraded
        } else {
            SyncFailure::Failed
        }
    }

    /// The sync of `head` failed: decide when to try it again, and say so.
    async fn sync_failed(&mut self, head: &Revision, error: anyhow::Error, elapsed: Duration) {
        if gitship_foundation::process::is_interrupted() {
            return;
        }
        let failure = self.failure_of(head, &error).await;
        let wait =
            self.memory
                .sync_failed(&head.sha, failure, Instant::now(), self.options.interval);
        if failure.runs_commit() {
            // Heals then follow the new commit, never back toward the older revision.
            self.applied = Some(head.clone());
        }
        match error.downcast_ref::<ImagesMissing>() {
            Some(missing) => self.wait_for_images(head, missing, wait, elapsed),
            None => {
                self.report_sync_failure(head, &error, failure, wait, elapsed)
                    .await
            }
        }
    }

    /// `head` needs images CI has not pushed yet: not a failure, the agent looks again soon.
    fn wait_for_images(
        &self,
        head: &Revision,
        missing: &ImagesMissing,
        wait: Duration,
        elapsed: Duration,
    ) {
        self.printer.status(&format!(
            "agent: {} waits for images: {} (next look in {}s)",
            short_sha(&head.sha),
            missing.missing.join(", "),
            wait.as_secs()
        ));
        let waiting = missing.missing.clone();
        self.state.update(|s| {
            s.state = SyncState::WaitingForImages;
            s.waiting_for_images = waiting;
        });
        self.state
            .metrics
            .sync_finished(SyncResult::WaitingForImages, elapsed);
        self.notifier
            .send(&head.sha, CommitState::Pending, "waiting for images");
    }

    /// The sync of `head` failed (`Degraded`: after writing): the log, the status, the commit
    /// status, the metrics and an Event say so.
    async fn report_sync_failure(
        &self,
        head: &Revision,
        error: &anyhow::Error,
        failure: SyncFailure,
        wait: Duration,
        elapsed: Duration,
    ) {
        let degraded = failure.runs_commit();
        let message = gitship_foundation::diagnostics::render(error);
        self.printer.warn(&format!(
            "agent: sync of {} failed (next attempt in {}s); the cluster stays at {}:\n{message}",
            short_sha(&head.sha),
            wait.as_secs(),
            self.applied
                .as_ref()
                .map_or("its previous state".to_string(), |a| short_sha(&a.sha)
                    .to_string())
        ));
        let text = message.clone();
        let revision = self.applied.clone();
        self.state.update(|s| {
            s.state = if degraded {
                SyncState::Degraded
            } else {
                SyncState::Error
            };
            s.last_error = Some(text);
            s.revision = revision;
        });
        self.notifier.send(
            &head.sha,
            CommitState::Failure,
            failure_description(degraded),
        );
        let result = if degraded {
            SyncResult::Degraded
        } else {
            SyncResult::Failed
        };
        self.state.metrics.sync_finished(result, elapsed);
        self.event(
            EventType::Warning,
            "SyncFailed",
            &format!("agent: {} failed: {message}", short_sha(&head.sha)),
        )
        .await;
    }

    /// The pin and the suspension of the environment. An unreadable pin is an error: the caller
    /// decides (the loop reports it and waits, `--once` fails with it).
    async fn read_controls(&self) -> Result<(Option<Pin>, Option<Suspension>)> {
        let Some((client, environment)) = &self.cluster else {
            return Ok((None, None));
        };
        gitship_kube::pin::load_controls(
            client,
            environment,
            &gitship_kube::retry::RetryPolicy::default(),
        )
        .await
        .map_err(user_error)
    }

    /// Decide the sync of `head` under `pin` and `suspension`, and carry out what the decision
    /// says of them: the status shows a suspension or a pin, a pinned commit becomes the
    /// revision the cluster runs, a resumed environment follows the branch again.
    fn decide_sync(
        &mut self,
        head: &Revision,
        pin: Option<Pin>,
        suspension: Option<Suspension>,
    ) -> SyncDecision {
        let controls = Controls::new(
            pin.as_ref().map(|pin| pin.sha.as_str()),
            suspension.is_some(),
        );
        let runs = self.applied.as_ref().map(|applied| applied.sha.clone());
        let decision = self
            .memory
            .sync(&head.sha, runs.as_deref(), &controls, Instant::now());
        self.suspension = decision == SyncDecision::Suspended;
        match (suspension, pin) {
            (Some(suspension), _) => self.show_suspension(&suspension),
            (None, pin) => {
                self.end_suspension();
                match pin {
                    Some(pin) => self.follow_pin(&pin, head),
                    None => self.end_pin(),
                }
            }
        }
        decision
    }

    /// Show the suspension (`gitship suspend`): neither sync nor heal until `gitship resume`.
    fn show_suspension(&self, suspension: &Suspension) {
        let text = format!(
            "by {} at {}{}",
            suspension.who,
            suspension.time.format("%Y-%m-%d %H:%M:%SZ"),
            if suspension.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", suspension.reason)
            }
        );
        if self.state.status().suspended.is_none() {
            self.printer.status(&format!(
                "agent: `{}` is suspended ({text}): no sync and no heal until `gitship resume {}`",
                self.options.env, self.options.env
            ));
        }
        self.state.update(|s| {
            s.state = SyncState::Suspended;
            s.suspended = Some(text);
        });
    }

    /// The environment is not suspended (any more).
    fn end_suspension(&self) {
        if self.state.status().suspended.is_none() {
            return;
        }
        self.printer.status(&format!(
            "agent: `{}` was resumed: syncing and healing again",
            self.options.env
        ));
        self.state.update(|s| {
            s.suspended = None;
            s.state = SyncState::Progressing;
        });
    }

    /// The environment is pinned at `pin`, Git being at `head`: the cluster is to run the pin,
    /// which heals go back to.
    fn follow_pin(&mut self, pin: &Pin, head: &Revision) {
        let revision = self.source.revision(&pin.sha).unwrap_or(Revision {
            sha: pin.sha.clone(),
            subject: String::new(),
            author: String::new(),
        });
        if self.state.status().pinned.as_ref().map(|p| &p.sha) != Some(&pin.sha) {
            self.printer.status(&format!(
                "agent: `{}` is pinned at {} ({} by {}), Git at {}: not syncing, healing to {}",
                self.options.env,
                short_sha(&pin.sha),
                pin.reason,
                pin.who,
                short_sha(&head.sha),
                short_sha(&pin.sha)
            ));
        }
        self.applied = Some(revision.clone());
        self.state.update(|s| {
            s.state = SyncState::Pinned;
            s.pinned = Some(revision.clone());
            s.revision = Some(revision);
        });
    }

    /// The environment is not pinned (any more): the agent follows the branch.
    fn end_pin(&self) {
        if self.state.status().pinned.is_none() {
            return;
        }
        self.printer.status(&format!(
            "agent: `{}` was resumed: following `{}` again",
            self.options.env, self.source.branch
        ));
        self.state.update(|s| {
            s.pinned = None;
            s.state = SyncState::Progressing;
        });
    }

    /// One heal (the loop's): errors go to the status.
    async fn heal(&mut self) {
        if self.suspension {
            return;
        }
        match self.heal_once().await {
            Ok(None) => self.recovered(),
            Ok(Some(error)) | Err(error) => {
                if !gitship_foundation::process::is_interrupted() {
                    self.state.metrics.heal_failed();
                    self.report_error(&error);
                }
            }
        }
    }

    /// Look for drift in the revision the cluster runs, decide, and put back what the decision
    /// says. `Ok(Some(error))`: the heal itself failed; `Err`: the drift check did.
    async fn heal_once(&mut self) -> Result<Option<anyhow::Error>> {
        let Some(applied) = self.applied.clone() else {
            return Ok(None);
        };
        let report = self.check_drift(&applied).await?;
        let policy = HealPolicy {
            interval: self.options.heal_interval,
            self_heal: self.options.self_heal,
        };
        let decision = self
            .memory
            .heal(&report, &applied.sha, policy, Instant::now());
        self.show_drift(&decision).await;
        match &decision.action {
            HealAction::Nothing => Ok(None),
            HealAction::Report(lines) => {
                self.printer.warn(&format!(
                    "agent: drift in `{}` (not healed: `agent.self_heal: false`): {}",
                    self.options.env,
                    lines.join("; ")
                ));
                Ok(None)
            }
            HealAction::Heal(lines) => self.put_back(&applied, &decision, lines.clone()).await,
        }
    }

    /// The drift report of `applied`, the revision the cluster runs; the status page's view
    /// follows it.
    async fn check_drift(&mut self, applied: &Revision) -> Result<DriftReport> {
        self.source.checkout(&applied.sha, SKIP_LARGE)?;
        let session = self.session()?;
        let quiet = Printer {
            quiet: true,
            ..self.printer.clone()
        };
        let session = Session {
            printer: quiet,
            ..session
        };
        let started = Instant::now();
        let report =
            crate::ops::drift::drift_with(&session, self.options.terraform != AgentTerraform::Off)
                .await?;
        self.state.metrics.drift_checked(started.elapsed());
        self.refresh_view(&report).await;
        Ok(report)
    }

    /// Show what a heal decided before it acts: fields that began or stopped flapping (log and
    /// Event), the flapping and waiting fields and Terraform's drift in the status, the gauges.
    async fn show_drift(&self, decision: &HealDecision) {
        for key in &decision.stopped_flapping {
            self.printer
                .status(&format!("agent: {key} is no longer flapping"));
        }
        for hint in &decision.began_flapping {
            self.printer.warn(&format!("agent: {hint}"));
            self.event(EventType::Warning, "FlappingField", hint).await;
        }
        let (flapping, drifted) = (decision.flapping.clone(), decision.drifted.clone());
        self.state.update(|s| {
            s.flapping = flapping;
            s.drifted = drifted;
        });
        let metrics = &self.state.metrics;
        metrics.set_drifted(decision.drifted_objects);
        metrics.set_terraform_drift(decision.terraform.len() as u64);
        // A heal deploy leaves the plan's pending lines; otherwise they are shown afresh.
        if decision.terraform.is_empty() && decision.action != HealAction::Nothing {
            return;
        }
        let terraform = decision.terraform.clone();
        self.state.update(|s| {
            s.terraform_drift
                .retain(|line| line.ends_with("(planned, not applied)"));
            s.terraform_drift.extend(terraform);
        });
    }

    /// Deploy `applied` again to put back `lines`, as `decision` says.
    async fn put_back(
        &mut self,
        applied: &Revision,
        decision: &HealDecision,
        lines: Vec<String>,
    ) -> Result<Option<anyhow::Error>> {
        self.printer.status(&format!(
            "agent: healing `{}` back to {}: {}",
            self.options.env,
            short_sha(&applied.sha),
            lines.join("; ")
        ));
        if let Err(error) = self.deploy(applied, Purpose::Heal(lines.clone())).await {
            return Ok(Some(error));
        }
        self.memory.healed(decision);
        self.state.metrics.healed(lines.len() as u64);
        self.state.metrics.set_drifted(decision.objects_left);
        self.state.update(|s| {
            s.last_heal = Some(Heal {
                time: Utc::now(),
                healed: lines,
            });
        });
        Ok(None)
    }

    /// After a heal that succeeded: an `error` state left by a failure outside a sync (a lost
    /// remote, a cluster outage) clears once the source fetches again and no failed sync of
    /// the branch's commit waits for its retry.
    fn recovered(&self) {
        if !self.fetched || self.memory.retry_at().is_some() {
            return;
        }
        self.state.update(|s| {
            if s.state == SyncState::Error {
                s.state = SyncState::Synced;
                s.last_error = None;
            }
        });
    }

    /// A failed fetch: an error in the status, and an Event when it starts or changes (a
    /// deleted branch is `BranchNotFound`, anything else `GitFetchFailed`), not one per poll.
    async fn fetch_failed(&mut self, error: &anyhow::Error) {
        self.report_error(error);
        let message = gitship_foundation::diagnostics::render(error);
        if self.fetch_failure.as_deref() == Some(message.as_str()) {
            return;
        }
        let reason = error
            .downcast_ref::<FetchFailed>()
            .map_or(FetchFailure::Other.reason(), |failed| failed.kind.reason());
        let running = self.applied.as_ref().map_or(String::new(), |applied| {
            format!("; the cluster stays at {}", short_sha(&applied.sha))
        });
        self.event(
            EventType::Warning,
            reason,
            &format!("agent: {message}{running}"),
        )
        .await;
        self.fetch_failure = Some(message);
    }

    /// A failure outside a sync's deploy (fetch, connect, drift check).
    fn report_error(&self, error: &anyhow::Error) {
        let message = gitship_foundation::diagnostics::render(error);
        self.printer.warn(&format!("agent: {message}"));
        self.state.update(|s| {
            s.last_error = Some(message);
            if matches!(s.state, SyncState::Starting | SyncState::Synced) {
                s.state = SyncState::Error;
            }
        });
    }

    async fn event(&self, kind: EventType, reason: &str, message: &str) {
        if let Some((client, environment)) = &self.cluster {
            events::record(
                client,
                environment,
                &gitship_foundation::ci::who(),
                kind,
                reason,
                message,
            )
            .await;
        }
    }

    /// Publish the status to the cluster when it changed (the leader only).
    async fn publish(&mut self) {
        let Some((client, environment)) = &self.cluster else {
            return;
        };
        let status = self.state.status();
        let Ok(text) = serde_json::to_string(&status) else {
            return;
        };
        if self.published.as_deref() == Some(text.as_str()) {
            return;
        }
        match leader::publish(client, environment, &status).await {
            Ok(()) => self.published = Some(text),
            Err(error) => tracing::warn!(%error, "could not publish the agent's status"),
        }
    }
}

/// Why the agent deploys a revision.
enum Purpose {
    /// A new commit of the branch.
    Sync,
    /// The running revision again, to put back what drifted (the healed fields and objects).
    Heal(Vec<String>),
}

/// Sleep until `at`, a webhook's trigger, or SIGTERM/SIGINT; whether interrupted.
async fn wait_until(
    interrupt: &mut tokio::sync::watch::Receiver<bool>,
    state: &AgentState,
    at: Instant,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
        _ = state.trigger.notified() => state.set_trigger(),
        _ = interrupt.wait_for(|interrupted| *interrupted) => {}
    }
    gitship_foundation::process::is_interrupted()
}

/// The agent's checkout without the files no reader of gitship's accepts (over
/// [`crate::repo::limits::MAX_FILE_BYTES`]): its memory follows the manifests, not the largest
/// file of the repository.
const SKIP_LARGE: LargeFiles = LargeFiles::SkipOver(crate::repo::limits::MAX_FILE_BYTES);

/// Whether a deploy for `purpose` runs Terraform under `terraform` (a heal never does).
fn purpose_runs_terraform(purpose: &Purpose, terraform: AgentTerraform) -> bool {
    matches!(purpose, Purpose::Sync) && terraform != AgentTerraform::Off
}

/// The agent refuses Terraform when the state is local: it would live in the agent's checkout,
/// which holds only what Git has, so a plan would see nothing deployed and an apply would create
/// everything again (and a checkout could delete the state).
fn local_state_refused(env: &str) -> anyhow::Error {
    gitship_foundation::diagnostics::UserError::new(
        format!(
            "environment `{env}`: the agent does not run Terraform with its local backend (`agent.terraform` is not `off` and `infrastructure/terraform` declares no backend): the state would live in the agent's own checkout, not where your deploys keep it, so the agent would plan against no state and an apply would create every resource again"
        ),
        "declare a remote backend in the `terraform` block (s3, gcs, azurerm, kubernetes, pg, http, or `cloud`), or set `agent.terraform: off` in the environment's config and apply Terraform from CI (`gitship deploy`)",
    )
    .into()
}

/// The status page's view of the objects (ARCHITECTURE.md, "`src/agent/`").
impl Agent {
    /// Recompute the view of the environment's objects after a drift check found `report`: a
    /// failure is logged and leaves the last view, never fails the heal.
    async fn refresh_view(&self, report: &DriftReport) {
        let Some((client, environment)) = &self.cluster else {
            return;
        };
        match crate::ops::agent_view::environment_view(client, environment, report).await {
            Ok(view) => self.state.set_view(view),
            Err(error) => tracing::warn!(
                error = %gitship_foundation::diagnostics::render(&user_error(error)),
                "agent: cannot read the objects for the status page"
            ),
        }
    }
}
