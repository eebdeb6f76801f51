//! What the agent does next: decided here, done in [`crate::agent::reconcile`].
//!
//! The agent is decide-then-act (ARCHITECTURE.md, "`src/agent/`"): the loop observes (a fetch
//! of the branch, the pin and the suspension, a sync request, a drift check), asks this module
//! what to do, and carries the answer out (a deploy, the status, metrics, Events). A decision is
//! a function of what the agent remembers ([`Memory`]: the failed commit waiting for its retry,
//! the fields that flap), what it observed and the time, which is passed in: nothing here reads
//! a clock, Git or the cluster, so every decision is unit-tested without them.
//!
//! - **Sync** ([`Memory::sync`]): a suspended environment does nothing; a pinned one runs its
//!   pin (no sync, heals go to the pin); a branch whose head the cluster runs has nothing to
//!   sync; a head that failed waits out its back-off ([`backoff`]: 5 s doubling to 5 min, reset
//!   by a new commit or a `gitship sync`) and is never tried again in a loop; anything else is
//!   deployed. A failed sync ([`Memory::sync_failed`]) is classified ([`SyncFailure`]): missing
//!   images are looked for again within an interval, a commit that wrote to the cluster becomes
//!   the revision it runs.
//! - **Heal** ([`Memory::heal`]): from a drift report, what to put back now, what waits, and
//!   what to report. A field another manager changes back after [`FLAP_AFTER`] heals in a row
//!   flaps ([`FlapTracker`]): reported once, healed again only after a back-off that doubles
//!   from the heal interval up to [`FLAP_BACKOFF_MAX`], never given up for good; it stops
//!   flapping when Git changes it or after [`FLAP_QUIET_HEALS`] quiet heal intervals.
//! - **When** ([`Schedule`]): the next fetch and the next heal.
//!
//! Each drifted field is named and described by [`crate::plan::Drifted`], as `drift` shows it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::plan::DriftReport;

/// The first back-off after a failed sync.
pub const BACKOFF_MIN: Duration = Duration::from_secs(5);
/// The longest back-off after failed syncs.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A field healed this many times in a row and changed back each time is flapping.
pub const FLAP_AFTER: u32 = 3;
/// The longest wait between two heals of a flapping field.
pub const FLAP_BACKOFF_MAX: Duration = Duration::from_secs(3600);
/// A flapping field that has not drifted for this many heal intervals is not flapping any more.
pub const FLAP_QUIET_HEALS: u32 = 10;

/// The pin and the suspension of the environment, as last read from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Controls {
    /// Neither: the agent follows the branch.
    Free,
    /// Pinned at this commit (`gitship pin`, `rollback`): the cluster is to run it.
    Pinned(String),
    /// `gitship suspend`: neither sync nor heal until `gitship resume`.
    Suspended,
}

impl Controls {
    /// The controls of an environment pinned at `pin` (when it is) and `suspended` or not: a
    /// suspension stops everything, a pin included.
    pub fn new(pin: Option<&str>, suspended: bool) -> Controls {
        match (pin, suspended) {
            (_, true) => Controls::Suspended,
            (Some(sha), false) => Controls::Pinned(sha.to_string()),
            (None, false) => Controls::Free,
        }
    }
}

/// What a sync does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncDecision {
    /// Suspended: nothing, and no heal either.
    Suspended,
    /// Pinned: no sync; the cluster is to run the pinned commit, which heals go back to.
    Pinned,
    /// The cluster runs the branch's head: nothing to deploy.
    UpToDate,
    /// The head failed before: it is not tried again before `until`.
    BackOff { until: Instant },
    /// Deploy the branch's head; `attempt` counts the tries of this commit (1 for the first).
    Sync { attempt: u32 },
}

/// How a sync failed, which decides what the agent says and when it tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncFailure {
    /// The images the commit needs are not in the registry yet: CI has not pushed them.
    ImagesMissing,
    /// It failed after writing to the cluster (or applied and is not healthy): the cluster
    /// runs (part of) it, so heals follow it, never back toward the older revision.
    Degraded,
    /// It failed before changing anything: the cluster stays at the revision it runs.
    Failed,
}

impl SyncFailure {
    /// Whether the cluster now runs (part of) the failed commit.
    pub fn runs_commit(self) -> bool {
        self == SyncFailure::Degraded
    }
}

/// A commit that failed, and when to try it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub sha: String,
    pub attempts: u32,
    pub at: Instant,
}

/// `5s * 2^(attempts-1)`, at most 5 min.
pub fn backoff(attempts: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX);
    BACKOFF_MIN.saturating_mul(factor).min(BACKOFF_MAX)
}

/// How long to wait before connecting again after the cluster could not be reached.
pub fn reconnect_after(interval: Duration) -> Duration {
    BACKOFF_MIN.max(interval / 4)
}

