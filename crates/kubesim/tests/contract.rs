//! The API contract gitship relies on, as tests against a [`Cluster`]: kubesim by default, or a
//! real cluster when `GITSHIP_TEST_KUBECONFIG` names a kubeconfig (each test then works in its
//! own namespace, deleted at the end). Assertions are limited to what a real API server
//! guarantees: status codes, reasons, causes, managers, field presence, and whether
//! generation/resourceVersion changed — never exact timestamps or version numbers.
//! Tests of kubesim-only features (fault injection, scripted rollouts, state files) skip on a
//! real cluster.

use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::core::GroupVersionKind;
use kubesim::{Fault, KubeSim, Options, Rollout, SimHandle};
use serde_json::{Value, json};
use std::time::Duration;

/// A cluster to test against: kubesim, or a real one.
struct Cluster {
    client: kube::Client,
    namespace: String,
    sim: Option<KubeSim>,
}

impl Cluster {
    async fn new() -> Cluster {
        Cluster::with_options(Options {
            rollout_delay: Duration::from_millis(50),
            ..Options::default()
        })
        .await
    }

    async fn with_options(options: Options) -> Cluster {
        let namespace = format!(
            "contract-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let (client, sim) = match std::env::var_os("GITSHIP_TEST_KUBECONFIG") {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .expect("read GITSHIP_TEST_KUBECONFIG");
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .expect("kubeconfig");
                (kube::Client::try_from(config).expect("client"), None)
            }
            None => {
                let sim = KubeSim::start_with(options).await.expect("start kubesim");
                (sim.client().expect("client"), Some(sim))
            }
        };
        let cluster = Cluster {
            client,
            namespace,
            sim,
        };
        let namespaces = cluster.api_all("v1", "Namespace", "namespaces");
        namespaces
            .create(&PostParams::default(), &object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster.namespace}})))
            .await
            .expect("create test namespace");
        cluster
    }

    /// The kubeconfig of the cluster under test.
    fn kubeconfig(&self) -> std::path::PathBuf {
        match (&self.sim, std::env::var_os("GITSHIP_TEST_KUBECONFIG")) {
            (Some(sim), _) => sim.kubeconfig_path().to_path_buf(),
            (None, Some(path)) => path.into(),
            (None, None) => unreachable!("a real cluster comes from GITSHIP_TEST_KUBECONFIG"),
        }
    }

    /// Runs the `kubectl` on PATH in the test namespace with a scrubbed environment, the
    /// cluster's kubeconfig, a private HOME and `environment`; `None` when kubectl is missing
    /// (the caller then skips, unless `GITSHIP_REQUIRE_TOOLS=1` makes that a failure).
    async fn kubectl(
        &self,
        args: &[&str],
        environment: &[(&str, &str)],
    ) -> Option<std::process::Output> {
        let home = tempfile::tempdir().expect("home");
        let mut command = std::process::Command::new("kubectl");
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("KUBECONFIG", self.kubeconfig())
            .args(["--namespace", &self.namespace])
            .args(args);
        for (name, value) in environment {
            command.env(name, value);
        }
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join");
        match output {
            Ok(output) => Some(output),
            Err(error) => {
                if std::env::var("GITSHIP_REQUIRE_TOOLS").is_ok_and(|value| value == "1") {
                    panic!("kubectl is required (GITSHIP_REQUIRE_TOOLS=1): {error}");
                }
                eprintln!("\n*** SKIPPED: kubectl is not available: {error} ***\n");
                None
            }
        }
    }

    /// The kubesim handle, or `None` on a real cluster (the caller then skips).
    fn handle(&self) -> Option<SimHandle> {
        self.sim.as_ref().map(KubeSim::handle)
    }

    fn resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }

    fn api(&self, api_version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &Cluster::resource(api_version, kind, plural),
        )
    }

    fn api_all(&self, api_version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
        Api::all_with(
            self.client.clone(),
            &Cluster::resource(api_version, kind, plural),
        )
    }

    fn config_maps(&self) -> Api<DynamicObject> {
        self.api("v1", "ConfigMap", "configmaps")
    }

    fn deployments(&self) -> Api<DynamicObject> {
        self.api("apps/v1", "Deployment", "deployments")
    }

    /// A raw request: (status code, headers, JSON body or `null`).
    async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<Value>,
    ) -> (u16, http::HeaderMap, Value) {
        let bytes = body
            .map(|body| body.to_string().into_bytes())
            .unwrap_or_default();
        self.raw_bytes(method, path, content_type, bytes).await
    }

    /// A raw request with a body of any bytes: (status code, headers, JSON body or `null`).
    async fn raw_bytes(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> (u16, http::HeaderMap, Value) {
        let path = path.replace("{ns}", &self.namespace);
        let mut builder = http::Request::builder().method(method).uri(path);
        if !content_type.is_empty() {
            builder = builder.header("Content-Type", content_type);
        }
        let request = builder
            .body(kube::client::Body::from(bytes))
            .expect("request");
        let response = self.client.send(request).await.expect("send");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// `GET path` as `kubectl get` asks for it: a Table (with `includeObject` when given).
    async fn table(&self, path: &str) -> Value {
        let path = path.replace("{ns}", &self.namespace);
        let request = http::Request::builder()
            .method("GET")
            .uri(path)
            .header(
                "Accept",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            )
            .body(kube::client::Body::from(Vec::new()))
            .expect("request");
        let response = self.client.send(request).await.expect("send");
        assert_eq!(response.status().as_u16(), 200);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("a Table")
    }

    async fn cleanup(self) {
        if self.sim.is_none() {
            let _ = self
                .api_all("v1", "Namespace", "namespaces")
                .delete(&self.namespace, &DeleteParams::default())
                .await;
        }
    }
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("object")
}

fn config_map(name: &str, labels: Value, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": data})
}

fn deployment(name: &str, replicas: i64, containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}},
        },
    })
}

fn api_error(error: kube::Error) -> Box<kube::core::Status> {
    match error {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn resource_version(object: &DynamicObject) -> String {
    object
        .metadata
        .resource_version
        .clone()
        .expect("resourceVersion")
}

fn managers(object: &DynamicObject) -> Vec<(String, String, Option<String>)> {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|entry| {
            (
                entry.manager.clone().unwrap_or_default(),
                entry.operation.clone().unwrap_or_default(),
                entry.subresource.clone(),
            )
        })
        .collect()
}

fn owned_fields(object: &DynamicObject, manager: &str) -> Value {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|entry| entry.manager.as_deref() == Some(manager))
        .and_then(|entry| entry.fields_v1.as_ref())
        .map(|fields| fields.0.clone())
        .unwrap_or(Value::Null)
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // A real cluster's namespace controller takes about five seconds to empty a namespace.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn discovery_serves_every_advertised_group_and_crd_resources() {
    let cluster = Cluster::new().await;
    let discovery = kube::Discovery::new(cluster.client.clone())
        .run()
        .await
        .expect("discovery");
    let (deployments, capabilities) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .expect("apps/v1 Deployment discovered");
    assert_eq!(deployments.plural, "deployments");
    assert!(capabilities.supports_operation("patch"));
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
            .is_some()
    );
    let version = cluster.client.apiserver_version().await.expect("version");
    assert!(!version.major.is_empty());

    let group = format!("{}.example.com", cluster.namespace);
    let definitions = cluster.api_all(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    );
    let definition = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}}}]},
    });
    definitions
        .create(&PostParams::default(), &object(definition))
        .await
        .expect("create CRD");
    let name = format!("widgets.{group}");
    eventually("CRD Established", || {
        let definitions = definitions.clone();
        let name = name.clone();
        async move {
            definitions.get(&name).await.ok().is_some_and(|crd| {
                crd.data["status"]["conditions"]
                    .as_array()
                    .is_some_and(|conditions| {
                        conditions
                            .iter()
                            .any(|c| c["type"] == "Established" && c["status"] == "True")
                    })
            })
        }
    })
    .await;
    let discovery = kube::Discovery::new(cluster.client.clone())
        .run()
        .await
        .expect("discovery after CRD");
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk(&group, "v1", "Widget"))
            .is_some(),
        "CRD kind discovered"
    );
    let widgets = cluster.api(&format!("{group}/v1"), "Widget", "widgets");
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}});
    let applied = widgets
        .patch("w", &PatchParams::apply("gitship"), &Patch::Apply(&widget))
        .await
        .expect("apply custom resource");
    assert_eq!(applied.data["spec"]["size"], 3);
    assert_eq!(applied.metadata.generation, Some(1));
    let (code, _, body) = cluster
        .raw(
            "PATCH",
            &format!("/apis/{group}/v1/namespaces/{{ns}}/widgets/w"),
            "application/strategic-merge-patch+json",
            Some(json!({"spec": {"size": 4}})),
        )
        .await;
    assert_eq!(
        code, 415,
        "custom resources have no strategic merge patch: {body}"
    );
    assert_eq!(
        body["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
    // Unlike built-in kinds, custom resources keep apiVersion and kind in a list.
    let (code, _, list) = cluster
        .raw(
            "GET",
            &format!("/apis/{group}/v1/namespaces/{{ns}}/widgets"),
            "",
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(list["items"][0]["kind"], "Widget", "{list}");
    assert_eq!(
        list["items"][0]["apiVersion"],
        format!("{group}/v1"),
        "{list}"
    );
    definitions
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete CRD");
    eventually("custom resources removed with their CRD", || {
        let widgets = widgets.clone();
        async move {
            widgets
                .get("w")
                .await
                .is_err_and(|error| matches!(error, kube::Error::Api(status) if status.code == 404))
        }
    })
    .await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn create_get_update_delete_with_real_status_errors() {
    let cluster = Cluster::new().await;
    let maps = cluster.config_maps();
    let created = maps
        .create(
            &PostParams::default(),
            &object(config_map("settings", json!({}), json!({"a": "1"}))),
        )
        .await
        .expect("create");
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let first_version = resource_version(&created);

    let duplicate = maps
        .create(
            &PostParams::default(),
            &object(config_map("settings", json!({}), json!({}))),
        )
        .await;
    let status = api_error(duplicate.expect_err("duplicate create fails"));
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    let mut changed = created.clone();
    changed.data["data"]["a"] = json!("2");
    let replaced = maps
        .replace("settings", &PostParams::default(), &changed)
        .await
        .expect("replace");
    assert_ne!(resource_version(&replaced), first_version);
    let stale = maps
        .replace("settings", &PostParams::default(), &changed)
        .await;
    let status = api_error(stale.expect_err("stale resourceVersion is rejected"));
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));

    let (code, _, body) = cluster
        .raw(
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            "application/json",
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})),
        )
        .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (422, Some("Invalid")),
        "{body}"
    );
    assert_eq!(body["kind"], "Status");

    let (code, _, body) = cluster
        .raw(
            "GET",
            "/api/v1/namespaces/{ns}/configmaps/missing",
            "",
            None,
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(body["message"], "configmaps \"missing\" not found");

    maps.delete("settings", &DeleteParams::default())
        .await
        .expect("delete");
    let status = api_error(maps.get("settings").await.expect_err("deleted"));
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    let status = api_error(
        maps.delete("settings", &DeleteParams::default())
            .await
            .expect_err("delete missing"),
    );
    assert_eq!(status.code, 404);

    let cluster_roles = cluster.api_all(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
    );
    let role_name = format!("{}-reader", cluster.namespace);
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role_name}, "rules": []});
    let role = cluster_roles
        .create(&PostParams::default(), &object(role))
        .await
        .expect("create cluster-scoped");
    assert!(role.metadata.namespace.is_none());
    cluster_roles
        .delete(&role_name, &DeleteParams::default())
        .await
        .expect("delete cluster-scoped");
    cluster.cleanup().await;
}

