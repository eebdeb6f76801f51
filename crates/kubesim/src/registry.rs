//! The resource registry: the built-in API discovery documents (copied byte-for-byte from
//! kubernetes/kubernetes `api/discovery/`, see `data/discovery`), the resources they describe,
//! the resources that CustomResourceDefinitions add, and the discovery/OpenAPI documents served
//! from them. Only group/versions with a resource list are advertised in `/apis`, because
//! kubectl fails on a listed group/version it cannot fetch.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::OnceLock;

macro_rules! documents {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../data/discovery/", $name)))),*]
    };
}

const DOCUMENTS: &[(&str, &str)] = documents![
    "api.json",
    "api__v1.json",
    "apis.json",
    "apis__apiextensions.k8s.io__v1.json",
    "apis__apps.json",
    "apis__apps__v1.json",
    "apis__autoscaling__v1.json",
    "apis__autoscaling__v2.json",
    "apis__batch__v1.json",
    "apis__coordination.k8s.io__v1.json",
    "apis__discovery.k8s.io__v1.json",
    "apis__events.k8s.io__v1.json",
    "apis__networking.k8s.io__v1.json",
    "apis__policy__v1.json",
    "apis__rbac.authorization.k8s.io__v1.json",
    "apis__scheduling.k8s.io__v1.json",
    "apis__storage.k8s.io__v1.json",
];

/// One REST resource (a group/version/plural).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// Plural resource name, as in URLs.
    pub plural: String,
    /// Singular resource name.
    pub singular: String,
    /// Object kind.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether a `status` subresource exists (the main resource then ignores `status`).
    pub status: bool,
    /// Whether a `scale` subresource exists.
    pub scale: bool,
    /// Defined by a CustomResourceDefinition.
    pub custom: bool,
    /// Short names and categories for discovery (custom resources only; built-in discovery is
    /// served from the original documents).
    pub names: Value,
}

impl Resource {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource name qualified with its group, as in error messages (`deployments.apps`).
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The kind qualified with its group, as in `Invalid` messages (`Deployment.apps`).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Whether this is `events.k8s.io/v1` Events, stored as core Events (module `events`).
    pub fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io" && self.plural == "events"
    }

    /// Whether this is core `v1` Events.
    pub fn is_core_events(&self) -> bool {
        self.group.is_empty() && self.plural == "events"
    }

    /// The storage key shared by all versions of the resource.
    pub fn storage_key(&self) -> (String, String) {
        if self.is_events_v1() {
            // One store for both Event APIs (module `events`).
            return (String::new(), "events".into());
        }
        (self.group.clone(), self.plural.clone())
    }

    /// Whether `metadata.generation` is maintained for objects of this resource.
    pub fn tracks_generation(&self) -> bool {
        self.custom
            || matches!(
                self.group.as_str(),
                "apps"
                    | "batch"
                    | "autoscaling"
                    | "policy"
                    | "networking.k8s.io"
                    | "apiextensions.k8s.io"
            )
    }
}

/// The built-in documents and resources.
pub struct Builtin {
    documents: BTreeMap<String, &'static str>,
    /// All built-in resources.
    pub resources: Vec<Resource>,
    groups: Vec<Value>,
}

