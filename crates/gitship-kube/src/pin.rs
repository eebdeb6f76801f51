//! The environment's pin: a revision a rollback (or `gitship pin`) fixed the environment at;
//! and its suspension (`gitship suspend`): the agent neither syncs nor heals.
//!
//! The pin is the key `pin.json` of the inventory ConfigMap, written with a merge patch under
//! the field manager `gitship-pin`, so the inventory's own server-side apply (which never
//! mentions the key) leaves it alone. While it is set, `deploy` refuses other revisions unless
//! forced, and the agent heals back to the pinned revision instead of syncing the branch. The
//! suspension is the key `suspend.json` beside it (field manager `gitship-suspend`); it stops
//! the agent only, `deploy` is not refused (as `flux suspend`).

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::KubeError;
use crate::inventory::{self, Inventory, configmap_name};
use crate::retry::RetryPolicy;
use gitship_foundation::model::Environment;

/// The inventory's key holding the pin.
pub(crate) const PIN_KEY: &str = "pin.json";
const FIELD_MANAGER: &str = "gitship-pin";
/// The inventory's key holding the suspension.
pub(crate) const SUSPEND_KEY: &str = "suspend.json";
const SUSPEND_MANAGER: &str = "gitship-suspend";

/// A suspended environment: the agent neither syncs nor heals it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub who: String,
    pub time: DateTime<Utc>,
    /// Why, as given to `gitship suspend --reason` (may be empty).
    #[serde(default)]
    pub reason: String,
}

/// The suspension as stored in an inventory ConfigMap's JSON. One that cannot be read still
/// suspends (the safe reading of "someone asked the agent to stop"), its reason saying so.
pub fn decode_suspension(configmap: &serde_json::Value) -> Option<Suspension> {
    let text = configmap
        .get("data")
        .and_then(|data| data.get(SUSPEND_KEY))
        .and_then(serde_json::Value::as_str)?;
    Some(
        serde_json::from_str(text).unwrap_or_else(|error| Suspension {
            who: "unknown".to_string(),
            time: DateTime::<Utc>::MIN_UTC,
            reason: format!("`{SUSPEND_KEY}` is unreadable ({error}); `gitship resume` removes it"),
        }),
    )
}

/// The environment's pin and suspension, from one read of the inventory ConfigMap.
pub async fn load_controls(
    client: &Client,
    environment: &Environment,
    retry: &RetryPolicy,
) -> Result<(Option<Pin>, Option<Suspension>), KubeError> {
    let Some(configmap) =
        inventory::load_configmap(client, &environment.name, &environment.namespace, retry).await?
    else {
        return Ok((None, None));
    };
    Ok((
        decode_for(&configmap, environment)?,
        decode_suspension(&configmap),
    ))
}

/// A pinned revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The full commit SHA.
    pub sha: String,
    pub who: String,
    pub time: DateTime<Utc>,
    /// Why: `rollback` or `pin`.
    pub reason: String,
}

/// The pin as stored in an inventory ConfigMap's JSON; `Err` when it is unreadable.
pub fn decode(configmap: &serde_json::Value) -> Result<Option<Pin>, String> {
    match configmap
        .get("data")
        .and_then(|data| data.get(PIN_KEY))
        .and_then(serde_json::Value::as_str)
    {
        None => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|error| format!("`{PIN_KEY}`: {error}")),
    }
}

/// The environment's pin, if any.
pub async fn load(
    client: &Client,
    environment: &Environment,
    retry: &RetryPolicy,
) -> Result<Option<Pin>, KubeError> {
    let Some(configmap) =
        inventory::load_configmap(client, &environment.name, &environment.namespace, retry).await?
    else {
        return Ok(None);
    };
    decode_for(&configmap, environment)
}

/// The environment's inventory and its pin, from one read of the inventory ConfigMap.
pub async fn load_with_inventory(
    client: &Client,
    environment: &Environment,
    retry: &RetryPolicy,
) -> Result<(Option<Inventory>, Option<Pin>), KubeError> {
    let Some(configmap) =
        inventory::load_configmap(client, &environment.name, &environment.namespace, retry).await?
    else {
        return Ok((None, None));
    };
    let inventory =
        inventory::decode(&configmap).map_err(|message| KubeError::CorruptInventory {
            name: configmap_name(&environment.name),
            message,
        })?;
    Ok((Some(inventory), decode_for(&configmap, environment)?))
}

