//! Server-side apply of one object, the way gitship does it.
//!
//! A desired object is first [`prepare`]d: its resource and scope are resolved, the environment
//! namespace is filled in for namespaced kinds, and the ownership annotation
//! (`gitship.dev/owned-by: <env>`) and `app.kubernetes.io/managed-by: gitship` label are added.
//! [`apply_object`] then skips objects whose dry-run result equals the live object (see
//! [`crate::kube::diff`]), so a deploy with nothing to change sends no writes. Every request is
//! retried on transient failures. An immutable-field rejection names the field, and objects
//! annotated `gitship.dev/replace: "true"` are deleted and recreated instead.

use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diagnostics::Location;
use crate::kube::diff::{self, PlannedAction};
use crate::kube::discovery::Resolved;
use crate::kube::order::Position;
use crate::kube::retry::{RetryPolicy, status_code};
use crate::kube::{
    FIELD_MANAGER, KubeError, MANAGED_BY_LABEL, OWNED_BY_ANNOTATION, ObjectId, REPLACE_ANNOTATION,
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

    /// `Deployment blog/web (infrastructure/kubernetes/web.yaml:1:1)`
    pub fn describe(&self) -> String {
        format!("{} ({})", self.id, self.source)
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

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Applied {
    Created,
    Configured,
    /// Deleted and recreated (`gitship.dev/replace: "true"` and an immutable field changed).
    Replaced,
    Unchanged,
}

/// The live object, `None` when it does not exist.
pub async fn get_live(
    client: &Client,
    prepared: &Prepared,
    retry: &RetryPolicy,
) -> Result<Option<Value>, kube::Error> {
    let api = prepared.api(client);
    let found = retry
        .run(&prepared.id.to_string(), || api.get_opt(&prepared.id.name))
        .await?;
    found
        .map(|object| serde_json::to_value(object).map_err(kube::Error::SerdeError))
        .transpose()
}

/// One server-side apply (optionally `dryRun=All`) with field manager `gitship`.
pub async fn server_side_apply(
    client: &Client,
    prepared: &Prepared,
    force: bool,
    dry_run: bool,
    retry: &RetryPolicy,
) -> Result<Value, kube::Error> {
    let api = prepared.api(client);
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = force;
    params.dry_run = dry_run;
    let patch = Patch::Apply(&prepared.body);
    let result = retry
        .run(&prepared.id.to_string(), || {
            api.patch(&prepared.id.name, &params, &patch)
        })
        .await?;
    serde_json::to_value(result).map_err(kube::Error::SerdeError)
}

/// Apply one object unless the dry-run result shows nothing would change.
pub async fn apply_object(
    client: &Client,
    prepared: &Prepared,
    force: bool,
    retry: &RetryPolicy,
) -> Result<(Applied, Value), KubeError> {
    let api_error = |source: kube::Error| to_kube_error(prepared, source);
    let live = get_live(client, prepared, retry).await.map_err(api_error)?;
    if live.is_none() {
        let created = server_side_apply(client, prepared, force, false, retry)
            .await
            .map_err(api_error)?;
        return Ok((Applied::Created, created));
    }
    let planned = match server_side_apply(client, prepared, force, true, retry).await {
        Ok(dry_run) => diff::diff_from(live, dry_run),
        Err(error) => return replace_if_allowed(client, prepared, force, retry, error).await,
    };
    if planned.action == PlannedAction::Unchanged {
        return Ok((Applied::Unchanged, planned.live.unwrap_or(planned.desired)));
    }
    match server_side_apply(client, prepared, force, false, retry).await {
        Ok(applied) => Ok((Applied::Configured, applied)),
        Err(error) => replace_if_allowed(client, prepared, force, retry, error).await,
    }
}

async fn replace_if_allowed(
    client: &Client,
    prepared: &Prepared,
    force: bool,
    retry: &RetryPolicy,
    error: kube::Error,
) -> Result<(Applied, Value), KubeError> {
    let Some(field) = immutable_field(&error) else {
        return Err(to_kube_error(prepared, error));
    };
    if crate::kube::annotation(&prepared.body, REPLACE_ANNOTATION) != Some("true") {
        return Err(KubeError::Immutable {
            object: prepared.describe(),
            field,
            message: error_message(&error),
        });
    }
    tracing::info!(object = %prepared.id, %field, "immutable field changed: deleting and recreating");
    let api = prepared.api(client);
    let params = DeleteParams::foreground();
    let deleted = retry
        .run(&prepared.id.to_string(), || {
            api.delete(&prepared.id.name, &params)
        })
        .await;
    match deleted {
        Ok(_) => {}
        Err(error) if status_code(&error) == Some(404) => {}
        Err(error) => return Err(to_kube_error(prepared, error)),
    }
    // Wait until the old object is gone (finalizers, foreground deletion), bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while get_live(client, prepared, retry)
        .await
        .map_err(|e| to_kube_error(prepared, e))?
        .is_some()
    {
        if tokio::time::Instant::now() > deadline {
            return Err(KubeError::Immutable {
                object: prepared.describe(),
                field,
                message: "the old object was not deleted within 60s".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = server_side_apply(client, prepared, force, false, retry)
        .await
        .map_err(|e| to_kube_error(prepared, e))?;
    Ok((Applied::Replaced, created))
}

/// The field named by an "immutable" rejection (422), if this is one.
pub fn immutable_field(error: &kube::Error) -> Option<String> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    if status.code != 422 && status.code != 400 {
        return None;
    }
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    for cause in causes {
        if cause.message.contains("immutable") {
            if !cause.field.is_empty() {
                return Some(cause.field.clone());
            }
            if let Some(field) = field_before_colon(&cause.message) {
                return Some(field);
            }
        }
    }
    if status.message.contains("immutable") {
        // `Deployment.apps "web" is invalid: spec.selector: Invalid value: ...: field is immutable`
        let after_invalid = status
            .message
            .split_once("is invalid: ")
            .map(|(_, rest)| rest)
            .unwrap_or(&status.message);
        return Some(
            field_before_colon(after_invalid).unwrap_or_else(|| "(unknown field)".to_string()),
        );
    }
    None
}

fn field_before_colon(text: &str) -> Option<String> {
    let (field, _) = text.split_once(':')?;
    let field = field.trim();
    (!field.is_empty() && !field.contains(' ')).then(|| field.to_string())
}

/// The server's message of an error (the Status message for API errors).
pub fn error_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} ({})", status.message, status.code)
        }
        other => other.to_string(),
    }
}

/// A kube error about `prepared` as a [`KubeError`] naming it.
pub fn to_kube_error(prepared: &Prepared, source: kube::Error) -> KubeError {
    if let Some(field) = immutable_field(&source) {
        return KubeError::Immutable {
            object: prepared.describe(),
            field,
            message: error_message(&source),
        };
    }
    KubeError::Api {
        object: prepared.describe(),
        message: error_message(&source),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::order::position;
    use kube::core::Status;
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

    #[test]
    fn immutable_field_is_found_in_causes_or_message() {
        let with_cause: Status = serde_json::from_value(json!({
            "code": 422, "reason": "Invalid",
            "message": "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: {}: field is immutable",
            "details": {"causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: {}: field is immutable", "field": "spec.selector"}]}
        }))
        .unwrap();
        let with_cause = kube::Error::Api(Box::new(with_cause));
        assert_eq!(
            immutable_field(&with_cause).as_deref(),
            Some("spec.selector")
        );
        let message_only = kube::Error::Api(Box::new(Status {
            code: 422,
            message: "Job.batch \"migrate\" is invalid: spec.template: Invalid value: ...: field is immutable".into(),
            ..Status::failure("", "Invalid")
        }));
        assert_eq!(
            immutable_field(&message_only).as_deref(),
            Some("spec.template")
        );
        let other = kube::Error::Api(Box::new(Status {
            code: 422,
            message: "spec.replicas: must be >= 0".into(),
            ..Status::failure("", "Invalid")
        }));
        assert_eq!(immutable_field(&other), None);
    }
}
