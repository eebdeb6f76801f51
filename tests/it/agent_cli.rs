//! `gitship agent manifests` and `gitship status` through the built CLI, on a copy of the blog
//! example: the agent's manifests (kinds, least-privilege RBAC, accepted by the real `kubectl`
//! against kubesim or the real server), and what `status` reads from the sandbox or a cluster
//! (the inventory, the deploy lock, the agent's leader Lease and status).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use gitship::agent::state::{Revision, Status, SyncState};
use gitship::ops::status::StatusReport;
use serde_json::{Value, json};

use crate::support::cluster::{Backend, TestCluster};
use crate::support::repo::{Repo, Run};
use crate::support::require_tool;

const IMAGE: &str = "ghcr.io/acme/gitship:0.1.0";
const SOURCE: &str = "https://github.com/acme/blog-infra.git";

fn example_outputs() -> String {
    format!(
        "{}/examples/blog-infra/terraform-outputs.example.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The documents of a multi-document YAML stream, as JSON.
fn documents(text: &str) -> Vec<Value> {
    gitship::repo::yaml::parse_documents(text)
        .unwrap_or_else(|error| panic!("invalid YAML ({error}):\n{text}"))
        .iter()
        .filter_map(|document| document.root.as_ref().map(|root| root.to_json()))
        .collect()
}

fn kind_named<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// `group/resource` of every rule of a Role or ClusterRole, with its verbs.
fn grants(role: &Value) -> Vec<(String, Vec<String>)> {
    let mut grants = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        let verbs: Vec<String> = rule["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        for group in rule["apiGroups"].as_array().expect("apiGroups") {
            for resource in rule["resources"].as_array().expect("resources") {
                grants.push((
                    format!("{}/{}", group.as_str().unwrap(), resource.as_str().unwrap()),
                    verbs.clone(),
                ));
            }
        }
    }
    grants
}

/// The kinds `render` shows for `env`, as `group/plural` by scope (namespaced, cluster), with a
/// pluralization of its own (lowercase + s; -ss -> -sses; consonant + y -> -ies).
fn rendered_resources(repo: &Repo, env: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let outputs = example_outputs();
    let run = repo.ok(&["-o", "json", "render", env, "--terraform-outputs", &outputs]);
    let rendered: Vec<Value> = serde_json::from_str(&run.stdout).expect("render JSON");
    let (mut namespaced, mut cluster) = (BTreeSet::new(), BTreeSet::new());
    for entry in rendered {
        let object = &entry["object"];
        let api_version = object["apiVersion"].as_str().unwrap();
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        let kind = object["kind"].as_str().unwrap().to_lowercase();
        let plural = if kind.ends_with('s') {
            format!("{kind}es")
        } else if let Some(stem) = kind.strip_suffix('y')
            && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
        {
            format!("{stem}ies")
        } else {
            format!("{kind}s")
        };
        let resource = format!("{group}/{plural}");
        if object["metadata"].get("namespace").is_some() {
            namespaced.insert(resource);
        } else {
            cluster.insert(resource);
        }
    }
    (namespaced, cluster)
}

fn manifests(repo: &Repo, extra: &[&str]) -> Run {
    let mut args = vec!["agent", "manifests", "staging", "--image", IMAGE];
    args.extend_from_slice(extra);
    repo.gitship(&args)
}

#[test]
fn agent_manifests_for_the_example_grant_exactly_the_deployed_kinds() {
    let repo = Repo::example();
    let run = manifests(&repo, &["--source", SOURCE]);
    assert_eq!(run.code, 0, "{}", run.all());
    let objects = documents(&run.stdout);
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service"
        ],
        "the example deploys a Namespace: a ClusterRole; never the Namespace itself"
    );
    for object in &objects {
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "gitship-agent");
        assert_eq!(labels["app.kubernetes.io/part-of"], "gitship");
        assert_eq!(labels["gitship.dev/environment"], "staging");
        let cluster_scoped =
            ["ClusterRole", "ClusterRoleBinding"].contains(&object["kind"].as_str().unwrap());
        assert_eq!(
            object["metadata"].get("namespace").and_then(Value::as_str),
            (!cluster_scoped).then_some("blog-staging"),
            "{object}"
        );
    }

    let (namespaced, cluster) = rendered_resources(&repo, "staging");
    let every_verb = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let role = kind_named(&objects, "Role")[0];
    let mut deployed = BTreeSet::new();
    for (resource, verbs) in grants(role) {
        match resource.as_str() {
            "coordination.k8s.io/leases" => {
                assert_eq!(verbs, ["get", "create", "update", "delete"]);
            }
            "/events" => {
                assert!(verbs.contains(&"create".into()) && verbs.contains(&"patch".into()))
            }
            "/configmaps" if !namespaced.contains("/configmaps") => {
                assert_eq!(
                    verbs,
                    ["get", "list", "create", "update", "patch", "delete"]
                );
            }
            "/namespaces" => assert_eq!(verbs, ["get"], "a read of its own namespace only"),
            _ => {
                assert_eq!(verbs, every_verb, "{resource}");
                deployed.insert(resource);
            }
        }
    }
    assert_eq!(
        deployed, namespaced,
        "the Role grants the namespaced kinds deployed, no more"
    );
    assert!(
        deployed.contains("networking.k8s.io/ingresses"),
        "{deployed:?}"
    );
    let cluster_role = kind_named(&objects, "ClusterRole")[0];
    let cluster_grants = grants(cluster_role);
    assert_eq!(
        cluster_grants
            .iter()
            .map(|(r, _)| r.clone())
            .collect::<BTreeSet<_>>(),
        cluster
    );
    assert!(cluster_grants.iter().all(|(_, verbs)| verbs == &every_verb));

    let deployment = kind_named(&objects, "Deployment")[0];
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(spec["serviceAccountName"], "gitship-agent");
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &spec["containers"][0];
    assert_eq!(container["image"], IMAGE);
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..2], ["agent", "staging"]);
    for pair in [
        ["--source", SOURCE],
        ["--listen", "0.0.0.0:8080"],
        ["--cache", "/var/cache/gitship"],
    ] {
        assert!(
            args.windows(2).any(|w| w == pair),
            "{args:?} lacks {pair:?}"
        );
    }
    assert!(
        !args.contains(&"--path"),
        "the example is the Git root: {args:?}"
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    let secret = &container["env"][0];
    assert_eq!(secret["name"], "GITSHIP_WEBHOOK_SECRET");
    assert_eq!(
        secret["valueFrom"]["secretKeyRef"],
        json!({"name": "gitship-agent-webhook", "key": "secret", "optional": true})
    );
    for (index, variable, key) in [
        (1, "GITSHIP_GITHUB_TOKEN", "github-token"),
        (2, "GITSHIP_GITLAB_API_TOKEN", "gitlab-token"),
    ] {
        let token = &container["env"][index];
        assert_eq!(token["name"], variable);
        assert_eq!(
            token["valueFrom"]["secretKeyRef"],
            json!({"name": "gitship-agent-notify", "key": key, "optional": true})
        );
    }
    assert!(
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/var/cache/gitship")
    );
    let service = kind_named(&objects, "Service")[0];
    assert_eq!(service["spec"]["ports"][0]["name"], "http");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
}