/// [`decode`], its error as [`KubeError::CorruptPin`].
fn decode_for(
    configmap: &serde_json::Value,
    environment: &Environment,
) -> Result<Option<Pin>, KubeError> {
    decode(configmap).map_err(|message| KubeError::CorruptPin {
        name: configmap_name(&environment.name),
        environment: environment.name.clone(),
        message,
    })
}

/// Set (`Some`) or remove (`None`) the environment's pin. The environment must have been
/// deployed (its inventory exists).
pub async fn store(
    client: &Client,
    environment: &Environment,
    pin: Option<&Pin>,
    retry: &RetryPolicy,
) -> Result<(), KubeError> {
    let value = pin.map(|pin| serde_json::to_string_pretty(pin).unwrap_or_default());
    store_key(client, environment, PIN_KEY, FIELD_MANAGER, value, retry).await
}

/// Set (`Some`) or remove (`None`) the environment's suspension (its inventory must exist).
pub async fn store_suspension(
    client: &Client,
    environment: &Environment,
    suspension: Option<&Suspension>,
    retry: &RetryPolicy,
) -> Result<(), KubeError> {
    let value = suspension.map(|s| serde_json::to_string_pretty(s).unwrap_or_default());
    store_key(
        client,
        environment,
        SUSPEND_KEY,
        SUSPEND_MANAGER,
        value,
        retry,
    )
    .await
}

/// Merge-patch one key of the inventory ConfigMap under `manager` (`None` removes it).
async fn store_key(
    client: &Client,
    environment: &Environment,
    key: &str,
    manager: &str,
    value: Option<String>,
    retry: &RetryPolicy,
) -> Result<(), KubeError> {
    let name = configmap_name(&environment.name);
    let value = value.map_or(serde_json::Value::Null, serde_json::Value::String);
    let body = json!({"data": {key: value}});
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &environment.namespace);
    let params = PatchParams {
        field_manager: Some(manager.to_string()),
        ..PatchParams::default()
    };
    let patch = Patch::Merge(&body);
    retry
        .run(&name, || api.patch(&name, &params, &patch))
        .await
        .map_err(|source| KubeError::about(format!("ConfigMap {name}"), source))?;
    // The same key in the inventory's copy (server-side apply under the same manager: a key it
    // no longer sends is removed), so that a deleted inventory does not lose the pin.
    let copy = inventory::copy_name(&environment.name);
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": copy, "namespace": environment.namespace},
        "data": match &body["data"][key] {
            serde_json::Value::String(text) => json!({key: text}),
            _ => json!({}),
        },
    });
    let params = PatchParams::apply(manager).force();
    let patch = Patch::Apply(&body);
    retry
        .run(&copy, || api.patch(&copy, &params, &patch))
        .await
        .map(|_| ())
        .map_err(|source| KubeError::about(format!("ConfigMap {copy}"), source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_decode_from_the_inventory() {
        let pin = Pin {
            sha: "a".repeat(40),
            who: "ann@laptop".into(),
            time: Utc::now(),
            reason: "rollback".into(),
        };
        let configmap = json!({"data": {PIN_KEY: serde_json::to_string(&pin).unwrap()}});
        assert_eq!(decode(&configmap), Ok(Some(pin)));
        assert_eq!(decode(&json!({"data": {}})), Ok(None));
        assert!(decode(&json!({"data": {PIN_KEY: "{"}})).is_err());
    }

    #[test]
    fn suspensions_decode_and_an_unreadable_one_still_suspends() {
        let suspension = Suspension {
            who: "ann@laptop".into(),
            time: Utc::now(),
            reason: "incident 42".into(),
        };
        let configmap = json!({"data": {SUSPEND_KEY: serde_json::to_string(&suspension).unwrap()}});
        assert_eq!(decode_suspension(&configmap), Some(suspension));
        assert_eq!(decode_suspension(&json!({"data": {}})), None);
        let broken = decode_suspension(&json!({"data": {SUSPEND_KEY: "{"}}));
        assert!(broken.is_some_and(|s| s.reason.contains("unreadable")));
    }
}
