//! `Table` responses (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), so `kubectl get`
//! prints the real printers' columns (with the `-o wide` ones at priority 1) for Deployments,
//! StatefulSets, DaemonSets, Jobs, CronJobs, Services, Namespaces, ConfigMaps, Secrets,
//! PersistentVolumeClaims, Ingresses and Events, and NAME/AGE for the others; ages as the
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
    let wide = matches!(column, "Containers" | "Images" | "Selector" | "VolumeMode");
    u8::from(wide || (resource.kind == "Event" && wide_event_column))
}

fn number(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// `metav1.FormatLabelSelector`: `app=web,tier in (a,b),!legacy`, `<none>` when unset.
fn format_selector(selector: &Value) -> String {
    if !selector.is_object() {
        return "<none>".into();
    }
    let mut parts: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or("")))
        .collect();
    parts.sort();
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or("");
        let values: Vec<&str> = expression["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match expression["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({})", values.join(",")),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// The names and images of a pod template's containers (the wide CONTAINERS and IMAGES).
fn containers_and_images(template: &Value) -> [Value; 2] {
    let containers: Vec<&Value> = template["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let join = |field: &str| {
        containers
            .iter()
            .map(|container| container[field].as_str().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(",")
    };
    [json!(join("name")), json!(join("image"))]
}

/// A `key=value,...` map, or `<none>`.
fn format_map(map: &Value) -> String {
    let mut parts: Vec<String> = map
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or("")))
        .collect();
    parts.sort();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

type Columns = (Vec<(&'static str, &'static str)>, Vec<Value>);

fn workload_columns(resource: &Resource, object: &Value) -> Option<Columns> {
    let name = json!(object["metadata"]["name"].as_str().unwrap_or(""));
    let (spec, status) = (&object["spec"], &object["status"]);
    let ready = || {
        json!(format!(
            "{}/{}",
            number(&status["readyReplicas"]),
            spec["replicas"].as_i64().unwrap_or(1)
        ))
    };
    let [containers, images] = containers_and_images(&spec["template"]);
    let selector = json!(format_selector(&spec["selector"]));
    let columns = match (resource.group.as_str(), resource.kind.as_str()) {
        ("apps", "Deployment") => (
            vec![
                ("Name", "string"),
                ("Ready", "string"),
                ("Up-to-date", "string"),
                ("Available", "string"),
                ("Age", "string"),
                ("Containers", "string"),
                ("Images", "string"),
                ("Selector", "string"),
            ],
            vec![
                name,
                ready(),
                json!(number(&status["updatedReplicas"])),
                json!(number(&status["availableReplicas"])),
                json!(age(object)),
                containers,
                images,
                selector,
            ],
        ),
        ("apps", "StatefulSet") => (
            vec![
                ("Name", "string"),
                ("Ready", "string"),
                ("Age", "string"),
                ("Containers", "string"),
                ("Images", "string"),
            ],
            vec![name, ready(), json!(age(object)), containers, images],
        ),
        ("apps", "DaemonSet") => (
            vec![
                ("Name", "string"),
                ("Desired", "integer"),
                ("Current", "integer"),
                ("Ready", "integer"),
                ("Up-to-date", "integer"),
                ("Available", "integer"),
                ("Node Selector", "string"),
                ("Age", "string"),
                ("Containers", "string"),
                ("Images", "string"),
                ("Selector", "string"),
            ],
            vec![
                name,
                json!(number(&status["desiredNumberScheduled"])),
                json!(number(&status["currentNumberScheduled"])),
                json!(number(&status["numberReady"])),
                json!(number(&status["updatedNumberScheduled"])),
                json!(number(&status["numberAvailable"])),
                json!(format_map(&spec["template"]["spec"]["nodeSelector"])),
                json!(age(object)),
                containers,
                images,
                selector,
            ],
        ),
        ("batch", "Job") => {
            let condition = |kind: &str| {
                status["conditions"].as_array().is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c["type"] == kind && c["status"] == "True")
                })
            };
            let state = if condition("Complete") {
                "Complete"
            } else if condition("Failed") {
                "Failed"
            } else {
                "Running"
            };
            let seconds = |field: &str| {
                status[field]
                    .as_str()
                    .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            };
            let duration = match (seconds("startTime"), seconds("completionTime")) {
                (None, _) => String::new(),
                (Some(_), None) => since(&status["startTime"]),
                (Some(start), Some(end)) => human_duration((end - start).num_seconds()),
            };
            (
                vec![
                    ("Name", "string"),
                    ("Status", "string"),
                    ("Completions", "string"),
                    ("Duration", "string"),
                    ("Age", "string"),
                    ("Containers", "string"),
                    ("Images", "string"),
                    ("Selector", "string"),
                ],
                vec![
                    name,
                    json!(state),
                    json!(format!(
                        "{}/{}",
                        number(&status["succeeded"]),
                        spec["completions"].as_i64().unwrap_or(1)
                    )),
                    json!(duration),
                    json!(age(object)),
                    containers,
                    images,
                    selector,
                ],
            )
        }
        ("batch", "CronJob") => {
            let job = &spec["jobTemplate"]["spec"];
            let [containers, images] = containers_and_images(&job["template"]);
            let suspended = spec["suspend"].as_bool().unwrap_or(false);
            let last = if status["lastScheduleTime"].is_string() {
                since(&status["lastScheduleTime"])
            } else {
                "<none>".into()
            };
            (
                vec![
                    ("Name", "string"),
                    ("Schedule", "string"),
                    ("Timezone", "string"),
                    ("Suspend", "boolean"),
                    ("Active", "integer"),
                    ("Last Schedule", "string"),
                    ("Age", "string"),
                    ("Containers", "string"),
                    ("Images", "string"),
                    ("Selector", "string"),
                ],
                vec![
                    name,
                    json!(spec["schedule"].as_str().unwrap_or("")),
                    json!(spec["timeZone"].as_str().unwrap_or("<none>")),
                    json!(if suspended { "True" } else { "False" }),
                    json!(status["active"].as_array().map_or(0, Vec::len)),
                    json!(last),
                    json!(age(object)),
                    containers,
                    images,
                    json!(format_selector(&job["selector"])),
                ],
            )
        }
        _ => return None,
    };
    Some(columns)
}