/// Without `--source` and `--branch`: the `origin` remote (credentials dropped) and the current
/// branch; `--path` is where the gitship repository lies below the Git root.
#[test]
fn agent_manifests_default_to_origin_and_the_current_branch() {
    let repo = Repo::example();
    let missing = manifests(&repo, &[]);
    assert_eq!(missing.code, 1, "{}", missing.all());
    assert!(
        missing.stderr.contains("no `origin` remote"),
        "{}",
        missing.stderr
    );
    assert!(
        missing.stderr.contains("hint: pass `--source URL`"),
        "{}",
        missing.stderr
    );
    assert!(missing.stdout.is_empty());

    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://token123@github.com/acme/blog-infra.git",
    ]);
    repo.git(&["checkout", "-q", "-b", "release"]);
    let run = manifests(&repo, &["--path", "deploy/blog"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        !run.all().contains("token123"),
        "a credential leaked:\n{}",
        run.stdout
    );
    let objects = documents(&run.stdout);
    let args =
        &kind_named(&objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(
        args,
        &json!([
            "agent",
            "staging",
            "--source",
            SOURCE,
            "--branch",
            "release",
            "--listen",
            "0.0.0.0:8080",
            "--cache",
            "/var/cache/gitship",
            "--path",
            "deploy/blog"
        ])
    );
}

#[test]
fn agent_manifests_refuse_bad_input() {
    let repo = Repo::example();
    for image in ["", "ghcr.io/acme/gitship 0.1.0"] {
        let run = repo.gitship(&[
            "agent",
            "manifests",
            "staging",
            "--image",
            image,
            "--source",
            SOURCE,
        ]);
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(
            run.stderr.contains("is not an image reference")
                && run.stderr.contains("hint: give the agent's image"),
            "{}",
            run.stderr
        );
    }
    let spaced = repo.gitship(&[
        "agent",
        "manifests",
        "staging",
        "--image",
        "ghcr.io/acme/gitship 0.1.0",
    ]);
    insta::assert_snapshot!(
        "agent_manifests_bad_image",
        format!("exit {}\n{}", spaced.code, spaced.stderr)
    );
    let unknown = repo.gitship(&[
        "agent",
        "manifests",
        "nope",
        "--image",
        IMAGE,
        "--source",
        SOURCE,
    ]);
    assert_eq!(unknown.code, 1, "{}", unknown.all());
    assert!(
        unknown.stderr.contains("unknown environment `nope`"),
        "{}",
        unknown.stderr
    );
    let password = manifests(
        &repo,
        &["--source", "https://me:secret@github.com/acme/r.git"],
    );
    assert_eq!(password.code, 1, "{}", password.all());
    assert!(!password.all().contains("me:secret"), "{}", password.all());
}

/// The example with environment `staging` in the test's namespace (`blog-staging` on kubesim).
fn example_in(cluster: &TestCluster) -> Repo {
    let repo = Repo::example();
    repo.edit(
        "config/staging.yaml",
        "namespace: blog-staging\n",
        &format!("namespace: {}\n", cluster.ns("blog-staging")),
    );
    repo.commit("the test's namespace");
    repo
}

/// Deletes the cluster-scoped objects a test made on the real server when dropped (the test's
/// namespaces go with its [`TestCluster`]).
struct ClusterScoped<'a> {
    cluster: &'a TestCluster,
    objects: Vec<String>,
}