#[tokio::test]
async fn list_with_label_and_field_selectors_and_pagination() {
    let cluster = Cluster::new().await;
    let maps = cluster.config_maps();
    for (name, labels) in [
        ("a", json!({"app": "web", "tier": "front"})),
        ("b", json!({"app": "api", "tier": "back"})),
        ("c", json!({"app": "db"})),
        ("d", json!({"app": "web"})),
    ] {
        maps.create(
            &PostParams::default(),
            &object(config_map(name, labels, json!({}))),
        )
        .await
        .expect("create");
    }
    let names = |selector: &'static str| {
        let maps = maps.clone();
        async move {
            let mut names: Vec<String> = maps
                .list(&ListParams::default().labels(selector))
                .await
                .expect("list")
                .items
                .into_iter()
                .filter_map(|item| item.metadata.name)
                .filter(|name| name.len() == 1)
                .collect();
            names.sort();
            names.join(",")
        }
    };
    assert_eq!(names("app=web").await, "a,d");
    assert_eq!(names("app!=web").await, "b,c");
    assert_eq!(names("app in (api,db)").await, "b,c");
    assert_eq!(names("app notin (web,db)").await, "b");
    assert_eq!(names("tier").await, "a,b");
    assert_eq!(names("!tier,app").await, "c,d");
    let by_name = maps
        .list(&ListParams::default().fields("metadata.name=c"))
        .await
        .expect("field selector");
    assert_eq!(by_name.items.len(), 1);

    let mut seen = Vec::new();
    let mut params = ListParams::default().labels("app").limit(3);
    loop {
        let page = maps.list(&params).await.expect("page");
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().filter_map(|item| item.metadata.name));
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["a", "b", "c", "d"]);

    // The list carries apiVersion and kind; the items of a built-in kind do not.
    let (code, _, page) = cluster
        .raw(
            "GET",
            "/api/v1/namespaces/{ns}/configmaps?labelSelector=app&limit=3",
            "",
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        (&page["apiVersion"], &page["kind"]),
        (&json!("v1"), &json!("ConfigMapList"))
    );
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    for item in items {
        assert!(
            item.get("apiVersion").is_none() && item.get("kind").is_none(),
            "{item}"
        );
        assert!(item["metadata"]["name"].is_string(), "{item}");
    }
    assert!(page["metadata"]["continue"].is_string(), "{page}");
    assert!(
        page["metadata"].get("remainingItemCount").is_none(),
        "not counted under a selector: {page}"
    );
    let (_, _, everything) = cluster
        .raw("GET", "/api/v1/namespaces/{ns}/configmaps", "", None)
        .await;
    let total = everything["items"].as_array().map_or(0, Vec::len);
    let (_, _, first) = cluster
        .raw(
            "GET",
            "/api/v1/namespaces/{ns}/configmaps?limit=1",
            "",
            None,
        )
        .await;
    assert_eq!(
        first["metadata"]["remainingItemCount"],
        total - 1,
        "{first}"
    );
    let (_, _, last) = cluster
        .raw(
            "GET",
            &format!(
                "/api/v1/namespaces/{{ns}}/configmaps?labelSelector=app&limit=3&continue={}",
                page["metadata"]["continue"].as_str().unwrap_or("")
            ),
            "",
            None,
        )
        .await;
    assert_eq!(last["items"].as_array().map(Vec::len), Some(1), "{last}");
    assert!(last["items"][0].get("kind").is_none(), "{last}");
    assert!(
        last["metadata"].get("remainingItemCount").is_none(),
        "{last}"
    );
    let (code, _, _) = cluster
        .raw(
            "GET",
            "/api/v1/namespaces/{ns}/configmaps?labelSelector=app%20in%20web",
            "",
            None,
        )
        .await;
    assert_eq!(code, 400);
    cluster.cleanup().await;
}

#[tokio::test]
async fn merge_patch_and_json_patch() {
    let cluster = Cluster::new().await;
    let maps = cluster.config_maps();
    maps.create(
        &PostParams::default(),
        &object(config_map("p", json!({}), json!({"a": "1", "b": "2"}))),
    )
    .await
    .expect("create");
    let merged = maps
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(merged.data["data"], json!({"b": "2", "c": "3"}));
    let operations = json!([{"op": "replace", "path": "/data/b", "value": "20"}]);
    let (code, _, patched) = cluster
        .raw(
            "PATCH",
            "/api/v1/namespaces/{ns}/configmaps/p",
            "application/json-patch+json",
            Some(operations),
        )
        .await;
    assert_eq!(
        (code, &patched["data"]["b"]),
        (200, &json!("20")),
        "{patched}"
    );
    let (code, _, _) = cluster
        .raw(
            "PATCH",
            "/api/v1/namespaces/{ns}/configmaps/missing",
            "application/merge-patch+json",
            Some(json!({"data": {}})),
        )
        .await;
    assert_eq!(code, 404);
    cluster.cleanup().await;
}

fn container_ports(deployment: &DynamicObject) -> Value {
    deployment.data["spec"]["template"]["spec"]["containers"][0]["ports"].clone()
}

