//! The agent's Prometheus metrics (`/metrics`). STUB: being written by a helper.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How one sync ended (the `result` label of `gitship_agent_syncs_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncResult {
    Synced,
    Degraded,
    Failed,
    WaitingForImages,
}

#[derive(Debug, Default)]
pub struct Metrics {}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {}
    }
    pub fn sync_finished(&self, _result: SyncResult, _duration: Duration) {}
    pub fn healed(&self, _objects: u64) {}
    pub fn set_drifted(&self, _objects: u64) {}
    pub fn set_terraform_drift(&self, _resources: u64) {}
    pub fn set_last_sync(&self, _time: DateTime<Utc>) {}
    pub fn set_revision(&self, _sha: &str) {}
    pub fn set_leader(&self, _leader: bool) {}
    pub fn encode(&self) -> String {
        String::new()
    }
}