fn core_columns(resource: &Resource, object: &Value) -> Option<Columns> {
    let name = json!(object["metadata"]["name"].as_str().unwrap_or(""));
    let (spec, status) = (&object["spec"], &object["status"]);
    let count = |field: &str| object[field].as_object().map_or(0, |data| data.len());
    let columns = match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Service") => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|port| {
                    let node_port = port["nodePort"]
                        .as_i64()
                        .map(|node_port| format!(":{node_port}"))
                        .unwrap_or_default();
                    format!(
                        "{}{node_port}/{}",
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
                    ("Selector", "string"),
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
                    json!(format_map(&spec["selector"])),
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
        ("", "ConfigMap") => (
            vec![("Name", "string"), ("Data", "string"), ("Age", "string")],
            vec![
                name,
                json!(count("data") + count("binaryData")),
                json!(age(object)),
            ],
        ),
        ("", "Secret") => (
            vec![
                ("Name", "string"),
                ("Type", "string"),
                ("Data", "string"),
                ("Age", "string"),
            ],
            vec![
                name,
                json!(object["type"].as_str().unwrap_or("")),
                json!(count("data") + count("stringData")),
                json!(age(object)),
            ],
        ),
        ("", "PersistentVolumeClaim") => {
            let bound = spec["volumeName"]
                .as_str()
                .is_some_and(|volume| !volume.is_empty());
            let modes: Vec<&str> = status["accessModes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|mode| match mode.as_str()? {
                    "ReadWriteOnce" => Some("RWO"),
                    "ReadOnlyMany" => Some("ROX"),
                    "ReadWriteMany" => Some("RWX"),
                    "ReadWriteOncePod" => Some("RWOP"),
                    _ => None,
                })
                .collect();
            let phase = if object["metadata"].get("deletionTimestamp").is_some() {
                "Terminating"
            } else {
                status["phase"].as_str().unwrap_or("")
            };
            let unset = |value: &Value| {
                value
                    .as_str()
                    .filter(|text| !text.is_empty())
                    .unwrap_or("<unset>")
                    .to_string()
            };
            (
                vec![
                    ("Name", "string"),
                    ("Status", "string"),
                    ("Volume", "string"),
                    ("Capacity", "string"),
                    ("Access Modes", "string"),
                    ("StorageClass", "string"),
                    ("VolumeAttributesClass", "string"),
                    ("Age", "string"),
                    ("VolumeMode", "string"),
                ],
                vec![
                    name,
                    json!(phase),
                    json!(spec["volumeName"].as_str().unwrap_or("")),
                    json!(if bound {
                        status["capacity"]["storage"].as_str().unwrap_or("")
                    } else {
                        ""
                    }),
                    json!(if bound {
                        modes.join(",")
                    } else {
                        String::new()
                    }),
                    json!(spec["storageClassName"].as_str().unwrap_or("")),
                    json!(unset(&spec["volumeAttributesClassName"])),
                    json!(age(object)),
                    json!(unset(&spec["volumeMode"])),
                ],
            )
        }
        ("networking.k8s.io", "Ingress") => {
            let hosts: Vec<&str> = spec["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|rule| rule["host"].as_str().filter(|host| !host.is_empty()))
                .collect();
            let hosts = match hosts.len() {
                0 => "*".to_string(),
                1..=3 => hosts.join(","),
                more => format!("{} + {} more...", hosts[..3].join(","), more - 3),
            };
            let addresses: Vec<&str> = status["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|ingress| {
                    ingress["ip"]
                        .as_str()
                        .or_else(|| ingress["hostname"].as_str())
                })
                .collect();
            let tls = spec["tls"].as_array().is_some_and(|tls| !tls.is_empty());
            (
                vec![
                    ("Name", "string"),
                    ("Class", "string"),
                    ("Hosts", "string"),
                    ("Address", "string"),
                    ("Ports", "string"),
                    ("Age", "string"),
                ],
                vec![
                    name,
                    json!(spec["ingressClassName"].as_str().unwrap_or("<none>")),
                    json!(hosts),
                    json!(addresses.join(",")),
                    json!(if tls { "80, 443" } else { "80" }),
                    json!(age(object)),
                ],
            )
        }
        _ => return None,
    };
    Some(columns)
}

fn columns_and_cells(resource: &Resource, object: &Value) -> Columns {
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Event") => event_columns_and_cells(object),
        ("events.k8s.io", "Event") => event_columns_and_cells(&crate::events::core_from_v1(object)),
        _ => workload_columns(resource, object)
            .or_else(|| core_columns(resource, object))
            .unwrap_or_else(|| {
                (
                    vec![("Name", "string"), ("Age", "string")],
                    vec![
                        json!(object["metadata"]["name"].as_str().unwrap_or("")),
                        json!(age(object)),
                    ],
                )
            }),
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