#[tokio::test]
async fn strategic_merge_patch_honours_kubectls_directives() {
    let cluster = Cluster::new().await;
    let deployments = cluster.deployments();
    let containers = json!([
        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}],
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "args": ["a", "b"]},
        {"name": "side", "image": "busybox:1"},
    ]);
    let mut web = deployment("smp", 1, containers);
    web["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
    deployments
        .create(&PostParams::default(), &object(web))
        .await
        .expect("create");
    let strategic = |patch: Value| {
        let deployments = deployments.clone();
        async move {
            deployments
                .patch("smp", &PatchParams::default(), &Patch::Strategic(patch))
                .await
                .expect("strategic merge patch")
        }
    };
    // What `kubectl edit` sends when containerPort 80 becomes 8080.
    let edited = strategic(json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
        "containers": [{"$setElementOrder/ports": [{"containerPort": 8080}], "name": "web",
            "ports": [{"containerPort": 8080, "protocol": "TCP"}, {"$patch": "delete", "containerPort": 80}]}]}}}}))
    .await;
    assert_eq!(
        container_ports(&edited),
        json!([{"containerPort": 8080, "protocol": "TCP"}])
    );
    let spec = &edited.data["spec"]["template"]["spec"];
    assert_eq!(spec["containers"][1]["name"], "side");
    assert_eq!(
        spec["containers"][0]["env"].as_array().map(Vec::len),
        Some(2)
    );

    // Items merge by key and are deleted by key; $setElementOrder orders them; lists without a
    // merge strategy (args) are replaced.
    let merged = strategic(json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
        "containers": [{"name": "web", "args": ["c"],
            "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}]}]}}}}))
    .await;
    let spec = &merged.data["spec"]["template"]["spec"];
    assert_eq!(spec["containers"][0]["name"], "side");
    assert_eq!(
        spec["containers"][1]["env"],
        json!([{"name": "C", "value": "3"}, {"name": "B", "value": "2"}]),
        "a new item goes before the items only the server had"
    );
    assert_eq!(spec["containers"][1]["args"], json!(["c"]));

    // $deleteFromPrimitiveList, $retainKeys and $patch: replace.
    let replaced = strategic(json!({
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]},
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {"spec": {"containers": [{"name": "only", "image": "nginx:2"}, {"$patch": "replace"}]}},
        },
    }))
    .await;
    assert_eq!(
        replaced.metadata.finalizers,
        Some(vec!["example.com/b".to_string()])
    );
    assert_eq!(
        replaced.data["spec"]["strategy"],
        json!({"type": "Recreate"})
    );
    let names: Vec<&str> = replaced.data["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|container| container["name"].as_str())
        .collect();
    assert_eq!(names, ["only"]);
    deployments
        .patch(
            "smp",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("drop finalizers");

    // Through kubectl: `patch --type strategic` and an `edit` whose editor changes the port.
    let Some(patched) = cluster
        .kubectl(
            &["patch", "deployment", "smp", "--type", "strategic", "-p",
              r#"{"spec":{"template":{"spec":{"containers":[{"name":"only","ports":[{"containerPort":80}]}]}}}}"#],
            &[],
        )
        .await
    else {
        return cluster.cleanup().await;
    };
    assert!(
        patched.status.success(),
        "{}",
        String::from_utf8_lossy(&patched.stderr)
    );
    let editor = tempfile::tempdir().expect("editor dir");
    let script = editor.path().join("edit.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i 's/containerPort: 80$/containerPort: 9090/' \"$1\"\n",
    )
    .expect("write editor");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("chmod editor");
    }
    let editor_path = script.to_string_lossy().into_owned();
    let edited = cluster
        .kubectl(
            &["edit", "deployment", "smp"],
            &[("KUBE_EDITOR", editor_path.as_str())],
        )
        .await
        .expect("kubectl");
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    let after = deployments.get("smp").await.expect("get");
    assert_eq!(
        container_ports(&after),
        json!([{"containerPort": 9090, "protocol": "TCP"}]),
        "kubectl edit replaced the port"
    );
    cluster.cleanup().await;
}

#[tokio::test]
async fn server_side_apply_ownership_conflicts_and_force() {
    let cluster = Cluster::new().await;
    let maps = cluster.config_maps();
    let apply = |manager: &'static str| PatchParams::apply(manager);
    let config = config_map("owned", json!({"team": "a"}), json!({"x": "1", "y": "2"}));
    let created = maps
        .patch("owned", &apply("gitship"), &Patch::Apply(&config))
        .await
        .expect("create on apply");
    assert_eq!(
        managers(&created),
        [("gitship".to_string(), "Apply".to_string(), None)]
    );
    assert!(
        owned_fields(&created, "gitship")["f:data"]
            .get("f:x")
            .is_some()
    );

    let again = maps
        .patch("owned", &apply("gitship"), &Patch::Apply(&config))
        .await
        .expect("re-apply");
    assert_eq!(
        resource_version(&again),
        resource_version(&created),
        "a no-op apply does not change resourceVersion"
    );

    let same_value = config_map("owned", json!({}), json!({"x": "1"}));
    let shared = maps
        .patch("owned", &apply("other"), &Patch::Apply(&same_value))
        .await
        .expect("same value: no conflict");
    assert_eq!(managers(&shared).len(), 2);

    let different = config_map("owned", json!({}), json!({"x": "9"}));
    let status = api_error(
        maps.patch("owned", &apply("intruder"), &Patch::Apply(&different))
            .await
            .expect_err("conflict"),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    let causes = status
        .details
        .as_ref()
        .map(|details| details.causes.clone())
        .unwrap_or_default();
    assert!(!causes.is_empty(), "conflict causes are listed");
    for cause in &causes {
        assert_eq!(cause.reason, "FieldManagerConflict");
        assert_eq!(cause.field, ".data.x");
    }
    assert!(causes.iter().any(|cause| cause.message.contains("gitship")));
    assert!(causes.iter().any(|cause| cause.message.contains("other")));

    let forced = maps
        .patch(
            "owned",
            &apply("intruder").force(),
            &Patch::Apply(&different),
        )
        .await
        .expect("force");
    assert_eq!(forced.data["data"]["x"], "9");
    assert!(
        owned_fields(&forced, "gitship")["f:data"]
            .get("f:x")
            .is_none(),
        "force took ownership from gitship"
    );
    assert!(
        owned_fields(&forced, "intruder")["f:data"]
            .get("f:x")
            .is_some()
    );

    let smaller = config_map("owned", json!({"team": "a"}), json!({"x": "9"}));
    let pruned = maps
        .patch("owned", &apply("gitship"), &Patch::Apply(&smaller))
        .await
        .expect("apply without y");
    assert!(
        pruned.data["data"].get("y").is_none(),
        "a field the manager stopped applying is removed"
    );
    assert_eq!(
        pruned.data["data"]["x"], "9",
        "a field another manager owns stays"
    );

    let missing_manager = cluster
        .raw(
            "PATCH",
            "/api/v1/namespaces/{ns}/configmaps/owned",
            "application/apply-patch+yaml",
            Some(config.clone()),
        )
        .await;
    let (code, _, body) = missing_manager;
    assert_eq!(
        (code, body["reason"].as_str()),
        (422, Some("Invalid")),
        "fieldManager is required for apply: {body}"
    );
    assert_eq!(
        body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    assert_eq!(body["details"]["causes"][0]["field"], "fieldManager");
    cluster.cleanup().await;
}

#[tokio::test]
async fn server_side_apply_merges_associative_lists_by_key() {
    let cluster = Cluster::new().await;
    let deployments = cluster.deployments();
    let web = json!([{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]}]);
    let first = deployment("lists", 1, web);
    deployments
        .patch(
            "lists",
            &PatchParams::apply("gitship"),
            &Patch::Apply(&first),
        )
        .await
        .expect("apply web");
    let sidecar = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "lists"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy:1"}]}}},
    });
    let both = deployments
        .patch(
            "lists",
            &PatchParams::apply("mesh"),
            &Patch::Apply(&sidecar),
        )
        .await
        .expect("apply sidecar");
    let containers = both.data["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "containers merge by name: {names:?}");
    assert!(names.contains(&"web") && names.contains(&"sidecar"));
    let mesh = owned_fields(&both, "mesh");
    assert!(
        mesh["f:spec"]["f:template"]["f:spec"]["f:containers"]
            .get("k:{\"name\":\"sidecar\"}")
            .is_some(),
        "{mesh}"
    );

    let second = deployment(
        "lists",
        1,
        json!([{"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}, {"containerPort": 443}], "env": [{"name": "B", "value": "2"}]}]),
    );
    let updated = deployments
        .patch(
            "lists",
            &PatchParams::apply("gitship"),
            &Patch::Apply(&second),
        )
        .await
        .expect("apply update");
    let containers = updated.data["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let web = containers
        .iter()
        .find(|c| c["name"] == "web")
        .cloned()
        .unwrap_or_default();
    assert_eq!(web["image"], "nginx:2");
    assert_eq!(
        web["ports"].as_array().map(Vec::len),
        Some(2),
        "ports merge by containerPort+protocol"
    );
    let env: Vec<&str> = web["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(env, ["B"], "env var A, no longer applied, is removed");
    assert!(
        containers.iter().any(|c| c["name"] == "sidecar"),
        "the other manager's container stays"
    );
    assert_eq!(
        updated.metadata.generation,
        both.metadata.generation.map(|generation| generation + 1)
    );

    let services = cluster.api("v1", "Service", "services");
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lists"},
        "spec": {"selector": {"app": "lists"}, "ports": [{"name": "http", "port": 80}]}});
    services
        .patch(
            "lists",
            &PatchParams::apply("gitship"),
            &Patch::Apply(&service),
        )
        .await
        .expect("apply service");
    let extra = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lists"},
        "spec": {"ports": [{"name": "metrics", "port": 9090}]}});
    let merged = services
        .patch(
            "lists",
            &PatchParams::apply("monitoring"),
            &Patch::Apply(&extra),
        )
        .await
        .expect("apply port");
    assert_eq!(
        merged.data["spec"]["ports"].as_array().map(Vec::len),
        Some(2),
        "Service ports merge by port+protocol"
    );
    cluster.cleanup().await;
}

#[tokio::test]
async fn dry_run_returns_the_result_and_stores_nothing() {
    let cluster = Cluster::new().await;
    let maps = cluster.config_maps();
    let dry_create = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let result = maps
        .create(
            &dry_create,
            &object(config_map("dry", json!({}), json!({"a": "1"}))),
        )
        .await
        .expect("dry create");
    assert_eq!(result.data["data"]["a"], "1");
    assert_eq!(
        api_error(maps.get("dry").await.expect_err("not stored")).code,
        404
    );

    let applied = maps
        .patch(
            "dry",
            &PatchParams::apply("gitship").dry_run(),
            &Patch::Apply(config_map("dry", json!({}), json!({"a": "1"}))),
        )
        .await
        .expect("dry apply");
    assert!(
        !managers(&applied).is_empty(),
        "dry-run apply returns managedFields"
    );
    assert_eq!(
        api_error(maps.get("dry").await.expect_err("not stored")).code,
        404
    );

    let real = maps
        .create(
            &PostParams::default(),
            &object(config_map("dry", json!({}), json!({"a": "1"}))),
        )
        .await
        .expect("create");
    let changed = maps
        .patch(
            "dry",
            &PatchParams::apply("gitship").force().dry_run(),
            &Patch::Apply(config_map("dry", json!({}), json!({"a": "2"}))),
        )
        .await
        .expect("dry apply change");
    assert_eq!(changed.data["data"]["a"], "2");
    let stored = maps.get("dry").await.expect("get");
    assert_eq!(stored.data["data"]["a"], "1");
    assert_eq!(resource_version(&stored), resource_version(&real));
    let dry_delete = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    maps.delete("dry", &dry_delete).await.expect("dry delete");
    assert!(
        maps.get("dry").await.is_ok(),
        "dry-run delete keeps the object"
    );
    cluster.cleanup().await;
}

#[tokio::test]
async fn generation_status_and_scale_subresources() {
    let cluster = Cluster::new().await;
    let deployments = cluster.deployments();
    let config = deployment("gen", 2, json!([{"name": "web", "image": "nginx:1"}]));
    let created = deployments
        .patch(
            "gen",
            &PatchParams::apply("gitship"),
            &Patch::Apply(&config),
        )
        .await
        .expect("apply");
    assert_eq!(created.metadata.generation, Some(1));

    let mut labelled = config.clone();
    labelled["metadata"]["labels"] = json!({"team": "a"});
    let relabelled = deployments
        .patch(
            "gen",
            &PatchParams::apply("gitship"),
            &Patch::Apply(&labelled),
        )
        .await
        .expect("labels");
    assert_eq!(
        relabelled.metadata.generation,
        Some(1),
        "labels do not change generation"
    );
    assert_ne!(resource_version(&relabelled), resource_version(&created));

    let mut with_status = labelled.clone();
    with_status["status"] = json!({"replicas": 99});
    let ignored = deployments
        .patch(
            "gen",
            &PatchParams::apply("gitship"),
            &Patch::Apply(&with_status),
        )
        .await
        .expect("status on main");
    assert_ne!(
        ignored.data["status"]["replicas"], 99,
        "the main resource ignores status"
    );

    let scale = deployments.get_scale("gen").await.expect("get scale");
    assert_eq!(scale.spec.and_then(|spec| spec.replicas), Some(2));
    let scaled = deployments
        .patch_scale(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("patch scale");
    assert_eq!(scaled.spec.and_then(|spec| spec.replicas), Some(5));
    let after = deployments.get("gen").await.expect("get");
    assert_eq!(after.data["spec"]["replicas"], 5);
    assert_eq!(
        after.metadata.generation,
        Some(2),
        "a spec change bumps generation"
    );
    assert!(
        managers(&after)
            .iter()
            .any(|(_, operation, subresource)| operation == "Update"
                && subresource.as_deref() == Some("scale"))
    );
    assert!(
        owned_fields(&after, "gitship")["f:spec"]
            .get("f:replicas")
            .is_none(),
        "scale took ownership of replicas"
    );

    let mut different = labelled.clone();
    different["spec"]["replicas"] = json!(3);
    let status = api_error(
        deployments
            .patch(
                "gen",
                &PatchParams::apply("gitship"),
                &Patch::Apply(&different),
            )
            .await
            .expect_err("conflict"),
    );
    assert_eq!(status.code, 409);

    if cluster.handle().is_none() {
        // Rollout timing is the simulated controllers' business; a real cluster pulls images.
        return cluster.cleanup().await;
    }
    eventually("rollout observed", || {
        let deployments = deployments.clone();
        async move {
            deployments.get("gen").await.ok().is_some_and(|d| {
                d.data["status"]["observedGeneration"] == 2
                    && d.data["status"]["availableReplicas"] == 5
            })
        }
    })
    .await;
    let before = deployments.get("gen").await.expect("get");
    let status_patch = json!({"status": {"conditions": [{"type": "Custom", "status": "True"}]}});
    let patched = deployments
        .patch_status("gen", &PatchParams::default(), &Patch::Merge(status_patch))
        .await
        .expect("patch status");
    assert_eq!(
        patched.metadata.generation, before.metadata.generation,
        "status writes do not bump generation"
    );
    assert_eq!(patched.data["spec"], before.data["spec"]);
    cluster.cleanup().await;
}

#[tokio::test]
async fn simulated_rollouts_report_like_a_healthy_cluster_and_can_fail_sim_only() {
    let cluster = Cluster::new().await;
    if cluster.handle().is_none() {
        // Simulated controllers only: a real cluster's rollout depends on pulling images.
        return cluster.cleanup().await;
    }
    let deployments = cluster.deployments();
    let config = deployment("roll", 3, json!([{"name": "web", "image": "nginx:1"}]));
    deployments
        .patch(
            "roll",
            &PatchParams::apply("gitship"),
            &Patch::Apply(&config),
        )
        .await
        .expect("apply");
    eventually("deployment available", || {
        let deployments = deployments.clone();
        async move {
            deployments.get("roll").await.ok().is_some_and(|d| {
                let status = &d.data["status"];
                status["observedGeneration"] == 1
                    && status["updatedReplicas"] == 3
                    && status["availableReplicas"] == 3
                    && status["conditions"].as_array().is_some_and(|conditions| {
                        conditions.iter().any(|c| {
                            c["type"] == "Available"
                                && c["status"] == "True"
                                && c["reason"] == "MinimumReplicasAvailable"
                        }) && conditions.iter().any(|c| {
                            c["type"] == "Progressing" && c["reason"] == "NewReplicaSetAvailable"
                        })
                    })
            })
        }
    })
    .await;
    let claims = cluster.api("v1", "PersistentVolumeClaim", "persistentvolumeclaims");
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    claims
        .patch(
            "data",
            &PatchParams::apply("gitship"),
            &Patch::Apply(&claim),
        )
        .await
        .expect("apply claim");
    eventually("claim bound", || {
        let claims = claims.clone();
        async move {
            claims
                .get("data")
                .await
                .ok()
                .is_some_and(|claim| claim.data["status"]["phase"] == "Bound")
        }
    })
    .await;
    let handle = cluster.handle().expect("kubesim");
    handle.script_rollout(&cluster.namespace, "broken", Rollout::Fail);
    let broken = deployment("broken", 1, json!([{"name": "web", "image": "nginx:1"}]));
    deployments
        .patch(
            "broken",
            &PatchParams::apply("gitship"),
            &Patch::Apply(&broken),
        )
        .await
        .expect("apply broken");
    eventually("ProgressDeadlineExceeded", || {
        let deployments = deployments.clone();
        async move {
            deployments.get("broken").await.ok().is_some_and(|d| {
                d.data["status"]["conditions"]
                    .as_array()
                    .is_some_and(|conditions| {
                        conditions.iter().any(|c| {
                            c["type"] == "Progressing"
                                && c["status"] == "False"
                                && c["reason"] == "ProgressDeadlineExceeded"
                        })
                    })
            })
        }
    })
    .await;
    handle.script_rollout(
        &cluster.namespace,
        "slow",
        Rollout::Slow(Duration::from_millis(800)),
    );
    let slow = deployment("slow", 2, json!([{"name": "web", "image": "nginx:1"}]));
    deployments
        .patch("slow", &PatchParams::apply("gitship"), &Patch::Apply(&slow))
        .await
        .expect("apply slow");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let progressing = deployments.get("slow").await.expect("get slow");
    assert_eq!(
        progressing.data["status"]["observedGeneration"], 1,
        "progress is reported at once"
    );
    assert_ne!(
        progressing.data["status"]["availableReplicas"], 2,
        "a slow rollout is not available yet"
    );
    eventually("slow rollout finishes", || {
        let deployments = deployments.clone();
        async move {
            deployments
                .get("slow")
                .await
                .ok()
                .is_some_and(|d| d.data["status"]["availableReplicas"] == 2)
        }
    })
    .await;

    let jobs = cluster.api("batch/v1", "Job", "jobs");
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox"}]}}}});
    jobs.patch(
        "migrate",
        &PatchParams::apply("gitship"),
        &Patch::Apply(&job),
    )
    .await
    .expect("apply job");
    eventually("job complete", || {
        let jobs = jobs.clone();
        async move {
            jobs.get("migrate").await.ok().is_some_and(|j| {
                j.data["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Complete" && c["status"] == "True")
                })
            })
        }
    })
    .await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn watch_streams_changes_resumes_and_expires() {
    let cluster = Cluster::with_options(Options {
        rollout_delay: Duration::from_millis(50),
        bookmark_interval: Duration::from_millis(100),
        event_log_capacity: 32,
        ..Options::default()
    })
    .await;
    let maps = cluster.config_maps();
    let list = maps.list(&ListParams::default()).await.expect("list");
    let start = list
        .metadata
        .resource_version
        .clone()
        .expect("list resourceVersion");
    let stream = maps
        .watch(
            &WatchParams::default().labels("watched=yes").timeout(10),
            &start,
        )
        .await
        .expect("watch");
    let mut stream = stream.boxed();
    maps.create(
        &PostParams::default(),
        &object(config_map(
            "w",
            json!({"watched": "yes"}),
            json!({"a": "1"}),
        )),
    )
    .await
    .expect("create");
    maps.create(
        &PostParams::default(),
        &object(config_map("unwatched", json!({}), json!({}))),
    )
    .await
    .expect("create other");
    maps.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .expect("modify");
    maps.delete("w", &DeleteParams::default())
        .await
        .expect("delete");
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("event in time")
            .expect("event");
        match event {
            Some(WatchEvent::Added(object)) => kinds.push(format!(
                "ADDED {}",
                object.metadata.name.unwrap_or_default()
            )),
            Some(WatchEvent::Modified(object)) => kinds.push(format!(
                "MODIFIED {}",
                object.metadata.name.unwrap_or_default()
            )),
            Some(WatchEvent::Deleted(object)) => kinds.push(format!(
                "DELETED {}",
                object.metadata.name.unwrap_or_default()
            )),
            Some(WatchEvent::Bookmark(_)) => {}
            Some(WatchEvent::Error(error)) => panic!("watch error {error:?}"),
            None => panic!("watch ended early"),
        }
    }
    assert_eq!(kinds, ["ADDED w", "MODIFIED w", "DELETED w"]);

    let resumed = maps
        .watch(
            &WatchParams::default()
                .fields("metadata.name=unwatched")
                .timeout(10),
            &start,
        )
        .await
        .expect("resume");
    let mut resumed = resumed.boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), resumed.try_next())
        .await
        .expect("in time")
        .expect("event");
    assert!(
        matches!(first, Some(WatchEvent::Added(ref object)) if object.metadata.name.as_deref() == Some("unwatched")),
        "{first:?}"
    );

    let bookmarks = maps
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            }
            .timeout(10),
            &start,
        )
        .await
        .expect("bookmarks");
    let mut bookmarks = bookmarks.boxed();
    let Some(handle) = cluster.handle() else {
        return cluster.cleanup().await;
    };
    let mut saw_bookmark = false;
    for _ in 0..20 {
        match tokio::time::timeout(Duration::from_secs(3), bookmarks.try_next()).await {
            Ok(Ok(Some(WatchEvent::Bookmark(_)))) => {
                saw_bookmark = true;
                break;
            }
            Ok(Ok(Some(_))) => continue,
            other => panic!("no bookmark: {other:?}"),
        }
    }
    assert!(saw_bookmark);

    for index in 0..40 {
        maps.patch(
            "unwatched",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": index.to_string()}})),
        )
        .await
        .expect("churn");
    }
    let expired = maps
        .watch(&WatchParams::default().timeout(10), &start)
        .await
        .expect("watch old version");
    let mut expired = expired.boxed();
    let event = tokio::time::timeout(Duration::from_secs(5), expired.try_next())
        .await
        .expect("in time");
    match event {
        Ok(Some(WatchEvent::Error(error))) => assert_eq!(error.code, 410, "{error:?}"),
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    let _ = handle;
    cluster.cleanup().await;
}

