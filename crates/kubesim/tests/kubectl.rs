//! The real `kubectl` client (1.32) against kubesim: server-side apply (with kubectl's default
//! validation, which needs `/openapi/v3`), `get -o json`, `scale` and the resulting field
//! ownership, an apply conflict from another field manager, `diff --server-side`, `delete`,
//! `get` of a missing object, `rollout status` for a healthy and a failed rollout, the
//! errors kubectl prints when a server started with a token rejects it, and the imperative
//! `create namespace|configmap|secret generic|deployment`, which send protobuf bodies.

use kubesim::{KubeSim, Options, Rollout};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn tools_required() -> bool {
    std::env::var("GITSHIP_REQUIRE_TOOLS").is_ok_and(|value| value == "1")
}

/// `true` when `tool <args>` runs; otherwise panics under `GITSHIP_REQUIRE_TOOLS=1` (as in CI)
/// or prints a loud SKIP line and returns `false` (copied from the root crate's test support).
fn require_tool(tool: &str, args: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success());
    if ok {
        return true;
    }
    if tools_required() {
        panic!("required tool `{tool}` is missing or broken (GITSHIP_REQUIRE_TOOLS=1)");
    }
    eprintln!(
        "\n*** SKIPPED: `{tool}` is not available on this machine; install it to run this test ***\n"
    );
    false
}

struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs kubectl against the simulator with a scrubbed environment and a private HOME.
async fn kubectl(sim: &KubeSim, home: &Path, args: &[&str], stdin: Option<&str>) -> Outcome {
    let mut command = Command::new("kubectl");
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("KUBECONFIG", sim.kubeconfig_path())
        .args(args);
    let stdin = stdin.map(str::to_string);
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("spawn kubectl");
        if let Some(mut pipe) = child.stdin.take()
            && let Some(text) = stdin
        {
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kubectl output")
    })
    .await
    .expect("join");
    Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn manifests(replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
        resources:
          requests: {{cpu: 0.5, memory: 1024Mi}}
          limits: {{cpu: "1000m", memory: 1.5Gi}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  selector:
    app: web
  ports:
  - port: 80
"#
    )
}