impl Drop for ClusterScoped<'_> {
    fn drop(&mut self) {
        if self.cluster.backend() != Backend::Real {
            return;
        }
        let _ = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.cluster.kubeconfig_path())
            .args(["delete", "--ignore-not-found", "--wait=false"])
            .args(&self.objects)
            .output();
    }
}

/// The real `kubectl` applies the manifests to kubesim (which validates them as a server does)
/// or to the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_manifests_apply_with_kubectl() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let cluster = TestCluster::start().await;
    let ns = cluster.ns("blog-staging");
    let cluster_role = format!("gitship-agent-{ns}");
    let _cleanup = ClusterScoped {
        cluster: &cluster,
        objects: vec![
            format!("clusterrole/{cluster_role}"),
            format!("clusterrolebinding/{cluster_role}"),
        ],
    };
    let repo = example_in(&cluster);
    let run = manifests(&repo, &["--source", SOURCE]);
    assert_eq!(run.code, 0, "{}", run.all());
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let kubectl = move |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let Some(text) = stdin {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let output = child.wait_with_output().expect("kubectl");
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // `agent manifests` assumes the namespace exists (as its output says): it is created here,
    // in the same apply.
    let stdout = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n{}",
        run.stdout
    );
    tokio::task::spawn_blocking(move || {
        kubectl(&["apply", "-f", "-"], Some(&stdout));
        let replicas = kubectl(
            &[
                "-n",
                &ns,
                "get",
                "deployment",
                "gitship-agent",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
            None,
        );
        assert_eq!(replicas, "2");
        kubectl(&["get", "clusterrole", &cluster_role], None);
        kubectl(
            &[
                "-n",
                &ns,
                "get",
                "role,rolebinding,serviceaccount,service",
                "gitship-agent",
            ],
            None,
        );
    })
    .await
    .expect("kubectl task");
}

fn status_json(repo: &Repo, args: &[&str]) -> StatusReport {
    let mut all = vec!["-o", "json", "status"];
    all.extend_from_slice(args);
    let run = repo.ok(&all);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("not a status report ({error}):\n{}", run.stdout))
}

#[test]
fn status_in_the_sandbox_before_and_after_a_deploy() {
    let repo = Repo::example();
    let before = repo.ok(&["status", "staging", "--sandbox"]);
    assert!(
        before.stdout.contains("never deployed"),
        "{}",
        before.stdout
    );
    assert!(
        before.stdout.contains("deploy lock: free"),
        "{}",
        before.stdout
    );
    assert!(before.stdout.contains("agent: none"), "{}", before.stdout);
    let report = status_json(&repo, &["staging", "--sandbox"]);
    assert!(!report.deployed && report.history.is_empty());
    assert_eq!(report.namespace, "blog-staging");
    assert!(report.sandbox && report.lock.is_none() && report.agent.is_none());

    let outputs = example_outputs();
    repo.ok(&[
        "deploy",
        "staging",
        "--sandbox",
        "--terraform-outputs",
        &outputs,
    ]);
    let sha = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(repo.path())
            .output()
            .expect("git")
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();

    let after = repo.ok(&["status", "staging", "--sandbox"]);
    assert!(
        after.stdout.contains("inventory: 9 objects"),
        "{}",
        after.stdout
    );
    assert!(after.stdout.contains(&sha[..12]), "{}", after.stdout);
    assert!(after.stdout.contains("succeeded"), "{}", after.stdout);
    let report = status_json(&repo, &["staging", "--sandbox"]);
    assert!(report.deployed);
    assert_eq!(report.objects, 9);
    assert_eq!(report.history.len(), 1);
    assert_eq!(report.history[0].sha.as_deref(), Some(sha.as_str()));
    assert_eq!(
        report.history[0].outcome,
        gitship::kube::inventory::DeployOutcome::Succeeded
    );
    assert!(report.lock.is_none(), "the deploy released its lock");
}

