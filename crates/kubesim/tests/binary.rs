//! The `kubesim` binary: prints its URL, writes a kubeconfig, serves until SIGTERM, keeps
//! objects in its state file across runs, and with `--token` answers only requests carrying it.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(kubeconfig: &Path, state: &Path) -> Server {
    start_with(kubeconfig, state, &[])
}

fn start_with(kubeconfig: &Path, state: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .env_remove("KUBESIM_TOKEN")
        .args(["--port", "0", "--kubeconfig"])
        .arg(kubeconfig)
        .arg("--state")
        .arg(state)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubesim");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read url");
    Server {
        child,
        url: line.trim().to_string(),
    }
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig written by kubesim");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

fn config_maps(client: kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("", "v1", "ConfigMap"),
        "configmaps",
    );
    Api::namespaced_with(client, "default", &resource)
}

#[tokio::test]
async fn binary_serves_writes_kubeconfig_and_persists_state_across_runs() {
    let directory = tempfile::tempdir().expect("tempdir");
    let kubeconfig = directory.path().join("kubeconfig");
    let state = directory.path().join("state.json");

    let mut first = start(&kubeconfig, &state);
    assert!(first.url.starts_with("http://127.0.0.1:"), "{}", first.url);
    let kubeconfig_text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    assert!(kubeconfig_text.contains(&first.url));
    assert!(kubeconfig_text.contains("current-context: kubesim"));
    let maps = config_maps(client(&kubeconfig).await);
    let object: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "persisted"}, "data": {"key": "value"},
    }))
    .expect("object");
    maps.patch(
        "persisted",
        &PatchParams::apply("gitship"),
        &Patch::Apply(&object),
    )
    .await
    .expect("apply");
    let terminated = Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(terminated.success());
    let status = first.child.wait().expect("wait");
    assert!(status.success(), "kubesim exits 0 on SIGTERM: {status:?}");

    let second = start(&kubeconfig, &state);
    let maps = config_maps(client(&kubeconfig).await);
    let restored = maps
        .get("persisted")
        .await
        .expect("object persisted across runs");
    assert_eq!(restored.data["data"]["key"], "value");
    assert!(
        restored
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|entry| entry.manager.as_deref() == Some("gitship"))
    );
    drop(second);
}

/// `GET path` on `url` with an optional `Authorization` value: (status code, JSON body).
async fn get(url: &str, path: &str, authorization: Option<&str>) -> (u16, serde_json::Value) {
    let client =
        kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client");
    let mut builder = http::Request::builder().method("GET").uri(path);
    if let Some(value) = authorization {
        builder = builder.header("Authorization", value);
    }
    let response = client
        .send(
            builder
                .body(kube::client::Body::from(Vec::new()))
                .expect("request"),
        )
        .await
        .expect("send");
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn binary_with_a_token_requires_it_and_writes_it_into_the_kubeconfig() {
    let directory = tempfile::tempdir().expect("tempdir");
    let kubeconfig = directory.path().join("kubeconfig");
    let state = directory.path().join("state.json");
    let server = start_with(&kubeconfig, &state, &["--token", "binary-token"]);

    // The kubeconfig it wrote authenticates.
    let maps = config_maps(client(&kubeconfig).await);
    let object: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "guarded"},
    }))
    .expect("object");
    maps.patch(
        "guarded",
        &PatchParams::apply("gitship"),
        &Patch::Apply(&object),
    )
    .await
    .expect("apply with the token from the kubeconfig");
    let path = "/api/v1/namespaces/default/configmaps/guarded";
    assert_eq!(
        get(&server.url, path, Some("Bearer binary-token")).await.0,
        200
    );

    let unauthorized = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401,
    });
    for authorization in [None, Some("Bearer other-token")] {
        let (code, body) = get(&server.url, path, authorization).await;
        assert_eq!(code, 401, "{authorization:?}");
        assert_eq!(body, unauthorized, "{authorization:?}");
    }
    drop(server);
}

#[tokio::test]
async fn binary_with_latency_delays_every_response() {
    let directory = tempfile::tempdir().expect("tempdir");
    let kubeconfig = directory.path().join("kubeconfig");
    let state = directory.path().join("state.json");
    let server = start_with(&kubeconfig, &state, &["--latency-ms", "100"]);
    for path in ["/version", "/api/v1/namespaces/default/configmaps"] {
        let started = std::time::Instant::now();
        let (code, _) = get(&server.url, path, None).await;
        let took = started.elapsed();
        assert_eq!(code, 200, "{path}");
        assert!(
            took >= std::time::Duration::from_millis(100),
            "{path} answered after {took:?} with --latency-ms 100"
        );
    }
    drop(server);
}
