//! What the agent knows of itself, shared between its reconcile loop and its HTTP server: the
//! [`Status`] (served as `/status` and `/`), the [`EnvironmentView`] of the objects (`/` and
//! `/status/objects`), the [`Metrics`] (`/metrics`), the trigger a push webhook pulls
//! (`POST /hooks/git`) and the loop's last tick (`/healthz`, [`Liveness`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::agent::metrics::Metrics;
pub use crate::ops::agent_status::{Heal, Revision, Status, SyncState};
pub use crate::ops::agent_view::EnvironmentView;

/// Shared between the loop and the HTTP server.
#[derive(Debug)]
pub struct AgentState {
    status: Mutex<Status>,
    /// The objects as the leader last checked them (`/` and `/status/objects`); never
    /// published, unlike the status.
    view: Mutex<Option<Arc<EnvironmentView>>>,
    pub metrics: Metrics,
    /// Pulled by the push webhook: fetch now.
    pub trigger: Notify,
    /// The loop woke on [`AgentState::trigger`] (see [`AgentState::take_trigger`]).
    triggered: AtomicBool,
    /// The webhook's secrets (from environment variables); `None` disables that kind of hook.
    pub webhook: WebhookSecrets,
    /// What a follower knows of the leader (from its published status); `None` while leading
    /// or before the leader is known.
    leader: Mutex<Option<LeaderView>>,
    /// When the reconcile loop last began an iteration ([`AgentState::tick`]).
    last_tick: Mutex<Option<Instant>>,
    liveness: Liveness,
}

/// A follower's view of the leader: where to forward webhooks, and its status as last published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    /// The leader's identity in the Lease.
    pub identity: String,
    /// Its HTTP address (`http://10.1.2.3:8080`), when it advertises one.
    pub address: Option<String>,
    /// Its status, as last published to the cluster.
    pub status: Status,
}

/// How many of the loop's longest waits may pass without a tick (see [`Liveness`]).
pub const STALE_INTERVALS: u32 = 3;
/// What one iteration of the loop may legitimately take beyond its wait (see [`Liveness`]).
pub const ITERATION_ALLOWANCE: Duration = Duration::from_secs(60 * 60);

/// When `/healthz` says the reconcile loop is stuck.
///
/// The loop ticks once per iteration, at its top; between iterations it waits at most a third
/// of the leader Lease's duration (`agent::reconcile`, to renew or contend for the Lease), so an
/// idle loop ticks at least that often. But an iteration is a sync and a heal, each a deploy
/// that may wait for the deploy lock (`deploy.lock_timeout`), build images (`agent.build`), run
/// Terraform (no limit of gitship's: a database may take half an hour) and wait for health
/// (`deploy.timeout`), and the environment's config, which bounds some of these, changes with
/// every commit. Ticking from inside those waits would take a hook into every stage; a threshold
/// too short would have the kubelet kill a legitimate deploy half-way, its Terraform apply
/// holding the state lock, which is far worse than a late restart. So the loop is stale after
/// [`STALE_INTERVALS`] of its longest waits plus [`ITERATION_ALLOWANCE`] (an hour): it catches a
/// loop that is dead or hung for good, not a slow one. Before the first tick (the first clone),
/// the same time counts from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// When the agent started: the first tick is expected within `stale_after` of it.
    pub started: Instant,
    /// How long without a tick the loop is stuck.
    pub stale_after: Duration,
}

impl Liveness {
    /// For a loop that waits at most `lease_duration / 3` between iterations.
    pub fn for_lease(lease_duration: Duration) -> Liveness {
        let wait = lease_duration / 3;
        Liveness {
            started: Instant::now(),
            stale_after: wait
                .saturating_mul(STALE_INTERVALS)
                .saturating_add(ITERATION_ALLOWANCE),
        }
    }

    /// Why the loop is stuck at `now`, given its last tick; `None` while it is alive.
    pub fn problem(&self, last_tick: Option<Instant>, now: Instant) -> Option<String> {
        let since = last_tick.unwrap_or(self.started);
        let quiet = now.saturating_duration_since(since);
        if quiet <= self.stale_after {
            return None;
        }
        let what = if last_tick.is_some() {
            "the reconcile loop has not ticked"
        } else {
            "the reconcile loop has not started"
        };
        Some(format!(
            "{what} for {}s (the limit is {}s)",
            quiet.as_secs(),
            self.stale_after.as_secs()
        ))
    }
}

