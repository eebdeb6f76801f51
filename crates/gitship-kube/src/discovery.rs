//! API discovery: which resource (plural) and scope serve an `apiVersion`/`kind`.
//!
//! One request per group/version (`GET /api/v1`, `GET /apis/<group>/<version>`), cached for the
//! run. A group/version the cluster does not serve (404) is remembered as empty, so an unknown
//! kind costs one request. After applying CRDs, [`Resources::forget`] drops the entry of their
//! group/version so the new kinds are found.

use std::collections::HashMap;
use std::sync::Arc;

use kube::Client;
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use tokio::sync::Mutex;

use crate::retry::{RetryPolicy, status_code};

/// A resolved kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

type Entries = Arc<Vec<(ApiResource, ApiCapabilities)>>;

/// The per-run discovery cache.
#[derive(Debug, Default)]
pub struct Resources {
    by_group_version: Mutex<HashMap<String, Entries>>,
}

impl Resources {
    pub fn new() -> Self {
        Resources::default()
    }

    /// The resource for `api_version`/`kind`; `Ok(None)` when the cluster does not serve it.
    pub async fn resolve(
        &self,
        client: &Client,
        retry: &RetryPolicy,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<Resolved>, kube::Error> {
        let entries = self.group_version(client, retry, api_version).await?;
        Ok(find_kind(&entries, kind))
    }

    /// Drop the cached entry of `api_version` (after its CRD was applied).
    pub async fn forget(&self, api_version: &str) {
        self.by_group_version.lock().await.remove(api_version);
    }

    async fn group_version(
        &self,
        client: &Client,
        retry: &RetryPolicy,
        api_version: &str,
    ) -> Result<Entries, kube::Error> {
        // Holding the lock across the request serialises discovery, which also avoids fetching
        // the same group/version many times when a wave resolves concurrently.
        let mut cache = self.by_group_version.lock().await;
        if let Some(entries) = cache.get(api_version) {
            return Ok(entries.clone());
        }
        let entries: Entries = match api_version.parse::<GroupVersion>() {
            Err(_) => Arc::new(Vec::new()),
            Ok(group_version) => {
                let fetched = retry
                    .run(api_version, || {
                        kube::discovery::oneshot::pinned_group(client, &group_version)
                    })
                    .await;
                match fetched {
                    Ok(group) => Arc::new(group.versioned_resources(&group_version.version)),
                    Err(error) if status_code(&error) == Some(404) => Arc::new(Vec::new()),
                    Err(error) => return Err(error),
                }
            }
        };
        cache.insert(api_version.to_string(), entries.clone());
        Ok(entries)
    }
}

fn find_kind(entries: &[(ApiResource, ApiCapabilities)], kind: &str) -> Option<Resolved> {
    entries
        .iter()
        .find(|(resource, _)| resource.kind == kind && !resource.plural.contains('/'))
        .map(|(resource, capabilities)| Resolved {
            resource: resource.clone(),
            namespaced: capabilities.scope == Scope::Namespaced,
        })
}

/// The (group, kind) pairs and apiVersions a CRD object defines, from its JSON.
pub(crate) fn crd_defines(crd: &serde_json::Value) -> Vec<(String, String)> {
    let spec = crd.get("spec");
    let group = spec.and_then(|s| s.get("group")).and_then(|g| g.as_str());
    let kind = spec
        .and_then(|s| s.pointer("/names/kind"))
        .and_then(|k| k.as_str());
    let (Some(group), Some(kind)) = (group, kind) else {
        return Vec::new();
    };
    spec.and_then(|s| s.get("versions"))
        .and_then(|v| v.as_array())
        .map(|versions| {
            versions
                .iter()
                .filter_map(|v| v.get("name").and_then(|n| n.as_str()))
                .map(|version| (format!("{group}/{version}"), kind.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crd_kinds_are_listed_per_version() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"},
                     "scope": "Namespaced", "versions": [{"name": "v1"}, {"name": "v1beta1"}]}});
        assert_eq!(
            crd_defines(&crd),
            vec![
                ("example.com/v1".to_string(), "Widget".to_string()),
                ("example.com/v1beta1".into(), "Widget".into())
            ]
        );
        assert!(crd_defines(&json!({"spec": {}})).is_empty());
    }

    #[test]
    fn subresources_are_not_kinds() {
        let scale = ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: "Scale".into(),
            plural: "deployments/scale".into(),
        };
        let deployment = ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
        };
        let capabilities = ApiCapabilities {
            scope: Scope::Namespaced,
            subresources: vec![],
            operations: vec![],
        };
        let entries = vec![
            (scale, capabilities.clone()),
            (deployment.clone(), capabilities),
        ];
        assert_eq!(
            find_kind(&entries, "Deployment").unwrap().resource,
            deployment
        );
        assert!(find_kind(&entries, "Scale").is_none());
    }
}