#[tokio::test]
async fn deletion_honours_finalizers_owners_and_namespaces() {
    let cluster = Cluster::new().await;
    let maps = cluster.config_maps();
    let mut guarded = config_map("guarded", json!({}), json!({}));
    guarded["metadata"]["finalizers"] = json!(["example.com/keep"]);
    maps.create(&PostParams::default(), &object(guarded))
        .await
        .expect("create");
    maps.delete("guarded", &DeleteParams::default())
        .await
        .expect("delete");
    let pending = maps.get("guarded").await.expect("still present");
    assert!(pending.metadata.deletion_timestamp.is_some());
    maps.patch(
        "guarded",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizer");
    eventually("finalized object removed", || {
        let maps = maps.clone();
        async move { maps.get("guarded").await.is_err() }
    })
    .await;

    let owner = maps
        .create(
            &PostParams::default(),
            &object(config_map("owner", json!({}), json!({}))),
        )
        .await
        .expect("owner");
    let mut dependent = config_map("dependent", json!({}), json!({}));
    dependent["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.clone().unwrap_or_default()}]);
    maps.create(&PostParams::default(), &object(dependent))
        .await
        .expect("dependent");
    maps.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    eventually("dependent garbage-collected", || {
        let maps = maps.clone();
        async move { maps.get("dependent").await.is_err() }
    })
    .await;

    let namespaces = cluster.api_all("v1", "Namespace", "namespaces");
    let doomed = format!("{}-doomed", cluster.namespace);
    namespaces
        .create(
            &PostParams::default(),
            &object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": doomed}})),
        )
        .await
        .expect("namespace");
    let active = namespaces.get(&doomed).await.expect("get namespace");
    assert_eq!(active.data["status"]["phase"], "Active");
    assert_eq!(active.data["spec"]["finalizers"], json!(["kubernetes"]));
    let managed = serde_json::to_string(&active.metadata.managed_fields).expect("managedFields");
    assert!(managed.contains("kubernetes.io/metadata.name"), "{managed}");
    assert!(
        !managed.contains("finalizers"),
        "the kubernetes finalizer has no manager: {managed}"
    );
    let doomed_maps: Api<DynamicObject> = Api::namespaced_with(
        cluster.client.clone(),
        &doomed,
        &Cluster::resource("v1", "ConfigMap", "configmaps"),
    );
    doomed_maps
        .create(
            &PostParams::default(),
            &object(config_map("inside", json!({}), json!({}))),
        )
        .await
        .expect("create inside");
    namespaces
        .delete(&doomed, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually("namespace and its objects removed", || {
        let namespaces = namespaces.clone();
        let doomed_maps = doomed_maps.clone();
        let doomed = doomed.clone();
        async move { namespaces.get(&doomed).await.is_err() && doomed_maps.get("inside").await.is_err() }
    })
    .await;
    let missing_namespace: Api<DynamicObject> = Api::namespaced_with(
        cluster.client.clone(),
        "no-such-namespace-x",
        &Cluster::resource("v1", "ConfigMap", "configmaps"),
    );
    let status = api_error(
        missing_namespace
            .create(
                &PostParams::default(),
                &object(config_map("x", json!({}), json!({}))),
            )
            .await
            .expect_err("no namespace"),
    );
    assert_eq!(status.code, 404);

    // Status details leave the core group out (omitempty).
    maps.create(
        &PostParams::default(),
        &object(config_map("plain", json!({}), json!({}))),
    )
    .await
    .expect("create");
    let (code, _, deleted) = cluster
        .raw(
            "DELETE",
            "/api/v1/namespaces/{ns}/configmaps/plain",
            "",
            None,
        )
        .await;
    assert_eq!(
        (code, &deleted["status"]),
        (200, &json!("Success")),
        "{deleted}"
    );
    assert_eq!(deleted["details"]["kind"], "configmaps");
    assert!(deleted["details"].get("group").is_none(), "{deleted}");
    let (code, _, missing) = cluster
        .raw("GET", "/api/v1/namespaces/{ns}/configmaps/plain", "", None)
        .await;
    assert_eq!(code, 404);
    assert!(missing["details"].get("group").is_none(), "{missing}");
    cluster.cleanup().await;
}

#[tokio::test]
async fn injected_faults_latency_and_request_records_sim_only() {
    let cluster = Cluster::new().await;
    let Some(handle) = cluster.handle() else {
        return cluster.cleanup().await;
    };
    let maps = cluster.config_maps();
    maps.create(
        &PostParams::default(),
        &object(config_map("f", json!({}), json!({}))),
    )
    .await
    .expect("create");

    handle.reset_requests();
    handle.fail_next(1, Fault::Status500);
    assert_eq!(api_error(maps.get("f").await.expect_err("500")).code, 500);
    handle.fail_next(1, Fault::Conflict409);
    assert_eq!(api_error(maps.get("f").await.expect_err("409")).code, 409);
    handle.fail_next(1, Fault::Drop);
    assert!(
        matches!(maps.get("f").await, Err(error) if !matches!(error, kube::Error::Api(_))),
        "dropped connection"
    );
    handle.fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    let sim = cluster.sim.as_ref().expect("kubesim");
    let mut config = sim.kube_config();
    config.default_retry = false;
    let without_retry: Api<DynamicObject> = Api::namespaced_with(
        kube::Client::try_from(config).expect("client"),
        &cluster.namespace,
        &Cluster::resource("v1", "ConfigMap", "configmaps"),
    );
    let status = api_error(without_retry.get("f").await.expect_err("429"));
    assert_eq!(
        (status.code, status.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert_eq!(
        status.details.map(|details| details.retry_after_seconds),
        Some(7)
    );
    handle.fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 0,
        },
    );
    maps.get("f")
        .await
        .expect("kube retries a 429 and succeeds");

    handle.fault_rate(100, vec![Fault::Status500]);
    assert!(maps.get("f").await.is_err());
    handle.fault_rate(0, Vec::new());
    assert!(maps.get("f").await.is_ok());

    handle.set_latency(Duration::from_millis(200));
    let started = std::time::Instant::now();
    maps.get("f").await.expect("slow get");
    assert!(started.elapsed() >= Duration::from_millis(200));
    handle.set_latency(Duration::ZERO);

    handle.reset_requests();
    maps.patch(
        "f",
        &PatchParams::apply("gitship").dry_run(),
        &Patch::Apply(config_map("f", json!({}), json!({"a": "1"}))),
    )
    .await
    .expect("dry");
    maps.patch(
        "f",
        &PatchParams::apply("gitship"),
        &Patch::Apply(config_map("f", json!({}), json!({"a": "1"}))),
    )
    .await
    .expect("apply");
    maps.get("f").await.expect("get");
    let requests = handle.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests.iter().filter(|request| request.dry_run).count(), 1);
    assert_eq!(
        requests.iter().filter(|request| request.is_write()).count(),
        1
    );
    assert_eq!(requests[1].field_manager.as_deref(), Some("gitship"));
    assert_eq!(requests[1].content_type, "application/apply-patch+yaml");
    assert_eq!(handle.request_count(), 3);
    cluster.cleanup().await;
}

#[tokio::test]
async fn state_file_persists_objects_between_runs_sim_only() {
    if std::env::var_os("GITSHIP_TEST_KUBECONFIG").is_some() {
        return;
    }
    let directory = tempfile::tempdir().expect("tempdir");
    let state = directory.path().join("state.json");
    let options = || Options {
        state_file: Some(state.clone()),
        rollout_delay: Duration::from_millis(10),
        ..Options::default()
    };
    let version = {
        let sim = KubeSim::start_with(options()).await.expect("start");
        let client = sim.client().expect("client");
        let maps: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "default",
            &Cluster::resource("v1", "ConfigMap", "configmaps"),
        );
        maps.patch(
            "kept",
            &PatchParams::apply("gitship"),
            &Patch::Apply(config_map("kept", json!({}), json!({"a": "1"}))),
        )
        .await
        .expect("apply");
        let deployments: Api<DynamicObject> = Api::namespaced_with(
            client,
            "default",
            &Cluster::resource("apps/v1", "Deployment", "deployments"),
        );
        deployments
            .patch(
                "app",
                &PatchParams::apply("gitship"),
                &Patch::Apply(deployment("app", 1, json!([{"name": "a", "image": "a"}]))),
            )
            .await
            .expect("apply deployment");
        assert!(
            state.exists(),
            "written after each change, not only on exit"
        );
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(&state).expect("read")).expect("json");
        assert!(on_disk["objects"].as_array().is_some_and(|objects| {
            objects
                .iter()
                .any(|entry| entry["object"]["metadata"]["name"] == "kept")
        }));
        sim.handle().resource_version()
    };
    let sim = KubeSim::start_with(options()).await.expect("restart");
    let handle = sim.handle();
    let kept = handle
        .get("v1", "ConfigMap", "default", "kept")
        .expect("kept across runs");
    assert_eq!(kept["data"]["a"], "1");
    assert_eq!(kept["metadata"]["managedFields"][0]["manager"], "gitship");
    assert!(handle.resource_version() >= version);
    let client = sim.client().expect("client");
    let maps: Api<DynamicObject> = Api::namespaced_with(
        client,
        "default",
        &Cluster::resource("v1", "ConfigMap", "configmaps"),
    );
    let updated = maps
        .patch(
            "kept",
            &PatchParams::apply("gitship"),
            &Patch::Apply(config_map("kept", json!({}), json!({"a": "2"}))),
        )
        .await
        .expect("apply");
    assert!(
        updated
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v > version)
    );
    eventually("restarted controller finishes rollout", || {
        let handle = handle.clone();
        async move {
            handle
                .get("apps/v1", "Deployment", "default", "app")
                .is_some_and(|d| d["status"]["availableReplicas"] == 1)
        }
    })
    .await;
}

