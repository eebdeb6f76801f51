//! The agent's Prometheus metrics, served as `/metrics` in the OpenMetrics text format.
//!
//! One [`Metrics`] lives in the shared [`AgentState`](crate::agent::state::AgentState); the loop
//! records into it from any task (every method takes `&self`), and the HTTP server encodes it.
//! Every family is named `gitship_agent_*`:
//!
//! - `gitship_agent_syncs_total{result}`: syncs by how they ended ([`SyncResult`]);
//! - `gitship_agent_sync_duration_seconds`: how long syncs took (histogram);
//! - `gitship_agent_heals_total`, `gitship_agent_healed_objects_total`: heals and the objects
//!   they put back;
//! - `gitship_agent_drifted_objects`, `gitship_agent_terraform_drift_resources`: drift as last
//!   seen;
//! - `gitship_agent_last_sync_timestamp_seconds`: when the last sync ended (unix seconds);
//! - `gitship_agent_revision_info{revision}`: 1 for the revision the cluster runs, no other;
//! - `gitship_agent_leader`: 1 while this replica leads, else 0;
//! - `gitship_agent_drift_checks_total`, `gitship_agent_drift_check_duration_seconds`: the heal
//!   loop's drift checks (a no-op reconcile is one fetch and one check).

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The HTTP `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The upper bounds of `gitship_agent_sync_duration_seconds`' buckets: from a no-op sync (50 ms)
/// to a slow rollout (10 minutes).
const SYNC_DURATION_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0,
];

/// How one sync ended (the `result` label of `gitship_agent_syncs_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncResult {
    Synced,
    Degraded,
    Failed,
    WaitingForImages,
}

impl SyncResult {
    /// The `result` label's value.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncResult::Synced => "synced",
            SyncResult::Degraded => "degraded",
            SyncResult::Failed => "failed",
            SyncResult::WaitingForImages => "waiting-for-images",
        }
    }
}

/// The labels of `gitship_agent_syncs_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The labels of `gitship_agent_revision_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
}

/// The agent's metrics and the registry that encodes them. `Send + Sync`: share it through an
/// `Arc` (it lives in [`AgentState`](crate::agent::state::AgentState)).
pub struct Metrics {
    registry: Registry,
    syncs: Family<ResultLabels, Counter>,
    sync_duration: Histogram,
    heals: Counter,
    healed_objects: Counter,
    drifted_objects: Gauge,
    terraform_drift_resources: Gauge,
    last_sync_timestamp: Gauge<f64, std::sync::atomic::AtomicU64>,
    revision_info: Family<RevisionLabels, Gauge>,
    /// The revision `revision_info` shows; held while it changes so that two concurrent
    /// [`Metrics::set_revision`] calls cannot leave two revisions at 1.
    revision: Mutex<Option<String>>,
    leader: Gauge,
    drift_checks: Counter,
    drift_check_duration: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Metrics")
            .field("heals", &self.heals.get())
            .field("drifted_objects", &self.drifted_objects.get())
            .field("leader", &self.leader.get())
            .field("revision", &*self.lock_revision())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// All families registered, every value zero and no revision.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gitship_agent");
        let syncs = Family::<ResultLabels, Counter>::default();
        // Every result from the start, so that `rate()` sees the first failure.
        for result in [
            SyncResult::Synced,
            SyncResult::Degraded,
            SyncResult::Failed,
            SyncResult::WaitingForImages,
        ] {
            syncs
                .get_or_create(&ResultLabels {
                    result: result.as_str(),
                })
                .inc_by(0);
        }
        let sync_duration = Histogram::new(SYNC_DURATION_BUCKETS);
        let heals = Counter::default();
        let healed_objects = Counter::default();
        let drifted_objects = Gauge::default();
        let terraform_drift_resources = Gauge::default();
        let last_sync_timestamp = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let revision_info = Family::<RevisionLabels, Gauge>::default();
        let leader = Gauge::default();
        let drift_checks = Counter::default();
        let drift_check_duration = Histogram::new(SYNC_DURATION_BUCKETS);
        registry.register(
            "drift_checks",
            "Drift checks of the heal loop",
            drift_checks.clone(),
        );
        registry.register_with_unit(
            "drift_check_duration",
            "How long drift checks took (render, discovery, one LIST per kind; not the Git fetch)",
            Unit::Seconds,
            drift_check_duration.clone(),
        );

        registry.register("syncs", "Syncs, by how they ended", syncs.clone());
        registry.register_with_unit(
            "sync_duration",
            "How long syncs took",
            Unit::Seconds,
            sync_duration.clone(),
        );
        registry.register(
            "heals",
            "Heals (drift put back) of cluster objects",
            heals.clone(),
        );
        registry.register(
            "healed_objects",
            "Cluster objects put back by heals",
            healed_objects.clone(),
        );
        registry.register(
            "drifted_objects",
            "Cluster objects that differ from Git, as last seen",
            drifted_objects.clone(),
        );
        registry.register(
            "terraform_drift_resources",
            "Terraform resources changed outside Terraform or planned and not applied",
            terraform_drift_resources.clone(),
        );
        registry.register_with_unit(
            "last_sync_timestamp",
            "When the last sync ended, in unix seconds",
            Unit::Seconds,
            last_sync_timestamp.clone(),
        );
        registry.register(
            "revision_info",
            "The Git revision the cluster runs (1 for that revision only)",
            revision_info.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica leads (reconciles), else 0",
            leader.clone(),
        );

