//! Immutable fields: the update validation a real apiserver applies to well-known fields that
//! cannot change after creation (workload selectors, a Job's template, a Service's clusterIPs, a
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

/// Values the API server's validation refuses whatever the old object: a Service's ports (and
/// node ports, and numeric target ports) outside 1-65535, with the real message.
pub fn invalid_values(resource: &Resource, new: &Value) -> Vec<Violation> {
    let mut found = Vec::new();
    if !(resource.group.is_empty() && resource.kind == "Service") {
        return found;
    }
    let ports = new["spec"]["ports"].as_array().cloned().unwrap_or_default();
    for (index, port) in ports.iter().enumerate() {
        for field in ["port", "targetPort", "nodePort"] {
            let Some(number) = port.get(field).and_then(Value::as_i64) else {
                continue;
            };
            // An unset node port is 0 until allocated.
            if field == "nodePort" && number == 0 {
                continue;
            }
            if !(1..=65535).contains(&number) {
                found.push(Violation {
                    field: format!("spec.ports[{index}].{field}"),
                    reason: "FieldValueInvalid",
                    message: format!(
                        "Invalid value: {number}: must be between 1 and 65535, inclusive"
                    ),
                });
            }
        }
    }
    found
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
    if resource.group.is_empty() && resource.kind == "Secret" {
        // A Secret's type never changes (a missing one is defaulted to `Opaque` first).
        let type_of = |object: &Value| object.get("type").cloned().unwrap_or("Opaque".into());
        if type_of(old) != type_of(new) {
            found.push(invalid_value("type", &type_of(new)));
        }
    }
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
                && let Some(address) = changed(&["spec", "clusterIP"])
            {
                // The registry first copies a changed clusterIP into clusterIPs[0], then
                // validation refuses the changed clusterIPs.
                let mut addresses = new["spec"]["clusterIPs"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                match addresses.first_mut() {
                    Some(first) => *first = address,
                    None => addresses.push(address),
                }
                found.push(Violation {
                    field: "spec.clusterIPs[0]".into(),
                    reason: "FieldValueInvalid",
                    message: format!(
                        "Invalid value: {}: may not change once set",
                        Value::Array(addresses)
                    ),
                });
            }
        }
        ("", "PersistentVolumeClaim") => {
            // Only a bound claim may change its requests (grow its storage).
            let bound = old["status"]["phase"] == "Bound";
            let comparable = |object: &Value| {
                let mut spec = object["spec"].clone();
                if bound
                    && let Some(resources) =
                        spec.get_mut("resources").and_then(Value::as_object_mut)
                {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims() -> Resource {
        Resource {
            group: String::new(),
            version: "v1".into(),
            plural: "persistentvolumeclaims".into(),
            singular: "persistentvolumeclaim".into(),
            kind: "PersistentVolumeClaim".into(),
            namespaced: true,
            status: true,
            scale: false,
            custom: false,
            names: Value::Null,
        }
    }

    fn claim(size: &str, phase: &str) -> Value {
        json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
            "status": {"phase": phase}})
    }

    #[test]
    fn only_a_bound_claim_may_change_its_requests() {
        let grown = claim("2Gi", "Bound");
        assert!(violations(&claims(), &claim("1Gi", "Bound"), &grown).is_empty());
        let refused = violations(&claims(), &claim("1Gi", "Pending"), &grown);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].field, "spec");
    }
}
