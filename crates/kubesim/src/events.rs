//! Events, which a real server serves through two APIs over the same stored objects: core
//! `v1` Events (what the controllers and `kubectl get events` use) and `events.k8s.io/v1`
//! Events. kubesim stores every Event in the core form; an `events.k8s.io/v1` request reads
//! the same objects through [`v1_view`] and writes through [`core_from_v1`], with the real
//! server's field mapping (`note` <-> `message`, `regarding` <-> `involvedObject`,
//! `deprecatedLastTimestamp` <-> `lastTimestamp`, `reportingController` <->
//! `reportingComponent`, ...). Both views carry the fields the API types always serialise
//! (`eventTime: null`, `source: {}`, `reportingComponent: ""`, ...), as a real server's do.

use crate::errors::ApiError;
use serde_json::{Map, Value, json};

/// Fields that keep their name in both APIs.
const SHARED: [&str; 7] = [
    "metadata",
    "reason",
    "type",
    "eventTime",
    "series",
    "action",
    "related",
];

/// `(core v1 field, events.k8s.io/v1 field)` for the renamed fields.
const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn copy_fields(from: &Map<String, Value>, to: &mut Map<String, Value>, pairs: &[(&str, &str)]) {
    for (source, target) in pairs {
        if let Some(value) = from.get(*source) {
            to.insert(target.to_string(), value.clone());
        }
    }
}

fn fill(object: &mut Map<String, Value>, defaults: &[(&str, Value)]) {
    for (field, value) in defaults {
        object
            .entry(field.to_string())
            .or_insert_with(|| value.clone());
    }
}

/// A stored (core) Event as a core `v1` response shows it.
pub fn core_view(core: &Value) -> Value {
    let mut view = core.clone();
    if let Some(map) = view.as_object_mut() {
        fill(
            map,
            &[
                ("involvedObject", json!({})),
                ("source", json!({})),
                ("firstTimestamp", Value::Null),
                ("lastTimestamp", Value::Null),
                ("eventTime", Value::Null),
                ("reportingComponent", json!("")),
                ("reportingInstance", json!("")),
            ],
        );
    }
    view
}

/// A stored (core) Event as `events.k8s.io/v1` shows it.
pub fn v1_view(core: &Value) -> Value {
    let Some(core) = core.as_object() else {
        return core.clone();
    };
    let mut view = Map::new();
    let shared: Vec<(&str, &str)> = SHARED
        .iter()
        .chain(["apiVersion", "kind", "reportingInstance"].iter())
        .map(|field| (*field, *field))
        .collect();
    copy_fields(core, &mut view, &shared);
    copy_fields(core, &mut view, &RENAMED);
    // Empty strings and a zero count are left out (omitempty in events.k8s.io/v1).
    view.retain(|field, value| {
        let empty_text = matches!(field.as_str(), "reportingController" | "reportingInstance")
            && value.as_str() == Some("");
        let zero_count = field == "deprecatedCount" && value.as_i64() == Some(0);
        !empty_text && !zero_count
    });
    fill(
        &mut view,
        &[
            ("eventTime", Value::Null),
            ("regarding", json!({})),
            ("deprecatedSource", json!({})),
            ("deprecatedFirstTimestamp", Value::Null),
            ("deprecatedLastTimestamp", Value::Null),
        ],
    );
    if core.contains_key("apiVersion") {
        view.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    }
    Value::Object(view)
}

/// An `events.k8s.io/v1` Event (as written by a client) in the core form kubesim stores:
/// only the fields present are mapped.
pub fn core_from_v1(v1: &Value) -> Value {
    let Some(v1) = v1.as_object() else {
        return v1.clone();
    };
    let mut core = Map::new();
    let shared: Vec<(&str, &str)> = SHARED
        .iter()
        .chain(["reportingInstance"].iter())
        .map(|field| (*field, *field))
        .collect();
    copy_fields(v1, &mut core, &shared);
    let reversed: Vec<(&str, &str)> = RENAMED.iter().map(|(core, v1)| (*v1, *core)).collect();
    copy_fields(v1, &mut core, &reversed);
    if v1.contains_key("apiVersion") {
        core.insert("apiVersion".into(), json!("v1"));
    }
    if v1.contains_key("kind") {
        core.insert("kind".into(), json!("Event"));
    }
    Value::Object(core)
}

/// The fields an update through `events.k8s.io/v1` may not change (core names, and the names
/// the real validation reports, in its order); core `v1` updates may change anything.
const IMMUTABLE: [(&str, &str); 13] = [
    ("involvedObject", "involvedObject"),
    ("reason", "reason"),
    ("message", "message"),
    ("source", "source"),
    ("firstTimestamp", "firstTimestamp"),
    ("lastTimestamp", "lastTimestamp"),
    ("count", "count"),
    ("type", "type"),
    ("eventTime", "eventTime"),
    ("action", "action"),
    ("related", "related"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
];

/// Whether a field value is its type's zero value (how Go sees an absent field).
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::Object(map) => map.values().all(is_zero),
        Value::Array(items) => items.is_empty(),
        Value::Bool(flag) => !flag,
    }
}

/// The 422 an `events.k8s.io/v1` update gets when it changes an immutable field.
pub(crate) fn check_immutable(name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    for (field, reported) in IMMUTABLE {
        let (before, after) = (&old[field], &new[field]);
        if before != after && !(is_zero(before) && is_zero(after)) {
            causes.push((
                reported,
                format!("Invalid value: {after}: field is immutable"),
            ));
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    let causes: Vec<(&str, &str, &str)> = causes
        .iter()
        .map(|(field, message)| (*field, "FieldValueInvalid", message.as_str()))
        .collect();
    Err(ApiError::invalid_with("Event", name, &causes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_views_map_fields_as_the_real_server() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Deployment", "name": "web"}, "reason": "ScalingReplicaSet",
            "message": "Scaled up", "source": {"component": "deployment-controller"},
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z",
            "count": 2, "type": "Normal", "reportingComponent": ""});
        let view = v1_view(&core);
        assert_eq!(view["apiVersion"], "events.k8s.io/v1");
        assert_eq!(view["note"], "Scaled up");
        assert_eq!(view["regarding"]["name"], "web");
        assert_eq!(view["deprecatedLastTimestamp"], "2026-01-01T00:01:00Z");
        assert_eq!(view["deprecatedCount"], 2);
        assert_eq!(view["eventTime"], Value::Null);
        assert!(view.get("reportingController").is_none());
        let back = core_from_v1(&view);
        assert_eq!(back["message"], "Scaled up");
        assert_eq!(back["involvedObject"], core["involvedObject"]);
        assert_eq!(back["source"], core["source"]);
        let shown = core_view(&core_from_v1(
            &json!({"note": "n", "reportingController": "kubelet"}),
        ));
        assert_eq!(shown["message"], "n");
        assert_eq!(shown["reportingComponent"], "kubelet");
        assert_eq!(shown["reportingInstance"], "");
        assert_eq!(shown["source"], json!({}));
    }
}