/// How the agent heals: the interval between drift checks, and `agent.self_heal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealPolicy {
    pub interval: Duration,
    pub self_heal: bool,
}

/// What a heal does with the drift it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealAction {
    /// Nothing to put back now (nothing drifted, or only flapping fields in their back-off).
    Nothing,
    /// `agent.self_heal: false`: report these lines; put nothing back.
    Report(Vec<String>),
    /// Deploy the running revision again to put these back (one line each).
    Heal(Vec<String>),
}

/// Everything a heal decided from one drift check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealDecision {
    pub action: HealAction,
    /// Fields that began to flap: the warning to log and send as an Event, one each.
    pub began_flapping: Vec<String>,
    /// Fields that stopped flapping (Git changed them, or they stayed put).
    pub stopped_flapping: Vec<String>,
    /// The status's `flapping` lines.
    pub flapping: Vec<String>,
    /// The status's `drifted` lines: what stays drifted (flapping fields in their back-off; with
    /// `agent.self_heal: false`, everything).
    pub drifted: Vec<String>,
    /// How many objects drifted at the check.
    pub drifted_objects: u64,
    /// How many stay drifted once the heal succeeded (those of flapping fields that wait).
    pub objects_left: u64,
    /// Terraform resources changed outside Terraform, one line each.
    pub terraform: Vec<String>,
    /// The keys the heal puts back (for [`Memory::healed`]).
    healing_keys: BTreeSet<String>,
}

/// What the agent remembers between decisions.
#[derive(Debug, Default)]
pub struct Memory {
    retry: Option<Retry>,
    flaps: FlapTracker,
}

impl Memory {
    /// Decide a sync, the branch's head being `head` and the cluster running `runs` (the last
    /// good sync, the pin, or a degraded commit), at `now`.
    pub fn sync(
        &mut self,
        head: &str,
        runs: Option<&str>,
        controls: &Controls,
        now: Instant,
    ) -> SyncDecision {
        match controls {
            Controls::Suspended => {
                self.retry = None;
                return SyncDecision::Suspended;
            }
            Controls::Pinned(_) => {
                self.retry = None;
                return SyncDecision::Pinned;
            }
            Controls::Free => {}
        }
        // A new commit starts again without a back-off.
        if self.retry.as_ref().is_some_and(|retry| retry.sha != head) {
            self.retry = None;
        }
        match &self.retry {
            Some(retry) if now < retry.at => SyncDecision::BackOff { until: retry.at },
            Some(retry) => SyncDecision::Sync {
                attempt: retry.attempts.saturating_add(1),
            },
            None if runs == Some(head) => SyncDecision::UpToDate,
            None => SyncDecision::Sync { attempt: 1 },
        }
    }

    /// `gitship sync` (or `resume`) asked for a sync: a failed commit is tried at `now`, past
    /// its back-off.
    pub fn sync_requested(&mut self, now: Instant) {
        if let Some(retry) = &mut self.retry {
            retry.at = now;
        }
    }

    /// The sync of the head succeeded.
    pub fn synced(&mut self) {
        self.retry = None;
    }

    /// The sync of `head` failed at `now` with `failure`: remember when to try it again (its
    /// back-off doubles with each failure of the same commit; missing images are looked for
    /// again within `interval`); the wait.
    pub fn sync_failed(
        &mut self,
        head: &str,
        failure: SyncFailure,
        now: Instant,
        interval: Duration,
    ) -> Duration {
        let attempts = match &self.retry {
            Some(retry) if retry.sha == head => retry.attempts.saturating_add(1),
            _ => 1,
        };
        let mut wait = backoff(attempts);
        if failure == SyncFailure::ImagesMissing {
            // Waiting for CI is not a failure: look again soon, at most every interval.
            wait = wait.min(interval);
        }
        self.retry = Some(Retry {
            sha: head.to_string(),
            attempts,
            at: now.checked_add(wait).unwrap_or(now),
        });
        wait
    }

