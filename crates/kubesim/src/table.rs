//! `Table` responses (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), so `kubectl get`
//! prints the usual columns (READY, UP-TO-DATE, TYPE, CLUSTER-IP, ...) for the common kinds,
//! LAST SEEN/TYPE/REASON/OBJECT/MESSAGE for Events, and NAME/AGE for the others; ages as the
//! real printers write them.

use crate::registry::Resource;
use serde_json::{Value, json};

fn age(object: &Value) -> String {
    since(&object["metadata"]["creationTimestamp"])
}

/// The time since a timestamp, as the real printers show it (`<unknown>` when unset).
fn since(timestamp: &Value) -> String {
    let Some(time) = timestamp
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
    else {
        return "<unknown>".into();
    };
    human_duration((chrono::Utc::now() - time.with_timezone(&chrono::Utc)).num_seconds())
}

/// apimachinery's `duration.HumanDuration`: `45s`, `3m20s`, `15m`, `5h3m`, `30h`, `3d2h`, `9d`,
/// `2y10d`.
fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    let days = hours / 24;
    let with_rest = |major: i64, unit: &str, rest: i64, rest_unit: &str| {
        if rest == 0 {
            format!("{major}{unit}")
        } else {
            format!("{major}{unit}{rest}{rest_unit}")
        }
    };
    match seconds {
        _ if seconds < 120 => format!("{seconds}s"),
        _ if minutes < 10 => with_rest(minutes, "m", seconds % 60, "s"),
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 => with_rest(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => with_rest(days, "d", hours % 24, "h"),
        _ if hours < 24 * 365 * 2 => format!("{days}d"),
        _ if hours < 24 * 365 * 8 => with_rest(days / 365, "y", days % 365, "d"),
        _ => format!("{}y", days / 365),
    }
}

