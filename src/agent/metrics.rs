//! The agent's Prometheus metrics, served as `/metrics` in the format the scraper asks for.
//!
//! One [`Metrics`] lives in the shared [`AgentState`](crate::agent::state::AgentState); the loop
//! records into it from any task (every method takes `&self`), and the HTTP server encodes it
//! with the agent's [`Status`] of the moment ([`Metrics::encode`]).
//!
//! **Formats.** [`Format::negotiate`] reads the scrape's `Accept` header as Prometheus (and
//! client_golang) do: a request that prefers `application/openmetrics-text` (version `1.0.0`,
//! `0.0.1` or none) gets OpenMetrics 1.0 (`# UNIT`, `info` families, `# EOF`); anything else
//! (`text/plain;version=0.0.4`, `*/*`, no header) gets the classic text format 0.0.4, where a
//! counter's `# TYPE` line names its `_total` series, as a classic parser requires. Both come
//! from the one registry, through prometheus-client's two encoders.
//!
//! **Series.** Every series carries `environment="<env>"`. The agent's families are named
//! `gitship_agent_*`:
//!
//! - `gitship_agent_syncs_total{result}`: syncs by how they ended ([`SyncResult`]);
//! - `gitship_agent_sync_duration_seconds`: how long syncs took (histogram);
//! - `gitship_agent_heals_total`, `gitship_agent_healed_objects_total`: heals and the objects
//!   they put back;
//! - `gitship_agent_heal_failures_total`: heals (or their drift checks) that failed;
//! - `gitship_agent_git_fetch_failures_total`: fetches of the Git source that failed;
//! - `gitship_agent_drifted_objects`, `gitship_agent_terraform_drift_resources`: drift as last
//!   seen;
//! - `gitship_agent_last_sync_timestamp_seconds`: when the last sync ended (unix seconds);
//! - `gitship_agent_revision_info{revision}`: 1 for the revision the cluster runs, no other;
//! - `gitship_agent_leader`: 1 while this replica leads, else 0;
//! - `gitship_agent_drift_checks_total`, `gitship_agent_drift_check_duration_seconds`: the heal
//!   loop's drift checks (a no-op reconcile is one fetch and one check);
//! - from the [`Status`] at scrape time: `gitship_agent_state{state}` (1 for the current
//!   [`SyncState`], 0 for every other), `gitship_agent_pinned` (1 while a rollback or `gitship
//!   pin` holds the environment), `gitship_agent_out_of_sync` (1 when the revision the cluster
//!   runs is known and differs from the branch's newest known commit; 0 while either is
//!   unknown, so a starting agent or a follower is never out of sync; a pinned environment
//!   behind its branch is, by design).
//!
//! And `gitship_build_info{version, revision, arch, os}` 1: the gitship version (Cargo's),
//! the Git revision it was built from when the build said (`GITSHIP_BUILD_REVISION` in the
//! environment of `cargo build`; the label is left out otherwise), and the target's CPU
//! architecture and operating system.

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::ops::agent_status::{Status, SyncState};

/// The `Content-Type` of OpenMetrics text 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `Content-Type` of the classic Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The Git revision gitship was built from, when the build said (`GITSHIP_BUILD_REVISION`).
const BUILD_REVISION: Option<&str> = option_env!("GITSHIP_BUILD_REVISION");

/// The upper bounds of `gitship_agent_sync_duration_seconds`' buckets: from a no-op sync (50 ms)
/// to a slow rollout (10 minutes).
const SYNC_DURATION_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0,
];

/// Every [`SyncState`], in the order of [`state_position`].
const STATES: [SyncState; 9] = [
    SyncState::Starting,
    SyncState::Follower,
    SyncState::Synced,
    SyncState::Progressing,
    SyncState::Degraded,
    SyncState::Error,
    SyncState::WaitingForImages,
    SyncState::Pinned,
    SyncState::Suspended,
];

