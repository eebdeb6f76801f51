//! The drift rule over generated cases (ARCHITECTURE.md, "Drift is what a deploy would change"):
//! after another field manager mutates an object, `gitship drift` reports the object if and only
//! if a server-side dry-run apply of gitship's manifest (`kubectl apply --server-side
//! --dry-run=server --field-manager=gitship --force-conflicts`, the oracle) would change it.
//!
//! Every case is one object of its own (`c-000`, ...), so one deploy, one drift and one dry run
//! check them all. The mutations are made the ways people and controllers make them: `kubectl
//! edit`, `patch` (strategic, merge and JSON), `scale`, `set`, `label`, `annotate`, and
//! server-side applies by other managers, with and without `--force-conflicts`. Each case also
//! says what the test's author expects (drift or not), so the test fails if drift and the oracle
//! agree on something nobody meant.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use gitship_foundation::model::{FIELD_MANAGER, OWNED_BY_ANNOTATION};
use serde_json::{Value, json};

use crate::support::cluster::TestCluster;
use crate::support::repo::Repo;
use crate::support::{require_tool, test_home};

/// What a case's mutation is meant to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A deploy would change the object: drift.
    Drift,
    /// Nothing gitship owns changes: no drift.
    Clean,
    /// The mutation is refused (a server-side apply that conflicts with gitship's field): no
    /// drift, since nothing changed.
    Refused,
}

/// How a mutation is made.
#[derive(Debug, Clone)]
enum Tool {
    Strategic(Value),
    Merge(Value),
    Json(Value),
    /// `kubectl edit` with an editor that applies these JSON-patch operations to the file.
    Edit(Value),
    /// `kubectl apply --server-side` of this partial object by another manager.
    Apply {
        body: Value,
        force: bool,
    },
    /// Any other kubectl command; `{}` is the object's `kind/name`.
    Kubectl(Vec<String>),
}

impl Tool {
    fn name(&self) -> &'static str {
        match self {
            Tool::Strategic(_) => "patch --type strategic",
            Tool::Merge(_) => "patch --type merge",
            Tool::Json(_) => "patch --type json",
            Tool::Edit(_) => "edit",
            Tool::Apply { force: false, .. } => "apply --server-side",
            Tool::Apply { force: true, .. } => "apply --server-side --force-conflicts",
            Tool::Kubectl(_) => "kubectl",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deployment,
    Service,
    ConfigMap,
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    kind: Kind,
    what: &'static str,
    tool: Tool,
    expect: Expect,
    /// Git declares the finalizer `example.com/hold` on this object.
    held: bool,
}

fn cmd(args: &[&str]) -> Tool {
    Tool::Kubectl(args.iter().map(|s| s.to_string()).collect())
}

fn container_patch(container: Value) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [container]}}}})
}

const C: &str = "/spec/template/spec/containers";

