//! Immutable fields: the update validation a real apiserver applies to well-known fields that
//! cannot change after creation (workload selectors, a Job's template, a Service's clusterIP, a
//! PVC's spec, the data of an `immutable: true` ConfigMap or Secret). A change is a 422 Invalid
//! whose causes name the field, with the real message shapes (`... field is immutable`).

use serde_json::Value;

use crate::registry::Resource;

/// One rejected field: its path, the cause's reason and message.
pub struct Violation {
    pub field: String,
    pub reason: &'static str,
    pub message: String,
}

fn invalid_value(field: &str, value: &Value) -> Violation {
    Violation {
        field: field.to_string(),
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {value}: field is immutable"),
    }
}

fn forbidden(field: &str, message: &str) -> Violation {
    Violation {
        field: field.to_string(),
        reason: "FieldValueForbidden",
        message: format!("Forbidden: {message}"),
    }
}

/// The immutable fields that differ between the stored `old` and the updated `new` object.
pub fn violations(resource: &Resource, old: &Value, new: &Value) -> Vec<Violation> {
    let mut found = Vec::new();
    let changed = |path: &[&str]| {
        let pick = |object: &Value| {
            path.iter().fold(object.clone(), |value, key| {
                value.get(key).cloned().unwrap_or(Value::Null)
            })
        };
        let (before, after) = (pick(old), pick(new));
        (before != after).then_some(after)
    };
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet") => {
            if let Some(value) = changed(&["spec", "selector"]) {
                found.push(invalid_value("spec.selector", &value));
            }
        }
        ("batch", "Job") => {
            if let Some(value) = changed(&["spec", "selector"]) {
                found.push(invalid_value("spec.selector", &value));
            }
            if let Some(value) = changed(&["spec", "template"]) {
                found.push(invalid_value("spec.template", &value));
            }
        }
        ("", "Service") => {
            let before = old["spec"]["clusterIP"].as_str().unwrap_or("");
            if !before.is_empty()
                && before != "None"
                && let Some(value) = changed(&["spec", "clusterIP"])
            {
                found.push(invalid_value("spec.clusterIP", &value));
            }
        }
        ("", "PersistentVolumeClaim") => {
            let comparable = |object: &Value| {
                let mut spec = object["spec"].clone();
                if let Some(resources) = spec.get_mut("resources").and_then(Value::as_object_mut) {
                    resources.remove("requests");
                    if resources.is_empty() {
                        spec.as_object_mut().map(|spec| spec.remove("resources"));
                    }
                }
                if let Some(spec) = spec.as_object_mut() {
                    spec.remove("volumeAttributesClassName");
                }
                spec
            };
            let mut before = comparable(old);
            // `volumeName` is set by the binder; a client that omits it does not change it.
            if new["spec"].get("volumeName").is_none()
                && let Some(spec) = before.as_object_mut()
            {
                spec.remove("volumeName");
            }
            if before != comparable(new) {
                found.push(forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
        }
        ("", "ConfigMap" | "Secret") if old["immutable"] == Value::Bool(true) => {
            let message = "field is immutable when `immutable` is set";
            for field in ["data", "binaryData"] {
                if changed(&[field]).is_some() {
                    found.push(forbidden(field, message));
                }
            }
            if new["immutable"] != Value::Bool(true) {
                found.push(forbidden("immutable", message));
            }
        }
        _ => {}
    }
    found
}