/// Where `state` is in [`STATES`]; exhaustive, so that a new state cannot be left out of
/// `gitship_agent_state` silently (the unit tests check the two agree).
const fn state_position(state: SyncState) -> usize {
    match state {
        SyncState::Starting => 0,
        SyncState::Follower => 1,
        SyncState::Synced => 2,
        SyncState::Progressing => 3,
        SyncState::Degraded => 4,
        SyncState::Error => 5,
        SyncState::WaitingForImages => 6,
        SyncState::Pinned => 7,
        SyncState::Suspended => 8,
    }
}

/// The text format of a scrape's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics text 1.0.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The format a request with these `Accept` values (all of its `Accept` headers, joined
    /// with `,`) gets: the acceptable media ranges by quality (highest first; equal qualities
    /// in the order given), the first that names a format served wins, and the classic text
    /// format when none does (`*/*`, `text/*`, a missing or unreadable header). An OpenMetrics
    /// range asking for a version other than `1.0.0` or `0.0.1` (`2.0.0`) does not match, nor
    /// does a `text/plain` one asking for other than `0.0.4` or `1.0.0`.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut ranges: Vec<MediaRange> = accept.split(',').filter_map(MediaRange::parse).collect();
        ranges.retain(|range| range.quality > 0.0);
        // Stable: equal qualities keep the client's order.
        ranges.sort_by(|a, b| b.quality.total_cmp(&a.quality));
        ranges
            .iter()
            .find_map(MediaRange::format)
            .unwrap_or(Format::Text)
    }

    /// The HTTP `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// One media range of an `Accept` header: `type/subtype;param=value;q=0.5`.
#[derive(Debug, Clone, PartialEq)]
struct MediaRange {
    /// `type/subtype`, lowercase.
    media_type: String,
    /// The `version` parameter, when given.
    version: Option<String>,
    /// `q`, 1 when absent.
    quality: f64,
}

impl MediaRange {
    /// `None` for a range that is not `type/subtype`, or whose `q` is no number in 0..=1.
    fn parse(text: &str) -> Option<MediaRange> {
        let mut parts = text.split(';');
        let media_type = parts.next()?.trim().to_ascii_lowercase();
        let (kind, subtype) = media_type.split_once('/')?;
        if kind.is_empty() || subtype.is_empty() {
            return None;
        }
        let mut range = MediaRange {
            media_type: media_type.clone(),
            version: None,
            quality: 1.0,
        };
        for parameter in parts {
            let Some((name, value)) = parameter.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "q" => {
                    range.quality = value
                        .parse::<f64>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))?;
                }
                "version" => range.version = Some(value.to_string()),
                _ => {}
            }
        }
        Some(range)
    }

    /// The format this range names, if it names one served.
    fn format(&self) -> Option<Format> {
        let version = self.version.as_deref();
        match self.media_type.as_str() {
            "application/openmetrics-text"
                if matches!(version, None | Some("1.0.0") | Some("0.0.1")) =>
            {
                Some(Format::OpenMetrics)
            }
            "text/plain" if matches!(version, None | Some("0.0.4") | Some("1.0.0")) => {
                Some(Format::Text)
            }
            _ => None,
        }
    }
}

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

/// The labels of `gitship_agent_state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// The labels of `gitship_build_info`.
type BuildLabels = Vec<(&'static str, &'static str)>;