#[tokio::test]
async fn validation_rejects_missing_required_and_unknown_fields() {
    let cluster = Cluster::new().await;
    let deployments = cluster.deployments();
    let mut without_selector =
        deployment("invalid", 1, json!([{"name": "web", "image": "nginx:1"}]));
    if let Some(spec) = without_selector["spec"].as_object_mut() {
        spec.remove("selector");
    }
    let status = api_error(
        deployments
            .patch(
                "invalid",
                &PatchParams::apply("gitship"),
                &Patch::Apply(&without_selector),
            )
            .await
            .expect_err("422"),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let causes = status
        .details
        .map(|details| details.causes)
        .unwrap_or_default();
    assert!(
        causes.iter().any(|cause| cause.field == "spec.selector"),
        "{causes:?}"
    );

    let mut typo = deployment("typo", 1, json!([{"name": "web", "image": "nginx:1"}]));
    typo["spec"]["replicaz"] = json!(3);
    // Server-side apply refuses undeclared fields whatever fieldValidation says: a 500
    // without a reason, before the namespace is looked at.
    for (namespace, validation) in [
        ("{ns}", "Strict"),
        ("{ns}", "Ignore"),
        ("no-such-namespace-typo", "Ignore"),
    ] {
        let (code, _, body) = cluster
            .raw(
                "PATCH",
                &format!("/apis/apps/v1/namespaces/{namespace}/deployments/typo?fieldManager=gitship&fieldValidation={validation}"),
                "application/apply-patch+yaml",
                Some(typo.clone()),
            )
            .await;
        assert_eq!((code, body.get("reason")), (500, None), "{body}");
        assert_eq!(
            body["message"],
            "failed to create typed patch object (/typo; apps/v1, Kind=Deployment): .spec.replicaz: field not declared in schema"
        );
    }
    // A create decodes the body: Strict refuses the field (400), Ignore drops it.
    let (code, _, body) = cluster
        .raw(
            "POST",
            "/apis/apps/v1/namespaces/{ns}/deployments?fieldValidation=Strict",
            "application/json",
            Some(typo.clone()),
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(
        body["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicaz\""
    );
    let (code, _, body) = cluster
        .raw(
            "POST",
            "/apis/apps/v1/namespaces/{ns}/deployments?fieldValidation=Ignore",
            "application/json",
            Some(typo),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert!(
        body["spec"].get("replicaz").is_none(),
        "unknown fields are dropped"
    );
    cluster.cleanup().await;
}

/// apimachinery's complaint about a malformed quantity.
const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

fn claim_of(size: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})
}

#[tokio::test]
async fn invalid_quantities_fail_decoding_before_the_namespace_is_checked() {
    let cluster = Cluster::new().await;
    let unknown = "(known after apply)";
    let decode_error = format!(
        "PersistentVolumeClaim in version \"v1\" cannot be handled as a PersistentVolumeClaim: {QUANTITY_FORMAT}"
    );
    for namespace in ["{ns}", "no-such-namespace-quantity"] {
        for dry_run in ["", "&dryRun=All"] {
            let claims = format!("/api/v1/namespaces/{namespace}/persistentvolumeclaims");
            let (code, _, body) = cluster
                .raw(
                    "PATCH",
                    &format!("{claims}/data?fieldManager=gitship{dry_run}"),
                    "application/apply-patch+yaml",
                    Some(claim_of(unknown)),
                )
                .await;
            assert_eq!((code, body.get("reason")), (500, None), "apply: {body}");
            assert_eq!(
                body["message"],
                format!(
                    "failed to convert new object (/data; /v1, Kind=PersistentVolumeClaim) to proper version: unable to convert unstructured object to /v1, Kind=PersistentVolumeClaim: {QUANTITY_FORMAT}"
                )
            );
            for (method, path) in [
                ("POST", format!("{claims}?fieldManager=gitship{dry_run}")),
                (
                    "PUT",
                    format!("{claims}/data?fieldManager=gitship{dry_run}"),
                ),
            ] {
                let (code, _, body) = cluster
                    .raw(method, &path, "application/json", Some(claim_of(unknown)))
                    .await;
                assert_eq!(
                    (code, body["reason"].as_str()),
                    (400, Some("BadRequest")),
                    "{method} {path}: {body}"
                );
                assert_eq!(body["message"], decode_error.as_str());
            }
        }
    }

    // On an existing claim: another manager's field conflicts before the quantity is
    // converted; patches answer 422 with the patch quoted.
    let claims = cluster.api("v1", "PersistentVolumeClaim", "persistentvolumeclaims");
    claims
        .patch(
            "data",
            &PatchParams::apply("other"),
            &Patch::Apply(&claim_of("1Gi")),
        )
        .await
        .expect("create claim");
    let (code, _, body) = cluster
        .raw(
            "PATCH",
            "/api/v1/namespaces/{ns}/persistentvolumeclaims/data?fieldManager=gitship",
            "application/apply-patch+yaml",
            Some(claim_of(unknown)),
        )
        .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (409, Some("Conflict")),
        "{body}"
    );
    let patch = json!({"spec": {"resources": {"requests": {"storage": "(x)"}}}});
    let (code, _, body) = cluster
        .raw(
            "PATCH",
            "/api/v1/namespaces/{ns}/persistentvolumeclaims/data",
            "application/strategic-merge-patch+json",
            Some(patch.clone()),
        )
        .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (422, Some("Invalid")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        format!(
            " \"\" is invalid: patch: Invalid value: \"map[spec:map[resources:map[requests:map[storage:(x)]]]]\": {QUANTITY_FORMAT}"
        )
    );
    assert_eq!(body["details"]["causes"][0]["field"], "patch");
    let (code, _, body) = cluster
        .raw(
            "PATCH",
            "/api/v1/namespaces/{ns}/persistentvolumeclaims/data",
            "application/merge-patch+json",
            Some(patch),
        )
        .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (422, Some("Invalid")),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|message| message
            .starts_with(" \"\" is invalid: patch: Invalid value: \"{")
            && message.ends_with(QUANTITY_FORMAT)),
        "{body}"
    );
    cluster.cleanup().await;
}

/// A length-delimited protobuf field.
fn protobuf_field(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut field = vec![tag << 3 | 2];
    let mut length = bytes.len();
    while length >= 0x80 {
        field.push((length as u8 & 0x7f) | 0x80);
        length >>= 7;
    }
    field.push(length as u8);
    field.extend_from_slice(bytes);
    field
}

/// A Kubernetes protobuf body: `k8s\0` and a runtime.Unknown around `raw`.
fn protobuf_body(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [
        protobuf_field(1, api_version.as_bytes()),
        protobuf_field(2, kind.as_bytes()),
    ]
    .concat();
    [
        b"k8s\0".to_vec(),
        protobuf_field(1, &type_meta),
        protobuf_field(2, raw),
    ]
    .concat()
}

