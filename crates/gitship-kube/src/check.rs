//! Everything about the desired objects that can be known before the first write: each one's
//! identity, wave and resource (by API discovery), the environment namespace filled in and
//! gitship's ownership marks added ([`Prepared`]); custom resources whose CRD is part of the same
//! set are [`Checked::Deferred`] until it is served. `deploy`, `diff` and `drift` all start here.

use std::collections::HashMap;

use kube::Client;
use kube::api::{Api, DynamicObject};
use serde_json::Value;

use crate::KubeError;
use crate::discovery::{self, Resolved, Resources};
use crate::order::{self, Position};
use crate::retry::RetryPolicy;
use gitship_foundation::diagnostics::Location;
use gitship_foundation::model::{
    ADOPT_ANNOTATION, Environment, FIELD_MANAGER, MANAGED_BY_LABEL, Manifest, OWNED_BY_ANNOTATION,
    ObjectId, annotation,
};

/// An object ready to apply.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Its identity, namespace resolved.
    pub id: ObjectId,
    pub source: Location,
    pub resolved: Resolved,
    /// The body sent with the apply.
    pub body: Value,
    pub position: Position,
}

impl Prepared {
    /// The dynamic API for this object's resource and namespace.
    pub fn api(&self, client: &Client) -> Api<DynamicObject> {
        match &self.id.namespace {
            Some(namespace) => {
                Api::namespaced_with(client.clone(), namespace, &self.resolved.resource)
            }
            None => Api::all_with(client.clone(), &self.resolved.resource),
        }
    }

    /// The live object, `None` when it does not exist.
    pub(crate) async fn get_live(
        &self,
        client: &Client,
        retry: &RetryPolicy,
    ) -> Result<Option<serde_json::Value>, kube::Error> {
        let api = self.api(client);
        let found = retry
            .run(&self.id.to_string(), || api.get_opt(&self.id.name))
            .await?;
        found
            .map(|object| serde_json::to_value(object).map_err(kube::Error::SerdeError))
            .transpose()
    }

    /// `Deployment blog/web (infrastructure/kubernetes/web.yaml:1:1)`
    pub fn describe(&self) -> String {
        format!("{} ({})", self.id, self.source)
    }

    /// A failed request about this object, naming it.
    pub fn error(&self, source: kube::Error) -> KubeError {
        KubeError::about(self.describe(), source)
    }
}

/// Resolve namespace and add gitship's marks. `object` must have apiVersion, kind and name.
pub fn prepare(
    object: &Value,
    source: &Location,
    resolved: Resolved,
    environment: &str,
    default_namespace: &str,
    position: Position,
) -> Result<Prepared, KubeError> {
    let mut body = object.clone();
    let invalid = |message: &str| KubeError::InvalidManifest {
        location: source.clone(),
        message: message.to_string(),
    };
    let metadata = body
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| invalid("`metadata` is not a mapping"))?;
    if resolved.namespaced {
        if !metadata.get("namespace").is_some_and(Value::is_string) {
            metadata.insert(
                "namespace".into(),
                Value::String(default_namespace.to_string()),
            );
        }
    } else {
        metadata.remove("namespace");
    }
    for (key, value) in [
        ("annotations", (OWNED_BY_ANNOTATION, environment)),
        ("labels", (MANAGED_BY_LABEL, FIELD_MANAGER)),
    ] {
        let entry = metadata
            .entry(key)
            .or_insert_with(|| Value::Object(Default::default()));
        if entry.is_null() {
            *entry = Value::Object(Default::default());
        }
        let map = entry
            .as_object_mut()
            .ok_or_else(|| invalid(&format!("`metadata.{key}` is not a mapping")))?;
        map.insert(value.0.to_string(), Value::String(value.1.to_string()));
    }
    let id = ObjectId::of(&body)
        .ok_or_else(|| invalid("missing `apiVersion`, `kind` or `metadata.name`"))?;
    Ok(Prepared {
        id,
        source: source.clone(),
        resolved,
        body,
        position,
    })
}