/// The agent's metrics and the registry that encodes them. `Send + Sync`: share it through an
/// `Arc` (it lives in [`AgentState`](crate::agent::state::AgentState)).
pub struct Metrics {
    registry: Registry,
    syncs: Family<ResultLabels, Counter>,
    sync_duration: Histogram,
    heals: Counter,
    healed_objects: Counter,
    heal_failures: Counter,
    fetch_failures: Counter,
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
    state: Family<StateLabels, Gauge>,
    pinned: Gauge,
    out_of_sync: Gauge,
    /// Held by a scrape from setting the gauges of its [`Status`] to the end of its encoding, so
    /// that two scrapes of different statuses never show a mix of both.
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Metrics")
            .field("heals", &self.heals.get())
            .field("drifted_objects", &self.drifted_objects.get())
            .field("leader", &self.leader.get())
            .field("revision", &*lock(&self.revision))
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// All families registered for `environment` (the `environment` label of every series),
    /// every value zero and no revision.
    pub fn new(environment: &str) -> Metrics {
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
        let state = Family::<StateLabels, Gauge>::default();
        for each in STATES {
            state
                .get_or_create(&StateLabels {
                    state: each.as_str(),
                })
                .set(0);
        }
        let mut metrics = Metrics {
            registry: Registry::with_labels(std::iter::once((
                Cow::Borrowed("environment"),
                Cow::Owned(environment.to_string()),
            ))),
            syncs,
            sync_duration: Histogram::new(SYNC_DURATION_BUCKETS),
            heals: Counter::default(),
            healed_objects: Counter::default(),
            heal_failures: Counter::default(),
            fetch_failures: Counter::default(),
            drifted_objects: Gauge::default(),
            terraform_drift_resources: Gauge::default(),
            last_sync_timestamp: Gauge::default(),
            revision_info: Family::default(),
            revision: Mutex::new(None),
            leader: Gauge::default(),
            drift_checks: Counter::default(),
            drift_check_duration: Histogram::new(SYNC_DURATION_BUCKETS),
            state,
            pinned: Gauge::default(),
            out_of_sync: Gauge::default(),
            scrape: Mutex::new(()),
        };
        metrics.register();
        metrics
    }

    /// Register every family: `gitship_build_info` at the top, the agent's under
    /// `gitship_agent_`.
    fn register(&mut self) {
        self.registry.register(
            "gitship_build",
            "The gitship build: version, Git revision (when known), target",
            Info::new(build_labels()),
        );
        let agent = self.registry.sub_registry_with_prefix("gitship_agent");
        agent.register(
            "drift_checks",
            "Drift checks of the heal loop",
            self.drift_checks.clone(),
        );
        agent.register_with_unit(
            "drift_check_duration",
            "How long drift checks took (render, discovery, one LIST per kind; not the Git fetch)",
            Unit::Seconds,
            self.drift_check_duration.clone(),
        );
        agent.register("syncs", "Syncs, by how they ended", self.syncs.clone());
        agent.register_with_unit(
            "sync_duration",
            "How long syncs took",
            Unit::Seconds,
            self.sync_duration.clone(),
        );
        agent.register(
            "heals",
            "Heals (drift put back) of cluster objects",
            self.heals.clone(),
        );
        agent.register(
            "healed_objects",
            "Cluster objects put back by heals",
            self.healed_objects.clone(),
        );
        agent.register(
            "heal_failures",
            "Heals, or their drift checks, that failed",
            self.heal_failures.clone(),
        );
        agent.register(
            "git_fetch_failures",
            "Fetches of the Git source that failed",
            self.fetch_failures.clone(),
        );
        agent.register(
            "drifted_objects",
            "Cluster objects that differ from Git, as last seen",
            self.drifted_objects.clone(),
        );
        agent.register(
            "terraform_drift_resources",
            "Terraform resources changed outside Terraform or planned and not applied",
            self.terraform_drift_resources.clone(),
        );
        agent.register_with_unit(
            "last_sync_timestamp",
            "When the last sync ended, in unix seconds",
            Unit::Seconds,
            self.last_sync_timestamp.clone(),
        );
        agent.register(
            "revision_info",
            "The Git revision the cluster runs (1 for that revision only)",
            self.revision_info.clone(),
        );
        agent.register(
            "leader",
            "1 while this replica leads (reconciles), else 0",
            self.leader.clone(),
        );
        agent.register(
            "state",
            "The agent's state (1 for the current one, 0 for the others)",
            self.state.clone(),
        );
        agent.register(
            "pinned",
            "1 while the environment is pinned (a rollback or `gitship pin`), else 0",
            self.pinned.clone(),
        );
        agent.register(
            "out_of_sync",
            "1 when the revision the cluster runs differs from the branch's newest commit, else 0 (also while either is unknown)",
            self.out_of_sync.clone(),
        );
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

    /// A heal, or its drift check, failed.
    pub fn heal_failed(&self) {
        self.heal_failures.inc();
    }

    /// A fetch of the Git source failed.
    pub fn fetch_failed(&self) {
        self.fetch_failures.inc();
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
        let mut current = lock(&self.revision);
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

    /// Every family in `format`, with the gauges that `status` gives (state, pinned, out of
    /// sync); serve it as [`Format::content_type`].
    pub fn encode(&self, status: &Status, format: Format) -> String {
        let _scrape = lock(&self.scrape);
        self.observe(status);
        let mut text = String::new();
        let encoded = match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut text, &self.registry)
            }
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            }
        };
        if let Err(error) = encoded {
            // Writing to a String cannot fail; only an invalid metric could, and ours are fixed.
            tracing::error!("cannot encode the agent's metrics: {error}");
        }
        text
    }

    /// Set the gauges derived from `status`.
    fn observe(&self, status: &Status) {
        let current = state_position(status.state);
        for (position, state) in STATES.iter().enumerate() {
            self.state
                .get_or_create(&StateLabels {
                    state: state.as_str(),
                })
                .set(i64::from(position == current));
        }
        self.pinned.set(i64::from(status.pinned.is_some()));
        let out_of_sync = match (&status.revision, &status.git_revision) {
            (Some(running), Some(newest)) => running.sha != newest.sha,
            _ => false,
        };
        self.out_of_sync.set(i64::from(out_of_sync));
    }
}

