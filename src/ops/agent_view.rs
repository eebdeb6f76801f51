//! The agent's view of its environment, for its status page and `GET /status/objects`: every
//! object of the running revision with its health and children ([`gitship_kube::tree`]), its
//! sync state from the heal's drift report (the drifted fields' lines, as `drift` prints them:
//! a Secret's values read `<sensitive>`), and the last deploy records of the inventory.
//!
//! The leader computes it at each heal, after the drift check ([`environment_view`]); it lives
//! in the agent's memory only, never in the published [`Status`](crate::ops::agent_status::Status)
//! (a ConfigMap that must stay small). It is bounded whatever the environment holds: at most
//! [`MAX_OBJECTS`] objects (problems first), [`MAX_DRIFT_LINES`] lines per object,
//! [`HISTORY`] records, and the tree's caps on children; what is left out is counted.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use kube::Client;
use serde::{Deserialize, Serialize};

use crate::plan::{DriftKind, DriftReport, Drifted};
use gitship_foundation::model::{Environment, ObjectId};
use gitship_kube::KubeError;
use gitship_kube::inventory::{DeployOutcome, DeployRecord, RecordSource};
use gitship_kube::retry::RetryPolicy;
use gitship_kube::tree::{self, HealthState, ObjectNode, clip};

/// The most objects the view holds.
pub const MAX_OBJECTS: usize = 500;
/// The most drift lines kept per object.
pub const MAX_DRIFT_LINES: usize = 20;
/// The deploy records kept, newest first.
pub const HISTORY: usize = 20;
/// The most heal lines kept per record.
const MAX_HEALED_LINES: usize = 10;

/// Whether an object matches Git.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncStatus {
    Synced,
    /// Drifted (fields changed) or deleted: a deploy of the running revision would change it.
    OutOfSync,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Synced => "Synced",
            SyncStatus::OutOfSync => "OutOfSync",
        }
    }
}

/// One object of the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectView {
    #[serde(flatten)]
    pub node: ObjectNode,
    pub sync: SyncStatus,
    /// What drifted, one [`Drifted::detail`] per field (`spec.replicas: 10 -> 2 (changed by
    /// kubectl)`), or [`crate::plan::DELETED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// Lines left out beyond [`MAX_DRIFT_LINES`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_drift: usize,
}

impl ObjectView {
    /// Whether the object needs a look: not healthy, or out of sync.
    pub fn is_problem(&self) -> bool {
        self.node.health != HealthState::Healthy || self.sync != SyncStatus::Synced
    }
}

/// One deploy record, as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub outcome: DeployOutcome,
    pub source: RecordSource,
    pub who: String,
    /// `3 created, 1 configured, 20 unchanged`.
    pub summary: String,
    /// For a heal: what it put back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub healed: Vec<String>,
}

impl HistoryEntry {
    fn of(record: &DeployRecord) -> HistoryEntry {
        HistoryEntry {
            time: record.time,
            sha: record.sha.as_deref().map(clip),
            subject: record.subject.as_deref().map(clip),
            author: record.author.as_deref().map(clip),
            outcome: record.outcome,
            source: record.source,
            who: clip(&record.who),
            summary: clip(&record.summary),
            healed: record
                .healed
                .iter()
                .take(MAX_HEALED_LINES)
                .map(|line| clip(line))
                .collect(),
        }
    }
}

/// The environment as the leader last checked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentView {
    /// When it was computed (after the heal's drift check).
    pub time: DateTime<Utc>,
    /// The revision compared (the one the cluster runs).
    pub revision: String,
    /// Problems first (not healthy, or out of sync), then by kind, namespace and name.
    pub objects: Vec<ObjectView>,
    /// Objects left out beyond [`MAX_OBJECTS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_objects: usize,
    /// How many objects, the left out included, are in each health state (`Healthy`, ...) and
    /// out of sync (`OutOfSync`).
    pub counts: BTreeMap<String, usize>,
    /// The newest deploy records first.
    pub history: Vec<HistoryEntry>,
    /// What could not be read, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// The view of `environment` after a drift check that found `report`: the inventory read once
/// (objects and history), the objects' tree read with a few LISTs ([`tree::read`]).
pub async fn environment_view(
    client: &Client,
    environment: &Environment,
    report: &DriftReport,
) -> Result<EnvironmentView, KubeError> {
    let retry = RetryPolicy::default();
    let inventory =
        gitship_kube::inventory::load(client, &environment.name, &environment.namespace, &retry)
            .await?
            .unwrap_or_default();
    let live = tree::read(client, &inventory.objects, &retry).await;
    let history: Vec<&DeployRecord> = inventory.history.iter().take(HISTORY).collect();
    Ok(assemble(live, report, &history, Utc::now()))
}