fn deployment_only(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: app\n        image: busybox:1\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_scale_conflict_diff_delete() {
    if !require_tool("kubectl", &["version", "--client"]) {
        return;
    }
    let sim = KubeSim::start_with(Options {
        rollout_delay: Duration::from_millis(50),
        ..Options::default()
    })
    .await
    .expect("start");
    let handle = sim.handle();
    let home = tempfile::tempdir().expect("home");

    let applied = kubectl(
        &sim,
        home.path(),
        &["apply", "--server-side", "-f", "-"],
        Some(&manifests(2)),
    )
    .await;
    assert!(applied.success, "apply failed: {}", applied.stderr);
    assert!(
        applied
            .stdout
            .contains("deployment.apps/web serverside-applied"),
        "{}",
        applied.stdout
    );
    assert!(
        applied.stdout.contains("service/web serverside-applied"),
        "{}",
        applied.stdout
    );
    let patches: Vec<_> = handle
        .requests()
        .into_iter()
        .filter(|request| request.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    assert!(patches.iter().all(
        |request| request.field_manager.as_deref() == Some("kubectl")
            && request.content_type == "application/apply-patch+yaml"
    ));

    let got = kubectl(
        &sim,
        home.path(),
        &["get", "deployment", "web", "-o", "json"],
        None,
    )
    .await;
    assert!(got.success, "{}", got.stderr);
    let deployment: Value = serde_json::from_str(&got.stdout).expect("kubectl printed JSON");
    assert_eq!(deployment["kind"], "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
        "TCP"
    );
    // The server's canonical quantities and defaults: what kube-apiserver returns.
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["resources"],
        serde_json::json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1536Mi"}})
    );
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    // The server leaves apiVersion and kind off a list's items; kubectl fills them in.
    let listed = kubectl(
        &sim,
        home.path(),
        &["get", "deployments", "-o", "json"],
        None,
    )
    .await;
    assert!(listed.success, "{}", listed.stderr);
    let list: Value = serde_json::from_str(&listed.stdout).expect("kubectl printed JSON");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["kind"], "Deployment", "{list}");
    assert_eq!(list["items"][0]["apiVersion"], "apps/v1", "{list}");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
    let again = kubectl(
        &sim,
        home.path(),
        &["apply", "--server-side", "-f", "-"],
        Some(&manifests(2)),
    )
    .await;
    assert!(
        again.success,
        "a second apply does not conflict: {}",
        again.stderr
    );
    let unchanged = kubectl(
        &sim,
        home.path(),
        &["diff", "--server-side", "-f", "-"],
        Some(&manifests(2)),
    )
    .await;
    assert!(
        unchanged.success && unchanged.stdout.trim().is_empty(),
        "kubectl diff right after apply shows nothing: {}{}",
        unchanged.stdout,
        unchanged.stderr
    );

    let scaled = kubectl(
        &sim,
        home.path(),
        &["scale", "deployment", "web", "--replicas=10"],
        None,
    )
    .await;
    assert!(scaled.success, "{}", scaled.stderr);
    assert!(
        scaled.stdout.contains("deployment.apps/web scaled"),
        "{}",
        scaled.stdout
    );
    let got = kubectl(
        &sim,
        home.path(),
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ],
        None,
    )
    .await;
    let deployment: Value = serde_json::from_str(&got.stdout).expect("JSON");
    assert_eq!(deployment["spec"]["replicas"], 10);
    let entries = deployment["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let scale_entry = entries
        .iter()
        .find(|entry| entry["subresource"] == "scale")
        .expect("an entry for the scale subresource");
    assert!(
        scale_entry["manager"]
            .as_str()
            .is_some_and(|manager| manager.starts_with("kubectl")),
        "{scale_entry}"
    );
    assert_eq!(scale_entry["operation"], "Update");
    assert!(
        scale_entry["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_some(),
        "{scale_entry}"
    );
    let apply_entry = entries
        .iter()
        .find(|entry| entry["operation"] == "Apply")
        .expect("apply entry");
    assert!(
        apply_entry["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none(),
        "kubectl apply lost replicas to scale"
    );

    let conflict = kubectl(
        &sim,
        home.path(),
        &[
            "apply",
            "--server-side",
            "--field-manager=gitship",
            "-f",
            "-",
        ],
        Some(&manifests(3)),
    )
    .await;
    assert!(!conflict.success);
    assert!(
        conflict.stderr.contains("Apply failed with 1 conflict"),
        "{}",
        conflict.stderr
    );
    assert!(
        conflict.stderr.contains(".spec.replicas"),
        "{}",
        conflict.stderr
    );
    assert!(
        conflict.stderr.contains("--force-conflicts"),
        "kubectl explains how to resolve: {}",
        conflict.stderr
    );

    handle.reset_requests();
    let diff = kubectl(
        &sim,
        home.path(),
        &["diff", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&manifests(3)),
    )
    .await;
    assert!(
        !diff.success,
        "kubectl diff exits 1 when there are differences: {}",
        diff.stderr
    );
    assert!(
        diff.stderr.trim().is_empty() || !diff.stderr.contains("error"),
        "{}",
        diff.stderr
    );
    assert!(
        diff.stdout.contains("-  replicas: 10") && diff.stdout.contains("+  replicas: 3"),
        "{}",
        diff.stdout
    );
    let requests = handle.requests();
    assert!(
        requests
            .iter()
            .any(|request| request.method == "PATCH" && request.dry_run),
        "diff uses a dry-run apply"
    );
    assert!(
        !requests.iter().any(|request| request.is_write()),
        "diff writes nothing"
    );
    let stored = handle
        .get("apps/v1", "Deployment", "default", "web")
        .expect("stored");
    assert_eq!(stored["spec"]["replicas"], 10);

    let deleted = kubectl(&sim, home.path(), &["delete", "deployment", "web"], None).await;
    assert!(deleted.success, "{}", deleted.stderr);
    assert!(
        deleted.stdout.contains("deployment.apps \"web\" deleted"),
        "{}",
        deleted.stdout
    );
    let missing = kubectl(&sim, home.path(), &["get", "deployment", "web"], None).await;
    assert!(!missing.success);
    assert!(
        missing
            .stderr
            .contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{}",
        missing.stderr
    );
    assert!(handle.get("v1", "Service", "default", "web").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_status_succeeds_and_reports_failure() {
    if !require_tool("kubectl", &["version", "--client"]) {
        return;
    }
    let sim = KubeSim::start_with(Options {
        rollout_delay: Duration::from_millis(300),
        ..Options::default()
    })
    .await
    .expect("start");
    let handle = sim.handle();
    let home = tempfile::tempdir().expect("home");
    handle.script_rollout("default", "broken", Rollout::Fail);
    for name in ["healthy", "broken"] {
        let applied = kubectl(
            &sim,
            home.path(),
            &["apply", "--server-side", "-f", "-"],
            Some(&deployment_only(name)),
        )
        .await;
        assert!(applied.success, "{}", applied.stderr);
    }
    let healthy = kubectl(
        &sim,
        home.path(),
        &["rollout", "status", "deployment/healthy", "--timeout=30s"],
        None,
    )
    .await;
    assert!(healthy.success, "{}\n{}", healthy.stdout, healthy.stderr);
    assert!(
        healthy
            .stdout
            .contains("deployment \"healthy\" successfully rolled out"),
        "{}",
        healthy.stdout
    );
    assert!(
        handle.requests().iter().any(|request| request.watch),
        "rollout status watches"
    );
    let table = kubectl(&sim, home.path(), &["get", "deployment", "healthy"], None).await;
    assert!(table.success, "{}", table.stderr);
    let header: Vec<&str> = table
        .stdout
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("2/2"), "{}", table.stdout);

    for (kind, name) in [("StatefulSet", "store"), ("DaemonSet", "agent")] {
        let manifest = deployment_only(name).replace("kind: Deployment", &format!("kind: {kind}"));
        let manifest = if kind == "DaemonSet" {
            manifest.replace("  replicas: 2\n", "")
        } else {
            manifest
        };
        let applied = kubectl(
            &sim,
            home.path(),
            &["apply", "--server-side", "-f", "-"],
            Some(&manifest),
        )
        .await;
        assert!(applied.success, "{}", applied.stderr);
        let target = format!("{}/{name}", kind.to_lowercase());
        let status = kubectl(
            &sim,
            home.path(),
            &["rollout", "status", &target, "--timeout=30s"],
            None,
        )
        .await;
        assert!(
            status.success,
            "{kind}: {}\n{}",
            status.stdout, status.stderr
        );
    }

    let broken = kubectl(
        &sim,
        home.path(),
        &["rollout", "status", "deployment/broken", "--timeout=30s"],
        None,
    )
    .await;
    assert!(!broken.success, "{}", broken.stdout);
    assert!(
        broken
            .stderr
            .contains("deployment \"broken\" exceeded its progress deadline"),
        "{}",
        broken.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_with_a_wrong_token_reports_unauthorized() {
    if !require_tool("kubectl", &["version", "--client"]) {
        return;
    }
    let sim = KubeSim::start_with(Options {
        token: Some("the-right-token".into()),
        ..Options::default()
    })
    .await
    .expect("start");
    let handle = sim.handle();
    let home = tempfile::tempdir().expect("home");

    // A plain request: kubectl decodes the Status body and prints its message.
    let raw = kubectl(
        &sim,
        home.path(),
        &[
            "--token",
            "a-wrong-token",
            "get",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
        ],
        None,
    )
    .await;
    assert!(!raw.success, "{}", raw.stdout);
    assert!(
        raw.stderr
            .contains("error: You must be logged in to the server (Unauthorized)"),
        "{}",
        raw.stderr
    );

    // A resource command: discovery is refused first, with kubectl's generic 401 wording.
    let get = kubectl(
        &sim,
        home.path(),
        &["--token", "a-wrong-token", "get", "configmaps"],
        None,
    )
    .await;
    assert!(!get.success, "{}", get.stdout);
    assert!(
        get.stderr
            .contains("error: You must be logged in to the server"),
        "{}",
        get.stderr
    );
    assert!(
        handle
            .requests()
            .iter()
            .any(|request| request.path == "/api/v1/namespaces/default/configmaps"),
        "the request reached kubesim"
    );
    assert!(
        handle
            .objects()
            .iter()
            .all(|object| object["kind"] != "ConfigMap"),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_sends_protobuf_that_kubesim_decodes() {
    if !require_tool("kubectl", &["version", "--client"]) {
        return;
    }
    let sim = KubeSim::start().await.expect("start");
    let handle = sim.handle();
    let home = tempfile::tempdir().expect("home");
    let commands: [&[&str]; 4] = [
        &["create", "namespace", "team"],
        &[
            "create",
            "configmap",
            "settings",
            "--namespace",
            "team",
            "--from-literal=mode=fast",
        ],
        &[
            "create",
            "secret",
            "generic",
            "token",
            "--namespace",
            "team",
            "--from-literal=key=s3cret",
        ],
        &[
            "create",
            "deployment",
            "web",
            "--namespace",
            "team",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=80",
        ],
    ];
    for args in commands {
        let created = kubectl(&sim, home.path(), args, None).await;
        assert!(created.success, "{args:?}: {}", created.stderr);
        assert!(created.stdout.contains("created"), "{}", created.stdout);
    }
    let posts: Vec<_> = handle
        .requests()
        .into_iter()
        .filter(|request| request.method == "POST")
        .collect();
    assert_eq!(posts.len(), 4);
    assert!(
        posts
            .iter()
            .all(|request| request.content_type == "application/vnd.kubernetes.protobuf"),
        "{posts:?}"
    );

    let namespace = handle
        .get("v1", "Namespace", "", "team")
        .expect("namespace stored");
    assert_eq!(namespace["status"]["phase"], "Active");
    let settings = handle
        .get("v1", "ConfigMap", "team", "settings")
        .expect("config map stored");
    assert_eq!(settings["data"], serde_json::json!({"mode": "fast"}));
    assert!(settings["metadata"].get("creationTimestamp").is_some());
    let token = handle
        .get("v1", "Secret", "team", "token")
        .expect("secret stored");
    assert_eq!(token["data"]["key"], "czNjcmV0", "bytes arrive as base64");
    assert_eq!(token["type"], "Opaque");
    let web = handle
        .get("apps/v1", "Deployment", "team", "web")
        .expect("deployment stored");
    assert_eq!(web["spec"]["replicas"], 2);
    assert_eq!(web["spec"]["selector"]["matchLabels"]["app"], "web");
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(
        container["ports"],
        serde_json::json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(container["resources"], serde_json::json!({}));
    let managers = web["metadata"]["managedFields"].to_string();
    assert!(managers.contains("kubectl-create"), "{managers}");

    let got = kubectl(
        &sim,
        home.path(),
        &[
            "get",
            "deployment",
            "web",
            "--namespace",
            "team",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
        None,
    )
    .await;
    assert_eq!(got.stdout, "nginx:1.27", "{}", got.stderr);
}