/// Secrets the push webhook checks. Never printed, logged or served.
#[derive(Clone, Default)]
pub struct WebhookSecrets {
    /// GitHub: HMAC-SHA256 key for `X-Hub-Signature-256`.
    pub github: Option<String>,
    /// GitLab: the `X-Gitlab-Token` value.
    pub gitlab: Option<String>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WebhookSecrets")
            .field(
                "github",
                &self
                    .github
                    .as_ref()
                    .map(|_| gitship_foundation::model::REDACTED),
            )
            .field(
                "gitlab",
                &self
                    .gitlab
                    .as_ref()
                    .map(|_| gitship_foundation::model::REDACTED),
            )
            .finish()
    }
}

impl AgentState {
    pub fn new(status: Status, webhook: WebhookSecrets) -> AgentState {
        AgentState {
            metrics: Metrics::new(&status.environment),
            status: Mutex::new(status),
            view: Mutex::new(None),
            trigger: Notify::new(),
            triggered: AtomicBool::new(false),
            webhook,
            leader: Mutex::new(None),
            last_tick: Mutex::new(None),
            liveness: Liveness::for_lease(Duration::from_secs(15)),
        }
    }

    /// The same, judged stale by `liveness`.
    pub fn with_liveness(mut self, liveness: Liveness) -> AgentState {
        self.liveness = liveness;
        self
    }

    /// The reconcile loop begins an iteration.
    pub fn tick(&self) {
        *self
            .last_tick
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
    }

    /// Why the reconcile loop is stuck (`/healthz` answers 503 with it); `None` while alive.
    pub fn liveness_problem(&self) -> Option<String> {
        let last = *self
            .last_tick
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.liveness.problem(last, Instant::now())
    }

    /// A copy of the current status.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Change the status; returns whether it changed.
    pub fn update(&self, change: impl FnOnce(&mut Status)) -> bool {
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = status.clone();
        change(&mut status);
        *status != before
    }

    /// The objects as the leader last checked them; `None` before its first heal.
    pub fn view(&self) -> Option<Arc<EnvironmentView>> {
        self.view
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replace the view of the objects.
    pub fn set_view(&self, view: EnvironmentView) {
        *self
            .view
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(view));
    }

    /// The loop woke on the trigger: remember it until [`AgentState::take_trigger`].
    pub fn set_trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
    }

    /// Whether the trigger fired since the last call.
    pub fn take_trigger(&self) -> bool {
        self.triggered.swap(false, Ordering::SeqCst)
    }

    /// What this replica knows of the leader, when it follows.
    pub fn leader_view(&self) -> Option<LeaderView> {
        self.leader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Remember (or forget, with `None`) the leader this replica follows.
    pub fn set_leader_view(&self, view: Option<LeaderView>) {
        *self
            .leader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = view;
    }

    /// Ready to serve: the first fetch is done, or another replica leads.
    pub fn ready(&self) -> bool {
        let status = self.status();
        status.git_revision.is_some() || status.state == SyncState::Follower
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_is_stale_after_its_waits_and_the_longest_iteration() {
        let liveness = Liveness::for_lease(Duration::from_secs(15));
        assert_eq!(
            liveness.stale_after,
            Duration::from_secs(15) + ITERATION_ALLOWANCE
        );
        let started = liveness.started;
        let at = |seconds: u64| started + Duration::from_secs(seconds);
        let limit = liveness.stale_after.as_secs();
        // Before the first tick: alive for the same time from the start.
        assert_eq!(liveness.problem(None, at(limit)), None);
        let never = liveness.problem(None, at(limit + 1)).expect("stale");
        assert!(never.contains("has not started"), "{never}");
        // After a tick: from that tick.
        assert_eq!(liveness.problem(Some(at(100)), at(100 + limit)), None);
        let stuck = liveness
            .problem(Some(at(100)), at(101 + limit))
            .expect("stale");
        assert!(
            stuck.contains("has not ticked for") && stuck.contains(&format!("limit is {limit}s")),
            "{stuck}"
        );
        // A clock that reads earlier than the tick is not stale.
        assert_eq!(liveness.problem(Some(at(100)), at(50)), None);
    }

    #[test]
    fn a_tick_makes_a_stale_state_alive() {
        let status = Status::new("production", "https://git.example/r.git", "main", "a");
        let state = AgentState::new(status, WebhookSecrets::default()).with_liveness(Liveness {
            started: Instant::now()
                .checked_sub(Duration::from_secs(10))
                .expect("a monotonic clock past 10 s"),
            stale_after: Duration::from_secs(5),
        });
        assert!(state.liveness_problem().is_some());
        state.tick();
        assert_eq!(state.liveness_problem(), None);
    }
}
