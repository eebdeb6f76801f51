//! The environment's pin: a revision a rollback (or `gitship pin`) fixed the environment at.
//!
//! It is the key `pin.json` of the inventory ConfigMap, written with a merge patch under the
//! field manager `gitship-pin`, so the inventory's own server-side apply (which never mentions
//! the key) leaves it alone. While it is set, `deploy` refuses other revisions unless forced,
//! and the agent heals back to the pinned revision instead of syncing the branch.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::kube::KubeError;
use crate::kube::inventory::{self, Inventory, configmap_name};
use crate::kube::retry::RetryPolicy;
use crate::model::Environment;

/// The inventory's key holding the pin.
pub const PIN_KEY: &str = "pin.json";
const FIELD_MANAGER: &str = "gitship-pin";

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
    let name = configmap_name(&environment.name);
    let value = match pin {
        Some(pin) => json!(serde_json::to_string_pretty(pin).unwrap_or_default()),
        None => serde_json::Value::Null,
    };
    let body = json!({"data": {PIN_KEY: value}});
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &environment.namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let patch = Patch::Merge(&body);
    retry
        .run(&name, || api.patch(&name, &params, &patch))
        .await
        .map(|_| ())
        .map_err(|source| KubeError::about(format!("ConfigMap {name}"), source))
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
}
