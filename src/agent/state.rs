//! What the agent knows of itself, shared between its reconcile loop and its HTTP server: the
//! [`Status`] (served as `/status` and `/`), the [`Metrics`] (`/metrics`) and the trigger a push
//! webhook pulls (`POST /hooks/git`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::agent::metrics::Metrics;
pub use crate::ops::agent_status::{Heal, Revision, Status, SyncState};

/// Shared between the loop and the HTTP server.
#[derive(Debug)]
pub struct AgentState {
    status: Mutex<Status>,
    pub metrics: Metrics,
    /// Pulled by the push webhook: fetch now.
    pub trigger: Notify,
    /// The loop woke on [`AgentState::trigger`] (see [`AgentState::take_trigger`]).
    triggered: AtomicBool,
    /// The webhook's secrets (from environment variables); `None` disables that kind of hook.
    pub webhook: WebhookSecrets,
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
                &self.github.as_ref().map(|_| crate::model::REDACTED),
            )
            .field(
                "gitlab",
                &self.gitlab.as_ref().map(|_| crate::model::REDACTED),
            )
            .finish()
    }
}

impl AgentState {
    pub fn new(status: Status, webhook: WebhookSecrets) -> AgentState {
        AgentState {
            metrics: Metrics::new(&status.environment),
            status: Mutex::new(status),
            trigger: Notify::new(),
            triggered: AtomicBool::new(false),
            webhook,
        }
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

    /// The loop woke on the trigger: remember it until [`AgentState::take_trigger`].
    pub fn set_trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
    }

    /// Whether the trigger fired since the last call.
    pub fn take_trigger(&self) -> bool {
        self.triggered.swap(false, Ordering::SeqCst)
    }

    /// Ready to serve: the first fetch is done, or another replica leads.
    pub fn ready(&self) -> bool {
        let status = self.status();
        status.git_revision.is_some() || status.state == SyncState::Follower
    }
}