    /// When the failed commit is tried again, while one waits.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry.as_ref().map(|retry| retry.at)
    }

    /// Decide a heal from `report`, a drift check of the revision `sha` the cluster runs, at
    /// `now`.
    pub fn heal(
        &mut self,
        report: &DriftReport,
        sha: &str,
        policy: HealPolicy,
        now: Instant,
    ) -> HealDecision {
        let drift = Drift::of(report, sha);
        let observed = self.flaps.observe(&drift, now, policy.interval);
        let began_flapping = observed
            .flapping
            .iter()
            .map(|key| flapping_hint(key, drift.managers.get(key)))
            .collect();
        let (healing, waiting) = drift.split(&self.flaps, now);
        let mut drifted: Vec<String> = waiting.into_iter().map(|(_, line)| line).collect();
        let healing_keys: BTreeSet<String> = healing.iter().map(|(key, _)| key.clone()).collect();
        let lines: Vec<String> = healing.into_iter().map(|(_, line)| line).collect();
        let action = if lines.is_empty() {
            self.flaps.healed(BTreeSet::new());
            HealAction::Nothing
        } else if !policy.self_heal {
            drifted.extend(lines.iter().cloned());
            HealAction::Report(lines)
        } else {
            HealAction::Heal(lines)
        };
        HealDecision {
            action,
            began_flapping,
            stopped_flapping: observed.cleared,
            flapping: self.flaps.describe(&drift, now),
            drifted,
            drifted_objects: count(drift.objects.values().collect::<BTreeSet<_>>().len()),
            objects_left: drift.objects_waiting(&self.flaps, now),
            terraform: report
                .terraform
                .iter()
                .map(crate::plan::ResourceChange::drift_line)
                .collect(),
            healing_keys,
        }
    }

    /// The heal `decision` asked for succeeded: what it put back counts toward flapping.
    pub fn healed(&mut self, decision: &HealDecision) {
        self.flaps.healed(decision.healing_keys.clone());
    }
}

/// `value` as a gauge's count.
fn count(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// The warning for a field that began to flap: what it is, who changes it, what to do.
fn flapping_hint(key: &str, manager: Option<&String>) -> String {
    format!(
        "{key} is changed back after every heal{}: it is healed again only after a back-off (up to 1 hour), until Git changes it. Let one owner have it: remove the field from Git, or add a `drift.ignore` rule for it",
        manager.map_or(String::new(), |m| format!(" by `{m}`"))
    )
}

/// When the loop next fetches and heals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub next_fetch: Instant,
    pub next_heal: Instant,
}

/// What is due at one turn of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub sync: bool,
    pub heal: bool,
}

impl Schedule {
    /// A fetch at once, the first heal an interval later.
    pub fn new(now: Instant, heal_interval: Duration) -> Schedule {
        Schedule {
            next_fetch: now,
            next_heal: now.checked_add(heal_interval).unwrap_or(now),
        }
    }

    /// Fetch at `now`: connected, leading, or a push webhook.
    pub fn fetch_now(&mut self, now: Instant) {
        self.next_fetch = now;
    }

    /// A requested sync: fetch and heal at `now` (it also puts drift back, as `deploy` would).
    pub fn requested(&mut self, now: Instant) {
        self.next_fetch = now;
        self.next_heal = now;
    }

    /// What is due at `now`.
    pub fn due(&self, now: Instant) -> Due {
        Due {
            sync: now >= self.next_fetch,
            heal: now >= self.next_heal,
        }
    }

    /// A sync ended at `now`: the next fetch an `interval` later.
    pub fn synced(&mut self, now: Instant, interval: Duration) {
        self.next_fetch = now.checked_add(interval).unwrap_or(now);
    }

    /// A failed commit is tried again at `retry_at`: fetch by then.
    pub fn retry(&mut self, retry_at: Option<Instant>) {
        if let Some(at) = retry_at {
            self.next_fetch = self.next_fetch.min(at);
        }
    }

    /// A heal ended at `now`: the next one an `interval` later.
    pub fn healed(&mut self, now: Instant, interval: Duration) {
        self.next_heal = now.checked_add(interval).unwrap_or(now);
    }

    /// When to wake: the next fetch or heal, or (at most `lease_duration / 3` from `now`) to
    /// look at the leader Lease.
    pub fn wake(&self, now: Instant, lease_duration: Duration) -> Instant {
        let lease = now.checked_add(lease_duration / 3).unwrap_or(now);
        self.next_fetch.min(self.next_heal).min(lease)
    }
}

/// What one drift check found, keyed per field or deleted object ([`crate::plan::Drifted::key`]).
#[derive(Debug, Default)]
struct Drift {
    /// Key -> [`crate::plan::Drifted::line`].
    lines: BTreeMap<String, String>,
    /// Key -> the manager of the live value.
    managers: BTreeMap<String, String>,
    /// Key -> its object.
    objects: BTreeMap<String, String>,
    /// Key -> what Git wants there (for a sensitive value, the revision), to see Git change it.
    desired: BTreeMap<String, String>,
}

impl Drift {
    /// The drift of `report`, a drift check of revision `sha`.
    fn of(report: &DriftReport, sha: &str) -> Drift {
        let mut drift = Drift::default();
        for object in &report.kubernetes {
            for drifted in object.drifted() {
                let key = drifted.key();
                let desired = match drifted.field {
                    Some(field) if field.sensitive => sha.to_string(),
                    Some(field) => field.after.clone().unwrap_or_default(),
                    None => String::new(),
                };
                if let Some(manager) = drifted.manager() {
                    drift.managers.insert(key.clone(), manager.to_string());
                }
                drift.lines.insert(key.clone(), drifted.line());
                drift.desired.insert(key.clone(), desired);
                drift.objects.insert(key, object.object.to_string());
            }
        }
        drift
    }