/// The columns of core Events and `events.k8s.io/v1` Events (the real `printEvent`): the last
/// five only with `-o wide` (priority 1).
fn event_columns_and_cells(event: &Value) -> (Vec<(&'static str, &'static str)>, Vec<Value>) {
    let first_seen = if event["firstTimestamp"].is_string() {
        since(&event["firstTimestamp"])
    } else {
        since(&event["eventTime"])
    };
    let mut last_seen = if event["lastTimestamp"].is_string() {
        since(&event["lastTimestamp"])
    } else {
        first_seen.clone()
    };
    let mut count = event["count"].as_i64().unwrap_or(0);
    if event["series"].is_object() {
        last_seen = since(&event["series"]["lastObservedTime"]);
        count = event["series"]["count"].as_i64().unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let involved = &event["involvedObject"];
    let kind = involved["kind"].as_str().unwrap_or("").to_lowercase();
    let object = match involved["name"].as_str().filter(|name| !name.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    };
    let first_non_empty = |first: &Value, second: &Value| {
        first
            .as_str()
            .filter(|text| !text.is_empty())
            .or_else(|| second.as_str())
            .unwrap_or("")
            .to_string()
    };
    let component = first_non_empty(&event["source"]["component"], &event["reportingComponent"]);
    let instance = first_non_empty(&event["source"]["host"], &event["reportingInstance"]);
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    let text = |field: &str| json!(event[field].as_str().unwrap_or(""));
    (
        vec![
            ("Last Seen", "string"),
            ("Type", "string"),
            ("Reason", "string"),
            ("Object", "string"),
            ("Subobject", "string"),
            ("Source", "string"),
            ("Message", "string"),
            ("First Seen", "string"),
            ("Count", "string"),
            ("Name", "string"),
        ],
        vec![
            json!(last_seen),
            text("type"),
            text("reason"),
            json!(object),
            json!(involved["fieldPath"].as_str().unwrap_or("")),
            json!(source),
            json!(event["message"].as_str().unwrap_or("").trim()),
            json!(first_seen),
            json!(count),
            json!(event["metadata"]["name"].as_str().unwrap_or("")),
        ],
    )
}

/// Columns kubectl shows only with `-o wide`.
fn priority(resource: &Resource, column: &str) -> u8 {
    let wide_event_column = matches!(
        column,
        "Subobject" | "Source" | "First Seen" | "Count" | "Name"
    );
    u8::from(resource.kind == "Event" && wide_event_column)
}

fn number(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

fn columns_and_cells(
    resource: &Resource,
    object: &Value,
) -> (Vec<(&'static str, &'static str)>, Vec<Value>) {
    let name = json!(object["metadata"]["name"].as_str().unwrap_or(""));
    let spec = &object["spec"];
    let status = &object["status"];
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Event") => event_columns_and_cells(object),
        ("events.k8s.io", "Event") => event_columns_and_cells(&crate::events::core_from_v1(object)),
        ("apps", "Deployment") => (
            vec![
                ("Name", "string"),
                ("Ready", "string"),
                ("Up-to-date", "integer"),
                ("Available", "integer"),
                ("Age", "string"),
            ],
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    number(&status["readyReplicas"]),
                    spec["replicas"].as_i64().unwrap_or(1)
                )),
                json!(number(&status["updatedReplicas"])),
                json!(number(&status["availableReplicas"])),
                json!(age(object)),
            ],
        ),
        ("apps", "StatefulSet") => (
            vec![("Name", "string"), ("Ready", "string"), ("Age", "string")],
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    number(&status["readyReplicas"]),
                    spec["replicas"].as_i64().unwrap_or(1)
                )),
                json!(age(object)),
            ],
        ),
        ("", "Service") => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|port| {
                    format!(
                        "{}/{}",
                        number(&port["port"]),
                        port["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            (
                vec![
                    ("Name", "string"),
                    ("Type", "string"),
                    ("Cluster-IP", "string"),
                    ("External-IP", "string"),
                    ("Port(s)", "string"),
                    ("Age", "string"),
                ],
                vec![
                    name,
                    spec["type"].clone(),
                    json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                    json!("<none>"),
                    json!(if ports.is_empty() {
                        "<none>".to_string()
                    } else {
                        ports.join(",")
                    }),
                    json!(age(object)),
                ],
            )
        }
        ("", "Namespace") => (
            vec![("Name", "string"), ("Status", "string"), ("Age", "string")],
            vec![
                name,
                json!(status["phase"].as_str().unwrap_or("Active")),
                json!(age(object)),
            ],
        ),
        ("", "ConfigMap") | ("", "Secret") => {
            let data = object["data"].as_object().map_or(0, |data| data.len())
                + object["binaryData"]
                    .as_object()
                    .map_or(0, |data| data.len())
                + object["stringData"]
                    .as_object()
                    .map_or(0, |data| data.len());
            (
                vec![("Name", "string"), ("Data", "integer"), ("Age", "string")],
                vec![name, json!(data), json!(age(object))],
            )
        }
        ("batch", "Job") => {
            let complete = status["conditions"].as_array().is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c["type"] == "Complete" && c["status"] == "True")
            });
            let failed = status["conditions"].as_array().is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c["type"] == "Failed" && c["status"] == "True")
            });
            let state = if complete {
                "Complete"
            } else if failed {
                "Failed"
            } else {
                "Running"
            };
            (
                vec![
                    ("Name", "string"),
                    ("Status", "string"),
                    ("Completions", "string"),
                    ("Age", "string"),
                ],
                vec![
                    name,
                    json!(state),
                    json!(format!(
                        "{}/{}",
                        number(&status["succeeded"]),
                        spec["completions"].as_i64().unwrap_or(1)
                    )),
                    json!(age(object)),
                ],
            )
        }
        _ => (
            vec![("Name", "string"), ("Age", "string")],
            vec![name, json!(age(object))],
        ),
    }
}

/// Renders objects as a `meta.k8s.io/v1` Table. Each row carries the object as
/// `include_object` asks (`includeObject`): `Metadata` (the default, a
/// PartialObjectMetadata), `Object` (the whole object: what `kubectl get --sort-by` sorts by)
/// or `None`.
pub fn table(
    resource: &Resource,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include_object: &str,
) -> Value {
    let probe = objects.first().cloned().unwrap_or_else(|| json!({}));
    let (columns, _) = columns_and_cells(resource, &probe);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|(name, kind)| {
            json!({"name": name, "type": kind, "format": if *name == "Name" { "name" } else { "" }, "description": name, "priority": priority(resource, name)})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let (_, cells) = columns_and_cells(resource, object);
            match include_object {
                "Object" => json!({"cells": cells, "object": object}),
                "None" => json!({"cells": cells}),
                _ => json!({
                    "cells": cells,
                    "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]},
                }),
            }
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": definitions, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_as_kubectl_prints_them() {
        let cases = [
            (45, "45s"),
            (119, "119s"),
            (200, "3m20s"),
            (180, "3m"),
            (900, "15m"),
            (5 * 3600 + 180, "5h3m"),
            (30 * 3600, "30h"),
            (3 * 86_400 + 7200, "3d2h"),
            (9 * 86_400, "9d"),
            (800 * 86_400, "2y70d"),
        ];
        for (seconds, text) in cases {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
    }
}