/// Git's Deployment containers, as a merge patch must restate them.
fn git_containers(extra: Option<Value>) -> Value {
    let mut list = vec![
        json!({"name": "app", "image": "registry.invalid/web:1",
            "env": [{"name": "MODE", "value": "prod"}, {"name": "LEVEL", "value": "info"}],
            "ports": [{"containerPort": 8080}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}),
        json!({"name": "helper", "image": "registry.invalid/helper:1"}),
    ];
    list.extend(extra);
    Value::Array(list)
}

/// Every mutation, each made with the tools that can make it.
fn mutations() -> Vec<(Kind, &'static str, Expect, bool, Vec<Tool>)> {
    use Expect::*;
    use Kind::*;
    let sidecar = json!({"name": "sidecar", "image": "registry.invalid/proxy:1"});
    let mut all = vec![
        (
            Deployment,
            "add a sidecar container",
            Clean,
            false,
            vec![
                Tool::Strategic(container_patch(sidecar.clone())),
                Tool::Json(json!([{"op": "add", "path": format!("{C}/-"), "value": sidecar}])),
                Tool::Edit(json!([{"op": "add", "path": format!("{C}/-"), "value": sidecar}])),
                Tool::Merge(
                    json!({"spec": {"template": {"spec": {"containers": git_containers(Some(sidecar.clone()))}}}}),
                ),
                Tool::Apply {
                    body: container_patch(sidecar.clone()),
                    force: false,
                },
                Tool::Apply {
                    body: container_patch(sidecar.clone()),
                    force: true,
                },
            ],
        ),
        (
            Deployment,
            "remove the helper container gitship owns",
            Drift,
            false,
            vec![
                Tool::Strategic(container_patch(
                    json!({"name": "helper", "$patch": "delete"}),
                )),
                Tool::Json(json!([{"op": "remove", "path": format!("{C}/1")}])),
                Tool::Edit(json!([{"op": "remove", "path": format!("{C}/1")}])),
                Tool::Merge(
                    json!({"spec": {"template": {"spec": {"containers": [git_containers(None)[0]]}}}}),
                ),
            ],
        ),
        (
            Deployment,
            "change the helper's image",
            Drift,
            false,
            vec![
                Tool::Json(
                    json!([{"op": "replace", "path": format!("{C}/1/image"), "value": "registry.invalid/helper:2"}]),
                ),
                Tool::Edit(
                    json!([{"op": "replace", "path": format!("{C}/1/image"), "value": "registry.invalid/helper:2"}]),
                ),
                cmd(&["set", "image", "{}", "helper=registry.invalid/helper:2"]),
                Tool::Apply {
                    body: container_patch(
                        json!({"name": "helper", "image": "registry.invalid/helper:2"}),
                    ),
                    force: true,
                },
            ],
        ),
        (
            Deployment,
            "add an env var",
            Clean,
            false,
            vec![
                Tool::Strategic(container_patch(
                    json!({"name": "app", "env": [{"name": "EXTRA", "value": "x"}]}),
                )),
                Tool::Json(
                    json!([{"op": "add", "path": format!("{C}/0/env/-"), "value": {"name": "EXTRA", "value": "x"}}]),
                ),
                Tool::Edit(
                    json!([{"op": "add", "path": format!("{C}/0/env/0"), "value": {"name": "EXTRA", "value": "x"}}]),
                ),
                cmd(&["set", "env", "{}", "-c", "app", "EXTRA=x"]),
                Tool::Apply {
                    body: container_patch(
                        json!({"name": "app", "env": [{"name": "EXTRA", "value": "x"}]}),
                    ),
                    force: false,
                },
            ],
        ),
        (
            Deployment,
            "change an env var gitship owns",
            Drift,
            false,
            vec![
                Tool::Strategic(container_patch(
                    json!({"name": "app", "env": [{"name": "MODE", "value": "debug"}]}),
                )),
                Tool::Json(
                    json!([{"op": "replace", "path": format!("{C}/0/env/0/value"), "value": "debug"}]),
                ),
                Tool::Edit(
                    json!([{"op": "replace", "path": format!("{C}/0/env/0/value"), "value": "debug"}]),
                ),
                cmd(&["set", "env", "{}", "-c", "app", "MODE=debug"]),
                Tool::Apply {
                    body: container_patch(
                        json!({"name": "app", "env": [{"name": "MODE", "value": "debug"}]}),
                    ),
                    force: true,
                },
            ],
        ),
        (
            Deployment,
            "change an env var gitship owns, without force",
            Refused,
            false,
            vec![Tool::Apply {
                body: container_patch(
                    json!({"name": "app", "env": [{"name": "MODE", "value": "debug"}]}),
                ),
                force: false,
            }],
        ),
        (
            Deployment,
            "remove an env var gitship owns",
            Drift,
            false,
            vec![
                Tool::Strategic(container_patch(
                    json!({"name": "app", "env": [{"name": "LEVEL", "$patch": "delete"}]}),
                )),
                Tool::Json(json!([{"op": "remove", "path": format!("{C}/0/env/1")}])),
                Tool::Edit(json!([{"op": "remove", "path": format!("{C}/0/env/1")}])),
                cmd(&["set", "env", "{}", "-c", "app", "LEVEL-"]),
            ],
        ),
        (
            Deployment,
            "set an env var to Git's value",
            Clean,
            false,
            vec![
                cmd(&["set", "env", "{}", "-c", "app", "MODE=prod"]),
                Tool::Apply {
                    body: container_patch(
                        json!({"name": "app", "env": [{"name": "MODE", "value": "prod"}]}),
                    ),
                    force: false,
                },
            ],
        ),
        (
            Deployment,
            "add a port",
            Clean,
            false,
            vec![
                Tool::Strategic(container_patch(
                    json!({"name": "app", "ports": [{"containerPort": 9090}]}),
                )),
                Tool::Json(
                    json!([{"op": "add", "path": format!("{C}/0/ports/-"), "value": {"containerPort": 9090}}]),
                ),
                Tool::Edit(
                    json!([{"op": "add", "path": format!("{C}/0/ports/-"), "value": {"containerPort": 9090, "protocol": "TCP"}}]),
                ),
                Tool::Apply {
                    body: container_patch(
                        json!({"name": "app", "ports": [{"containerPort": 9090}]}),
                    ),
                    force: false,
                },
            ],
        ),
        (
            Deployment,
            "change the port gitship owns",
            Drift,
            false,
            vec![
                Tool::Json(
                    json!([{"op": "replace", "path": format!("{C}/0/ports/0/containerPort"), "value": 8081}]),
                ),
                Tool::Edit(
                    json!([{"op": "replace", "path": format!("{C}/0/ports/0/containerPort"), "value": 8081}]),
                ),
            ],
        ),
        (
            Deployment,
            "add a volume",
            Clean,
            false,
            vec![
                Tool::Strategic(
                    json!({"spec": {"template": {"spec": {"volumes": [{"name": "cache", "emptyDir": {}}]}}}}),
                ),
                Tool::Json(
                    json!([{"op": "add", "path": "/spec/template/spec/volumes/-", "value": {"name": "cache", "emptyDir": {}}}]),
                ),
                Tool::Edit(
                    json!([{"op": "add", "path": "/spec/template/spec/volumes/-", "value": {"name": "cache", "emptyDir": {}}}]),
                ),
                Tool::Apply {
                    body: json!({"spec": {"template": {"spec": {"volumes": [{"name": "cache", "emptyDir": {}}]}}}}),
                    force: false,
                },
            ],
        ),
        (
            Deployment,
            "remove the volume gitship owns (and its mount)",
            Drift,
            false,
            vec![
                Tool::Json(
                    json!([{"op": "remove", "path": format!("{C}/0/volumeMounts/0")}, {"op": "remove", "path": "/spec/template/spec/volumes/0"}]),
                ),
                Tool::Edit(
                    json!([{"op": "remove", "path": format!("{C}/0/volumeMounts/0")}, {"op": "remove", "path": "/spec/template/spec/volumes/0"}]),
                ),
                Tool::Strategic(json!({"spec": {"template": {"spec": {
                "volumes": [{"name": "data", "$patch": "delete"}],
                "containers": [{"name": "app", "volumeMounts": [{"mountPath": "/data", "$patch": "delete"}]}]}}}})),
            ],
        ),
        (
            Deployment,
            "change replicas",
            Drift,
            false,
            vec![
                cmd(&["scale", "{}", "--replicas=3"]),
                cmd(&["scale", "{}", "--replicas=0"]),
                Tool::Strategic(json!({"spec": {"replicas": 2}})),
                Tool::Merge(json!({"spec": {"replicas": 2}})),
                Tool::Json(json!([{"op": "replace", "path": "/spec/replicas", "value": 2}])),
                Tool::Edit(json!([{"op": "replace", "path": "/spec/replicas", "value": 4}])),
                Tool::Apply {
                    body: json!({"spec": {"replicas": 5}}),
                    force: true,
                },
            ],
        ),
        (
            Deployment,
            "scale to Git's replicas",
            Clean,
            false,
            vec![
                cmd(&["scale", "{}", "--replicas=1"]),
                Tool::Merge(json!({"spec": {"replicas": 1}})),
                Tool::Apply {
                    body: json!({"spec": {"replicas": 1}}),
                    force: false,
                },
            ],
        ),
        (
            Deployment,
            "change the image",
            Drift,
            false,
            vec![
                cmd(&["set", "image", "{}", "app=registry.invalid/web:2"]),
                Tool::Strategic(container_patch(
                    json!({"name": "app", "image": "registry.invalid/web:2"}),
                )),
                Tool::Json(
                    json!([{"op": "replace", "path": format!("{C}/0/image"), "value": "registry.invalid/web:2"}]),
                ),
                Tool::Edit(
                    json!([{"op": "replace", "path": format!("{C}/0/image"), "value": "registry.invalid/web:3"}]),
                ),
                Tool::Apply {
                    body: container_patch(
                        json!({"name": "app", "image": "registry.invalid/web:2"}),
                    ),
                    force: true,
                },
            ],
        ),
        (
            Deployment,
            "set the image Git has",
            Clean,
            false,
            vec![
                cmd(&["set", "image", "{}", "app=registry.invalid/web:1"]),
                Tool::Strategic(container_patch(
                    json!({"name": "app", "image": "registry.invalid/web:1"}),
                )),
            ],
        ),
        (
            Deployment,
            "change a resource quantity",
            Drift,
            false,
            vec![
                cmd(&["set", "resources", "{}", "-c", "app", "--requests=cpu=200m"]),
                Tool::Strategic(container_patch(
                    json!({"name": "app", "resources": {"requests": {"memory": "128Mi"}}}),
                )),
                Tool::Json(
                    json!([{"op": "replace", "path": format!("{C}/0/resources/requests/cpu"), "value": "250m"}]),
                ),
                Tool::Edit(
                    json!([{"op": "replace", "path": format!("{C}/0/resources/requests/memory"), "value": "1Gi"}]),
                ),
            ],
        ),
        (
            Deployment,
            "write a quantity Git has in another spelling",
            Clean,
            false,
            vec![
                cmd(&["set", "resources", "{}", "-c", "app", "--requests=cpu=0.1"]),
                Tool::Strategic(container_patch(
                    json!({"name": "app", "resources": {"requests": {"memory": "65536Ki"}}}),
                )),
            ],
        ),
        (
            Deployment,
            "add a resource limit",
            Clean,
            false,
            vec![
                cmd(&["set", "resources", "{}", "-c", "app", "--limits=cpu=1"]),
                Tool::Strategic(container_patch(
                    json!({"name": "app", "resources": {"limits": {"memory": "256Mi"}}}),
                )),
            ],
        ),
        (
            Deployment,
            "change fields gitship does not set",
            Clean,
            false,
            vec![
                Tool::Strategic(json!({"spec": {"revisionHistoryLimit": 3}})),
                Tool::Merge(json!({"spec": {"progressDeadlineSeconds": 300}})),
                Tool::Json(
                    json!([{"op": "replace", "path": "/spec/revisionHistoryLimit", "value": 4}]),
                ),
                Tool::Edit(
                    json!([{"op": "replace", "path": format!("{C}/0/imagePullPolicy"), "value": "Always"}]),
                ),
                Tool::Apply {
                    body: json!({"spec": {"minReadySeconds": 2}}),
                    force: false,
                },
                Tool::Strategic(container_patch(
                    json!({"name": "app", "terminationMessagePolicy": "FallbackToLogsOnError"}),
                )),
            ],
        ),
        (
            Deployment,
            "take Git's value over with another manager",
            Clean,
            false,
            vec![
                Tool::Apply {
                    body: json!({"spec": {"replicas": 1}}),
                    force: true,
                },
                Tool::Apply {
                    body: json!({"metadata": {"labels": {"team": "blog"}}}),
                    force: true,
                },
            ],
        ),
        (
            Deployment,
            "add a finalizer",
            Clean,
            false,
            vec![
                Tool::Json(
                    json!([{"op": "add", "path": "/metadata/finalizers", "value": ["example.com/other"]}]),
                ),
                Tool::Merge(json!({"metadata": {"finalizers": ["example.com/other"]}})),
                Tool::Strategic(json!({"metadata": {"finalizers": ["example.com/other"]}})),
                Tool::Edit(
                    json!([{"op": "add", "path": "/metadata/finalizers", "value": ["example.com/other"]}]),
                ),
                Tool::Apply {
                    body: json!({"metadata": {"finalizers": ["example.com/other"]}}),
                    force: false,
                },
            ],
        ),
        (
            Deployment,
            "add a finalizer beside Git's",
            Clean,
            true,
            vec![
                Tool::Json(
                    json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/other"}]),
                ),
                Tool::Strategic(json!({"metadata": {"finalizers": ["example.com/other"]}})),
            ],
        ),
        (
            Deployment,
            "remove the finalizer gitship owns",
            Drift,
            true,
            vec![
                Tool::Json(json!([{"op": "remove", "path": "/metadata/finalizers/0"}])),
                Tool::Merge(json!({"metadata": {"finalizers": null}})),
                Tool::Strategic(
                    json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/hold"]}}),
                ),
                Tool::Edit(json!([{"op": "remove", "path": "/metadata/finalizers/0"}])),
            ],
        ),
    ];
    // Labels and annotations, the same way each.
    for (field, verb) in [("labels", "label"), ("annotations", "annotate")] {
        let key = if field == "labels" {
            "team"
        } else {
            "example.com/owner"
        };
        let pointer = format!("/metadata/{field}/{}", key.replace('/', "~1"));
        all.push((Deployment, if field == "labels" { "add a label" } else { "add an annotation" }, Clean, false, vec![
            cmd(&[verb, "{}", "extra=x"]),
            Tool::Strategic(json!({"metadata": {field: {"extra": "x"}}})),
            Tool::Merge(json!({"metadata": {field: {"extra": "x"}}})),
            Tool::Json(json!([{"op": "add", "path": format!("/metadata/{field}/extra"), "value": "x"}])),
            Tool::Edit(json!([{"op": "add", "path": format!("/metadata/{field}/extra"), "value": "x"}])),
            Tool::Apply { body: json!({"metadata": {field: {"extra": "x"}}}), force: false },
        ]));
        all.push((
            Deployment,
            if field == "labels" {
                "change a label gitship owns"
            } else {
                "change an annotation gitship owns"
            },
            Drift,
            false,
            vec![
                cmd(&[verb, "{}", "--overwrite", &format!("{key}=other")]),
                Tool::Strategic(json!({"metadata": {field: {key: "other"}}})),
                Tool::Merge(json!({"metadata": {field: {key: "other"}}})),
                Tool::Json(json!([{"op": "replace", "path": pointer, "value": "other"}])),
                Tool::Edit(json!([{"op": "replace", "path": pointer, "value": "other"}])),
                Tool::Apply {
                    body: json!({"metadata": {field: {key: "other"}}}),
                    force: true,
                },
            ],
        ));
        all.push((
            Deployment,
            if field == "labels" {
                "change a label gitship owns, without force"
            } else {
                "change an annotation gitship owns, without force"
            },
            Refused,
            false,
            vec![Tool::Apply {
                body: json!({"metadata": {field: {key: "other"}}}),
                force: false,
            }],
        ));
        all.push((
            Deployment,
            if field == "labels" {
                "remove a label gitship owns"
            } else {
                "remove an annotation gitship owns"
            },
            Drift,
            false,
            vec![
                cmd(&[verb, "{}", &format!("{key}-")]),
                Tool::Merge(json!({"metadata": {field: {key: null}}})),
                Tool::Strategic(json!({"metadata": {field: {key: null}}})),
                Tool::Json(json!([{"op": "remove", "path": pointer}])),
                Tool::Edit(json!([{"op": "remove", "path": pointer}])),
            ],
        ));
    }
    // Services: ports keyed by port and protocol, a granular selector.
    all.extend([
        (Service, "add a port", Clean, false, vec![
            Tool::Strategic(json!({"spec": {"ports": [{"name": "metrics", "port": 9090}]}})),
            Tool::Json(json!([{"op": "add", "path": "/spec/ports/-", "value": {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}}])),
            Tool::Edit(json!([{"op": "add", "path": "/spec/ports/-", "value": {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}}])),
            Tool::Apply { body: json!({"spec": {"ports": [{"name": "metrics", "port": 9090}]}}), force: false },
        ]),
        (Service, "change the target port gitship owns", Drift, false, vec![
            Tool::Strategic(json!({"spec": {"ports": [{"port": 80, "targetPort": 8081}]}})),
            Tool::Json(json!([{"op": "replace", "path": "/spec/ports/0/targetPort", "value": 8081}])),
            Tool::Edit(json!([{"op": "replace", "path": "/spec/ports/0/targetPort", "value": 8082}])),
            Tool::Apply { body: json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8081}]}}), force: true },
        ]),
        (Service, "remove a port gitship owns", Drift, false, vec![
            Tool::Strategic(json!({"spec": {"ports": [{"port": 443, "$patch": "delete"}]}})),
            Tool::Json(json!([{"op": "remove", "path": "/spec/ports/1"}])),
            Tool::Edit(json!([{"op": "remove", "path": "/spec/ports/1"}])),
        ]),
        (Service, "change the selector", Drift, false, vec![
            Tool::Merge(json!({"spec": {"selector": {"app": "other"}}})),
            Tool::Json(json!([{"op": "replace", "path": "/spec/selector/app", "value": "other"}])),
            Tool::Edit(json!([{"op": "replace", "path": "/spec/selector/app", "value": "other"}])),
        ]),
        (Service, "add a label", Clean, false, vec![
            cmd(&["label", "{}", "extra=x"]),
            Tool::Merge(json!({"metadata": {"labels": {"extra": "x"}}})),
        ]),
        (Service, "change a field gitship does not set", Clean, false, vec![
            Tool::Merge(json!({"spec": {"sessionAffinity": "ClientIP"}})),
            Tool::Edit(json!([{"op": "replace", "path": "/spec/sessionAffinity", "value": "ClientIP"}])),
        ]),
    ]);
    // ConfigMaps: a granular map of data.
    all.extend([
        (
            ConfigMap,
            "add a key",
            Clean,
            false,
            vec![
                Tool::Strategic(json!({"data": {"extra": "x"}})),
                Tool::Merge(json!({"data": {"extra": "x"}})),
                Tool::Json(json!([{"op": "add", "path": "/data/extra", "value": "x"}])),
                Tool::Edit(json!([{"op": "add", "path": "/data/extra", "value": "x"}])),
                Tool::Apply {
                    body: json!({"data": {"extra": "x"}}),
                    force: false,
                },
            ],
        ),
        (
            ConfigMap,
            "change a key gitship owns",
            Drift,
            false,
            vec![
                Tool::Strategic(json!({"data": {"a": "changed"}})),
                Tool::Merge(json!({"data": {"a": "changed"}})),
                Tool::Json(json!([{"op": "replace", "path": "/data/a", "value": "changed"}])),
                Tool::Edit(json!([{"op": "replace", "path": "/data/a", "value": "changed"}])),
                Tool::Apply {
                    body: json!({"data": {"a": "changed"}}),
                    force: true,
                },
            ],
        ),
        (
            ConfigMap,
            "change a key gitship owns, without force",
            Refused,
            false,
            vec![Tool::Apply {
                body: json!({"data": {"a": "changed"}}),
                force: false,
            }],
        ),
        (
            ConfigMap,
            "remove a key gitship owns",
            Drift,
            false,
            vec![
                Tool::Merge(json!({"data": {"b": null}})),
                Tool::Json(json!([{"op": "remove", "path": "/data/b"}])),
                Tool::Edit(json!([{"op": "remove", "path": "/data/b"}])),
            ],
        ),
        (
            ConfigMap,
            "write Git's value",
            Clean,
            false,
            vec![
                Tool::Merge(json!({"data": {"a": "1"}})),
                Tool::Apply {
                    body: json!({"data": {"a": "1"}}),
                    force: false,
                },
            ],
        ),
    ]);
    all
}