/// Against a cluster: the deploy lock's holder, the agent's leader and its published status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_deploy_lock_and_the_agent() {
    let cluster = TestCluster::start().await;
    // The cluster's kubeconfig with its context named `staging`, as the example's config says.
    let home = tempfile::tempdir().expect("temp");
    let kubeconfig = home.path().join("kubeconfig");
    let mut config =
        kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).expect("kubeconfig");
    for context in &mut config.contexts {
        context.name = "staging".to_string();
    }
    config.current_context = Some("staging".to_string());
    std::fs::write(
        &kubeconfig,
        serde_json::to_string(&config).expect("kubeconfig as JSON"),
    )
    .expect("kubeconfig");
    let mut repo = example_in(&cluster);
    repo.kubeconfig = Some(kubeconfig);

    let client = gitship::kube::client::client_from(cluster.kube_config().await).expect("client");
    let namespace = cluster.ns("blog-staging");
    let namespace = namespace.as_str();
    let apply = |object: Value| {
        let client = client.clone();
        async move {
            let api: kube::Api<kube::api::DynamicObject> = match object["kind"].as_str() {
                Some("Namespace") => kube::Api::all_with(
                    client,
                    &kube::discovery::ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(
                        &(),
                    ),
                ),
                Some("Lease") => kube::Api::namespaced_with(
                    client,
                    namespace,
                    &kube::discovery::ApiResource::erase::<k8s_openapi::api::coordination::v1::Lease>(
                        &(),
                    ),
                ),
                _ => kube::Api::namespaced_with(
                    client,
                    namespace,
                    &kube::discovery::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(
                        &(),
                    ),
                ),
            };
            let name = object["metadata"]["name"].as_str().unwrap().to_string();
            api.patch(
                &name,
                &kube::api::PatchParams::apply("test"),
                &kube::api::Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|error| panic!("apply {name}: {error}"));
        }
    };
    let now = chrono::Utc::now();
    let micro =
        |time: chrono::DateTime<chrono::Utc>| time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})).await;
    apply(
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "gitship-staging", "namespace": namespace},
        "spec": {"holderIdentity": "ci@runner 1234", "leaseDurationSeconds": 30,
            "renewTime": micro(now)}}),
    )
    .await;
    apply(
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": gitship::model::agent_lease_name("staging"), "namespace": namespace},
        "spec": {"holderIdentity": "gitship-agent-7d9f-abcde", "leaseDurationSeconds": 15,
            "renewTime": micro(now - chrono::TimeDelta::seconds(120))}}),
    )
    .await;
    let mut published = Status::new("staging", SOURCE, "main", "gitship-agent-7d9f-abcde");
    published.state = SyncState::Error;
    published.leader = true;
    published.revision = Some(Revision {
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        subject: "more replicas".into(),
        author: "ann".into(),
    });
    published.last_error = Some("infrastructure/kubernetes/backend.yaml:12:5: bad".into());
    published.flapping = vec!["Deployment/backend spec.replicas (hpa)".into()];
    apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": gitship::model::agent_status_name("staging"), "namespace": namespace},
        "data": {"status.json": serde_json::to_string(&published).unwrap()}}))
    .await;

    // The CLI blocks; kubesim serves from this runtime.
    let (report, human) = tokio::task::spawn_blocking(move || {
        let report = status_json(&repo, &["staging"]);
        (report, repo.ok(&["status", "staging"]).stdout)
    })
    .await
    .expect("status task");

    assert!(!report.deployed);
    let lock = report.lock.expect("the deploy lock is held");
    assert_eq!(lock.holder, "ci@runner 1234");
    assert!(!lock.expired);
    let agent = report.agent.expect("an agent");
    assert_eq!(agent.leader.as_deref(), Some("gitship-agent-7d9f-abcde"));
    assert!(agent.expired, "renewed two minutes ago with a 15s Lease");
    assert_eq!(agent.status, Some(published));

    for line in [
        "never deployed",
        "deploy lock: held by `ci@runner 1234`",
        "agent: leader `gitship-agent-7d9f-abcde`",
        "(expired: no replica renews it)",
        "state: error (branch `main` of https://github.com/acme/blog-infra.git)",
        "revision: 0123456789ab more replicas",
        "last error: infrastructure/kubernetes/backend.yaml:12:5: bad",
        "flapping: Deployment/backend spec.replicas (hpa)",
    ] {
        assert!(human.contains(line), "no `{line}` in:\n{human}");
    }
}
