//! Asking the agent's leader for a sync: the annotation [`ANNOTATION`] of the agent's status
//! ConfigMap (`gitship-<env>.agent`) holds the time of the newest request. `gitship sync` and
//! `gitship resume` write it; the leader reads it at every wake of its loop and answers with a
//! sync (and a heal), then publishes the request's time as `syncRequestHandled` in its status.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::KubeError;
use crate::retry::RetryPolicy;
use gitship_foundation::model::Environment;

/// The annotation holding the time (RFC 3339) of the newest sync request.
pub(crate) const ANNOTATION: &str = "gitship.dev/sync-requested";

/// The field manager of sync requests.
const FIELD_MANAGER: &str = "gitship-sync";

/// Ask the leader for a sync: annotate the status ConfigMap (created when the agent has not
/// published yet) with the time of the request; the time written.
pub async fn request(
    client: &Client,
    environment: &Environment,
) -> Result<DateTime<Utc>, KubeError> {
    let name = gitship_foundation::model::agent_status_name(&environment.name);
    // The time as written (microseconds), so that the leader's answer compares equal to it.
    let written = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let now = DateTime::parse_from_rfc3339(&written)
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now());
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": environment.namespace,
            "annotations": {ANNOTATION: written},
        },
    });
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &environment.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    RetryPolicy::default()
        .run(&name, || api.patch(&name, &params, &patch))
        .await
        .map_err(|source| KubeError::about(format!("ConfigMap {name}"), source))?;
    Ok(now)
}

/// The newest request in the status ConfigMap (as JSON); an unreadable time counts as none.
pub fn decode(configmap: &serde_json::Value) -> Option<DateTime<Utc>> {
    configmap
        .pointer("/metadata/annotations")
        .and_then(|annotations| annotations.get(ANNOTATION))
        .and_then(serde_json::Value::as_str)
        .and_then(|time| DateTime::parse_from_rfc3339(time).ok())
        .map(|time| time.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_decode_from_the_annotation() {
        let configmap =
            json!({"metadata": {"annotations": {ANNOTATION: "2026-12-05T10:00:00.000001Z"}}});
        assert_eq!(
            decode(&configmap).map(|t| t.to_rfc3339()),
            Some("2026-12-05T10:00:00.000001+00:00".to_string())
        );
        assert_eq!(
            decode(&json!({"metadata": {"annotations": {ANNOTATION: "soon"}}})),
            None
        );
        assert_eq!(decode(&json!({"metadata": {}})), None);
    }
}