/// The cases: every mutation with every tool, in two rounds (a second object per pair, so each
/// pair is checked twice over and the cases pass 200).
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for round in 0..2 {
        for (kind, what, expect, held, tools) in mutations() {
            for tool in tools {
                cases.push(Case {
                    name: format!("c-{:03}", cases.len()),
                    kind,
                    what,
                    tool,
                    expect,
                    held: held || (round == 1 && kind == Kind::ConfigMap),
                });
            }
        }
    }
    cases
}

/// Git's object for a case.
fn manifest(case: &Case) -> Value {
    let name = &case.name;
    let mut object = match case.kind {
        Kind::Deployment => json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name, "team": "blog"},
                "annotations": {"example.com/owner": "blog"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": git_containers(None),
                        "volumes": [{"name": "data", "emptyDir": {}}]}}}}),
        Kind::Service => json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"selector": {"app": name}, "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "https", "port": 443, "targetPort": 8443}]}}),
        Kind::ConfigMap => json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": name}},
            "data": {"a": "1", "b": "2"}}),
    };
    if case.held {
        object["metadata"]["finalizers"] = json!(["example.com/hold"]);
    }
    object
}

fn resource(case: &Case) -> String {
    let kind = match case.kind {
        Kind::Deployment => "deployment",
        Kind::Service => "service",
        Kind::ConfigMap => "configmap",
    };
    format!("{kind}/{}", case.name)
}

