//! `Table` responses (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), so `kubectl get`
//! prints the usual columns (READY, UP-TO-DATE, TYPE, CLUSTER-IP, ...) for the common kinds and
//! NAME/AGE for the others.

use crate::registry::Resource;
use serde_json::{Value, json};

fn age(object: &Value) -> String {
    let Some(created) = object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
    else {
        return "<unknown>".into();
    };
    let seconds = (chrono::Utc::now() - created.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        7200..172_800 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
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

/// Renders objects as a `meta.k8s.io/v1` Table.
pub fn table(
    resource: &Resource,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let probe = objects.first().cloned().unwrap_or_else(|| json!({}));
    let (columns, _) = columns_and_cells(resource, &probe);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|(name, kind)| {
            json!({"name": name, "type": kind, "format": if *name == "Name" { "name" } else { "" }, "description": name, "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let (_, cells) = columns_and_cells(resource, object);
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]},
            })
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": definitions, "rows": rows})
}