#[tokio::test]
async fn protobuf_bodies_decode_or_get_the_real_400() {
    let cluster = Cluster::new().await;
    let protobuf = "application/vnd.kubernetes.protobuf";
    // ConfigMap{metadata: {name: "from-protobuf"}, data: {"mode": "fast"}}.
    let raw = [
        protobuf_field(1, &protobuf_field(1, b"from-protobuf")),
        protobuf_field(
            2,
            &[protobuf_field(1, b"mode"), protobuf_field(2, b"fast")].concat(),
        ),
    ]
    .concat();
    let (code, _, created) = cluster
        .raw_bytes(
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            protobuf,
            protobuf_body("v1", "ConfigMap", &raw),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let stored = cluster
        .config_maps()
        .get("from-protobuf")
        .await
        .expect("stored");
    assert_eq!(stored.data["data"], json!({"mode": "fast"}));

    let (code, _, body) = cluster
        .raw_bytes(
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            protobuf,
            b"garbage".to_vec(),
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(
        body["message"],
        "the object provided is unrecognized (must be of type ConfigMap): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] (67617262616765)"
    );
    let (code, _, body) = cluster
        .raw_bytes(
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            protobuf,
            protobuf_body("v1", "Thing", &[]),
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(
        body["message"],
        "Thing in version \"v1\" cannot be handled as a ConfigMap: no kind \"Thing\" is registered for version \"v1\" in scheme \"pkg/runtime/scheme.go:111\""
    );
    let (code, _, body) = cluster
        .raw_bytes(
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            protobuf,
            protobuf_body("v1", "ConfigMap", &[0x0a, 0x05, 0x0a]),
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(
        body["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: unexpected EOF"
    );
    cluster.cleanup().await;
}

#[tokio::test]
async fn secret_string_data_is_stored_as_base64_data() {
    let cluster = Cluster::new().await;
    let secrets = cluster.api("v1", "Secret", "secrets");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "credentials"}, "stringData": {"password": "hunter2!"}});
    let applied = secrets
        .patch(
            "credentials",
            &PatchParams::apply("gitship"),
            &Patch::Apply(&secret),
        )
        .await
        .expect("apply secret");
    assert_eq!(applied.data["data"]["password"], "aHVudGVyMiE=");
    assert!(applied.data.get("stringData").is_none());
    assert_eq!(applied.data["type"], "Opaque");
    let again = secrets
        .patch(
            "credentials",
            &PatchParams::apply("gitship"),
            &Patch::Apply(&secret),
        )
        .await
        .expect("re-apply");
    assert_eq!(
        resource_version(&again),
        resource_version(&applied),
        "re-applying the same stringData is a no-op"
    );
    cluster.cleanup().await;
}

/// Applies `body` as `gitship` and returns the 422's status (panics on success).
type Status = kube::core::Status;

async fn rejected_apply(
    api: &Api<DynamicObject>,
    name: &str,
    body: &Value,
) -> Box<kube::core::Status> {
    api_error(
        api.patch(
            name,
            &PatchParams::apply("gitship").force(),
            &Patch::Apply(body),
        )
        .await
        .expect_err("an immutable field change is rejected"),
    )
}

fn assert_immutable(status: &Status, field: &str) {
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{status:?}"
    );
    assert!(status.message.contains("is invalid"), "{}", status.message);
    assert!(status.message.contains("immutable"), "{}", status.message);
    let causes = status
        .details
        .as_ref()
        .map(|details| details.causes.clone())
        .unwrap_or_default();
    assert!(
        causes
            .iter()
            .any(|cause| cause.field == field && cause.message.contains("immutable")),
        "{field} in {causes:?}"
    );
}

#[tokio::test]
async fn immutable_fields_are_rejected_on_update() {
    let cluster = Cluster::new().await;
    let apply = PatchParams::apply("gitship").force();

    // Workload selectors.
    let deployments = cluster.deployments();
    let mut web = deployment("web", 1, json!([{"name": "web", "image": "nginx:1"}]));
    deployments
        .patch("web", &apply, &Patch::Apply(&web))
        .await
        .expect("create");
    web["spec"]["selector"]["matchLabels"]["tier"] = json!("front");
    web["spec"]["template"]["metadata"]["labels"]["tier"] = json!("front");
    let status = rejected_apply(&deployments, "web", &web).await;
    assert_immutable(&status, "spec.selector");
    assert!(
        status
            .message
            .starts_with("Deployment.apps \"web\" is invalid: spec.selector"),
        "{}",
        status.message
    );
    // Other fields stay mutable.
    let mut scaled = deployment("web", 4, json!([{"name": "web", "image": "nginx:2"}]));
    scaled["metadata"]["labels"] = json!({"changed": "yes"});
    deployments
        .patch("web", &apply, &Patch::Apply(&scaled))
        .await
        .expect("mutable fields change");

    // A Job's template.
    let jobs = cluster.api("batch/v1", "Job", "jobs");
    let job = |image: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": image}]}}}})
    };
    jobs.patch("migrate", &apply, &Patch::Apply(&job("migrate:1")))
        .await
        .expect("create job");
    assert_immutable(
        &*rejected_apply(&jobs, "migrate", &job("migrate:2")).await,
        "spec.template",
    );

    // A Service's clusterIP, once set (omitting it keeps it).
    let services = cluster.api("v1", "Service", "services");
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let created = services
        .patch("svc", &apply, &Patch::Apply(&service))
        .await
        .expect("create service");
    let address = created.data["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP allocated")
        .to_string();
    let mut replaced = services.get("svc").await.expect("get");
    replaced.data["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("clusterIP");
    replaced.data["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("clusterIPs");
    let kept = services
        .replace("svc", &PostParams::default(), &replaced)
        .await
        .expect("PUT without clusterIP");
    assert_eq!(kept.data["spec"]["clusterIP"], json!(address));
    let other = if address == "10.96.200.200" {
        "10.96.200.201"
    } else {
        "10.96.200.200"
    };
    let mut moved = service.clone();
    moved["spec"]["clusterIP"] = json!(other);
    // The changed clusterIP is copied into clusterIPs[0], which validation refuses.
    let status = rejected_apply(&services, "svc", &moved).await;
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        format!(
            "Service \"svc\" is invalid: spec.clusterIPs[0]: Invalid value: [\"{other}\"]: may not change once set"
        )
    );
    assert!(
        status
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.field == "spec.clusterIPs[0]")),
        "{status:?}"
    );

    // A PVC's spec, except resources.requests.
    let claims = cluster.api("v1", "PersistentVolumeClaim", "persistentvolumeclaims");
    let claim = |mode: &str, size: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}}})
    };
    claims
        .patch(
            "data",
            &apply,
            &Patch::Apply(&claim("ReadWriteOnce", "1Gi")),
        )
        .await
        .expect("create claim");
    if cluster.handle().is_some() {
        // kubesim binds every claim; the real test cluster has no provisioner, so its claims
        // stay Pending.
        eventually("claim bound", || {
            let claims = claims.clone();
            async move {
                claims
                    .get("data")
                    .await
                    .is_ok_and(|claim| claim.data["status"]["phase"] == "Bound")
            }
        })
        .await;
    }
    let bound = claims.get("data").await.expect("claim").data["status"]["phase"] == "Bound";
    let grown = claims
        .patch(
            "data",
            &apply,
            &Patch::Apply(&claim("ReadWriteOnce", "2Gi")),
        )
        .await;
    if bound {
        grown.expect("a bound claim's requests may grow");
    } else {
        let status = api_error(grown.expect_err("an unbound claim's requests are immutable"));
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    }
    let status = rejected_apply(&claims, "data", &claim("ReadWriteMany", "2Gi")).await;
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains("spec is immutable after creation"),
        "{}",
        status.message
    );

    // An immutable ConfigMap's data; a mutable one changes freely.
    let maps = cluster.config_maps();
    let mut frozen = config_map("frozen", json!({}), json!({"k": "v1"}));
    frozen["immutable"] = json!(true);
    maps.patch("frozen", &apply, &Patch::Apply(&frozen))
        .await
        .expect("create");
    frozen["data"]["k"] = json!("v2");
    assert_immutable(&*rejected_apply(&maps, "frozen", &frozen).await, "data");
    let thawed = config_map("frozen", json!({}), json!({"k": "v1"}));
    let status = rejected_apply(&maps, "frozen", &thawed).await;
    assert!(
        status
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.field == "immutable")),
        "{status:?}"
    );
    let secrets = cluster.api("v1", "Secret", "secrets");
    let secret = |value: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "frozen"}, "immutable": true, "stringData": {"k": value}});
    secrets
        .patch("frozen", &apply, &Patch::Apply(&secret("one")))
        .await
        .expect("create secret");
    assert_immutable(
        &*rejected_apply(&secrets, "frozen", &secret("two")).await,
        "data",
    );
    // A Service's ports stay in 1-65535 (the target port defaults to the port, and is refused
    // with it).
    let services = cluster.api("v1", "Service", "services");
    let wide = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "wide"},
        "spec": {"ports": [{"port": 99999}]}});
    let status = rejected_apply(&services, "wide", &wide).await;
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        "Service \"wide\" is invalid: [spec.ports[0].port: Invalid value: 99999: must be between 1 and 65535, inclusive, spec.ports[0].targetPort: Invalid value: 99999: must be between 1 and 65535, inclusive]"
    );
    // A Secret's type, whatever else it holds (omitted, it defaults to `Opaque`).
    let typed = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "typed"},
        "type": "example.com/kept", "data": {"k": "djE="}});
    secrets
        .patch("typed", &apply, &Patch::Apply(&typed))
        .await
        .expect("create typed secret");
    let untyped = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "typed"},
        "data": {"k": "djI="}});
    let status = rejected_apply(&secrets, "typed", &untyped).await;
    assert_immutable(&status, "type");
    assert!(
        status
            .message
            .ends_with("type: Invalid value: \"Opaque\": field is immutable"),
        "{}",
        status.message
    );
    let loose = config_map("loose", json!({}), json!({"k": "v1"}));
    maps.patch("loose", &apply, &Patch::Apply(&loose))
        .await
        .expect("create");
    maps.patch(
        "loose",
        &apply,
        &Patch::Apply(&config_map("loose", json!({}), json!({"k": "v2"}))),
    )
    .await
    .expect("mutable");
    cluster.cleanup().await;
}