struct Kubectl {
    kubeconfig: PathBuf,
    namespace: String,
    dir: PathBuf,
}

impl Kubectl {
    fn command(&self) -> Command {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("-n")
            .arg(&self.namespace)
            .env("HOME", test_home());
        command
    }

    fn run(&self, args: &[String], stdin: Option<&str>) -> Result<String, String> {
        use std::io::Write;
        let mut command = self.command();
        command
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().map_err(|e| format!("kubectl: {e}"))?;
        if let Some(mut pipe) = child.stdin.take() {
            let _ = pipe.write_all(stdin.unwrap_or_default().as_bytes());
        }
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        match output.status.success() {
            true => Ok(stdout),
            false => Err(format!(
                "kubectl {}: {}{stdout}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            )),
        }
    }

    /// Make a case's mutation.
    fn mutate(&self, case: &Case) -> Result<String, String> {
        let target = resource(case);
        let strings = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match &case.tool {
            Tool::Strategic(patch) | Tool::Merge(patch) | Tool::Json(patch) => {
                let kind = match &case.tool {
                    Tool::Strategic(_) => "strategic",
                    Tool::Merge(_) => "merge",
                    _ => "json",
                };
                let patch = patch.to_string();
                self.run(
                    &strings(&["patch", &target, "--type", kind, "-p", &patch]),
                    None,
                )
            }
            Tool::Edit(operations) => {
                let ops = self.dir.join(format!("{}.ops.json", case.name));
                std::fs::write(&ops, operations.to_string()).map_err(|e| e.to_string())?;
                let editor = format!(
                    "python3 {} {}",
                    self.dir.join("editor.py").display(),
                    ops.display()
                );
                let mut command = self.command();
                let output = command
                    .args(["edit", &target, "-o", "json"])
                    .env("KUBE_EDITOR", editor)
                    .output()
                    .map_err(|e| e.to_string())?;
                match output.status.success() {
                    true => Ok(String::new()),
                    false => Err(format!(
                        "kubectl edit {target}: {}",
                        String::from_utf8_lossy(&output.stderr)
                    )),
                }
            }
            Tool::Apply { body, force } => {
                let mut object = body.clone();
                let (api_version, kind) = match case.kind {
                    Kind::Deployment => ("apps/v1", "Deployment"),
                    Kind::Service => ("v1", "Service"),
                    Kind::ConfigMap => ("v1", "ConfigMap"),
                };
                object["apiVersion"] = json!(api_version);
                object["kind"] = json!(kind);
                object["metadata"]["name"] = json!(case.name);
                let mut args = strings(&[
                    "apply",
                    "--server-side",
                    "--field-manager=platform-bot",
                    "--validate=false",
                    "-f",
                    "-",
                ]);
                if *force {
                    args.push("--force-conflicts".into());
                }
                self.run(&args, Some(&object.to_string()))
            }
            Tool::Kubectl(args) => {
                let args: Vec<String> = args
                    .iter()
                    .map(|a| if a == "{}" { target.clone() } else { a.clone() })
                    .collect();
                self.run(&args, None)
            }
        }
    }
}

/// A `KUBE_EDITOR` that applies the JSON-patch operations of its first argument to the file of
/// its second (what `kubectl edit -o json` opens).
const EDITOR: &str = r##"import json, sys
ops = json.load(open(sys.argv[1]))
path = sys.argv[2]
text = "\n".join(l for l in open(path).read().splitlines() if not l.lstrip().startswith(("#", "//")))
doc = json.loads(text)
for op in ops:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    parent = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    key = parts[-1]
    if isinstance(parent, list):
        if op["op"] == "add":
            parent.append(op["value"]) if key == "-" else parent.insert(int(key), op["value"])
        elif op["op"] == "remove":
            del parent[int(key)]
        else:
            parent[int(key)] = op["value"]
    elif op["op"] == "remove":
        del parent[key]
    else:
        parent[key] = op["value"]
json.dump(doc, open(path, "w"))
"##;

/// The object without status and server bookkeeping: what a change of the object is measured on.
fn stored(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
        ] {
            metadata.remove(key);
        }
    }
    object
}