/// The built-in registry (parsed once).
pub fn builtin() -> &'static Builtin {
    static BUILTIN: OnceLock<Builtin> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        let documents: BTreeMap<String, &'static str> = DOCUMENTS
            .iter()
            .map(|(name, text)| (name.trim_end_matches(".json").replace("__", "/"), *text))
            .collect();
        let mut resources = Vec::new();
        for (path, text) in &documents {
            let Ok(document) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if document.get("kind").and_then(Value::as_str) != Some("APIResourceList") {
                continue;
            }
            let group_version = document
                .get("groupVersion")
                .and_then(Value::as_str)
                .unwrap_or("v1");
            let (group, version) = group_version.split_once('/').unwrap_or(("", group_version));
            let list = document
                .get("resources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let names: Vec<&str> = list
                .iter()
                .filter_map(|item| item.get("name")?.as_str())
                .collect();
            for item in &list {
                let Some(name) = item.get("name").and_then(Value::as_str) else {
                    continue;
                };
                if name.contains('/') {
                    continue;
                }
                resources.push(Resource {
                    group: group.to_string(),
                    version: version.to_string(),
                    plural: name.to_string(),
                    singular: item
                        .get("singularName")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    kind: item
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    namespaced: item
                        .get("namespaced")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    status: names.contains(&format!("{name}/status").as_str()),
                    scale: names.contains(&format!("{name}/scale").as_str()),
                    custom: false,
                    names: Value::Null,
                });
            }
            let _ = path;
        }
        let served: Vec<String> = resources.iter().map(Resource::api_version).collect();
        let mut groups = Vec::new();
        if let Some(Ok(apis)) = documents
            .get("apis")
            .map(|text| serde_json::from_str::<Value>(text))
        {
            for group in apis
                .get("groups")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let versions: Vec<Value> = group
                    .get("versions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|version| {
                        version
                            .get("groupVersion")
                            .and_then(Value::as_str)
                            .is_some_and(|gv| served.iter().any(|s| s == gv))
                    })
                    .collect();
                let Some(first) = versions.first().cloned() else {
                    continue;
                };
                let preferred = group
                    .get("preferredVersion")
                    .filter(|preferred| versions.contains(preferred))
                    .cloned()
                    .unwrap_or(first);
                groups.push(json!({
                    "name": group.get("name").cloned().unwrap_or(Value::Null),
                    "versions": versions,
                    "preferredVersion": preferred,
                }));
            }
        }
        Builtin {
            documents,
            resources,
            groups,
        }
    })
}