#[tokio::test]
async fn events_are_one_store_served_by_two_apis_with_tables() {
    let cluster = Cluster::new().await;
    let core_event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "core-made"},
        "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": cluster.namespace},
        "reason": "ScalingReplicaSet", "message": "Scaled up", "type": "Normal",
        "source": {"component": "deployment-controller"},
        "firstTimestamp": "2026-01-01T10:00:00Z", "lastTimestamp": "2026-01-01T10:01:00Z", "count": 2});
    let (code, _, created) = cluster
        .raw(
            "POST",
            "/api/v1/namespaces/{ns}/events",
            "application/json",
            Some(core_event),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["eventTime"], Value::Null, "{created}");
    assert_eq!(created["reportingComponent"], "", "{created}");
    let new_event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "new-made"},
        "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": cluster.namespace},
        "reason": "Pulled", "note": "Image pulled", "type": "Warning", "action": "Pull",
        "reportingController": "example.com/puller", "reportingInstance": "node-1",
        "eventTime": "2026-01-01T10:02:00.000000Z"});
    let (code, _, created) = cluster
        .raw(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/{ns}/events",
            "application/json",
            Some(new_event),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["note"], "Image pulled", "{created}");
    assert_eq!(created["deprecatedSource"], json!({}), "{created}");

    // Each API shows the other's Event with the real field mapping.
    let (code, _, seen) = cluster
        .raw(
            "GET",
            "/apis/events.k8s.io/v1/namespaces/{ns}/events/core-made",
            "",
            None,
        )
        .await;
    assert_eq!(code, 200, "{seen}");
    assert_eq!(seen["apiVersion"], "events.k8s.io/v1");
    assert_eq!(seen["note"], "Scaled up");
    assert_eq!(seen["regarding"]["name"], "web");
    assert_eq!(
        seen["deprecatedSource"]["component"],
        "deployment-controller"
    );
    assert_eq!(seen["deprecatedFirstTimestamp"], "2026-01-01T10:00:00Z");
    assert_eq!(seen["deprecatedLastTimestamp"], "2026-01-01T10:01:00Z");
    assert_eq!(seen["deprecatedCount"], 2);
    assert_eq!(seen["eventTime"], Value::Null);
    assert!(seen.get("message").is_none() && seen.get("involvedObject").is_none());
    let (code, _, seen) = cluster
        .raw("GET", "/api/v1/namespaces/{ns}/events/new-made", "", None)
        .await;
    assert_eq!(code, 200, "{seen}");
    assert_eq!(seen["message"], "Image pulled");
    assert_eq!(seen["involvedObject"]["kind"], "Deployment");
    assert_eq!(seen["reportingComponent"], "example.com/puller");
    assert_eq!(seen["reportingInstance"], "node-1");
    assert_eq!(seen["source"], json!({}));
    assert_eq!(seen["lastTimestamp"], Value::Null);
    assert_eq!(seen["eventTime"], "2026-01-01T10:02:00.000000Z");
    for path in [
        "/api/v1/namespaces/{ns}/events",
        "/apis/events.k8s.io/v1/namespaces/{ns}/events",
    ] {
        let (_, _, list) = cluster.raw("GET", path, "", None).await;
        let mut names: Vec<&str> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["metadata"]["name"].as_str())
            .filter(|name| name.ends_with("-made"))
            .collect();
        names.sort();
        assert_eq!(names, ["core-made", "new-made"], "{path}");
    }

    // Through events.k8s.io/v1 only the series (and metadata) may change; the core API may
    // change anything, and the other view follows.
    let (code, _, refused) = cluster
        .raw(
            "PATCH",
            "/apis/events.k8s.io/v1/namespaces/{ns}/events/core-made",
            "application/merge-patch+json",
            Some(json!({"note": "Scaled up again", "type": "Warning"})),
        )
        .await;
    assert_eq!(
        (code, refused["reason"].as_str()),
        (422, Some("Invalid")),
        "{refused}"
    );
    assert_eq!(
        refused["message"],
        "Event \"core-made\" is invalid: [message: Invalid value: \"Scaled up again\": field is immutable, type: Invalid value: \"Warning\": field is immutable]"
    );
    let series = json!({"count": 3, "lastObservedTime": "2026-01-01T10:05:00.000000Z"});
    let (code, _, patched) = cluster
        .raw(
            "PATCH",
            "/apis/events.k8s.io/v1/namespaces/{ns}/events/new-made",
            "application/merge-patch+json",
            Some(json!({"series": series})),
        )
        .await;
    assert_eq!((code, &patched["series"]), (200, &series), "{patched}");
    let (code, _, patched) = cluster
        .raw(
            "PATCH",
            "/api/v1/namespaces/{ns}/events/core-made",
            "application/merge-patch+json",
            Some(json!({"message": "Scaled up again"})),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    let (_, _, seen) = cluster
        .raw(
            "GET",
            "/apis/events.k8s.io/v1/namespaces/{ns}/events/core-made",
            "",
            None,
        )
        .await;
    assert_eq!(seen["note"], "Scaled up again");

    // kubectl get events: the real columns, the wide ones at priority 1.
    let table = cluster.table("/api/v1/namespaces/{ns}/events").await;
    let columns: Vec<(&str, i64)> = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|column| {
            (
                column["name"].as_str().unwrap_or(""),
                column["priority"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1)
        ]
    );
    let row = |table: &Value, name: &str| {
        table["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|row| row["cells"][9] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let core_row = row(&table, "core-made");
    assert_eq!(
        core_row["cells"]
            .as_array()
            .map(|cells| cells[1..].to_vec()),
        Some(vec![
            json!("Normal"),
            json!("ScalingReplicaSet"),
            json!("deployment/web"),
            json!(""),
            json!("deployment-controller"),
            json!("Scaled up again"),
            core_row["cells"][7].clone(),
            json!(2),
            json!("core-made")
        ])
    );
    assert_eq!(core_row["object"]["kind"], "PartialObjectMetadata");
    let new_row = row(&table, "new-made");
    assert_eq!(new_row["cells"][5], "example.com/puller, node-1");
    assert_eq!(new_row["cells"][8], 3, "the series' count");
    let new_table = cluster
        .table("/apis/events.k8s.io/v1/namespaces/{ns}/events")
        .await;
    assert_eq!(row(&new_table, "core-made")["cells"][6], "Scaled up again");
    // `kubectl get --sort-by` asks for the whole objects.
    let with_objects = cluster
        .table("/api/v1/namespaces/{ns}/events?includeObject=Object")
        .await;
    let object = &row(&with_objects, "core-made")["object"];
    assert_eq!(
        (&object["kind"], &object["lastTimestamp"]),
        (&json!("Event"), &json!("2026-01-01T10:01:00Z"))
    );

    if let Some(output) = cluster
        .kubectl(&["get", "events", "--sort-by=.lastTimestamp"], &[])
        .await
    {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let header = stdout.lines().next().unwrap_or("");
        for column in ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"] {
            assert!(header.contains(column), "{stdout}");
        }
        assert!(
            stdout.contains("Scaled up again") && stdout.contains("Image pulled"),
            "{stdout}"
        );
    }

    let (code, _, _) = cluster
        .raw(
            "DELETE",
            "/apis/events.k8s.io/v1/namespaces/{ns}/events/core-made",
            "",
            None,
        )
        .await;
    assert_eq!(code, 200);
    let (code, _, _) = cluster
        .raw("GET", "/api/v1/namespaces/{ns}/events/core-made", "", None)
        .await;
    assert_eq!(code, 404, "deleted through one API, gone from the other");
    cluster.cleanup().await;
}

#[tokio::test]
async fn tables_have_the_real_printers_columns() {
    let cluster = Cluster::new().await;
    let apply = PatchParams::apply("gitship");
    let pod = json!({"metadata": {"labels": {"app": "tab"}}, "spec": {"restartPolicy": "Always",
        "containers": [{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "busybox:1"}]}});
    let job_pod = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "j", "image": "busybox:1"}]}});
    let selector = json!({"matchLabels": {"app": "tab"}});
    let objects = [
        (
            "apps/v1",
            "Deployment",
            "deployments",
            json!({"selector": selector, "template": pod}),
        ),
        (
            "apps/v1",
            "StatefulSet",
            "statefulsets",
            json!({"serviceName": "tab", "selector": selector, "template": pod}),
        ),
        (
            "apps/v1",
            "DaemonSet",
            "daemonsets",
            json!({"selector": selector, "template": pod}),
        ),
        (
            "v1",
            "Service",
            "services",
            json!({"selector": {"app": "tab"}, "ports": [{"port": 80}]}),
        ),
        ("batch/v1", "Job", "jobs", json!({"template": job_pod})),
        (
            "batch/v1",
            "CronJob",
            "cronjobs",
            json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": job_pod}}}),
        ),
        (
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
        ),
        (
            "networking.k8s.io/v1",
            "Ingress",
            "ingresses",
            json!({"rules": [{"host": "a.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "tab", "port": {"number": 80}}}}]}}]}),
        ),
    ];
    for (api_version, kind, plural, spec) in &objects {
        let body = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "tab"}, "spec": spec});
        cluster
            .api(api_version, kind, plural)
            .patch("tab", &apply, &Patch::Apply(&body))
            .await
            .unwrap_or_else(|error| panic!("apply {kind}: {error}"));
    }
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tab"}, "type": "Opaque", "stringData": {"a": "b"}});
    cluster
        .api("v1", "Secret", "secrets")
        .patch("tab", &apply, &Patch::Apply(&secret))
        .await
        .expect("apply secret");
    let wide = ["Containers", "Images", "Selector", "VolumeMode"];
    let expected: [(&str, &[&str]); 9] = [
        (
            "/apis/apps/v1/namespaces/{ns}/deployments",
            &[
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector",
            ],
        ),
        (
            "/apis/apps/v1/namespaces/{ns}/statefulsets",
            &["Name", "Ready", "Age", "Containers", "Images"],
        ),
        (
            "/apis/apps/v1/namespaces/{ns}/daemonsets",
            &[
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
                "Containers",
                "Images",
                "Selector",
            ],
        ),
        (
            "/api/v1/namespaces/{ns}/services",
            &[
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector",
            ],
        ),
        (
            "/apis/batch/v1/namespaces/{ns}/jobs",
            &[
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers",
                "Images",
                "Selector",
            ],
        ),
        (
            "/apis/batch/v1/namespaces/{ns}/cronjobs",
            &[
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers",
                "Images",
                "Selector",
            ],
        ),
        (
            "/api/v1/namespaces/{ns}/persistentvolumeclaims",
            &[
                "Name",
                "Status",
                "Volume",
                "Capacity",
                "Access Modes",
                "StorageClass",
                "VolumeAttributesClass",
                "Age",
                "VolumeMode",
            ],
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
            &["Name", "Class", "Hosts", "Address", "Ports", "Age"],
        ),
        (
            "/api/v1/namespaces/{ns}/secrets",
            &["Name", "Type", "Data", "Age"],
        ),
    ];
    for (path, columns) in expected {
        let table = cluster.table(path).await;
        let definitions: Vec<(String, i64)> = table["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|column| {
                (
                    column["name"].as_str().unwrap_or("").to_string(),
                    column["priority"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        let wanted: Vec<(String, i64)> = columns
            .iter()
            .map(|name| (name.to_string(), i64::from(wide.contains(name))))
            .collect();
        assert_eq!(definitions, wanted, "{path}");
        let row = table["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|row| row["cells"][0] == "tab")
            .cloned()
            .unwrap_or(Value::Null);
        let cell = |column: &str| {
            let index = columns
                .iter()
                .position(|name| *name == column)
                .unwrap_or(usize::MAX);
            row["cells"][index].clone()
        };
        if columns.contains(&"Images") {
            assert_eq!(
                cell("Images")
                    .as_str()
                    .map(|images| images.contains("busybox:1")),
                Some(true),
                "{path}: {row}"
            );
        }
        if path.ends_with("deployments") {
            assert_eq!(
                (cell("Containers"), cell("Selector")),
                (json!("web,side"), json!("app=tab"))
            );
        }
        if path.ends_with("services") {
            assert_eq!(
                (cell("Port(s)"), cell("Selector")),
                (json!("80/TCP"), json!("app=tab"))
            );
        }
        if path.ends_with("cronjobs") {
            assert_eq!(
                (cell("Timezone"), cell("Suspend"), cell("Selector")),
                (json!("<none>"), json!("False"), json!("<none>"))
            );
        }
        if path.ends_with("ingresses") {
            assert_eq!(
                (cell("Class"), cell("Hosts"), cell("Ports")),
                (json!("<none>"), json!("a.example.com"), json!("80"))
            );
        }
        if path.ends_with("secrets") {
            assert_eq!((cell("Type"), cell("Data")), (json!("Opaque"), json!(1)));
        }
    }
    cluster.cleanup().await;
}

#[tokio::test]
async fn rollouts_record_events_sim_only() {
    let cluster = Cluster::new().await;
    let Some(handle) = cluster.handle() else {
        // Simulated controllers only.
        return cluster.cleanup().await;
    };
    let (group, version, events_resources) = ("events.k8s.io", "v1", "events");
    let (code, _, discovery) = cluster
        .raw("GET", &format!("/apis/{group}/{version}"), "", None)
        .await;
    assert_eq!(code, 200);
    assert!(
        discovery["resources"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["name"] == events_resources)),
        "{discovery}"
    );
    handle.script_rollout(&cluster.namespace, "broken", Rollout::Fail);
    let deployments = cluster.deployments();
    let apply = PatchParams::apply("gitship");
    for name in ["fine", "broken"] {
        deployments
            .patch(
                name,
                &apply,
                &Patch::Apply(&deployment(
                    name,
                    2,
                    json!([{"name": "web", "image": "nginx:1"}]),
                )),
            )
            .await
            .expect("apply");
    }
    let events = cluster.api("v1", "Event", "events");
    let of = |name: &'static str| {
        let events = events.clone();
        async move {
            let params = ListParams::default().fields(&format!(
                "involvedObject.kind=Deployment,involvedObject.name={name}"
            ));
            events.list(&params).await.expect("list events").items
        }
    };
    eventually("a ScalingReplicaSet event", || async {
        of("fine")
            .await
            .iter()
            .any(|e| e.data["reason"] == "ScalingReplicaSet" && e.data["type"] == "Normal")
    })
    .await;
    eventually("a ProgressDeadlineExceeded warning", || async {
        of("broken").await.iter().any(|e| {
            e.data["reason"] == "ProgressDeadlineExceeded"
                && e.data["type"] == "Warning"
                && e.data["involvedObject"]["namespace"] == json!(cluster.namespace)
        })
    })
    .await;
    assert!(
        of("fine")
            .await
            .iter()
            .all(|e| e.data["type"] == "Normal" && e.data["involvedObject"]["name"] == "fine"),
        "the field selector picks one object's events"
    );
    cluster.cleanup().await;
}

// What the server rewrites: canonical quantities and defaults. Everything asserted here is what
// kube-apiserver itself returns, so it holds on a real cluster too.

/// The fields a manager owns, as text (to look for `f:<field>` keys).
fn owned_text(object: &DynamicObject, manager: &str) -> String {
    owned_fields(object, manager).to_string()
}

#[tokio::test]
async fn what_the_server_rewrites_quantities_and_workload_defaults() {
    let cluster = Cluster::new().await;
    let apply = PatchParams::apply("gitship");
    let mut manifest = deployment(
        "rewritten",
        2,
        json!([{
            "name": "web", "image": "nginx:1.27",
            "ports": [{"containerPort": 80}],
            "resources": {
                "requests": {"cpu": 0.5, "memory": "1024Mi", "ephemeral-storage": "1e3"},
                "limits": {"cpu": "1000m", "memory": "1.5Gi"},
            },
        }]),
    );
    manifest["spec"]["template"]["spec"]["initContainers"] =
        json!([{"name": "setup", "image": "busybox", "resources": {"requests": {"cpu": "0.1"}}}]);
    let applied = cluster
        .deployments()
        .patch("rewritten", &apply, &Patch::Apply(&manifest))
        .await
        .expect("apply");
    let spec = &applied.data["spec"];
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    // apimachinery canonical forms: 0.5 -> 500m, 1024Mi -> 1Gi, 1000m -> 1, 1.5Gi -> 1536Mi.
    assert_eq!(
        container["resources"],
        json!({
            "requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1e3"},
            "limits": {"cpu": "1", "memory": "1536Mi"},
        })
    );
    assert_eq!(
        pod["initContainers"][0]["resources"]["requests"]["cpu"],
        "100m"
    );
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        pod["initContainers"][0]["imagePullPolicy"], "Always",
        "an untagged image means :latest"
    );
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(container["terminationMessagePolicy"], "File");
    assert_eq!(container["ports"][0]["protocol"], "TCP");
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["securityContext"], json!({}));
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    let owned = owned_text(&applied, "gitship");
    for default in [
        "f:imagePullPolicy",
        "f:terminationMessagePath",
        "f:dnsPolicy",
        "f:schedulerName",
        "f:revisionHistoryLimit",
        "f:strategy",
    ] {
        assert!(
            !owned.contains(default),
            "{default} is owned by nobody: {owned}"
        );
    }
    let again = cluster
        .deployments()
        .patch("rewritten", &apply, &Patch::Apply(&manifest))
        .await
        .expect("re-apply the non-canonical manifest");
    assert_eq!(
        again.metadata.generation, applied.metadata.generation,
        "re-applying the same manifest changes nothing (the controller may write status)"
    );
    assert_eq!(again.data["spec"], applied.data["spec"]);
    let other = cluster
        .deployments()
        .patch(
            "rewritten",
            &PatchParams::apply("other"),
            &Patch::Apply(&json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "rewritten"},
                "spec": {"revisionHistoryLimit": 5, "template": {"spec": {"dnsPolicy": "Default"}}},
            })),
        )
        .await
        .expect("another manager may set what only a default held");
    assert_eq!(other.data["spec"]["revisionHistoryLimit"], 5);

    let stateful_set = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "postgres:17"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1024Mi"}}}}],
        },
    });
    let stateful_set = cluster
        .api("apps/v1", "StatefulSet", "statefulsets")
        .patch("db", &apply, &Patch::Apply(&stateful_set))
        .await
        .expect("apply statefulset");
    let spec = &stateful_set.data["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(spec["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(spec["updateStrategy"]["rollingUpdate"]["partition"], 0);
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    let claim = &spec["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["resources"]["requests"]["storage"], "1Gi");
    assert_eq!(claim["volumeMode"], "Filesystem");

    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "migrate", "image": "busybox:1.36", "command": ["true"]}]}}},
    });
    let job = cluster
        .api("batch/v1", "Job", "jobs")
        .patch("migrate", &apply, &Patch::Apply(&job))
        .await
        .expect("apply job");
    let spec = &job.data["spec"];
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    let uid = job.metadata.uid.clone().unwrap_or_default();
    assert_eq!(
        spec["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid.as_str()
    );
    assert_eq!(
        spec["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        "migrate"
    );
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["terminationMessagePolicy"],
        "File"
    );

    let cron_job = json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "backup", "image": "busybox:1.36"}]}}}}},
    });
    let cron_job = cluster
        .api("batch/v1", "CronJob", "cronjobs")
        .patch("nightly", &apply, &Patch::Apply(&cron_job))
        .await
        .expect("apply cronjob");
    let spec = &cron_job.data["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    assert_eq!(
        spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    cluster.cleanup().await;
}

