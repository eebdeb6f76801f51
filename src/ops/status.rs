//! `status`: what the cluster says about an environment, read-only.
//!
//! The inventory (how many objects gitship owns there, the last deploys), the deploy lock
//! (`Lease gitship-<env>`: who deploys right now), and the agent (its leader `Lease
//! gitship-<env>.agent` and the status it publishes in `ConfigMap gitship-<env>.agent`). Nothing
//! is written, not even the sandbox's state.

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use anyhow::Result;

use crate::ops::agent_status::{Status, parse_agent_status};
use crate::ops::session::Session;
use gitship_foundation::diagnostics::user_error;
use gitship_foundation::model::{agent_lease_name, agent_status_name};
use gitship_kube::KubeError;
use gitship_kube::inventory::DeployRecord;
use gitship_kube::lock::{LeaseState, lease_state};
use gitship_kube::retry::RetryPolicy;

/// How many deploy records the report shows (newest first).
pub const HISTORY_SHOWN: usize = 5;

/// Version of [`StatusReport`]'s JSON (`status -o json`).
pub const FORMAT_VERSION: u32 = 1;

/// What `gitship status ENV` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub environment: String,
    pub namespace: String,
    /// The cluster is the sandbox (kubesim).
    pub sandbox: bool,
    /// The inventory exists: gitship deployed this environment at least once.
    pub deployed: bool,
    /// How many objects the inventory lists.
    pub objects: usize,
    /// The last deploys, newest first (at most [`HISTORY_SHOWN`]).
    pub history: Vec<DeployRecord>,
    /// The deploy lock, when someone holds it.
    pub lock: Option<LockStatus>,
    /// The agent, when its leader Lease or its status ConfigMap exists.
    pub agent: Option<AgentStatus>,
    /// The revision a rollback or `gitship pin` fixed the environment at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<gitship_kube::pin::Pin>,
    /// The repository's `HEAD` (what Git says the environment should run).
    pub git: String,
}

/// The deploy lock's holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockStatus {
    pub holder: String,
    /// When the holder last renewed it.
    pub renewed: Option<DateTime<Utc>>,
    /// Not renewed within its duration: the holder is gone; the next deploy takes it over.
    pub expired: bool,
}

/// The agent as the cluster shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The replica that leads, by the leader Lease (`None`: no Lease, or nobody holds it).
    pub leader: Option<String>,
    /// When the leader last renewed the Lease.
    pub renewed: Option<DateTime<Utc>>,
    /// The leader did not renew in time (no agent runs, or it is stuck).
    pub expired: bool,
    /// What the agent last published; `None` when it has not (yet), or it is unreadable.
    pub status: Option<Status>,
}

/// Read the environment's inventory, deploy lock and agent from its cluster.
pub async fn status(session: &Session) -> Result<StatusReport> {
    let connection = session.connect_announced().await?;
    let environment = session.environment();
    let retry = RetryPolicy::default();
    let client = &connection.client;
    let namespace = environment.namespace.as_str();

    let (inventory, pin) = session.inventory_and_pin(&connection).await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let now = Utc::now();
    let lock = get_json(
        &leases,
        &gitship_kube::lock::lease_name(&environment.name),
        "Lease",
        namespace,
        &retry,
    )
    .await?
    .and_then(|lease| lock_status(&lease, now));

    let leader_lease = get_json(
        &leases,
        &agent_lease_name(&environment.name),
        "Lease",
        namespace,
        &retry,
    )
    .await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let status_name = agent_status_name(&environment.name);
    let status_configmap =
        get_json(&configmaps, &status_name, "ConfigMap", namespace, &retry).await?;
    let agent_status = status_configmap.as_ref().and_then(|configmap| {
        match parse_agent_status(configmap) {
            Ok(status) => status,
            Err(message) => {
                session.printer.warn(&format!(
                    "the agent's status in `ConfigMap {namespace}/{status_name}` is unreadable: {message}"
                ));
                None
            }
        }
    });
    let agent = (leader_lease.is_some() || status_configmap.is_some()).then(|| {
        let lock = leader_lease
            .as_ref()
            .and_then(|lease| lock_status(lease, now));
        AgentStatus {
            leader: lock.as_ref().map(|lock| lock.holder.clone()),
            renewed: lock.as_ref().and_then(|lock| lock.renewed),
            expired: lock.as_ref().is_none_or(|lock| lock.expired),
            status: agent_status,
        }
    });

    let (deployed, objects, history) = match inventory {
        Some(inventory) => (
            true,
            inventory.objects.len(),
            inventory.history.into_iter().take(HISTORY_SHOWN).collect(),
        ),
        None => (false, 0, Vec::new()),
    };
    Ok(StatusReport {
        format_version: FORMAT_VERSION,
        environment: environment.name.clone(),
        namespace: environment.namespace.clone(),
        sandbox: session.sandbox,
        deployed,
        objects,
        history,
        lock,
        agent,
        pin,
        git: session.git.sha.clone(),
    })
}

/// One object as JSON, `None` when it does not exist.
async fn get_json<K>(
    api: &Api<K>,
    name: &str,
    kind: &str,
    namespace: &str,
    retry: &RetryPolicy,
) -> Result<Option<Value>>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Serialize,
{
    let found = retry
        .run(name, || api.get_opt(name))
        .await
        .map_err(|source| {
            user_error(KubeError::Api {
                object: format!("{kind} {namespace}/{name}"),
                message: gitship_kube::error_message(&source),
                source,
            })
        })?;
    Ok(found.map(|object| serde_json::to_value(object).unwrap_or(Value::Null)))
}

/// Who holds a Lease (as JSON) and since when it was renewed; `None` when nobody does.
pub fn lock_status(lease: &Value, now: DateTime<Utc>) -> Option<LockStatus> {
    let renewed = lease
        .pointer("/spec/renewTime")
        .or_else(|| lease.pointer("/spec/acquireTime"))
        .and_then(Value::as_str)
        .and_then(|time| DateTime::parse_from_rfc3339(time).ok())
        .map(|time| time.with_timezone(&Utc));
    // No holder is ever called "": `lease_state` never answers `Ours` for a held Lease.
    match lease_state(lease, "", now) {
        LeaseState::Free | LeaseState::Ours => None,
        LeaseState::Held { holder } => Some(LockStatus {
            holder,
            renewed,
            expired: false,
        }),
        LeaseState::Expired { holder } => Some(LockStatus {
            holder,
            renewed,
            expired: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_lease_is_held_expired_or_free() {
        let now = Utc::now();
        let renewed = now - chrono::TimeDelta::seconds(10);
        let lease = |holder: &str, duration: i64| {
            json!({"spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                "renewTime": renewed.to_rfc3339()}})
        };
        let held = lock_status(&lease("ci 1234", 30), now).unwrap();
        assert_eq!(held.holder, "ci 1234");
        assert!(!held.expired);
        assert_eq!(
            held.renewed.map(|t| t.timestamp()),
            Some(renewed.timestamp())
        );
        assert!(lock_status(&lease("ci 1234", 5), now).unwrap().expired);
        assert_eq!(lock_status(&lease("", 30), now), None);
        assert_eq!(lock_status(&json!({"spec": {}}), now), None);
    }
}