/// The view of the tree `live` with the drift of `report` and the records `history` (newest
/// first), at `time`.
pub fn assemble(
    live: tree::LiveTree,
    report: &DriftReport,
    history: &[&DeployRecord],
    time: DateTime<Utc>,
) -> EnvironmentView {
    let mut drifted: HashMap<ObjectId, (String, DriftKind, Vec<String>)> = report
        .kubernetes
        .iter()
        .map(|drift| {
            let id = ObjectId {
                group: gitship_foundation::model::group_of(&drift.object.api_version).to_string(),
                kind: drift.object.kind.clone(),
                namespace: drift.object.namespace.clone(),
                name: drift.object.name.clone(),
            };
            let lines = drift.drifted().iter().map(Drifted::detail).collect();
            (id, (drift.object.api_version.clone(), drift.kind, lines))
        })
        .collect();
    let mut objects: Vec<ObjectView> = live
        .objects
        .into_iter()
        .map(|node| {
            let drift = drifted
                .remove(&node.id())
                .map(|(_, kind, lines)| (kind, lines));
            object_view(node, drift)
        })
        .collect();
    // Drift of objects the inventory does not list (it was lost): shown all the same.
    for (id, (api_version, kind, lines)) in drifted {
        let node = ObjectNode::leaf(
            api_version,
            id.kind,
            id.namespace,
            id.name,
            HealthState::Healthy,
        );
        objects.push(object_view(node, Some((kind, lines))));
    }
    objects.sort_by(|a, b| {
        (
            !a.is_problem(),
            &a.node.kind,
            &a.node.namespace,
            &a.node.name,
        )
            .cmp(&(
                !b.is_problem(),
                &b.node.kind,
                &b.node.namespace,
                &b.node.name,
            ))
    });
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for object in &objects {
        let health = counts
            .entry(object.node.health.as_str().to_string())
            .or_default();
        *health = health.saturating_add(1);
        if object.sync == SyncStatus::OutOfSync {
            let out_of_sync = counts
                .entry(SyncStatus::OutOfSync.as_str().to_string())
                .or_default();
            *out_of_sync = out_of_sync.saturating_add(1);
        }
    }
    let more_objects = objects.len().saturating_sub(MAX_OBJECTS);
    objects.truncate(MAX_OBJECTS);
    EnvironmentView {
        time,
        revision: report.git.sha.clone(),
        objects,
        more_objects,
        counts,
        history: history
            .iter()
            .map(|record| HistoryEntry::of(record))
            .collect(),
        notes: live.notes,
    }
}