#[tokio::test]
async fn what_the_server_rewrites_services_claims_and_quotas() {
    let cluster = Cluster::new().await;
    let apply = PatchParams::apply("gitship");
    let services = cluster.api("v1", "Service", "services");
    let service = |name: &str, label: &str| {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"revision": label}},
            "spec": {"selector": {"app": name}, "ports": [
                {"name": "http", "port": 80},
                {"name": "metrics", "port": 9090, "targetPort": "metrics"},
                {"name": "admin", "port": 8081, "targetPort": 9000},
            ]},
        })
    };
    let web = services
        .patch("web", &apply, &Patch::Apply(&service("web", "1")))
        .await
        .expect("apply service");
    let spec = &web.data["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["ipFamilies"].as_array().map(Vec::len), Some(1));
    let ports = &spec["ports"];
    assert_eq!(ports[0]["protocol"], "TCP");
    assert_eq!(ports[0]["targetPort"], 80, "targetPort defaults to port");
    assert_eq!(ports[1]["targetPort"], "metrics");
    assert_eq!(ports[2]["targetPort"], 9000);
    let address = spec["clusterIP"].as_str().unwrap_or_default().to_string();
    assert!(address.parse::<std::net::IpAddr>().is_ok(), "{address}");
    assert_eq!(spec["clusterIPs"], json!([address]));
    let owned = owned_text(&web, "gitship");
    for default in ["f:clusterIP", "f:sessionAffinity", "f:type"] {
        assert!(
            !owned.contains(default),
            "{default} is owned by nobody: {owned}"
        );
    }
    let relabelled = services
        .patch("web", &apply, &Patch::Apply(&service("web", "2")))
        .await
        .expect("re-apply without clusterIP");
    assert_eq!(relabelled.data["spec"]["clusterIP"], address.as_str());
    let api = services
        .patch("api", &apply, &Patch::Apply(&service("api", "1")))
        .await
        .expect("second service");
    assert_ne!(api.data["spec"]["clusterIP"], address.as_str());

    let claim = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1024Mi"}}},
    });
    let claim = cluster
        .api("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
        .patch("data", &apply, &Patch::Apply(&claim))
        .await
        .expect("apply claim");
    assert_eq!(claim.data["spec"]["volumeMode"], "Filesystem");
    assert_eq!(
        claim.data["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );

    let quota = json!({
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "quota"},
        "spec": {"hard": {"pods": "1e3", "requests.storage": "1024Gi", "count/configmaps": 100}},
    });
    let quota = cluster
        .api("v1", "ResourceQuota", "resourcequotas")
        .patch("quota", &apply, &Patch::Apply(&quota))
        .await
        .expect("apply quota");
    assert_eq!(
        quota.data["spec"]["hard"],
        json!({"pods": "1e3", "requests.storage": "1Ti", "count/configmaps": "100"})
    );
    let limits = json!({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": 2.5, "memory": "2048Mi"}}]},
    });
    let limits = cluster
        .api("v1", "LimitRange", "limitranges")
        .patch("limits", &apply, &Patch::Apply(&limits))
        .await
        .expect("apply limit range");
    assert_eq!(
        limits.data["spec"]["limits"][0]["max"],
        json!({"cpu": "2500m", "memory": "2Gi"})
    );

    let (code, _, status) = cluster
        .raw(
            "POST",
            "/api/v1/namespaces/{ns}/persistentvolumeclaims",
            "application/json",
            Some(json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "bad"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1x"}}},
            })),
        )
        .await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["reason"], "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|message| message.contains("quantities must match the regular expression")),
        "{status}"
    );
    let (code, _, _) = cluster
        .raw(
            "GET",
            "/api/v1/namespaces/{ns}/persistentvolumeclaims/bad",
            "",
            None,
        )
        .await;
    assert_eq!(code, 404, "nothing is stored");
    cluster.cleanup().await;
}

/// Sends `GET path` with the given `Authorization` header value (none when `None`) to `url`,
/// through a client without credentials of its own: (status code, JSON body).
async fn get_with_authorization(
    url: &str,
    path: &str,
    authorization: Option<&str>,
) -> (u16, Value) {
    let config = kube::Config::new(url.parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    let mut builder = http::Request::builder().method("GET").uri(path);
    if let Some(value) = authorization {
        builder = builder.header("Authorization", value);
    }
    let request = builder
        .body(kube::client::Body::from(Vec::new()))
        .expect("request");
    let response = client.send(request).await.expect("send");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_bearer_token_is_required_when_configured_sim_only() {
    if std::env::var_os("GITSHIP_TEST_KUBECONFIG").is_some() {
        eprintln!("skipped on a real cluster: kubesim's own token");
        return;
    }
    let sim = KubeSim::start_with(Options {
        token: Some("s3cret-token".into()),
        ..Options::default()
    })
    .await
    .expect("start kubesim");
    assert_eq!(sim.token(), Some("s3cret-token"));

    // The client kubesim hands out carries the token: reads and writes pass.
    let maps: Api<DynamicObject> = Api::namespaced_with(
        sim.client().expect("client"),
        "default",
        &Cluster::resource("v1", "ConfigMap", "configmaps"),
    );
    maps.create(
        &PostParams::default(),
        &object(config_map("authorized", json!({}), json!({"key": "value"}))),
    )
    .await
    .expect("create with the right token");
    assert_eq!(
        maps.get("authorized").await.expect("get").data["data"]["key"],
        "value"
    );
    let (code, _) = get_with_authorization(
        &sim.url(),
        "/api/v1/namespaces/default/configmaps/authorized",
        Some("bearer s3cret-token"),
    )
    .await;
    assert_eq!(
        code, 200,
        "the scheme is case-insensitive, as on kube-apiserver"
    );

    // kube-apiserver's answer to an unauthenticated request, byte for byte in content.
    let unauthorized = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    });
    for authorization in [
        None,
        Some("Bearer wrong-token"),
        Some("Bearer s3cret-toke"),
        Some("Bearer s3cret-token-and-more"),
        Some("Bearer "),
        Some("Basic czNjcmV0LXRva2Vu"),
        Some("s3cret-token"),
    ] {
        for path in [
            "/api/v1/namespaces/default/configmaps/authorized",
            "/api/v1/namespaces/default/configmaps",
            "/version",
            "/apis",
        ] {
            let (code, body) = get_with_authorization(&sim.url(), path, authorization).await;
            assert_eq!(code, 401, "{path} with {authorization:?}");
            assert_eq!(body, unauthorized, "{path} with {authorization:?}");
        }
    }

    // The kubeconfig kubesim writes carries the token, and only its owner can read it.
    let text = std::fs::read_to_string(sim.kubeconfig_path()).expect("kubeconfig");
    assert!(text.contains("token: \"s3cret-token\""), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sim.kubeconfig_path())
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let kubeconfig = kube::config::Kubeconfig::read_from(sim.kubeconfig_path()).expect("parse");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    let from_file: Api<DynamicObject> = Api::namespaced_with(
        kube::Client::try_from(config).expect("client"),
        "default",
        &Cluster::resource("v1", "ConfigMap", "configmaps"),
    );
    from_file
        .get("authorized")
        .await
        .expect("the written kubeconfig authenticates");
}

#[tokio::test]
async fn without_a_token_requests_need_no_credentials_sim_only() {
    if std::env::var_os("GITSHIP_TEST_KUBECONFIG").is_some() {
        eprintln!("skipped on a real cluster: kubesim's own token");
        return;
    }
    let sim = KubeSim::start().await.expect("start kubesim");
    assert_eq!(sim.token(), None);
    for authorization in [None, Some("Bearer anything")] {
        let (code, body) =
            get_with_authorization(&sim.url(), "/api/v1/namespaces/default", authorization).await;
        assert_eq!(code, 200, "{authorization:?}: {body}");
    }
    let text = std::fs::read_to_string(sim.kubeconfig_path()).expect("kubeconfig");
    assert!(!text.contains("token"), "{text}");
}
