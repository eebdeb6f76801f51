//! API errors rendered as Kubernetes `Status` objects, with the reasons, codes and messages a
//! real API server uses (so kubectl prints its usual `Error from server (NotFound): ...`).

use crate::registry::Resource;
use serde_json::{Value, json};

/// `Status.details` naming an object: empty fields are left out, as Go's `omitempty` does
/// (`group` of the core group, `name` of a collection).
pub fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut details = serde_json::Map::new();
    for (field, value) in [("name", name), ("group", group), ("kind", kind)] {
        if !value.is_empty() {
            details.insert(field.to_string(), json!(value));
        }
    }
    Value::Object(details)
}

/// An API error answered with a `Status` body (boxed: errors are rare, results stay small).
#[derive(Debug, Clone)]
pub struct ApiError(Box<ErrorBody>);

impl std::ops::Deref for ApiError {
    type Target = ErrorBody;
    fn deref(&self) -> &ErrorBody {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorBody {
        &mut self.0
    }
}

/// The contents of an [`ApiError`].
#[derive(Debug, Clone)]
pub struct ErrorBody {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason`.
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details` (or `null`).
    pub details: Value,
    /// `Retry-After` seconds, for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError(Box::new(ErrorBody {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }))
    }

    fn with_details(mut self, resource: &Resource, name: &str) -> ApiError {
        self.details = details(name, &resource.group, &resource.plural);
        self
    }

    /// 404 NotFound for an object.
    pub fn not_found(resource: &Resource, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified()),
        )
        .with_details(resource, name)
    }

    /// 404 NotFound for a path that is not served.
    pub fn path_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(resource: &Resource, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", resource.qualified()),
        )
        .with_details(resource, name)
    }

    /// 409 Conflict for a stale resourceVersion or a failed precondition.
    pub fn modified(resource: &Resource, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                resource.qualified()
            ),
        )
        .with_details(resource, name)
    }

    /// 409 Conflict for server-side apply, with FieldManagerConflict causes.
    pub fn apply_conflicts(
        resource: &Resource,
        name: &str,
        conflicts: &[crate::managed::Conflict],
    ) -> ApiError {
        let message = if let [conflict] = conflicts {
            format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                conflict.manager, conflict.field
            )
        } else {
            let mut lines = Vec::new();
            let mut managers: Vec<&String> = Vec::new();
            for conflict in conflicts {
                if !managers.contains(&&conflict.manager) {
                    managers.push(&conflict.manager);
                }
            }
            for manager in managers {
                lines.push(format!("conflicts with {manager}:"));
                for conflict in conflicts
                    .iter()
                    .filter(|conflict| &conflict.manager == manager)
                {
                    lines.push(format!("- {}", conflict.field));
                }
            }
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|conflict| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", conflict.manager), "field": conflict.field})
            })
            .collect();
        let mut error = ApiError::new(409, "Conflict", message).with_details(resource, name);
        error.details["causes"] = Value::Array(causes);
        error
    }

    /// 422 Invalid with one `FieldValueRequired` cause per field.
    pub fn invalid(kind: &str, name: &str, causes: &[(&str, &str)]) -> ApiError {
        let causes: Vec<(&str, &str, &str)> = causes
            .iter()
            .map(|(field, message)| (*field, "FieldValueRequired", *message))
            .collect();
        ApiError::invalid_with(kind, name, &causes)
    }

    /// 422 Invalid with one cause per `(field, reason, message)`.
    pub fn invalid_with(kind: &str, name: &str, causes: &[(&str, &str, &str)]) -> ApiError {
        let messages: Vec<String> = causes
            .iter()
            .map(|(field, _, message)| format!("{field}: {message}"))
            .collect();
        let summary = if messages.len() == 1 {
            messages[0].clone()
        } else {
            format!("[{}]", messages.join(", "))
        };
        let mut error = ApiError::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {summary}"),
        );
        let (group, kind_name) = kind
            .split_once('.')
            .map(|(kind, group)| (group, kind))
            .unwrap_or(("", kind));
        error.details = details(name, group, kind_name);
        error.details["causes"] = causes
            .iter()
            .map(|(field, reason, message)| json!({"reason": reason, "message": message, "field": field}))
            .collect();
        error
    }

    /// 422 Invalid for request options (`PatchOptions.meta.k8s.io "" is invalid: ...`): a
    /// server-side apply without `fieldManager`.
    pub fn invalid_options(kind: &str, field: &str, message: &str) -> ApiError {
        let mut error = ApiError::new(
            422,
            "Invalid",
            format!("{kind}.meta.k8s.io \"\" is invalid: {field}: {message}"),
        );
        error.details = json!({
            "group": "meta.k8s.io",
            "kind": kind,
            "causes": [{"reason": "FieldValueRequired", "message": message, "field": field}],
        });
        error
    }

    /// 422 Invalid for a patch whose result does not decode: the real server's
    /// ` "" is invalid: patch: Invalid value: "<value>": <error>`, with no name, group or kind.
    pub fn invalid_patch(value: &str, error: &str) -> ApiError {
        let quoted = serde_json::to_string(value).unwrap_or_default();
        let cause = format!("Invalid value: {quoted}: {error}");
        let mut error = ApiError::new(422, "Invalid", format!(" \"\" is invalid: patch: {cause}"));
        error.details = json!({
            "causes": [{"reason": "FieldValueInvalid", "message": cause, "field": "patch"}],
        });
        error
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized, as kube-apiserver answers a request its authenticators all reject.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 410 Gone (reason Expired) for a too-old resourceVersion.
    pub fn expired(requested: u64, oldest: u64) -> ApiError {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 415 UnsupportedMediaType: `the body of the request was in an unknown format - accepted
    /// media types include: <accepted>`.
    pub fn unsupported_media_type(accepted: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted}"
            ),
        )
    }

    /// 415 for a PATCH of a built-in kind with a content type that is no patch type: a real
    /// server says no more than this.
    pub fn unsupported_patch_type() -> ApiError {
        ApiError::new(415, "UnsupportedMediaType", "415: Unsupported Media Type")
    }

    /// 500 InternalError (fault injection).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    /// 500 without a reason: what a real server answers when server-side apply cannot type
    /// the applied configuration or convert the merged object (unknown fields, invalid
    /// quantities).
    pub fn apply_failed(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "", message)
    }

    /// 429 TooManyRequests with Retry-After (fault injection).
    pub fn too_many_requests(retry_after_secs: u64) -> ApiError {
        let mut error = ApiError::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        );
        error.details = json!({"retryAfterSeconds": retry_after_secs});
        error.retry_after = Some(retry_after_secs);
        error
    }

    /// 409 Conflict (fault injection).
    pub fn injected_conflict() -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty()
            && let Some(map) = status.as_object_mut()
        {
            map.remove("reason");
        }
        if !self.details.is_null() {
            status["details"] = self.details.clone();
        }
        status
    }
}
