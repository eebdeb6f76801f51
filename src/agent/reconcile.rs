//! One agent: its loop, one sync and one heal.
//!
//! - **Sync** (every `interval`, or at once on a push webhook): fetch; when the branch moved,
//!   check the new commit out in the agent's clone and deploy it through the one pipeline
//!   ([`crate::ops::deploy::deploy`]), without building (unless `agent.build`) and with
//!   Terraform as `agent.terraform` says. A failed commit leaves the cluster at the last good
//!   revision (the pipeline's static checks and preflight run before anything changes), and is
//!   tried again after a back-off of 5 s doubling to 5 min; a new commit resets the back-off.
//!   Missing images make the agent wait ("waiting for images") and try again.
//! - **Heal** (every `heal_interval`): a drift check of the revision the cluster runs
//!   ([`crate::ops::drift::drift_with`], with the environment's `drift.ignore` rules); drifted
//!   fields and deleted objects are put back by deploying that revision again, recorded as a
//!   `heal` in the deploy history and as an Event. A field another manager changes back after
//!   every heal (an HPA's replicas, a person running `kubectl scale` again) is flapping: reported
//!   once with a hint (and an Event), shown as drifted and flapping, and healed again only after
//!   a back-off that doubles with each return (from the heal interval up to 1 hour), never
//!   given up for good. It stops flapping when Git changes the field, or after a quiet window
//!   ([`FLAP_QUIET_HEALS`] heal intervals) in which it did not drift.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use tokio::time::Instant;

use crate::agent::AgentOptions;
use crate::agent::leader::{self, Contention, Leadership};
use crate::agent::metrics::SyncResult;
use crate::agent::notify::{CommitState, Notifier, failure_description};
use crate::agent::state::{AgentState, Heal, LeaderView, Revision, SyncState};
use crate::diagnostics::user_error;
use crate::exit::Outcome;
use crate::git::clone::{FetchFailed, FetchFailure, GitSource, LargeFiles};
use crate::git::short_sha;
use crate::kube::KubeError;
use crate::kube::events::{self, EventType};
use crate::kube::inventory::{DeployOutcome, RecordSource};
use crate::model::Environment;
use crate::ops::deploy::{DeployPolicy, ImagePolicy, ImagesMissing, TerraformPolicy};
use crate::ops::session::{SessionTarget, Workspace};
use crate::ops::{DeploySource, Session};
use crate::output::Printer;
use crate::plan::{DriftKind, DriftReport};
use crate::repo::config::AgentTerraform;

/// The first back-off after a failed sync.
const BACKOFF_MIN: Duration = Duration::from_secs(5);
/// The longest back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A field healed this many times in a row and changed back each time is flapping.
const FLAP_AFTER: u32 = 3;
/// The longest wait between two heals of a flapping field.
const FLAP_BACKOFF_MAX: Duration = Duration::from_secs(3600);
/// A flapping field that has not drifted for this many heal intervals is not flapping any more.
const FLAP_QUIET_HEALS: u32 = 10;

/// A commit that failed, and when to try it again.
#[derive(Debug, Clone)]
struct Retry {
    sha: String,
    attempts: u32,
    at: Instant,
}