    fn keys(&self) -> impl Iterator<Item = &String> + '_ {
        self.lines.keys()
    }

    /// (key, line) of what to heal now, and of what waits: a flapping field in its back-off.
    #[allow(clippy::type_complexity)]
    fn split(
        &self,
        flaps: &FlapTracker,
        now: Instant,
    ) -> (Vec<(String, String)>, Vec<(String, String)>) {
        self.lines
            .iter()
            .map(|(key, line)| (key.clone(), line.clone()))
            .partition(|(key, _)| flaps.may_heal(key, now))
    }

    /// How many objects stay drifted after a heal: those of flapping fields in their back-off.
    fn objects_waiting(&self, flaps: &FlapTracker, now: Instant) -> u64 {
        count(
            self.objects
                .iter()
                .filter(|(key, _)| !flaps.may_heal(key, now))
                .map(|(_, object)| object)
                .collect::<BTreeSet<_>>()
                .len(),
        )
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
        self.update_flapping(drift, now, interval, &mut observed);
        let mut returns = BTreeMap::new();
        for key in drift.keys() {
            if self.flapping.contains_key(key) || observed.cleared.contains(key) {
                continue;
            }
            let count = if self.healed_last.contains(key) {
                self.returns
                    .get(key)
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(1)
            } else {
                0
            };
            if count.saturating_add(1) >= FLAP_AFTER {
                let flap = Flap {
                    desired: drift.desired.get(key).cloned().unwrap_or_default(),
                    returns: 1,
                    next_heal: later(now, flap_backoff(interval, 1)),
                    last_seen: now,
                };
                self.flapping.insert(key.clone(), flap);
                observed.flapping.push(key.clone());
                continue;
            }
            returns.insert(key.clone(), count);
        }
        self.returns = returns;
        observed
    }

    /// The fields that flap already: ended when Git changed them or they stayed quiet, else
    /// their back-off grows when they came back after a heal.
    fn update_flapping(
        &mut self,
        drift: &Drift,
        now: Instant,
        interval: Duration,
        observed: &mut Observed,
    ) {
        let quiet = interval.saturating_mul(FLAP_QUIET_HEALS);
        for (key, mut flap) in std::mem::take(&mut self.flapping) {
            let git_changed = drift
                .desired
                .get(&key)
                .is_some_and(|desired| *desired != flap.desired);
            let drifted = drift.lines.contains_key(&key);
            if git_changed || (!drifted && now.saturating_duration_since(flap.last_seen) >= quiet) {
                observed.cleared.push(key);
                continue;
            }
            if drifted {
                if self.healed_last.contains(&key) {
                    flap.returns = flap.returns.saturating_add(1);
                    flap.next_heal = later(now, flap_backoff(interval, flap.returns));
                }
                flap.last_seen = now;
            }
            self.flapping.insert(key, flap);
        }
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

    /// One line per flapping field: `<drift line> (flapping: ...)`.
    fn describe(&self, drift: &Drift, now: Instant) -> Vec<String> {
        self.flapping
            .iter()
            .map(|(key, flap)| {
                let line = drift.lines.get(key).unwrap_or(key);
                let wait = flap.next_heal.saturating_duration_since(now);
                let when = if wait.is_zero() {
                    "healed now".to_string()
                } else {
                    format!(
                        "next heal in {}",
                        gitship_foundation::output::duration_text(wait)
                    )
                };
                let times = flap.returns.saturating_add(FLAP_AFTER - 1);
                let plural = if times == 1 { "" } else { "s" };
                format!("{line} (flapping: changed back {times} time{plural} after heals; {when})")
            })
            .collect()
    }
}

/// `now + wait`, or `now` past the clock's range.
fn later(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait).unwrap_or(now)
}