/// The oracle: the names of the objects a server-side dry-run apply of gitship's manifests (as
/// gitship applies them: rendered, with the owner annotation its apply adds, field manager
/// `gitship`, forced) would change, with the fields that differ.
fn oracle(repo: &Repo, kubectl: &Kubectl) -> BTreeMap<String, Vec<String>> {
    let rendered = repo.ok(&["-o", "json", "render", "production"]);
    let rendered: Value = serde_json::from_str(&rendered.stdout).expect("render JSON");
    let mut bodies = Vec::new();
    for item in rendered["manifests"].as_array().expect("rendered objects") {
        let mut body = item["object"].clone();
        body["metadata"]["annotations"][OWNED_BY_ANNOTATION] = json!("production");
        bodies.push(body);
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": bodies});
    let dry = kubectl
        .run(
            &[
                "apply".into(),
                "--server-side".into(),
                "--dry-run=server".into(),
                "--validate=false".into(),
                format!("--field-manager={FIELD_MANAGER}"),
                "--force-conflicts".into(),
                "-o".into(),
                "json".into(),
                "-f".into(),
                "-".into(),
            ],
            Some(&list.to_string()),
        )
        .expect("dry run");
    let dry: Value = serde_json::from_str(&dry).expect("dry-run JSON");
    let live = kubectl
        .run(
            &[
                "get".into(),
                "deployments,services,configmaps".into(),
                "-o".into(),
                "json".into(),
            ],
            None,
        )
        .expect("live objects");
    let live: Value = serde_json::from_str(&live).expect("live JSON");
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o["kind"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    let live: BTreeMap<String, Value> = live["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| (key(o), stored(o)))
        .collect();
    let mut changed = BTreeMap::new();
    for item in dry["items"].as_array().expect("dry-run items") {
        let after = stored(item);
        let before = live.get(&key(item)).cloned().unwrap_or(Value::Null);
        if before != after {
            changed.insert(
                item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                differing(&before, &after, ""),
            );
        }
    }
    changed
}

/// Where two JSON values differ (for the failure message).
fn differing(before: &Value, after: &Value, path: &str) -> Vec<String> {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    differing(
                        b.get(k).unwrap_or(&Value::Null),
                        a.get(k).unwrap_or(&Value::Null),
                        &format!("{path}.{k}"),
                    )
                })
                .collect()
        }
        (b, a) if b == a => Vec::new(),
        (b, a) => vec![format!("{path}: {b} -> {a}")],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_reports_exactly_what_a_deploy_would_change() {
    if !require_tool("kubectl", "help") || !require_tool("python3", "--version") {
        return;
    }
    let cluster = TestCluster::start().await;
    let ns = cluster.ns("rule");
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    tokio::task::spawn_blocking(move || check_the_rule(&kubeconfig, &ns))
        .await
        .expect("test body");
    drop(cluster);
}

fn check_the_rule(kubeconfig: &Path, ns: &str) {
    let cases = cases();
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: Some(kubeconfig.to_path_buf()),
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "config/production.yaml",
        &format!("cluster:\n  context: kubesim\n  namespace: {ns}\n"),
    );
    let documents: Vec<String> = cases
        .iter()
        .map(|case| serde_json::to_string(&manifest(case)).expect("json"))
        .collect();
    repo.write(
        "infrastructure/kubernetes/cases.yaml",
        &documents.join("\n---\n"),
    );
    repo.git(&["init", "-q"]);
    repo.commit("cases");
    let dir = tempfile::tempdir().expect("temp");
    std::fs::write(dir.path().join("editor.py"), EDITOR).expect("editor");
    let kubectl = Kubectl {
        kubeconfig: kubeconfig.to_path_buf(),
        namespace: ns.to_string(),
        dir: dir.path().to_path_buf(),
    };
    let _release = ReleaseFinalizers {
        kubectl: &kubectl,
        cases: &cases,
    };
    repo.ok(&["deploy", "production", "--timeout", "300s"]);
    let (code, report) = repo.drift_json(&["production"]);
    assert_eq!(code, 0, "fresh deploy drifts: {report:#?}");

    let mut problems = Vec::new();
    for case in &cases {
        match (kubectl.mutate(case), case.expect) {
            (Ok(_), Expect::Refused) => problems.push(format!(
                "{} ({} by {}): expected the mutation to be refused",
                case.name,
                case.what,
                case.tool.name()
            )),
            (Err(error), Expect::Drift | Expect::Clean) => problems.push(format!(
                "{} ({} by {}): the mutation failed: {error}",
                case.name,
                case.what,
                case.tool.name()
            )),
            _ => {}
        }
    }

    let (code, report) = repo.drift_json(&["production"]);
    let drifted: BTreeMap<String, &gitship::facade::plan::ObjectDrift> = report
        .kubernetes
        .iter()
        .map(|o| (o.object.name.clone(), o))
        .collect();
    let would_change = oracle(&repo, &kubectl);
    let mut counts = BTreeMap::<(&str, bool), usize>::new();
    for case in &cases {
        let drift = drifted.get(&case.name);
        let change = would_change.get(&case.name);
        *counts
            .entry((case.tool.name(), change.is_some()))
            .or_default() += 1;
        let describe = || {
            format!(
                "{} ({} by {}): drift {:?}, a deploy would change {:?}",
                case.name,
                case.what,
                case.tool.name(),
                drift.map(|d| d.fields.iter().map(|f| f.line()).collect::<Vec<_>>()),
                change
            )
        };
        if drift.is_some() != change.is_some() {
            problems.push(format!("DISAGREE {}", describe()));
        }
        if (case.expect == Expect::Drift) != change.is_some() {
            problems.push(format!("UNEXPECTED {}", describe()));
        }
        if let Some(drift) = drift {
            for field in &drift.fields {
                // A value someone changed names its manager. A removed one may not: once the
                // field is gone, managedFields keeps no owner of it, and a write that only
                // removes leaves its writer without an entry.
                // A real API server records no owner of `spec.replicas` after a scale to 0
                // (the Scale's zero is omitted from its field set), so no one can be named.
                let scaled_to_zero = matches!(&case.tool, Tool::Kubectl(args) if args.iter().any(|a| a == "--replicas=0"));
                if field.before.is_some()
                    && !scaled_to_zero
                    && field.manager.as_deref().is_none_or(|m| m == FIELD_MANAGER)
                {
                    problems.push(format!("NO MANAGER {}: {}", describe(), field.line()));
                }
                if field.manager.as_deref() == Some("kube-controller-manager") {
                    problems.push(format!("CONTROLLER NAMED {}: {}", describe(), field.line()));
                }
                if field.path.contains("[0]") || field.path.contains("[1]") {
                    problems.push(format!("LIST BY INDEX {}: {}", describe(), field.line()));
                }
            }
        }
    }
    let drifting = cases
        .iter()
        .filter(|c| would_change.contains_key(&c.name))
        .count();
    eprintln!(
        "{} cases: {drifting} drift, {} clean; per tool (tool, drift): {counts:?}",
        cases.len(),
        cases.len() - drifting
    );
    assert_eq!(code, if drifting > 0 { 2 } else { 0 });
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );

    // A deploy changes exactly that: afterwards nothing drifts and the dry run changes nothing.
    repo.ok(&["deploy", "production", "--timeout", "300s"]);
    let (code, report) = repo.drift_json(&["production"]);
    assert_eq!(code, 0, "{report:#?}");
    let left = oracle(&repo, &kubectl);
    assert!(left.is_empty(), "after the deploy: {left:#?}");
}

/// Removes the test's finalizers when dropped, even after a failed assertion, so the namespace
/// can go (on the real server a finalizer left behind keeps it terminating for good).
struct ReleaseFinalizers<'a> {
    kubectl: &'a Kubectl,
    cases: &'a [Case],
}

impl Drop for ReleaseFinalizers<'_> {
    fn drop(&mut self) {
        let held = self
            .cases
            .iter()
            .filter(|case| case.held || case.what.contains("finalizer"));
        for case in held {
            let _ = self.kubectl.run(
                &[
                    "patch".into(),
                    resource(case),
                    "--type".into(),
                    "merge".into(),
                    "-p".into(),
                    r#"{"metadata":{"finalizers":null}}"#.into(),
                ],
                None,
            );
        }
    }
}