/// `node` with its drift: a deleted object is missing, a drifted one out of sync.
fn object_view(mut node: ObjectNode, drift: Option<(DriftKind, Vec<String>)>) -> ObjectView {
    let Some((kind, lines)) = drift else {
        return ObjectView {
            node,
            sync: SyncStatus::Synced,
            drift: Vec::new(),
            more_drift: 0,
        };
    };
    if kind == DriftKind::Deleted {
        node.health = HealthState::Missing;
        node.reason = Some("not in the cluster".to_string());
    }
    let more_drift = lines.len().saturating_sub(MAX_DRIFT_LINES);
    ObjectView {
        node,
        sync: SyncStatus::OutOfSync,
        drift: lines
            .iter()
            .take(MAX_DRIFT_LINES)
            .map(|line| clip(line))
            .collect(),
        more_drift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FieldChange, GitInfo, ObjectDrift, ObjectRef};
    use gitship_kube::inventory::RecordCounts;

    fn node(kind: &str, name: &str, health: HealthState) -> ObjectNode {
        let api_version = if kind == "Deployment" {
            "apps/v1"
        } else {
            "v1"
        };
        ObjectNode::leaf(
            api_version.to_string(),
            kind.to_string(),
            Some("web".to_string()),
            name.to_string(),
            health,
        )
    }

    fn drift(
        api_version: &str,
        kind: &str,
        name: &str,
        drift: DriftKind,
        fields: Vec<FieldChange>,
    ) -> ObjectDrift {
        ObjectDrift {
            object: ObjectRef {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                namespace: Some("web".to_string()),
                name: name.to_string(),
            },
            kind: drift,
            fields,
        }
    }

    fn report(kubernetes: Vec<ObjectDrift>) -> DriftReport {
        let git = GitInfo {
            sha: "0123456789abcdef".to_string(),
            dirty: false,
        };
        let mut report = DriftReport::new("staging", git, false);
        report.kubernetes = kubernetes;
        report
    }

    fn record(index: usize) -> DeployRecord {
        DeployRecord {
            number: 0,
            error: None,
            repeats: 1,
            manifests: None,
            hooks: Vec::new(),
            rev: None,
            sha: Some(format!("{index:040x}")),
            time: Utc::now(),
            who: "agent".to_string(),
            outcome: DeployOutcome::Succeeded,
            summary: "1 created".to_string(),
            source: RecordSource::Agent,
            healed: (0..30).map(|line| format!("line {line}")).collect(),
            subject: Some("one".to_string()),
            author: None,
            started: None,
            duration_ms: None,
            counts: RecordCounts::default(),
            terraform: None,
            images: Vec::new(),
            ci_url: None,
        }
    }

    #[test]
    fn drift_makes_objects_out_of_sync_or_missing_and_problems_come_first() {
        let live = tree::LiveTree {
            objects: vec![
                node("ConfigMap", "a-fine", HealthState::Healthy),
                node("Secret", "credentials", HealthState::Healthy),
                node("ConfigMap", "site", HealthState::Healthy),
                node("Deployment", "web", HealthState::Healthy),
            ],
            notes: vec!["cannot list pods in web: forbidden".to_string()],
        };
        let mut secret = FieldChange::new(
            "data.password",
            Some("hunter2".into()),
            Some("s3cret".into()),
        );
        secret.sensitive = true;
        let mut replicas = FieldChange::new("spec.replicas", Some("10".into()), Some("2".into()));
        replicas.manager = Some("kubectl".to_string());
        let report = report(vec![
            drift("v1", "ConfigMap", "site", DriftKind::Deleted, Vec::new()),
            drift(
                "v1",
                "Secret",
                "credentials",
                DriftKind::Modified,
                vec![secret],
            ),
            drift(
                "apps/v1",
                "Deployment",
                "web",
                DriftKind::Modified,
                vec![replicas],
            ),
        ]);
        let records: Vec<DeployRecord> = (0..3).map(record).collect();
        let history: Vec<&DeployRecord> = records.iter().collect();
        let view = assemble(live, &report, &history, Utc::now());
        let names: Vec<&str> = view.objects.iter().map(|o| o.node.name.as_str()).collect();
        assert_eq!(names, ["site", "web", "credentials", "a-fine"]);
        let site = &view.objects[0];
        assert_eq!(
            (site.node.health, site.sync),
            (HealthState::Missing, SyncStatus::OutOfSync)
        );
        assert_eq!(site.drift, [crate::plan::DELETED]);
        assert_eq!(
            view.objects[1].drift,
            ["spec.replicas: 10 -> 2 (changed by kubectl)"]
        );
        let secret = &view.objects[2];
        assert_eq!(secret.drift, ["data.password: <sensitive> (changed)"]);
        let json = serde_json::to_string(&view).expect("JSON");
        assert!(
            !json.contains("hunter2") && !json.contains("s3cret"),
            "{json}"
        );
        assert_eq!(view.objects[3].sync, SyncStatus::Synced);
        assert_eq!(view.counts["Healthy"], 3);
        assert_eq!(view.counts["Missing"], 1);
        assert_eq!(view.counts["OutOfSync"], 3);
        assert_eq!(view.notes, ["cannot list pods in web: forbidden"]);
        assert_eq!(view.revision, "0123456789abcdef");
        assert_eq!(view.history.len(), 3);
        assert_eq!(view.history[0].healed.len(), MAX_HEALED_LINES);
    }

    #[test]
    fn a_thousand_objects_and_long_drift_are_capped() {
        let live = tree::LiveTree {
            objects: (0..1000)
                .map(|index| node("ConfigMap", &format!("c{index:04}"), HealthState::Healthy))
                .collect(),
            notes: Vec::new(),
        };
        let fields = (0..50)
            .map(|index| FieldChange::new(format!("data.k{index}"), Some("x".repeat(1000)), None))
            .collect();
        let report = report(vec![drift(
            "v1",
            "ConfigMap",
            "c0999",
            DriftKind::Modified,
            fields,
        )]);
        let view = assemble(live, &report, &[], Utc::now());
        assert_eq!(view.objects.len(), MAX_OBJECTS);
        assert_eq!(view.more_objects, 1000 - MAX_OBJECTS);
        assert_eq!(view.counts["Healthy"], 1000);
        // The drifted one is kept, first, with its lines capped and clipped.
        let first = &view.objects[0];
        assert_eq!(first.node.name, "c0999");
        assert_eq!(first.drift.len(), MAX_DRIFT_LINES);
        assert_eq!(first.more_drift, 50 - MAX_DRIFT_LINES);
        assert!(
            first
                .drift
                .iter()
                .all(|line| line.chars().count() <= tree::MAX_TEXT + 1)
        );
    }
}