/// The wait before healing a field that came back `returns` times since it began to flap:
/// `interval * 2^returns`, at most [`FLAP_BACKOFF_MAX`] (and never less than `interval`).
fn flap_backoff(interval: Duration, returns: u32) -> Duration {
    let factor = 1u32.checked_shl(returns.min(31)).unwrap_or(u32::MAX);
    interval
        .saturating_mul(factor)
        .min(FLAP_BACKOFF_MAX.max(interval))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{
        DriftKind, FieldChange, GitInfo, ObjectDrift, ObjectRef, REDACTED, ResourceAction,
        ResourceChange,
    };

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);
    const HEAD: &str = "b0b0b0b0";
    const RUNNING: &str = "a1a1a1a1";

    fn policy() -> HealPolicy {
        HealPolicy {
            interval: SECOND,
            self_heal: true,
        }
    }

    fn web() -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("blog".into()),
            name: "web".into(),
        }
    }

    /// A drift report: `replicas` live against Git's `desired`, changed by `kubectl`.
    fn scaled(live: &str, desired: &str) -> ObjectDrift {
        ObjectDrift {
            object: web(),
            kind: DriftKind::Modified,
            fields: vec![FieldChange {
                manager: Some("kubectl".into()),
                ..FieldChange::new("spec.replicas", Some(live.into()), Some(desired.into()))
            }],
        }
    }

    fn report(objects: Vec<ObjectDrift>) -> DriftReport {
        let mut report = DriftReport::new(
            "production",
            GitInfo {
                sha: RUNNING.into(),
                dirty: false,
            },
            false,
        );
        report.kubernetes = objects;
        report
    }

    const REPLICAS: &str = "Deployment blog/web spec.replicas";
    const REPLICAS_LINE: &str = "Deployment blog/web spec.replicas: 10 -> 3 (changed by kubectl)";

    #[test]
    fn backoff_doubles_from_5s_to_5min() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(7), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
        assert_eq!(backoff(0), Duration::from_secs(5));
        assert_eq!(reconnect_after(MINUTE), Duration::from_secs(15));
        assert_eq!(reconnect_after(SECOND), BACKOFF_MIN);
    }

    #[test]
    fn a_new_commit_is_synced_and_a_running_one_is_up_to_date() {
        let mut memory = Memory::default();
        let now = Instant::now();
        assert_eq!(
            memory.sync(HEAD, Some(RUNNING), &Controls::Free, now),
            SyncDecision::Sync { attempt: 1 }
        );
        assert_eq!(
            memory.sync(HEAD, None, &Controls::Free, now),
            SyncDecision::Sync { attempt: 1 },
            "a cluster that runs nothing gets the head"
        );
        assert_eq!(
            memory.sync(HEAD, Some(HEAD), &Controls::Free, now),
            SyncDecision::UpToDate
        );
    }

    #[test]
    fn a_suspension_wins_over_a_pin() {
        assert_eq!(Controls::new(Some(RUNNING), true), Controls::Suspended);
        assert_eq!(Controls::new(None, true), Controls::Suspended);
        assert_eq!(
            Controls::new(Some(RUNNING), false),
            Controls::Pinned(RUNNING.into())
        );
        assert_eq!(Controls::new(None, false), Controls::Free);
    }

    #[test]
    fn a_suspended_or_pinned_environment_is_not_synced_and_forgets_its_retry() {
        let now = Instant::now();
        for (controls, decision) in [
            (Controls::Suspended, SyncDecision::Suspended),
            (Controls::Pinned(RUNNING.into()), SyncDecision::Pinned),
        ] {
            let mut memory = Memory::default();
            memory.sync_failed(HEAD, SyncFailure::Failed, now, MINUTE);
            assert_eq!(memory.sync(HEAD, Some(RUNNING), &controls, now), decision);
            // Even a head the cluster does not run, even past the back-off.
            assert_eq!(
                memory.sync(HEAD, None, &controls, now + BACKOFF_MAX),
                decision
            );
            assert_eq!(memory.retry_at(), None, "{controls:?}");
            // Resumed: the head is tried at once, as a first attempt.
            assert_eq!(
                memory.sync(HEAD, Some(RUNNING), &Controls::Free, now),
                SyncDecision::Sync { attempt: 1 }
            );
        }
    }

    #[test]
    fn a_failed_sync_waits_out_a_growing_back_off_and_is_never_retried_in_a_loop() {
        let mut memory = Memory::default();
        let start = Instant::now();
        let wait = memory.sync_failed(HEAD, SyncFailure::Failed, start, MINUTE);
        assert_eq!(wait, Duration::from_secs(5));
        // Every turn of the loop before the back-off ends decides to wait, not to deploy.
        for second in 0..5 {
            let now = start + Duration::from_secs(second);
            assert_eq!(
                memory.sync(HEAD, Some(RUNNING), &Controls::Free, now),
                SyncDecision::BackOff {
                    until: start + Duration::from_secs(5)
                },
                "{second}s"
            );
        }
        let retried = start + Duration::from_secs(5);
        assert_eq!(
            memory.sync(HEAD, Some(RUNNING), &Controls::Free, retried),
            SyncDecision::Sync { attempt: 2 }
        );
        // It fails again: 10 s, then 20 s, ... up to 5 min.
        let wait = memory.sync_failed(HEAD, SyncFailure::Failed, retried, MINUTE);
        assert_eq!(wait, Duration::from_secs(10));
        assert_eq!(memory.retry_at(), Some(retried + wait));
        let mut last = wait;
        for _ in 0..10 {
            last = memory.sync_failed(HEAD, SyncFailure::Failed, retried, MINUTE);
        }
        assert_eq!(last, BACKOFF_MAX);
        // A new commit is tried at once, its own back-off from the start.
        let newer = "c2c2c2c2";
        assert_eq!(
            memory.sync(newer, Some(RUNNING), &Controls::Free, retried),
            SyncDecision::Sync { attempt: 1 }
        );
        assert_eq!(
            memory.sync_failed(newer, SyncFailure::Failed, retried, MINUTE),
            BACKOFF_MIN
        );
        // A success forgets the failures.
        memory.synced();
        assert_eq!(memory.retry_at(), None);
        assert_eq!(
            memory.sync(newer, Some(newer), &Controls::Free, retried),
            SyncDecision::UpToDate
        );
    }

    #[test]
    fn a_degraded_commit_is_retried_although_the_cluster_runs_it() {
        let mut memory = Memory::default();
        let now = Instant::now();
        assert!(SyncFailure::Degraded.runs_commit());
        assert!(!SyncFailure::Failed.runs_commit() && !SyncFailure::ImagesMissing.runs_commit());
        memory.sync_failed(HEAD, SyncFailure::Degraded, now, MINUTE);
        // The cluster runs the head now (the caller's `runs`), yet it is not up to date.
        assert!(matches!(
            memory.sync(HEAD, Some(HEAD), &Controls::Free, now),
            SyncDecision::BackOff { .. }
        ));
        assert_eq!(
            memory.sync(HEAD, Some(HEAD), &Controls::Free, now + BACKOFF_MIN),
            SyncDecision::Sync { attempt: 2 }
        );
    }

    #[test]
    fn missing_images_are_looked_for_again_within_an_interval() {
        let mut memory = Memory::default();
        let now = Instant::now();
        let interval = Duration::from_secs(20);
        let mut waits = Vec::new();
        for _ in 0..4 {
            waits.push(memory.sync_failed(HEAD, SyncFailure::ImagesMissing, now, interval));
        }
        assert_eq!(
            waits,
            [5, 10, 20, 20].map(Duration::from_secs),
            "doubling, at most the interval"
        );
    }

    #[test]
    fn a_sync_request_tries_a_failed_commit_at_once() {
        let mut memory = Memory::default();
        let now = Instant::now();
        // Nothing waits: a request changes nothing.
        memory.sync_requested(now);
        assert_eq!(memory.retry_at(), None);
        for _ in 0..6 {
            memory.sync_failed(HEAD, SyncFailure::Failed, now, MINUTE);
        }
        let asked = now + SECOND;
        assert!(matches!(
            memory.sync(HEAD, Some(RUNNING), &Controls::Free, asked),
            SyncDecision::BackOff { .. }
        ));
        memory.sync_requested(asked);
        assert_eq!(
            memory.sync(HEAD, Some(RUNNING), &Controls::Free, asked),
            SyncDecision::Sync { attempt: 7 }
        );
        // The loop fetches and heals at once too.
        let mut schedule = Schedule::new(now, MINUTE);
        schedule.synced(now, MINUTE);
        assert_eq!(
            schedule.due(asked),
            Due {
                sync: false,
                heal: false
            }
        );
        schedule.requested(asked);
        assert_eq!(
            schedule.due(asked),
            Due {
                sync: true,
                heal: true
            }
        );
    }

    #[test]
    fn the_schedule_fetches_every_interval_heals_every_heal_interval_and_wakes_for_a_retry() {
        let start = Instant::now();
        let mut schedule = Schedule::new(start, 2 * MINUTE);
        assert_eq!(
            schedule.due(start),
            Due {
                sync: true,
                heal: false
            }
        );
        schedule.synced(start, MINUTE);
        assert_eq!(
            schedule.wake(start, Duration::from_secs(15)),
            start + 5 * SECOND
        );
        assert_eq!(schedule.wake(start, 10 * MINUTE), start + MINUTE);
        // A failed commit's retry comes before the next fetch: the loop wakes for it.
        schedule.retry(Some(start + 10 * SECOND));
        assert_eq!(schedule.wake(start, 10 * MINUTE), start + 10 * SECOND);
        schedule.retry(None);
        assert_eq!(schedule.next_fetch, start + 10 * SECOND);
        let later = start + 2 * MINUTE;
        assert_eq!(
            schedule.due(later),
            Due {
                sync: true,
                heal: true
            }
        );
        schedule.healed(later, 2 * MINUTE);
        assert_eq!(schedule.next_heal, later + 2 * MINUTE);
        schedule.fetch_now(later);
        assert!(schedule.due(later).sync);
    }

    #[test]
    fn drift_is_healed_with_the_lines_drift_prints_and_nothing_when_clean() {
        let mut memory = Memory::default();
        let now = Instant::now();
        let deleted = ObjectDrift {
            object: ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("blog".into()),
                name: "site".into(),
            },
            kind: DriftKind::Deleted,
            fields: Vec::new(),
        };
        let mut drifted = report(vec![scaled("10", "3"), deleted]);
        drifted.terraform.push(ResourceChange {
            address: "aws_s3_bucket.assets".into(),
            action: ResourceAction::Update,
            replace_reasons: Vec::new(),
            attributes: Vec::new(),
        });
        let decision = memory.heal(&drifted, RUNNING, policy(), now);
        assert_eq!(
            decision.action,
            HealAction::Heal(vec![
                "ConfigMap blog/site (deleted: in the inventory, missing from the cluster)".into(),
                REPLICAS_LINE.into(),
            ])
        );
        assert_eq!((decision.drifted_objects, decision.objects_left), (2, 0));
        assert!(decision.drifted.is_empty() && decision.flapping.is_empty());
        assert_eq!(
            decision.terraform,
            ["update aws_s3_bucket.assets (changed outside Terraform)"]
        );
        memory.healed(&decision);
        let clean = memory.heal(&report(Vec::new()), RUNNING, policy(), now + SECOND);
        assert_eq!(clean.action, HealAction::Nothing);
        assert_eq!((clean.drifted_objects, clean.objects_left), (0, 0));
    }

    #[test]
    fn without_self_heal_drift_is_reported_and_never_counts_as_healed() {
        let mut memory = Memory::default();
        let start = Instant::now();
        let off = HealPolicy {
            self_heal: false,
            ..policy()
        };
        for check in 0..5 {
            let decision = memory.heal(
                &report(vec![scaled("10", "3")]),
                RUNNING,
                off,
                start + check * SECOND,
            );
            assert_eq!(
                decision.action,
                HealAction::Report(vec![REPLICAS_LINE.into()])
            );
            assert_eq!(decision.drifted, [REPLICAS_LINE]);
            assert!(
                decision.began_flapping.is_empty(),
                "not healed, so not flapping"
            );
        }
    }

    #[test]
    fn a_secret_drifts_without_its_value_and_flaps_until_the_revision_changes() {
        let secret = ObjectDrift {
            object: ObjectRef {
                api_version: "v1".into(),
                kind: "Secret".into(),
                namespace: Some("blog".into()),
                name: "db".into(),
            },
            kind: DriftKind::Modified,
            fields: vec![FieldChange {
                sensitive: true,
                ..FieldChange::new(
                    "data.password",
                    Some(REDACTED.into()),
                    Some(REDACTED.into()),
                )
            }],
        };
        let drifted = report(vec![secret]);
        let mut memory = Memory::default();
        let start = Instant::now();
        let mut decision = memory.heal(&drifted, RUNNING, policy(), start);
        for check in 1..3 {
            memory.healed(&decision);
            decision = memory.heal(&drifted, RUNNING, policy(), start + check * SECOND);
        }
        assert_eq!(decision.began_flapping.len(), 1, "{decision:?}");
        let text = format!("{decision:?}");
        assert!(
            text.contains("data.password: <sensitive> (changed)"),
            "{text}"
        );
        // Git's value of a Secret is never seen: a new revision counts as Git changing it.
        memory.healed(&decision);
        let decision = memory.heal(&drifted, HEAD, policy(), start + 3 * SECOND);
        assert_eq!(decision.stopped_flapping, ["Secret blog/db data.password"]);
        assert!(matches!(decision.action, HealAction::Heal(_)));
    }

    /// One drift check finding `drift` at `at`, and the heal it decides, succeeding.
    fn check_and_heal(memory: &mut Memory, drift: &DriftReport, at: Instant) -> HealDecision {
        let decision = memory.heal(drift, RUNNING, policy(), at);
        if matches!(decision.action, HealAction::Heal(_)) {
            memory.healed(&decision);
        }
        decision
    }

    fn heals(decision: &HealDecision) -> bool {
        matches!(decision.action, HealAction::Heal(_))
    }

    #[test]
    fn a_field_that_comes_back_after_every_heal_flaps_and_is_healed_after_a_growing_back_off() {
        let mut memory = Memory::default();
        let drifted = report(vec![scaled("10", "3")]);
        let start = Instant::now();
        // Drifts, is healed, comes back, is healed, comes back: flapping, reported once.
        assert!(heals(&check_and_heal(&mut memory, &drifted, start)));
        assert!(heals(&check_and_heal(
            &mut memory,
            &drifted,
            start + SECOND
        )));
        let decision = check_and_heal(&mut memory, &drifted, start + 2 * SECOND);
        assert_eq!(decision.began_flapping.len(), 1);
        assert!(
            decision.began_flapping[0].starts_with(&format!(
                "{REPLICAS} is changed back after every heal by `kubectl`: "
            )),
            "{decision:?}"
        );
        assert_eq!(
            decision.action,
            HealAction::Nothing,
            "not healed at once once flapping"
        );
        assert_eq!(decision.drifted, [REPLICAS_LINE]);
        assert_eq!((decision.drifted_objects, decision.objects_left), (1, 1));
        assert_eq!(
            decision.flapping,
            [format!(
                "{REPLICAS_LINE} (flapping: changed back 3 times after heals; next heal in 2s)"
            )]
        );
        // Healed again 2s after it was found back, then 4s, 8s...: never given up.
        let mut back = start + 2 * SECOND;
        for wait in [2u64, 4, 8, 16] {
            let waited = Duration::from_secs(wait);
            let decision = check_and_heal(&mut memory, &drifted, back + waited - SECOND);
            assert!(
                !heals(&decision) && decision.began_flapping.is_empty(),
                "{wait}"
            );
            let decision = check_and_heal(&mut memory, &drifted, back + waited);
            assert!(heals(&decision), "healed after {wait}s");
            assert!(decision.began_flapping.is_empty(), "reported once only");
            assert!(
                decision.flapping[0].ends_with("healed now)"),
                "{decision:?}"
            );
            // The next check finds it back again: the next wait starts.
            back += waited + SECOND;
            assert!(!heals(&check_and_heal(&mut memory, &drifted, back)));
        }
        // The back-off stops at an hour (or the heal interval, when longer).
        assert_eq!(flap_backoff(SECOND, 40), FLAP_BACKOFF_MAX);
        assert_eq!(flap_backoff(SECOND, 12), FLAP_BACKOFF_MAX);
        assert_eq!(flap_backoff(SECOND, 11), Duration::from_secs(2048));
        assert_eq!(
            flap_backoff(MINUTE, 6),
            FLAP_BACKOFF_MAX,
            "an hour, not 64 minutes"
        );
        assert_eq!(
            flap_backoff(Duration::from_secs(7200), 3),
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn a_flapping_field_stops_flapping_when_git_changes_it_or_after_a_quiet_window() {
        let drifted = report(vec![scaled("10", "3")]);
        let flapping = |start: Instant| {
            let mut memory = Memory::default();
            for i in 0..3 {
                check_and_heal(&mut memory, &drifted, start + i * SECOND);
            }
            assert!(!memory.flaps.may_heal(REPLICAS, start + 2 * SECOND));
            memory
        };
        let start = Instant::now();
        // Git now wants 5: healed at once, not flapping any more.
        let mut memory = flapping(start);
        let decision = check_and_heal(
            &mut memory,
            &report(vec![scaled("10", "5")]),
            start + 3 * SECOND,
        );
        assert_eq!(decision.stopped_flapping, [REPLICAS]);
        assert!(heals(&decision) && decision.flapping.is_empty());
        // Left alone for the quiet window (10 heal intervals): no longer flapping.
        let mut memory = flapping(start);
        let clean = report(Vec::new());
        let decision = check_and_heal(&mut memory, &clean, start + 5 * SECOND);
        assert!(decision.stopped_flapping.is_empty(), "not yet quiet");
        assert_eq!(decision.flapping.len(), 1, "still shown while it waits");
        let decision = check_and_heal(&mut memory, &clean, start + 12 * SECOND);
        assert_eq!(decision.stopped_flapping, [REPLICAS]);
        let decision = check_and_heal(&mut memory, &drifted, start + 13 * SECOND);
        assert!(
            heals(&decision),
            "a new drift after the quiet window is healed at once"
        );
    }

    #[test]
    fn drift_that_stays_unhealed_or_returns_once_does_not_flap() {
        let mut memory = Memory::default();
        let drifted = report(vec![scaled("10", "3")]);
        let now = Instant::now();
        // A heal that fails is never recorded as healed: no flapping however often it drifts.
        for _ in 0..5 {
            let decision = memory.heal(&drifted, RUNNING, policy(), now);
            assert!(heals(&decision) && decision.began_flapping.is_empty());
        }
        // Healed once, drifted again by someone once, then put back for good: not flapping.
        let decision = check_and_heal(&mut memory, &drifted, now);
        let decision2 = check_and_heal(&mut memory, &drifted, now);
        assert!(decision.began_flapping.is_empty() && decision2.began_flapping.is_empty());
        let clean = check_and_heal(&mut memory, &report(Vec::new()), now);
        assert_eq!(clean.action, HealAction::Nothing);
        assert!(memory.flaps.may_heal(REPLICAS, now));
        assert!(heals(&check_and_heal(&mut memory, &drifted, now)));
    }
}