        Metrics {
            registry,
            syncs,
            sync_duration,
            heals,
            healed_objects,
            drifted_objects,
            terraform_drift_resources,
            last_sync_timestamp,
            revision_info,
            revision: Mutex::new(None),
            leader,
            drift_checks,
            drift_check_duration,
        }
    }

    /// A drift check took `duration`.
    pub fn drift_checked(&self, duration: Duration) {
        self.drift_checks.inc();
        self.drift_check_duration.observe(duration.as_secs_f64());
    }

    /// A sync ended with `result` after `duration`.
    pub fn sync_finished(&self, result: SyncResult, duration: Duration) {
        self.syncs
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
        self.sync_duration.observe(duration.as_secs_f64());
    }

    /// A heal put back `objects` objects.
    pub fn healed(&self, objects: u64) {
        self.heals.inc();
        self.healed_objects.inc_by(objects);
    }

    /// `objects` cluster objects differ from Git.
    pub fn set_drifted(&self, objects: u64) {
        self.drifted_objects.set(saturating_i64(objects));
    }

    /// `resources` Terraform resources drifted (or are planned and not applied).
    pub fn set_terraform_drift(&self, resources: u64) {
        self.terraform_drift_resources
            .set(saturating_i64(resources));
    }

    /// The last sync ended at `time`.
    pub fn set_last_sync(&self, time: DateTime<Utc>) {
        // Milliseconds are exact in an f64 for any plausible date.
        self.last_sync_timestamp
            .set(time.timestamp_millis() as f64 / 1000.0);
    }

    /// The cluster runs `sha`: `revision_info{revision="<sha>"}` is 1 and the previous revision's
    /// series is removed.
    pub fn set_revision(&self, sha: &str) {
        let mut current = self.lock_revision();
        if let Some(previous) = current.as_deref()
            && previous != sha
        {
            self.revision_info.remove(&RevisionLabels {
                revision: previous.to_string(),
            });
        }
        self.revision_info
            .get_or_create(&RevisionLabels {
                revision: sha.to_string(),
            })
            .set(1);
        *current = Some(sha.to_string());
    }

    /// This replica leads (`true`) or follows.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Every family in the OpenMetrics text format (ends with `# EOF`); serve it as
    /// [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            // Writing to a String cannot fail; only an invalid metric could, and ours are fixed.
            tracing::error!("cannot encode the agent's metrics: {error}");
        }
        text
    }

    fn lock_revision(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.revision
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `value` as a gauge value (gauges are `i64`); counts beyond `i64::MAX` do not happen, but
/// would show as `i64::MAX` rather than wrap.
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `series ` (exact series name and labels).
    fn sample(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_string)
    }

    #[test]
    fn metrics_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Metrics>();
    }

    #[test]
    fn encode_shows_every_family_after_updates() {
        let metrics = Metrics::new();
        metrics.sync_finished(SyncResult::Synced, Duration::from_millis(1500));
        metrics.sync_finished(SyncResult::Failed, Duration::from_secs(700));
        metrics.healed(3);
        metrics.healed(2);
        metrics.set_drifted(4);
        metrics.set_terraform_drift(2);
        let time = DateTime::from_timestamp(1_700_000_000, 500_000_000).expect("a valid time");
        metrics.set_last_sync(time);
        metrics.set_revision("0123abcd");
        metrics.set_leader(true);

        let text = metrics.encode();
        assert_eq!(
            sample(&text, r#"gitship_agent_syncs_total{result="synced"}"#).as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"gitship_agent_syncs_total{result="failed"}"#).as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"gitship_agent_syncs_total{result="degraded"}"#).as_deref(),
            Some("0"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"gitship_agent_syncs_total{result="waiting-for-images"}"#
            )
            .as_deref(),
            Some("0"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE gitship_agent_sync_duration_seconds histogram"),
            "{text}"
        );
        assert_eq!(
            sample(&text, "gitship_agent_sync_duration_seconds_count").as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"gitship_agent_sync_duration_seconds_bucket{le="2.5"}"#
            )
            .as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"gitship_agent_sync_duration_seconds_bucket{le="600.0"}"#
            )
            .as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"gitship_agent_sync_duration_seconds_bucket{le="+Inf"}"#
            )
            .as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            sample(&text, "gitship_agent_heals_total").as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            sample(&text, "gitship_agent_healed_objects_total").as_deref(),
            Some("5"),
            "{text}"
        );
        assert_eq!(
            sample(&text, "gitship_agent_drifted_objects").as_deref(),
            Some("4"),
            "{text}"
        );
        assert_eq!(
            sample(&text, "gitship_agent_terraform_drift_resources").as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            sample(&text, "gitship_agent_last_sync_timestamp_seconds").as_deref(),
            Some("1700000000.5"),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"gitship_agent_revision_info{revision="0123abcd"}"#).as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            sample(&text, "gitship_agent_leader").as_deref(),
            Some("1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn revision_info_shows_only_the_current_revision() {
        let metrics = Metrics::new();
        assert!(!metrics.encode().contains("gitship_agent_revision_info{"));
        metrics.set_revision("aaaa1111");
        metrics.set_revision("bbbb2222");
        metrics.set_revision("bbbb2222");
        let text = metrics.encode();
        let series: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("gitship_agent_revision_info{"))
            .collect();
        assert_eq!(
            series,
            [r#"gitship_agent_revision_info{revision="bbbb2222"} 1"#],
            "{text}"
        );
    }

    #[test]
    fn leader_goes_back_to_zero() {
        let metrics = Metrics::new();
        metrics.set_leader(true);
        metrics.set_leader(false);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "gitship_agent_leader").as_deref(),
            Some("0"),
            "{text}"
        );
    }
}
