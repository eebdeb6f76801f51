//! The status the agent publishes (served as its `/status`, written to the ConfigMap
//! `gitship-<env>.agent`) and `gitship status` reads back from the cluster. The types live in
//! the operations layer because both the agent (above) and `ops::status` use them.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use gitship_foundation::model::Environment;
use gitship_kube::KubeError;
use gitship_kube::retry::RetryPolicy;

pub use crate::git::clone::Revision;

/// The state of the environment as the agent last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncState {
    /// Started; nothing fetched or applied yet.
    Starting,
    /// Another replica leads; this one waits to take over.
    Follower,
    /// The cluster runs the branch's newest commit.
    Synced,
    /// A sync is being applied.
    Progressing,
    /// The last sync applied, but workloads did not become healthy.
    Degraded,
    /// The newest commit cannot be applied (render, validation, Terraform or cluster error); the
    /// cluster runs the last good revision.
    Error,
    /// The newest commit's images are not in the registry yet.
    WaitingForImages,
    /// A rollback pinned the environment; the agent heals but does not sync.
    Pinned,
    /// `gitship suspend`: the agent neither syncs nor heals until `gitship resume`.
    Suspended,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Starting => "starting",
            SyncState::Follower => "follower",
            SyncState::Synced => "synced",
            SyncState::Progressing => "progressing",
            SyncState::Degraded => "degraded",
            SyncState::Error => "error",
            SyncState::WaitingForImages => "waiting-for-images",
            SyncState::Pinned => "pinned",
            SyncState::Suspended => "suspended",
        }
    }
}

/// The last heal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heal {
    pub time: DateTime<Utc>,
    /// What was put back, one [`crate::plan::Drifted::line`] each: `Deployment web/app
    /// spec.replicas: 10 -> 3 (changed by kubectl)`, `ConfigMap web/site (deleted: ...)`.
    pub healed: Vec<String>,
}

/// What `/status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub environment: String,
    /// The Git source, without credentials.
    pub source: String,
    pub branch: String,
    pub state: SyncState,
    /// This replica leads (reconciles).
    pub leader: bool,
    /// This replica's identity in the leader Lease.
    pub identity: String,
    /// Where this replica serves HTTP for the other replicas (`http://10.1.2.3:8080`): a
    /// follower forwards webhooks there and shows the leader's status from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Who leads, as the leader Lease says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_identity: Option<String>,
    /// The revision the cluster runs (last applied by this agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    /// The revision a rollback (or `gitship pin`) pinned the environment at: the agent heals
    /// to it and does not sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<Revision>,
    /// The branch's newest commit, as last fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_revision: Option<Revision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<DateTime<Utc>>,
    /// The last error (render errors name `file:line`); cleared by the next good sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heal: Option<Heal>,
    /// Terraform changes made outside Terraform, or planned and not applied
    /// (`agent.terraform: plan`): one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terraform_drift: Vec<String>,
    /// Images the newest commit needs that the registry does not have yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for_images: Vec<String>,
    /// Fields another manager changes back after every heal: healed again only after a
    /// back-off, until Git changes them or they stay put for a while. One line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flapping: Vec<String>,
    /// What drifted and was not put back by the last heal (a flapping field in its back-off,
    /// or `agent.self_heal: false`). One line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drifted: Vec<String>,
    /// `gitship suspend`: by whom, when and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
    /// The newest `gitship sync` request the leader has acted on (its time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_request_handled: Option<DateTime<Utc>>,
}

impl Status {
    pub fn new(environment: &str, source: &str, branch: &str, identity: &str) -> Status {
        Status {
            environment: environment.to_string(),
            source: source.to_string(),
            branch: branch.to_string(),
            state: SyncState::Starting,
            leader: false,
            identity: identity.to_string(),
            address: None,
            leader_identity: None,
            revision: None,
            pinned: None,
            git_revision: None,
            last_sync: None,
            last_error: None,
            last_heal: None,
            terraform_drift: Vec::new(),
            waiting_for_images: Vec::new(),
            flapping: Vec::new(),
            drifted: Vec::new(),
            suspended: None,
            sync_request_handled: None,
        }
    }
}

/// What the agent's status ConfigMap (`gitship-<env>.agent`) holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// The leader's status, as it last published it (`None`: never, or unreadable).
    pub status: Option<Status>,
    /// The newest sync request ([`gitship_kube::sync_request`]).
    pub sync_requested: Option<DateTime<Utc>>,
}

/// Read the agent's status ConfigMap: what followers, `sync` and `status --wait` read of the
/// leader. An absent ConfigMap publishes nothing.
pub async fn load_published(
    client: &Client,
    environment: &Environment,
) -> Result<Published, KubeError> {
    let name = gitship_foundation::model::agent_status_name(&environment.name);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &environment.namespace);
    let found = RetryPolicy::default()
        .run(&name, || api.get_opt(&name))
        .await
        .map_err(|source| KubeError::about(format!("ConfigMap {name}"), source))?;
    let Some(configmap) = found else {
        return Ok(Published::default());
    };
    let value = serde_json::to_value(&configmap).unwrap_or_default();
    Ok(Published {
        status: parse_agent_status(&value).ok().flatten(),
        sync_requested: gitship_kube::sync_request::decode(&value),
    })
}

/// The key of the agent's status ConfigMap that holds [`Status`] as JSON.
pub const AGENT_STATUS_KEY: &str = "status.json";

/// The agent's [`Status`] from its ConfigMap (as JSON); `Ok(None)` when the key is missing.
pub fn parse_agent_status(configmap: &Value) -> Result<Option<Status>, String> {
    let Some(text) = configmap
        .pointer("/data")
        .and_then(|data| data.get(AGENT_STATUS_KEY))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|error| format!("`{AGENT_STATUS_KEY}`: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_agent_status_is_read_from_its_configmap() {
        let mut published = Status::new("staging", "https://example.com/r.git", "main", "pod-a");
        published.state = SyncState::Error;
        published.last_error = Some("config/staging.yaml:3: bad".into());
        let configmap = json!({"data": {
            AGENT_STATUS_KEY: serde_json::to_string(&published).unwrap()}});
        assert_eq!(parse_agent_status(&configmap), Ok(Some(published)));
        assert_eq!(parse_agent_status(&json!({"data": {}})), Ok(None));
        let corrupt = json!({"data": {AGENT_STATUS_KEY: "{"}});
        assert!(
            parse_agent_status(&corrupt)
                .unwrap_err()
                .contains("status.json")
        );
    }
}