/// The agent of one environment.
pub struct Agent {
    options: AgentOptions,
    source: GitSource,
    state: Arc<AgentState>,
    identity: String,
    printer: Printer,
    /// The revision the cluster runs (the last good sync).
    applied: Option<Revision>,
    retry: Option<Retry>,
    flaps: FlapTracker,
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
            retry: None,
            fetched: false,
            fetch_failure: None,
            suspension: false,
            connection: None,
            flaps: FlapTracker::default(),
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
        let mut interrupt = crate::process::interrupt_receiver();
        let mut leadership: Option<Leadership> = None;
        let mut next_fetch = Instant::now();
        let mut next_heal = Instant::now() + self.options.heal_interval;
        loop {
            self.state.tick();
            if crate::process::is_interrupted() {
                break;
            }
            if self.cluster.is_none() {
                if let Err(error) = self.connect().await {
                    self.report_error(&error);
                    next_fetch = Instant::now() + BACKOFF_MIN.max(self.options.interval / 4);
                    if wait_until(&mut interrupt, &self.state, next_fetch).await {
                        break;
                    }
                    continue;
                }
                next_fetch = Instant::now();
            }
            let Some((client, environment)) = self.cluster.clone() else {
                continue;
            };
            let election = leadership.get_or_insert_with(|| {
                Leadership::new(&environment, &self.identity, self.options.lease_duration)
            });
            if !election.is_leader() {
                if !self.lead(election, &client).await {
                    continue;
                }
                next_fetch = Instant::now();
            }
            let now = Instant::now();
            if self.sync_requested().await {
                // A requested sync also puts drift back, as `deploy` would.
                next_fetch = now;
                next_heal = now;
            }
            if now >= next_fetch {
                self.sync().await;
                next_fetch = Instant::now() + self.options.interval;
            }
            if let Some(retry) = &self.retry {
                next_fetch = next_fetch.min(retry.at);
            }
            if now >= next_heal {
                self.heal().await;
                next_heal = Instant::now() + self.options.heal_interval;
            }
            self.publish().await;
            // Wake for the next fetch or heal, a webhook, SIGTERM, or to look at the Lease.
            let wake = next_fetch
                .min(next_heal)
                .min(Instant::now() + self.options.lease_duration / 3);
            if wait_until(&mut interrupt, &self.state, wake).await {
                break;
            }
            if self.state.take_trigger() {
                next_fetch = Instant::now();
            }
        }
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
        Ok(Outcome::Success)
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
                tokio::time::sleep(BACKOFF_MIN).await;
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
        if let Some(retry) = &mut self.retry {
            retry.at = Instant::now();
        }
        self.state
            .update(|s| s.sync_request_handled = Some(requested));
        true
    }

    /// `--once`: one sync when the branch moved, else one heal; errors are deploy's.
    async fn once(&mut self) -> Result<Outcome> {
        self.connect().await?;
        let head = self.fetch()?;
        self.applied = self.applied_from_inventory().await;
        let pinned = self.pinned(&head).await?;
        // Every read of its own is done. A sandbox's simulated cluster saves its state when its
        // connection closes: close it now, unchanged, before the deploy's own connection loads,
        // changes and saves that state (else the stale copy would be saved over it at exit).
        if self.options.sandbox {
            self.connection = None;
            self.cluster = None;
        }
        if self.suspension {
            self.printer.status(&format!(
                "agent: `{}` is suspended: nothing to do",
                self.options.env
            ));
            return Ok(Outcome::Success);
        }
        if pinned || self.applied.as_ref().is_some_and(|a| a.sha == head.sha) {
            self.printer.status(&format!(
                "agent: `{}` runs {} already; checking for drift",
                self.options.env,
                short_sha(&head.sha)
            ));
            let healed = self.heal_once().await?;
            if let Some(error) = healed {
                return Err(error);
            }
            return Ok(Outcome::Success);
        }
        self.deploy(&head, Purpose::Sync).await?;
        self.printer.status(&format!(
            "agent: synced {} ({})",
            short_sha(&head.sha),
            head.subject
        ));
        Ok(Outcome::Success)
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
        let inventory = crate::kube::inventory::load(
            client,
            &environment.name,
            &environment.namespace,
            &crate::kube::retry::RetryPolicy::default(),
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
        Session::open(
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

    /// One sync: fetch, and deploy the branch's newest commit when it moved.
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
        match self.pinned(&head).await {
            Ok(false) => {}
            Ok(true) => return,
            Err(error) => {
                // Neither sync nor heal without knowing the pin: it may forbid either.
                self.report_error(&error);
                return;
            }
        }
        let runs_head = self.applied.as_ref().is_some_and(|a| a.sha == head.sha);
        match &self.retry {
            Some(retry) if retry.sha != head.sha => self.retry = None,
            Some(retry) if Instant::now() < retry.at => return,
            Some(_) => {}
            None if runs_head => {
                self.state.update(|s| {
                    if matches!(s.state, SyncState::Starting | SyncState::Progressing) {
                        s.state = SyncState::Synced;
                    }
                });
                return;
            }
            None => {}
        }
        self.printer.status(&format!(
            "agent: syncing {} ({}) by {}",
            short_sha(&head.sha),
            head.subject,
            head.author
        ));
        self.state.update(|s| s.state = SyncState::Progressing);
        self.notifier
            .send(&head.sha, CommitState::Running, "deploying");
        let result = self.deploy(&head, Purpose::Sync).await;
        let elapsed = started.elapsed();
        match result {
            Ok(deployed) => {
                self.synced(&head, deployed, elapsed);
            }
            Err(error) => self.sync_failed(&head, error, elapsed).await,
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
        self.retry = None;
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
        let retry = crate::kube::retry::RetryPolicy::default();
        let stored =
            crate::kube::inventory::load(client, &environment.name, &environment.namespace, &retry)
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

    async fn sync_failed(&mut self, head: &Revision, error: anyhow::Error, elapsed: Duration) {
        if crate::process::is_interrupted() {
            return;
        }
        let attempts = match &self.retry {
            Some(retry) if retry.sha == head.sha => retry.attempts.saturating_add(1),
            _ => 1,
        };
        let mut backoff = backoff(attempts);
        let message = crate::diagnostics::render(&error);
        if let Some(missing) = error.downcast_ref::<ImagesMissing>() {
            // Waiting for CI is not a failure: look again soon, at most every interval.
            backoff = backoff.min(self.options.interval);
            self.printer.status(&format!(
                "agent: {} waits for images: {} (next look in {}s)",
                short_sha(&head.sha),
                missing.missing.join(", "),
                backoff.as_secs()
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
        } else {
            // Applied, not healthy; or failed after its first write (a later wave, a webhook
            // that ignores dry runs): the cluster runs (part of) it. Heals then follow the new
            // commit, never back toward the older revision.
            let degraded = matches!(
                error.downcast_ref::<KubeError>(),
                Some(KubeError::Unhealthy { .. })
            ) || self.wrote(head).await;
            if degraded {
                self.applied = Some(head.clone());
            }
            self.printer.warn(&format!(
                "agent: sync of {} failed (next attempt in {}s); the cluster stays at {}:\n{message}",
                short_sha(&head.sha),
                backoff.as_secs(),
                self.applied
                    .as_ref()
                    .map_or("its previous state".to_string(), |a| short_sha(&a.sha).to_string())
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
            self.state.metrics.sync_finished(
                if degraded {
                    SyncResult::Degraded
                } else {
                    SyncResult::Failed
                },
                elapsed,
            );
            self.event(
                EventType::Warning,
                "SyncFailed",
                &format!("agent: {} failed: {message}", short_sha(&head.sha)),
            )
            .await;
        }
        self.retry = Some(Retry {
            sha: head.sha.clone(),
            attempts,
            at: Instant::now() + backoff,
        });
    }

    /// Whether the environment is pinned or suspended: then the agent does not sync (and heals
    /// to the pinned revision, or not at all when suspended). An unreadable pin is an error:
    /// the caller decides (the loop reports it and waits, `--once` fails with it).
    async fn pinned(&mut self, head: &Revision) -> Result<bool> {
        let Some((client, environment)) = &self.cluster else {
            return Ok(false);
        };
        let (pin, suspension) = crate::kube::pin::load_controls(
            client,
            environment,
            &crate::kube::retry::RetryPolicy::default(),
        )
        .await
        .map_err(user_error)?;
        if self.suspended(suspension) {
            return Ok(true);
        }
        let Some(pin) = pin else {
            if self.state.status().pinned.is_some() {
                self.printer.status(&format!(
                    "agent: `{}` was resumed: following `{}` again",
                    self.options.env, self.source.branch
                ));
                self.state.update(|s| {
                    s.pinned = None;
                    s.state = SyncState::Progressing;
                });
            }
            return Ok(false);
        };
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
        self.retry = None;
        self.state.update(|s| {
            s.state = SyncState::Pinned;
            s.pinned = Some(revision.clone());
            s.revision = Some(revision);
        });
        Ok(true)
    }

    /// Note the suspension (`gitship suspend`); whether the environment is suspended. A
    /// suspended environment is neither synced nor healed; `gitship resume` ends it.
    fn suspended(&mut self, suspension: Option<crate::kube::pin::Suspension>) -> bool {
        let was = self.state.status().suspended.is_some();
        let Some(suspension) = suspension else {
            if was {
                self.printer.status(&format!(
                    "agent: `{}` was resumed: syncing and healing again",
                    self.options.env
                ));
                self.state.update(|s| {
                    s.suspended = None;
                    s.state = SyncState::Progressing;
                });
            }
            self.suspension = false;
            return false;
        };
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
        if !was {
            self.printer.status(&format!(
                "agent: `{}` is suspended ({text}): no sync and no heal until `gitship resume {}`",
                self.options.env, self.options.env
            ));
        }
        self.retry = None;
        self.suspension = true;
        self.state.update(|s| {
            s.state = SyncState::Suspended;
            s.suspended = Some(text);
        });
        true
    }

    /// One heal (the loop's): errors go to the status.
    async fn heal(&mut self) {
        if self.suspension {
            return;
        }
        match self.heal_once().await {
            Ok(None) => self.recovered(),
            Ok(Some(error)) | Err(error) => {
                if !crate::process::is_interrupted() {
                    self.state.metrics.heal_failed();
                    self.report_error(&error);
                }
            }
        }
    }

    /// Look for drift in the revision the cluster runs and put it back. `Ok(Some(error))`: the
    /// heal itself failed; `Err`: the drift check did.
    async fn heal_once(&mut self) -> Result<Option<anyhow::Error>> {
        let Some(applied) = self.applied.clone() else {
            return Ok(None);
        };
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
        let terraform = terraform_drift_lines(&report);
        self.state
            .metrics
            .set_terraform_drift(terraform.len() as u64);
        let drift = Drift::of(&report, &applied.sha);
        let now = Instant::now();
        let healing = self.sort_flapping(&drift, now).await;
        if !terraform.is_empty() || healing.is_empty() {
            let pending_plan: Vec<String> = self
                .state
                .status()
                .terraform_drift
                .into_iter()
                .filter(|line| line.ends_with("(planned, not applied)"))
                .collect();
            self.state.update(|s| {
                s.terraform_drift = pending_plan.into_iter().chain(terraform).collect();
            });
        }
        if healing.is_empty() {
            self.flaps.healed(BTreeSet::new());
            return Ok(None);
        }
        if !self.options.self_heal {
            let lines = healing.clone();
            self.state.update(|s| s.drifted.extend(lines));
            self.printer.warn(&format!(
                "agent: drift in `{}` (not healed: `agent.self_heal: false`): {}",
                self.options.env,
                healing.join("; ")
            ));
            return Ok(None);
        }
        self.printer.status(&format!(
            "agent: healing `{}` back to {}: {}",
            self.options.env,
            short_sha(&applied.sha),
            healing.join("; ")
        ));
        if let Err(error) = self.deploy(&applied, Purpose::Heal(healing.clone())).await {
            return Ok(Some(error));
        }
        self.flaps.healed(drift.healed_keys(&self.flaps, now));
        let count = healing.len() as u64;
        self.state.metrics.healed(count);
        self.state
            .metrics
            .set_drifted(drift.objects_waiting(&self.flaps, now));
        self.state.update(|s| {
            s.last_heal = Some(Heal {
                time: Utc::now(),
                healed: healing,
            });
        });
        Ok(None)
    }

    /// Record a drift check with the flap tracker: say which fields began or stopped flapping,
    /// show the flapping and waiting ones in the status; the lines to heal now.
    async fn sort_flapping(&mut self, drift: &Drift, now: Instant) -> Vec<String> {
        let observed = self.flaps.observe(drift, now, self.options.heal_interval);
        for key in observed.cleared {
            self.printer
                .status(&format!("agent: {key} is no longer flapping"));
        }
        for key in observed.flapping {
            let hint = format!(
                "{key} is changed back after every heal{}: it is healed again only after a back-off (up to 1 hour), until Git changes it. Let one owner have it: remove the field from Git, or add a `drift.ignore` rule for it",
                drift
                    .managers
                    .get(&key)
                    .map_or(String::new(), |m| format!(" by `{m}`"))
            );
            self.printer.warn(&format!("agent: {hint}"));
            self.event(EventType::Warning, "FlappingField", &hint).await;
        }
        let (healing, waiting) = drift.split(&self.flaps, now);
        let flapping = self.flaps.describe(drift, now);
        self.state.update(|s| {
            s.flapping = flapping;
            s.drifted = waiting.iter().map(|(_, line)| line.clone()).collect();
        });
        self.state
            .metrics
            .set_drifted(drift.objects.values().collect::<BTreeSet<_>>().len() as u64);
        healing.into_iter().map(|(_, line)| line).collect()
    }

    /// After a heal that succeeded: an `error` state left by a failure outside a sync (a lost
    /// remote, a cluster outage) clears once the source fetches again and no failed sync of
    /// the branch's commit waits for its retry.
    fn recovered(&self) {
        if !self.fetched || self.retry.is_some() {
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
        let message = crate::diagnostics::render(error);
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
        let message = crate::diagnostics::render(error);
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
                &crate::ci::who(),
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

/// One line per Terraform resource changed outside Terraform, as the status shows them.
fn terraform_drift_lines(report: &DriftReport) -> Vec<String> {
    report
        .terraform
        .iter()
        .map(|change| {
            format!(
                "{} {} (changed outside Terraform)",
                serde_json::to_value(change.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                change.address
            )
        })
        .collect()
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
        _ = tokio::time::sleep_until(at) => {}
        _ = state.trigger.notified() => state.set_trigger(),
        _ = interrupt.wait_for(|interrupted| *interrupted) => {}
    }
    crate::process::is_interrupted()
}

/// `5s * 2^(attempts-1)`, at most 5 min.
fn backoff(attempts: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX);
    BACKOFF_MIN.saturating_mul(factor).min(BACKOFF_MAX)
}

/// What one drift check found, keyed per field (`Deployment blog/web spec.replicas`) or per
/// deleted object.
#[derive(Debug, Default)]
struct Drift {
    /// Key -> `Deployment blog/web spec.replicas: 10 -> 3 (changed by kubectl)`.
    descriptions: BTreeMap<String, String>,
    /// Key -> the manager of the live value.
    managers: BTreeMap<String, String>,
    /// Key -> its object.
    objects: BTreeMap<String, String>,
    /// Key -> what Git wants there (a sensitive value: the revision), to see Git change it.
    desired: BTreeMap<String, String>,
}

impl Drift {
    /// The drift of `report`, a drift check of revision `sha`.
    fn of(report: &DriftReport, sha: &str) -> Drift {
        let mut drift = Drift::default();
        for object in &report.kubernetes {
            let name = object.object.to_string();
            match object.kind {
                DriftKind::Deleted => {
                    let key = format!("{name} (deleted)");
                    drift
                        .descriptions
                        .insert(key.clone(), format!("{name} (deleted, recreated)"));
                    drift.desired.insert(key.clone(), String::new());
                    drift.objects.insert(key, name.clone());
                }
                DriftKind::Modified => {
                    for field in &object.fields {
                        let key = format!("{name} {}", field.path);
                        // The one line `drift` prints for the field (values, manager).
                        let line = field.line();
                        drift
                            .descriptions
                            .insert(key.clone(), format!("{name} {line}"));
                        if let Some(manager) = &field.manager {
                            drift.managers.insert(key.clone(), manager.clone());
                        }
                        let desired = if field.sensitive {
                            sha.to_string()
                        } else {
                            field.after.clone().unwrap_or_default()
                        };
                        drift.desired.insert(key.clone(), desired);
                        drift.objects.insert(key, name.clone());
                    }
                }
            }
        }
        drift
    }

    fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.descriptions.keys().cloned()
    }

    /// (key, line) of what to heal now, and of what waits: a flapping field in its back-off.
    #[allow(clippy::type_complexity)]
    fn split(
        &self,
        flaps: &FlapTracker,
        now: Instant,
    ) -> (Vec<(String, String)>, Vec<(String, String)>) {
        self.descriptions
            .iter()
            .map(|(key, line)| (key.clone(), line.clone()))
            .partition(|(key, _)| flaps.may_heal(key, now))
    }

    /// The keys a heal now puts back.
    fn healed_keys(&self, flaps: &FlapTracker, now: Instant) -> BTreeSet<String> {
        self.keys().filter(|key| flaps.may_heal(key, now)).collect()
    }

    /// How many objects stay drifted after a heal: those of flapping fields in their back-off.
    fn objects_waiting(&self, flaps: &FlapTracker, now: Instant) -> u64 {
        self.objects
            .iter()
            .filter(|(key, _)| !flaps.may_heal(key, now))
            .map(|(_, object)| object)
            .collect::<BTreeSet<_>>()
            .len() as u64
    }
}

/// A field that came back after [`FLAP_AFTER`] heals in a row.
#[derive(Debug, Clone)]
struct Flap {
    /// What Git wanted when it began to flap: a change in Git ends the flapping.
    desired: String,
    /// How often it came back after a heal since it began to flap.
    returns: u32,
    /// It is not healed before this.
    next_heal: Instant,
    /// When a drift check last found it drifted.
    last_seen: Instant,
}

/// Which fields came back after being healed, and which flap.
#[derive(Debug, Default)]
struct FlapTracker {
    /// Key -> heals in a row after which it drifted again.
    returns: BTreeMap<String, u32>,
    /// The keys the last heal put back.
    healed_last: BTreeSet<String>,
    flapping: BTreeMap<String, Flap>,
}

/// What one drift check changed in the flapping fields.
#[derive(Debug, Default, PartialEq, Eq)]
struct Observed {
    /// Keys that began to flap.
    flapping: Vec<String>,
    /// Keys that stopped: Git changed them, or they stayed put for the quiet window.
    cleared: Vec<String>,
}

impl FlapTracker {
    /// Record a drift check at `now`, with heals every `interval`.
    fn observe(&mut self, drift: &Drift, now: Instant, interval: Duration) -> Observed {
        let mut observed = Observed::default();
        let quiet = interval.saturating_mul(FLAP_QUIET_HEALS);
        let flapping = std::mem::take(&mut self.flapping);
        for (key, mut flap) in flapping {
            let git_changed = drift
                .desired
                .get(&key)
                .is_some_and(|desired| *desired != flap.desired);
            let drifted = drift.descriptions.contains_key(&key);
            if git_changed || (!drifted && now.saturating_duration_since(flap.last_seen) >= quiet) {
                observed.cleared.push(key);
                continue;
            }
            if drifted {
                if self.healed_last.contains(&key) {
                    flap.returns = flap.returns.saturating_add(1);
                    flap.next_heal = now + flap_backoff(interval, flap.returns);
                }
                flap.last_seen = now;
            }
            self.flapping.insert(key, flap);
        }
        let mut returns = BTreeMap::new();
        for key in drift.keys() {
            if self.flapping.contains_key(&key) || observed.cleared.contains(&key) {
                continue;
            }
            let count = if self.healed_last.contains(&key) {
                self.returns
                    .get(&key)
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(1)
            } else {
                0
            };
            if count.saturating_add(1) >= FLAP_AFTER {
                self.flapping.insert(
                    key.clone(),
                    Flap {
                        desired: drift.desired.get(&key).cloned().unwrap_or_default(),
                        returns: 1,
                        next_heal: now + flap_backoff(interval, 1),
                        last_seen: now,
                    },
                );
                observed.flapping.push(key);
                continue;
            }
            returns.insert(key, count);
        }
        self.returns = returns;
        observed
    }

    /// Record what a heal put back.
    fn healed(&mut self, keys: BTreeSet<String>) {
        self.healed_last = keys;
    }

    /// Whether a heal at `now` may put `key` back: it does not flap, or its back-off is over.
    fn may_heal(&self, key: &str, now: Instant) -> bool {
        self.flapping
            .get(key)
            .is_none_or(|flap| now >= flap.next_heal)
    }

    /// One line per flapping field that drifts now: `<drift line> (flapping: ...)`.
    fn describe(&self, drift: &Drift, now: Instant) -> Vec<String> {
        self.flapping
            .iter()
            .map(|(key, flap)| {
                let line = drift.descriptions.get(key).unwrap_or(key);
                let wait = flap.next_heal.saturating_duration_since(now);
                let when = if wait.is_zero() {
                    "healed now".to_string()
                } else {
                    format!("next heal in {}", crate::output::duration_text(wait))
                };
                format!(
                    "{line} (flapping: changed back {} time{} after heals; {when})",
                    flap.returns.saturating_add(FLAP_AFTER - 1),
                    if flap.returns.saturating_add(FLAP_AFTER - 1) == 1 {
                        ""
                    } else {
                        "s"
                    }
                )
            })
            .collect()
    }
}

/// The wait before healing a field that came back `returns` times since it began to flap:
/// `interval * 2^returns`, at most [`FLAP_BACKOFF_MAX`] (and never less than `interval`).
fn flap_backoff(interval: Duration, returns: u32) -> Duration {
    let factor = 1u32.checked_shl(returns.min(31)).unwrap_or(u32::MAX);
    interval
        .saturating_mul(factor)
        .min(FLAP_BACKOFF_MAX.max(interval))
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
    crate::diagnostics::UserError::new(
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
                error = %crate::diagnostics::render(&user_error(error)),
                "agent: cannot read the objects for the status page"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_5s_to_5min() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(7), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
        assert_eq!(backoff(0), Duration::from_secs(5));
    }

    fn drift(keys: &[&str]) -> Drift {
        drift_to(keys, "3")
    }

    /// Drift of `keys`, Git wanting `desired` in each.
    fn drift_to(keys: &[&str], desired: &str) -> Drift {
        let mut drift = Drift::default();
        for key in keys {
            drift.descriptions.insert(key.to_string(), key.to_string());
            drift.objects.insert(key.to_string(), key.to_string());
            drift.desired.insert(key.to_string(), desired.to_string());
        }
        drift
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// One drift check of `drift` at `now`, then the heal it leads to; whether the field was
    /// healed.
    fn check_and_heal(flaps: &mut FlapTracker, drift: &Drift, now: Instant) -> (Observed, bool) {
        let observed = flaps.observe(drift, now, SECOND);
        let healed = drift.healed_keys(flaps, now);
        let any = !healed.is_empty();
        flaps.healed(healed);
        (observed, any)
    }

    #[test]
    fn a_field_that_comes_back_after_every_heal_flaps_and_is_healed_after_a_growing_back_off() {
        let mut flaps = FlapTracker::default();
        let replicas = "Deployment blog/web spec.replicas";
        let scaled = drift(&[replicas]);
        let start = Instant::now();
        // Drifts, is healed, comes back, is healed, comes back: flapping, reported once.
        assert!(check_and_heal(&mut flaps, &scaled, start).1);
        assert!(check_and_heal(&mut flaps, &scaled, start + SECOND).1);
        let (observed, healed) = check_and_heal(&mut flaps, &scaled, start + 2 * SECOND);
        assert_eq!(observed.flapping, vec![replicas.to_string()]);
        assert!(!healed, "not healed at once once flapping");
        assert_eq!(scaled.objects_waiting(&flaps, start + 2 * SECOND), 1);
        let lines = flaps.describe(&scaled, start + 2 * SECOND);
        assert_eq!(
            lines,
            vec![format!(
                "{replicas} (flapping: changed back 3 times after heals; next heal in 2s)"
            )]
        );
        // Healed again 2s after it was found back, then 4s, 8s...: never given up.
        let mut back = start + 2 * SECOND;
        for wait in [2u64, 4, 8, 16] {
            let waited = Duration::from_secs(wait);
            let (observed, healed) = check_and_heal(&mut flaps, &scaled, back + waited - SECOND);
            assert!(!healed && observed == Observed::default(), "{wait}");
            let (observed, healed) = check_and_heal(&mut flaps, &scaled, back + waited);
            assert!(healed, "healed after {wait}s");
            assert!(observed.flapping.is_empty(), "reported once only");
            // The next check finds it back again: the next wait starts.
            back += waited + SECOND;
            let (_, healed) = check_and_heal(&mut flaps, &scaled, back);
            assert!(!healed);
        }
        // The back-off stops at an hour.
        assert_eq!(flap_backoff(SECOND, 40), FLAP_BACKOFF_MAX);
        assert_eq!(
            flap_backoff(Duration::from_secs(7200), 3),
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn a_flapping_field_stops_flapping_when_git_changes_it_or_after_a_quiet_window() {
        let replicas = "Deployment blog/web spec.replicas";
        let flapping = |start: Instant| {
            let mut flaps = FlapTracker::default();
            for i in 0..3 {
                check_and_heal(&mut flaps, &drift(&[replicas]), start + i * SECOND);
            }
            assert!(!flaps.may_heal(replicas, start + 2 * SECOND));
            flaps
        };
        let start = Instant::now();
        // Git now wants 5: healed at once, not flapping any more.
        let mut flaps = flapping(start);
        let (observed, healed) =
            check_and_heal(&mut flaps, &drift_to(&[replicas], "5"), start + 3 * SECOND);
        assert_eq!(observed.cleared, vec![replicas.to_string()]);
        assert!(healed);
        assert!(flaps.describe(&drift(&[]), start).is_empty());
        // Left alone for the quiet window (10 heals): no longer flapping.
        let mut flaps = flapping(start);
        let clean = drift(&[]);
        let (observed, _) = check_and_heal(&mut flaps, &clean, start + 5 * SECOND);
        assert!(observed.cleared.is_empty(), "not yet quiet");
        let (observed, _) = check_and_heal(&mut flaps, &clean, start + 12 * SECOND);
        assert_eq!(observed.cleared, vec![replicas.to_string()]);
        let (_, healed) = check_and_heal(&mut flaps, &drift(&[replicas]), start + 13 * SECOND);
        assert!(
            healed,
            "a new drift after the quiet window is healed at once"
        );
    }

    #[test]
    fn drift_that_stays_unhealed_does_not_flap() {
        let mut flaps = FlapTracker::default();
        let key = "ConfigMap blog/site data.title";
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(
                flaps.observe(&drift(&[key]), now, SECOND),
                Observed::default()
            );
            flaps.healed(BTreeSet::new());
        }
        // Healed once, then drifted again by someone once: not flapping.
        flaps.healed([key.to_string()].into());
        assert_eq!(
            flaps.observe(&drift(&[key]), now, SECOND),
            Observed::default()
        );
        flaps.healed([key.to_string()].into());
        assert_eq!(flaps.observe(&drift(&[]), now, SECOND), Observed::default());
        assert!(flaps.may_heal(key, now));
    }
}