/// Refuse to take over an object that another environment owns (`gitship.dev/owned-by` names
/// it), unless the manifest says `gitship.dev/adopt: "true"`. Objects no environment owns yet
/// (made by hand or by another tool) are taken over, as server-side apply does.
pub(crate) fn check_owner(prepared: &Prepared, live: &Value) -> Result<(), KubeError> {
    let ours = annotation(&prepared.body, OWNED_BY_ANNOTATION).unwrap_or_default();
    match annotation(live, OWNED_BY_ANNOTATION) {
        Some(owner)
            if owner != ours && annotation(&prepared.body, ADOPT_ANNOTATION) != Some("true") =>
        {
            Err(KubeError::OwnedElsewhere {
                object: prepared.describe(),
                owner: owner.to_string(),
                environment: ours.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// A desired object checked and resolved, or waiting for its CRD.
pub enum Checked {
    Ready(Box<Prepared>),
    /// Its kind is defined by a CRD of this deploy.
    /// Its kind is defined by a CRD of this deploy; `bool`: the CRD's scope is `Namespaced`.
    Deferred(Manifest, bool),
}

/// Validate and resolve every desired object; no writes. Hooks and skipped objects
/// ([`gitship_foundation::model::hook::Role`]) are left out: they are not desired objects.
pub async fn check(
    client: &Client,
    resources: &Resources,
    environment: &Environment,
    desired: &[Manifest],
    retry: &RetryPolicy,
) -> Result<Vec<Checked>, KubeError> {
    let crd_kinds = crd_kinds(desired);
    let mut checked = Vec::with_capacity(desired.len());
    let mut seen: HashMap<ObjectId, Location> = HashMap::new();
    for object in desired {
        // Hooks and skipped objects are no desired objects (`kube::hooks`).
        match gitship_foundation::model::hook::role_of(&object.object) {
            Ok(gitship_foundation::model::hook::Role::Object) => {}
            Ok(_) => continue,
            Err(message) => {
                return Err(KubeError::InvalidManifest {
                    location: object.source.clone(),
                    message,
                });
            }
        }
        let item = check_one(client, resources, environment, object, &crd_kinds, retry).await?;
        let id = match &item {
            Checked::Ready(p) => p.id.clone(),
            Checked::Deferred(d, namespaced) => deferred_id(d, *namespaced, environment),
        };
        if let Some(first) = seen.get(&id) {
            return Err(KubeError::Duplicate {
                id: id.to_string(),
                first: first.clone(),
                second: object.source.clone(),
            });
        }
        seen.insert(id, object.source.clone());
        checked.push(item);
    }
    Ok(checked)
}

/// The kinds the CRDs among `desired` define: (apiVersion, kind) -> namespaced.
fn crd_kinds(desired: &[Manifest]) -> HashMap<(String, String), bool> {
    desired
        .iter()
        .filter(|d| d.kind() == "CustomResourceDefinition")
        .flat_map(|d| {
            let namespaced =
                d.object.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
            discovery::crd_defines(&d.object)
                .into_iter()
                .map(move |kind| (kind, namespaced))
        })
        .collect()
}

/// One desired object: its identity and wave, and its resource (served, or defined by one of
/// `crd_kinds`).
async fn check_one(
    client: &Client,
    resources: &Resources,
    environment: &Environment,
    object: &Manifest,
    crd_kinds: &HashMap<(String, String), bool>,
    retry: &RetryPolicy,
) -> Result<Checked, KubeError> {
    let invalid = |message: String| KubeError::InvalidManifest {
        location: object.source.clone(),
        message,
    };
    let text = |pointer: &str, what: &str| {
        object
            .object
            .pointer(pointer)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("missing `{what}`")))
    };
    let api_version = text("/apiVersion", "apiVersion")?;
    let kind = text("/kind", "kind")?;
    let name = text("/metadata/name", "metadata.name")?;
    let wave = order::wave_of(&object.object).map_err(invalid)?;
    let resolved = resources
        .resolve(client, retry, api_version, kind)
        .await
        .map_err(|source| KubeError::Api {
            object: format!("{kind} {name} ({})", object.source),
            message: format!(
                "discovery of `{api_version}` failed: {}",
                crate::error_message(&source)
            ),
            source,
        })?;
    if let Some(resolved) = resolved {
        return Ok(Checked::Ready(Box::new(prepare(
            &object.object,
            &object.source,
            resolved,
            &environment.name,
            &environment.namespace,
            order::position(kind, wave),
        )?)));
    }
    match crd_kinds.get(&(api_version.to_string(), kind.to_string())) {
        Some(namespaced) => Ok(Checked::Deferred(object.clone(), *namespaced)),
        None => Err(KubeError::UnknownKind {
            location: object.source.clone(),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        }),
    }
}

/// The identity of a deferred object: its scope is the one its CRD declares.
pub(crate) fn deferred_id(
    desired: &Manifest,
    namespaced: bool,
    environment: &Environment,
) -> ObjectId {
    let mut id = ObjectId::of(&desired.object).unwrap_or(ObjectId {
        group: String::new(),
        kind: String::new(),
        namespace: None,
        name: String::new(),
    });
    // The cluster does not serve the kind yet: its scope is the one its CRD declares.
    if !namespaced {
        id.namespace = None;
    } else if id.namespace.is_none() {
        id.namespace = Some(environment.namespace.clone());
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::position;
    use gitship_foundation::model::{MANAGED_BY_LABEL, OWNED_BY_ANNOTATION};
    use kube::discovery::ApiResource;
    use serde_json::json;

    fn resolved(namespaced: bool) -> Resolved {
        Resolved {
            resource: ApiResource {
                group: "".into(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                plural: "configmaps".into(),
            },
            namespaced,
        }
    }

    #[test]
    fn prepare_sets_namespace_and_marks() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": null}});
        let location = Location::new("m.yaml", 1, 1);
        let prepared = prepare(
            &object,
            &location,
            resolved(true),
            "production",
            "blog",
            position("ConfigMap", 0),
        )
        .unwrap();
        assert_eq!(prepared.id.namespace.as_deref(), Some("blog"));
        assert_eq!(
            prepared.body["metadata"]["annotations"][OWNED_BY_ANNOTATION],
            "production"
        );
        assert_eq!(
            prepared.body["metadata"]["labels"][MANAGED_BY_LABEL],
            "gitship"
        );
        let explicit = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "other"}});
        let prepared = prepare(
            &explicit,
            &location,
            resolved(true),
            "production",
            "blog",
            position("ConfigMap", 0),
        )
        .unwrap();
        assert_eq!(prepared.id.namespace.as_deref(), Some("other"));
        let cluster = prepare(
            &explicit,
            &location,
            resolved(false),
            "production",
            "blog",
            position("ConfigMap", 0),
        )
        .unwrap();
        assert_eq!(cluster.id.namespace, None);
        let broken = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "annotations": "x"}});
        let error = prepare(
            &broken,
            &location,
            resolved(true),
            "p",
            "b",
            position("ConfigMap", 0),
        )
        .unwrap_err();
        assert!(error.to_string().contains("m.yaml:1:1"), "{error}");
    }
}