/// The labels of `gitship_build_info`: `version`, `revision` when the build said, `arch`, `os`.
fn build_labels() -> BuildLabels {
    let mut labels = vec![("version", env!("CARGO_PKG_VERSION"))];
    if let Some(revision) = BUILD_REVISION.map(str::trim).filter(|r| !r.is_empty()) {
        labels.push(("revision", revision));
    }
    labels.push(("arch", std::env::consts::ARCH));
    labels.push(("os", std::env::consts::OS));
    labels
}

/// `mutex`'s guard; a poisoned lock is taken over (what it guards stays consistent: a value set
/// whole, or nothing).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `value` as a gauge value (gauges are `i64`); counts beyond `i64::MAX` do not happen, but
/// would show as `i64::MAX` rather than wrap.
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::agent_status::Revision;

    /// The value of the sample line that starts with `series ` (exact series name and labels).
    fn sample(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_string)
    }

    fn status() -> Status {
        Status::new("staging", "https://git.example/shop.git", "main", "agent-0")
    }

    fn revision(sha: &str) -> Revision {
        Revision {
            sha: sha.to_string(),
            subject: "Add the shop".to_string(),
            author: "Ada <ada@example.com>".to_string(),
        }
    }

    /// Metrics after one of every kind of update.
    fn updated() -> Metrics {
        let metrics = Metrics::new("staging");
        metrics.sync_finished(SyncResult::Synced, Duration::from_millis(1500));
        metrics.sync_finished(SyncResult::Failed, Duration::from_secs(700));
        metrics.healed(3);
        metrics.healed(2);
        metrics.heal_failed();
        metrics.fetch_failed();
        metrics.fetch_failed();
        metrics.set_drifted(4);
        metrics.set_terraform_drift(2);
        let time = DateTime::from_timestamp(1_700_000_000, 500_000_000).expect("a valid time");
        metrics.set_last_sync(time);
        metrics.set_revision("0123abcd");
        metrics.set_leader(true);
        metrics
    }

    /// Check `text` as the classic text format's parsers (client_golang's `expfmt.TextParser`)
    /// read it: every sample belongs to the family its `# TYPE` line names (a counter's is
    /// the `_total` series; a histogram's `_bucket`, `_sum` and `_count`), `# HELP` names the
    /// same family, no family twice, no OpenMetrics-only line. Returns each family's type.
    fn classic_families(text: &str) -> std::collections::BTreeMap<String, String> {
        let mut families = std::collections::BTreeMap::new();
        let mut current: Option<(String, String)> = None;
        for line in text.lines() {
            assert!(!line.is_empty(), "an empty line in:\n{text}");
            if let Some(help) = line.strip_prefix("# HELP ") {
                let name = help.split(' ').next().unwrap_or_default();
                assert!(!families.contains_key(name), "{name} twice in:\n{text}");
                current = Some((name.to_string(), String::new()));
                continue;
            }
            if let Some(declaration) = line.strip_prefix("# TYPE ") {
                let (name, kind) = declaration.split_once(' ').expect("# TYPE name type");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
                assert_eq!(
                    current.as_ref().map(|(help, _)| help.as_str()),
                    Some(name),
                    "# HELP and # TYPE name different families:\n{text}"
                );
                families.insert(name.to_string(), kind.to_string());
                current = Some((name.to_string(), kind.to_string()));
                continue;
            }
            assert!(!line.starts_with('#'), "an OpenMetrics-only line: {line}");
            let series = line.split([' ', '{']).next().unwrap_or_default();
            let (family, kind) = current.as_ref().expect("a sample before any # TYPE");
            let belongs = match kind.as_str() {
                "histogram" => [
                    format!("{family}_bucket"),
                    format!("{family}_sum"),
                    format!("{family}_count"),
                ]
                .contains(&series.to_string()),
                _ => series == family,
            };
            assert!(belongs, "`{line}` is not of {kind} `{family}`:\n{text}");
        }
        families
    }

    #[test]
    fn metrics_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Metrics>();
    }

    #[test]
    fn every_state_has_its_position() {
        for (position, state) in STATES.iter().enumerate() {
            assert_eq!(state_position(*state), position, "{state:?}");
        }
    }

    #[test]
    fn openmetrics_shows_every_family_after_updates() {
        let text = updated().encode(&status(), Format::OpenMetrics);
        // (family, labels besides the environment, value)
        let expected = [
            ("gitship_agent_syncs_total", r#"result="synced""#, "1"),
            ("gitship_agent_syncs_total", r#"result="failed""#, "1"),
            ("gitship_agent_syncs_total", r#"result="degraded""#, "0"),
            (
                "gitship_agent_syncs_total",
                r#"result="waiting-for-images""#,
                "0",
            ),
            ("gitship_agent_sync_duration_seconds_count", "", "2"),
            (
                "gitship_agent_sync_duration_seconds_bucket",
                r#"le="2.5""#,
                "1",
            ),
            (
                "gitship_agent_sync_duration_seconds_bucket",
                r#"le="600.0""#,
                "1",
            ),
            (
                "gitship_agent_sync_duration_seconds_bucket",
                r#"le="+Inf""#,
                "2",
            ),
            ("gitship_agent_heals_total", "", "2"),
            ("gitship_agent_healed_objects_total", "", "5"),
            ("gitship_agent_heal_failures_total", "", "1"),
            ("gitship_agent_git_fetch_failures_total", "", "2"),
            ("gitship_agent_drifted_objects", "", "4"),
            ("gitship_agent_terraform_drift_resources", "", "2"),
            (
                "gitship_agent_last_sync_timestamp_seconds",
                "",
                "1700000000.5",
            ),
            ("gitship_agent_revision_info", r#"revision="0123abcd""#, "1"),
            ("gitship_agent_leader", "", "1"),
            ("gitship_agent_state", r#"state="starting""#, "1"),
            ("gitship_agent_state", r#"state="synced""#, "0"),
            ("gitship_agent_pinned", "", "0"),
            ("gitship_agent_out_of_sync", "", "0"),
        ];
        for (family, labels, value) in expected {
            let series = match labels {
                "" => format!(r#"{family}{{environment="staging"}}"#),
                labels => format!(r#"{family}{{environment="staging",{labels}}}"#),
            };
            assert_eq!(
                sample(&text, &series).as_deref(),
                Some(value),
                "{series}:\n{text}"
            );
        }
        assert!(
            text.contains("# TYPE gitship_agent_syncs counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE gitship_agent_sync_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT gitship_agent_sync_duration_seconds seconds\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE gitship_build info\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Every series is the environment's.
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            assert!(line.contains(r#"{environment="staging""#), "{line}");
        }
    }

    #[test]
    fn classic_text_types_every_series_as_its_family() {
        let text = updated().encode(&status(), Format::Text);
        let families = classic_families(&text);
        let expected = [
            ("gitship_agent_syncs_total", "counter"),
            ("gitship_agent_heals_total", "counter"),
            ("gitship_agent_healed_objects_total", "counter"),
            ("gitship_agent_heal_failures_total", "counter"),
            ("gitship_agent_git_fetch_failures_total", "counter"),
            ("gitship_agent_drift_checks_total", "counter"),
            ("gitship_agent_sync_duration_seconds", "histogram"),
            ("gitship_agent_drift_check_duration_seconds", "histogram"),
            ("gitship_agent_drifted_objects", "gauge"),
            ("gitship_agent_terraform_drift_resources", "gauge"),
            ("gitship_agent_last_sync_timestamp_seconds", "gauge"),
            ("gitship_agent_revision_info", "gauge"),
            ("gitship_agent_leader", "gauge"),
            ("gitship_agent_state", "gauge"),
            ("gitship_agent_pinned", "gauge"),
            ("gitship_agent_out_of_sync", "gauge"),
            ("gitship_build_info", "gauge"),
        ];
        for (family, kind) in expected {
            assert_eq!(
                families.get(family).map(String::as_str),
                Some(kind),
                "{family}:\n{text}"
            );
        }
        assert_eq!(families.len(), expected.len(), "{families:?}");
        for (series, value) in [
            (
                r#"gitship_agent_syncs_total{environment="staging",result="synced"}"#,
                "1",
            ),
            (
                r#"gitship_agent_git_fetch_failures_total{environment="staging"}"#,
                "2",
            ),
            (
                r#"gitship_agent_sync_duration_seconds_bucket{environment="staging",le="600"}"#,
                "1",
            ),
            (
                r#"gitship_agent_sync_duration_seconds_bucket{environment="staging",le="+Inf"}"#,
                "2",
            ),
            (
                r#"gitship_agent_sync_duration_seconds_sum{environment="staging"}"#,
                "701.5",
            ),
            (
                r#"gitship_agent_last_sync_timestamp_seconds{environment="staging"}"#,
                "1700000000.5",
            ),
        ] {
            assert_eq!(
                sample(&text, series).as_deref(),
                Some(value),
                "{series}:\n{text}"
            );
        }
        let build = format!(
            r#"gitship_build_info{{environment="staging",version="{}""#,
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{text}");
    }

    #[test]
    fn the_state_gauges_follow_the_status_of_each_scrape() {
        let metrics = Metrics::new("production");
        let state = |text: &str, name: &str| {
            sample(
                text,
                &format!(r#"gitship_agent_state{{environment="production",state="{name}"}}"#),
            )
        };
        let mut status = status();
        status.state = SyncState::WaitingForImages;
        let text = metrics.encode(&status, Format::Text);
        let ones: Vec<&str> = STATES
            .iter()
            .map(|s| s.as_str())
            .filter(|name| state(&text, name).as_deref() == Some("1"))
            .collect();
        assert_eq!(ones, ["waiting-for-images"], "{text}");
        for name in STATES.map(SyncState::as_str) {
            assert!(state(&text, name).is_some(), "{name}:\n{text}");
        }
        status.state = SyncState::Pinned;
        status.pinned = Some(revision("aaaa"));
        status.revision = Some(revision("aaaa"));
        status.git_revision = Some(revision("bbbb"));
        let text = metrics.encode(&status, Format::OpenMetrics);
        assert_eq!(state(&text, "pinned").as_deref(), Some("1"), "{text}");
        assert_eq!(
            state(&text, "waiting-for-images").as_deref(),
            Some("0"),
            "{text}"
        );
        let gauge = |text: &str, name: &str| {
            sample(
                text,
                &format!(r#"gitship_agent_{name}{{environment="production"}}"#),
            )
        };
        assert_eq!(gauge(&text, "pinned").as_deref(), Some("1"), "{text}");
        assert_eq!(gauge(&text, "out_of_sync").as_deref(), Some("1"), "{text}");
    }

    #[test]
    fn out_of_sync_needs_both_revisions_known_and_different() {
        let metrics = Metrics::new("staging");
        let cases = [
            (None, None, "0"),
            (Some("aaaa"), None, "0"),
            (None, Some("aaaa"), "0"),
            (Some("aaaa"), Some("aaaa"), "0"),
            (Some("aaaa"), Some("bbbb"), "1"),
        ];
        for (running, newest, expected) in cases {
            let mut status = status();
            status.revision = running.map(revision);
            status.git_revision = newest.map(revision);
            let text = metrics.encode(&status, Format::Text);
            assert_eq!(
                sample(&text, r#"gitship_agent_out_of_sync{environment="staging"}"#).as_deref(),
                Some(expected),
                "running {running:?}, Git {newest:?}"
            );
        }
    }

    #[test]
    fn revision_info_shows_only_the_current_revision() {
        let metrics = Metrics::new("staging");
        let text = metrics.encode(&status(), Format::OpenMetrics);
        assert!(!text.contains("gitship_agent_revision_info{"), "{text}");
        metrics.set_revision("aaaa1111");
        metrics.set_revision("bbbb2222");
        metrics.set_revision("bbbb2222");
        let text = metrics.encode(&status(), Format::OpenMetrics);
        let series: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("gitship_agent_revision_info{"))
            .collect();
        assert_eq!(
            series,
            [r#"gitship_agent_revision_info{environment="staging",revision="bbbb2222"} 1"#],
            "{text}"
        );
    }

    #[test]
    fn leader_goes_back_to_zero() {
        let metrics = Metrics::new("staging");
        metrics.set_leader(true);
        metrics.set_leader(false);
        let text = metrics.encode(&status(), Format::Text);
        assert_eq!(
            sample(&text, r#"gitship_agent_leader{environment="staging"}"#).as_deref(),
            Some("0"),
            "{text}"
        );
    }

    #[test]
    fn negotiation_follows_prometheus_accept_headers() {
        use Format::{OpenMetrics, Text};
        let cases = [
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Text),
            (Some("text/plain"), Text),
            (Some("text/plain;version=0.0.4"), Text),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("Application/OpenMetrics-Text; Version=1.0.0"),
                OpenMetrics,
            ),
            (
                Some(r#"application/openmetrics-text;version="1.0.0""#),
                OpenMetrics,
            ),
            // Prometheus 2's scrape (scrape_protocols default, no protobuf).
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                OpenMetrics,
            ),
            // Prometheus 3's, protobuf first (not served: skipped).
            (
                Some(
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,*/*;q=0.1",
                ),
                OpenMetrics,
            ),
            // scrape_protocols: [PrometheusText0.0.4]
            (Some("text/plain;version=0.0.4;q=0.9,*/*;q=0.1"), Text),
            // Qualities decide, not the order.
            (
                Some("text/plain;version=0.0.4;q=0.3, application/openmetrics-text;q=0.8"),
                OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;q=0.2, text/plain;q=0.9"),
                Text,
            ),
            // Equal qualities: the client's order.
            (Some("text/plain, application/openmetrics-text"), Text),
            // q=0 is "not acceptable"; a version not served does not match.
            (Some("application/openmetrics-text;q=0"), Text),
            (Some("application/openmetrics-text;version=2.0.0"), Text),
            (Some("application/json"), Text),
            // Unreadable ranges are left out, the rest still counts.
            (
                Some(
                    "nonsense, application/openmetrics-text;q=bad, application/openmetrics-text;q=0.5",
                ),
                OpenMetrics,
            ),
        ];
        for (accept, expected) in cases {
            assert_eq!(Format::negotiate(accept), expected, "{accept:?}");
        }
        assert_eq!(Format::OpenMetrics.content_type(), OPENMETRICS_CONTENT_TYPE);
        assert_eq!(
            Format::Text.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }
}