/// Builds the resources a CustomResourceDefinition adds (one per served version).
pub fn custom_resources(definition: &Value) -> Vec<Resource> {
    let spec = &definition["spec"];
    let Some(group) = spec["group"].as_str() else {
        return Vec::new();
    };
    let names = &spec["names"];
    let Some(plural) = names["plural"].as_str() else {
        return Vec::new();
    };
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    spec["versions"]
        .as_array()
        .map(|versions| {
            versions
                .iter()
                .filter(|version| version["served"].as_bool().unwrap_or(true))
                .filter_map(|version| {
                    Some(Resource {
                        group: group.to_string(),
                        version: version["name"].as_str()?.to_string(),
                        plural: plural.to_string(),
                        singular: singular.clone(),
                        kind: kind.clone(),
                        namespaced,
                        status: version["subresources"].get("status").is_some(),
                        scale: version["subresources"].get("scale").is_some(),
                        custom: true,
                        names: json!({"shortNames": names["shortNames"], "categories": names["categories"]}),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A view over built-in and custom resources.
pub struct Registry<'a> {
    /// Resources defined by established CRDs.
    pub custom: &'a [Resource],
}

impl Registry<'_> {
    fn all(&self) -> impl Iterator<Item = &Resource> {
        builtin().resources.iter().chain(self.custom.iter())
    }

    /// Finds a resource by group, version and plural name.
    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
        self.all()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Finds a resource by its storage key `(group, plural)`.
    pub fn by_storage_key(&self, key: &(String, String)) -> Option<Resource> {
        self.all()
            .find(|r| r.group == key.0 && r.plural == key.1)
            .cloned()
    }

    /// Finds a resource by `apiVersion` and kind.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Resource> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.all()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    /// The discovery document for a path such as `api`, `api/v1`, `apis`, `apis/apps/v1`.
    pub fn discovery(&self, path: &str) -> Option<String> {
        if path == "apis" {
            let mut groups = builtin().groups.clone();
            for (group, versions) in self.custom_groups() {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                    .collect();
                groups.push(json!({"name": group, "versions": versions, "preferredVersion": versions[0].clone()}));
            }
            return Some(
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}).to_string(),
            );
        }
        if let Some(text) = builtin().documents.get(path)
            && path != "apis"
        {
            return Some((*text).to_string());
        }
        let rest = path.strip_prefix("apis/")?;
        match rest.split_once('/') {
            None => {
                let mut group = builtin().groups.iter().find(|g| g["name"] == rest).cloned();
                if group.is_none() {
                    let custom = self.custom_groups();
                    let versions = custom.get(rest)?;
                    let versions: Vec<Value> = versions
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{rest}/{v}"), "version": v}))
                        .collect();
                    group = Some(
                        json!({"name": rest, "versions": versions, "preferredVersion": versions[0].clone()}),
                    );
                }
                let mut group = group?;
                group["kind"] = json!("APIGroup");
                group["apiVersion"] = json!("v1");
                Some(group.to_string())
            }
            Some((group, version)) => {
                let resources: Vec<Value> = self
                    .custom
                    .iter()
                    .filter(|r| r.group == group && r.version == version)
                    .flat_map(|r| {
                        let verbs = json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]);
                        let mut entry = json!({
                            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": verbs,
                        });
                        for field in ["shortNames", "categories"] {
                            if r.names[field].is_array() {
                                entry[field] = r.names[field].clone();
                            }
                        }
                        let mut entries = vec![entry];
                        if r.status {
                            entries.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
                        }
                        if r.scale {
                            entries.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
                        }
                        entries
                    })
                    .collect();
                if resources.is_empty() {
                    return None;
                }
                Some(
                    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/{version}"), "resources": resources})
                        .to_string(),
                )
            }
        }
    }

    fn custom_groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for resource in self.custom {
            if builtin()
                .groups
                .iter()
                .any(|g| g["name"] == resource.group.as_str())
            {
                continue;
            }
            let versions = groups.entry(resource.group.clone()).or_default();
            if !versions.contains(&resource.version) {
                versions.push(resource.version.clone());
            }
        }
        groups
    }

    fn group_versions(&self) -> Vec<(String, String)> {
        let mut list: Vec<(String, String)> = Vec::new();
        for resource in self.all() {
            let key = (resource.group.clone(), resource.version.clone());
            if !list.contains(&key) {
                list.push(key);
            }
        }
        list
    }

    /// `/openapi/v3`: the index of per-group-version documents.
    pub fn openapi_index(&self) -> String {
        let mut paths = serde_json::Map::new();
        for (group, version) in self.group_versions() {
            let path = openapi_path(&group, &version);
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}")}),
            );
        }
        json!({"paths": paths}).to_string()
    }

    /// `/openapi/v3/<path>`: a minimal OpenAPI v3 document with one PATCH operation per kind,
    /// declaring the query parameters kubectl checks for (`fieldValidation`, `dryRun`, ...).
    pub fn openapi_document(&self, path: &str) -> Option<String> {
        let (group, version) = self
            .group_versions()
            .into_iter()
            .find(|(g, v)| openapi_path(g, v) == path)?;
        let mut paths = serde_json::Map::new();
        let parameters: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]
            .iter()
            .map(|name| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
            .collect();
        for resource in self
            .all()
            .filter(|r| r.group == group && r.version == version)
        {
            let prefix = if group.is_empty() {
                format!("/api/{version}")
            } else {
                format!("/apis/{group}/{version}")
            };
            let url = if resource.namespaced {
                format!(
                    "{prefix}/namespaces/{{namespace}}/{}/{{name}}",
                    resource.plural
                )
            } else {
                format!("{prefix}/{}/{{name}}", resource.plural)
            };
            let gvk = json!({"group": group, "version": version, "kind": resource.kind});
            let operation = |verb: &str| {
                json!({
                    "operationId": format!("{verb}{}", resource.kind),
                    "parameters": parameters,
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": verb,
                    "x-kubernetes-group-version-kind": gvk,
                })
            };
            paths.insert(url, json!({"get": operation("get"), "put": operation("put"), "patch": operation("patch"), "delete": operation("delete")}));
        }
        Some(
            json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": "v1.37.0"},
                "paths": paths,
                "components": {"schemas": {}},
            })
            .to_string(),
        )
    }
}

fn openapi_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_group_versions_are_advertised() {
        let registry = Registry { custom: &[] };
        let apis: Value = serde_json::from_str(&registry.discovery("apis").unwrap_or_default())
            .unwrap_or_default();
        let groups = apis["groups"].as_array().cloned().unwrap_or_default();
        assert!(groups.iter().any(|g| g["name"] == "apps"));
        assert!(!groups.iter().any(|g| g["name"] == "apiregistration.k8s.io"));
        for group in &groups {
            for version in group["versions"].as_array().cloned().unwrap_or_default() {
                let gv = version["groupVersion"].as_str().unwrap_or_default();
                assert!(
                    registry.discovery(&format!("apis/{gv}")).is_some(),
                    "{gv} advertised but not served"
                );
            }
        }
        let deployment = registry.by_kind("apps/v1", "Deployment");
        assert!(
            deployment
                .as_ref()
                .is_some_and(|d| d.status && d.scale && d.namespaced && d.plural == "deployments")
        );
    }
}
