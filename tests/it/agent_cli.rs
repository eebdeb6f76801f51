//! `gitship agent manifests` and `gitship status` through the built CLI, on a copy of the blog
//! example: the agent's manifests (kinds, least-privilege RBAC, accepted by the real `kubectl`
//! against kubesim or the real server), and what `status` reads from the sandbox or a cluster
//! (the inventory, the deploy lock, the agent's leader Lease and status).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use gitship::facade::agent::state::{Revision, Status, SyncState};
use gitship::facade::ops::status::StatusReport;
use serde_json::{Value, json};

use crate::support::cluster::{Backend, TestCluster, backend};
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
    gitship::facade::repo::yaml::parse_documents(text)
        .unwrap_or_else(|error| panic!("invalid YAML ({error}):\n{text}"))
        .iter()
        .filter_map(|document| document.root.as_ref().map(|root| root.to_json()))
        .collect()
}

fn kind_named<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// `group/resource` of every rule of a Role or ClusterRole, with its verbs and resourceNames.
fn grants(role: &Value) -> Vec<(String, Vec<String>, Vec<String>)> {
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut grants = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        let verbs = strings(&rule["verbs"]);
        let names = strings(&rule["resourceNames"]);
        for group in rule["apiGroups"].as_array().expect("apiGroups") {
            for resource in rule["resources"].as_array().expect("resources") {
                grants.push((
                    format!("{}/{}", group.as_str().unwrap(), resource.as_str().unwrap()),
                    verbs.clone(),
                    names.clone(),
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
    let report: Value = serde_json::from_str(&run.stdout).expect("render JSON");
    let rendered = report["manifests"].as_array().expect("manifests").clone();
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
            "PodDisruptionBudget",
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
    let declared = ["get", "list", "create", "patch", "delete"];
    let watched = ["get", "list", "watch", "create", "patch", "delete"];
    let named = ["get", "create", "patch", "delete"];
    let role = kind_named(&objects, "Role")[0];
    let mut deployed = BTreeSet::new();
    for (resource, verbs, names) in grants(role) {
        match (resource.as_str(), names.is_empty()) {
            ("coordination.k8s.io/leases", true) => assert_eq!(verbs, ["create"]),
            ("coordination.k8s.io/leases", false) => {
                assert_eq!(verbs, ["get", "update", "delete"]);
                assert_eq!(names, ["gitship-staging", "gitship-staging.agent"]);
            }
            ("/events", _) => assert_eq!(verbs, ["list", "create"]),
            ("/configmaps", false) if !namespaced.contains("/configmaps") => {
                assert_eq!(verbs, ["get", "create", "patch"]);
                assert_eq!(
                    names,
                    [
                        "gitship-staging",
                        "gitship-staging.agent",
                        "gitship-staging.history"
                    ]
                );
            }
            ("/namespaces", false) => {
                assert_eq!(verbs, ["get"], "a read of its own namespace only");
                assert_eq!(names, ["blog-staging"]);
            }
            // The status page's ReplicaSets and Pods of the workloads (the example deploys
            // Deployments, not these kinds).
            ("/pods" | "apps/replicasets", true) if !namespaced.contains(resource.as_str()) => {
                assert_eq!(verbs, ["get", "list"], "{resource}");
            }
            ("/secrets", false) => {
                assert_eq!(verbs, named, "Secrets by name, never listed");
                // The declared one, and gitship's revisions (the manifests kept for rollback).
                assert_eq!(names, ["gitship-staging.revisions", "postgres-credentials"]);
                deployed.insert(resource);
            }
            ("apps/deployments" | "apps/statefulsets", true) => {
                assert_eq!(verbs, watched, "{resource}");
                deployed.insert(resource);
            }
            (_, true) => {
                assert_eq!(verbs, declared, "{resource}");
                deployed.insert(resource);
            }
            (_, false) => panic!("unexpected named rule on {resource}"),
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
    let granted: BTreeSet<String> = grants(role).into_iter().map(|(r, _, _)| r).collect();
    assert!(
        granted.contains("/pods") && granted.contains("apps/replicasets"),
        "the status page reads the Deployments' ReplicaSets and Pods: {granted:?}"
    );
    let cluster_role = kind_named(&objects, "ClusterRole")[0];
    let cluster_grants = grants(cluster_role);
    assert_eq!(
        cluster_grants
            .iter()
            .map(|(r, _, _)| r.clone())
            .collect::<BTreeSet<_>>(),
        cluster
    );
    assert_eq!(
        cluster_grants,
        [(
            "/namespaces".to_string(),
            named.map(String::from).to_vec(),
            vec!["blog-staging".to_string()]
        )],
        "cluster-wide, only the Namespace it declares, by name"
    );

    let budget = kind_named(&objects, "PodDisruptionBudget")[0];
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    assert_eq!(
        budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "gitship-agent"
    );
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
    assert_eq!(
        spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            ["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    let variable = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    for (name, secret, key) in [
        ("GITSHIP_WEBHOOK_SECRET", "gitship-agent-webhook", "secret"),
        ("GITSHIP_GIT_TOKEN", "gitship-agent-git-token", "token"),
        (
            "GITSHIP_GIT_USERNAME",
            "gitship-agent-git-token",
            "username",
        ),
    ] {
        assert_eq!(
            variable(name)["valueFrom"]["secretKeyRef"],
            json!({"name": secret, "key": key, "optional": true})
        );
    }
    assert_eq!(
        variable("GITSHIP_GIT_SSH_KEY")["value"],
        "/etc/gitship/ssh/ssh-privatekey"
    );
    assert_eq!(
        variable("GITSHIP_GIT_KNOWN_HOSTS")["value"],
        "/etc/gitship/ssh/known_hosts"
    );
    let ssh = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "ssh")
        .expect("the SSH volume");
    assert_eq!(
        ssh["secret"],
        json!({"secretName": "gitship-agent-ssh", "defaultMode": 256, "optional": true})
    );
    assert!(
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "ssh" && m["readOnly"] == true)
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
        gitship_kube::inventory::DeployOutcome::Succeeded
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

    let client = gitship_kube::client::client_from(cluster.kube_config().await).expect("client");
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
        "metadata": {"name": gitship_foundation::model::agent_lease_name("staging"), "namespace": namespace},
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
        "metadata": {"name": gitship_foundation::model::agent_status_name("staging"), "namespace": namespace},
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

/// An environment of the blog example's shape (its own Namespace, a Secret, a workload and its
/// Service, ConfigMaps) in namespace `ns`, without images or Terraform.
fn rbac_repo(cluster: &TestCluster, ns: &str) -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "config/rbac.yaml",
        &format!("cluster:\n  context: kubesim\n  namespace: {ns}\ndeploy:\n  timeout: 2m\n"),
    );
    repo.write(
        "infrastructure/kubernetes/namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${env.namespace}\n  labels:\n    team: blog\n",
    );
    repo.write(
        "infrastructure/kubernetes/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: credentials\nstringData:\n  password: one\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: legacy\nstringData:\n  password: old\n",
    );
    repo.write(
        "infrastructure/kubernetes/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: registry.k8s.io/pause:3.10\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n    - port: 80\n",
    );
    repo.write(
        "infrastructure/kubernetes/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: info\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\ndata:\n  a: b\n",
    );
    repo.git(&["init", "-q"]);
    repo.commit("blog-shaped");
    repo
}

/// `kubectl` as the admin of `cluster`; panics with its stderr when it fails unless `may_fail`.
fn admin_kubectl(cluster: &TestCluster, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
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
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The RBAC `agent manifests` generates, on the real server: the agent's service account can do
/// what a deploy, a drift check and a prune need (they run with its token), and nothing more:
/// no Secret it was not given, nothing in another namespace, no other Namespace. kubesim does
/// not enforce RBAC, so this runs on the real control plane only.
#[test]
fn the_generated_rbac_is_enough_for_the_agent_and_no_more() {
    if backend() != Backend::Real {
        eprintln!(
            "\n*** not run on kubesim: it does not enforce RBAC (run it with GITSHIP_TEST_CLUSTER=real) ***\n"
        );
        return;
    }
    if !require_tool("kubectl", "help") {
        return;
    }
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("blog-rbac");
    let cluster_role = format!("gitship-agent-{ns}");
    let _cleanup = ClusterScoped {
        cluster: &cluster,
        objects: vec![
            format!("clusterrole/{cluster_role}"),
            format!("clusterrolebinding/{cluster_role}"),
            format!("namespace/{ns}"),
            format!("customresourcedefinition/widgets.{ns}.example.com"),
        ],
    };
    let mut repo = rbac_repo(&cluster, &ns);
    // The administrator's first deploy makes the namespace; then the agent's manifests, of a
    // commit without the Secret `legacy` (the agent's deploy will have to prune it).
    repo.ok(&["deploy", "rbac"]);
    repo.write(
        "infrastructure/kubernetes/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: credentials\nstringData:\n  password: one\n",
    );
    // And a CRD, which the agent creates and waits for (Established), all by its name.
    repo.write(
        "infrastructure/kubernetes/crd.yaml",
        &format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{ns}.example.com\nspec:\n  group: {ns}.example.com\n  scope: Namespaced\n  names: {{plural: widgets, singular: widget, kind: Widget}}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
        ),
    );
    repo.commit("no legacy Secret, a CRD");
    let manifests = repo.ok(&[
        "agent",
        "manifests",
        "rbac",
        "--image",
        IMAGE,
        "--source",
        SOURCE,
    ]);
    let (applied, output) = admin_kubectl(&cluster, &["apply", "-f", "-"], Some(&manifests.stdout));
    assert!(applied, "{output}");
    let cluster_roles = documents(&manifests.stdout);
    let cluster_role_rules = &kind_named(&cluster_roles, "ClusterRole")[0]["rules"];
    assert_eq!(
        cluster_role_rules,
        &json!([
            {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": [ns],
                "verbs": ["get", "create", "patch", "delete"]},
            {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
                "resourceNames": [format!("widgets.{ns}.example.com")],
                "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
        ]),
        "nothing cluster-wide but the Namespace and the CRD it declares, by name"
    );

    let agent = format!("system:serviceaccount:{ns}:gitship-agent");
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i", "--as", &agent];
        all.extend_from_slice(args);
        // stdout's `yes`/`no`, before any warning on stderr.
        let (_, answer) = admin_kubectl(&cluster, &all, None);
        answer.lines().next().unwrap_or_default().trim().to_string()
    };
    for (args, expected) in [
        (vec!["list", "secrets", "-n", &ns], "no"),
        (vec!["get", "secrets/credentials", "-n", &ns], "yes"),
        (vec!["get", "secrets/other", "-n", &ns], "no"),
        (vec!["patch", "secrets/credentials", "-n", &ns], "yes"),
        (
            vec!["patch", "secrets/gitship-rbac.revisions", "-n", &ns],
            "yes",
        ),
        (vec!["list", "configmaps", "-n", "default"], "no"),
        (vec!["create", "configmaps", "-n", "default"], "no"),
        (vec!["delete", "namespaces/default"], "no"),
        (vec!["delete", "namespaces/kube-system"], "no"),
        (vec!["list", "namespaces"], "no"),
        (vec!["patch", &format!("namespaces/{ns}")], "yes"),
        (vec!["get", "leases/other", "-n", &ns], "no"),
        (vec!["update", "leases/gitship-rbac", "-n", &ns], "yes"),
        (vec!["list", "leases", "-n", &ns], "no"),
        (vec!["list", "deployments", "-n", &ns], "yes"),
        (vec!["delete", "deployments", "-n", "kube-system"], "no"),
        (vec!["create", "clusterroles"], "no"),
        (vec!["list", "customresourcedefinitions"], "no"),
        (
            vec!["delete", "customresourcedefinitions/other.example.com"],
            "no",
        ),
    ] {
        assert_eq!(can(&args), expected, "can-i {args:?}");
    }
    // Every rule on Secrets and Namespaces names its objects (`Resource Names` is never `[]`).
    let (_, listed) = admin_kubectl(
        &cluster,
        &["auth", "can-i", "--list", "-n", &ns, "--as", &agent],
        None,
    );
    for line in listed.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if matches!(fields.first(), Some(&"secrets" | &"namespaces")) {
            assert_ne!(fields.get(2), Some(&"[]"), "{listed}");
        }
    }
    assert!(listed.contains("[credentials]"), "{listed}");

    // The agent's own credentials: a token of its service account, in a copy of the kubeconfig.
    let (made, token) = admin_kubectl(
        &cluster,
        &[
            "create",
            "token",
            "gitship-agent",
            "-n",
            &ns,
            "--duration",
            "1h",
        ],
        None,
    );
    assert!(made, "{token}");
    let dir = tempfile::tempdir().expect("temp");
    let kubeconfig = dir.path().join("agent.kubeconfig");
    std::fs::copy(cluster.kubeconfig_path(), &kubeconfig).expect("copy kubeconfig");
    let as_agent = |args: &[&str]| {
        let status = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("kubectl");
        assert!(status.success(), "kubectl {args:?}");
    };
    as_agent(&[
        "config",
        "set-credentials",
        "agent",
        "--token",
        token.trim(),
    ]);
    as_agent(&["config", "set-context", "kubesim", "--user", "agent"]);
    repo.kubeconfig = Some(kubeconfig.clone());

    // A deploy that changes the Namespace, the Secret and a ConfigMap, adds one and prunes one.
    repo.edit(
        "infrastructure/kubernetes/namespace.yaml",
        "team: blog",
        "team: web",
    );
    repo.edit(
        "infrastructure/kubernetes/secret.yaml",
        "password: one",
        "password: two",
    );
    repo.write(
        "infrastructure/kubernetes/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: warn\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: added\ndata:\n  a: b\n",
    );
    repo.commit("changes");
    let deployed = repo.ok(&["deploy", "rbac"]);
    assert!(
        !deployed.stderr.contains("not kept for rollback"),
        "the agent keeps the manifests for rollback: {}",
        deployed.all()
    );
    assert!(
        deployed.stderr.contains("pruned ConfigMap"),
        "{}",
        deployed.all()
    );
    // A Secret the RBAC does not name cannot be read or deleted: reported, kept, not a failure.
    assert!(
        deployed.stderr.contains("not pruning Secret") && deployed.stderr.contains("legacy"),
        "{}",
        deployed.all()
    );
    let (kept, _) = admin_kubectl(&cluster, &["-n", &ns, "get", "secret", "legacy"], None);
    assert!(kept, "the Secret `legacy` is still there");
    let (established, output) = admin_kubectl(
        &cluster,
        &[
            "get",
            "crd",
            &format!("widgets.{ns}.example.com"),
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ],
        None,
    );
    assert!(established && output.trim() == "True", "{output}");
    let (_, label) = admin_kubectl(
        &cluster,
        &[
            "get",
            "namespace",
            &ns,
            "-o",
            "jsonpath={.metadata.labels.team}",
        ],
        None,
    );
    assert_eq!(label, "web");
    let (gone, _) = admin_kubectl(&cluster, &["-n", &ns, "get", "configmap", "old"], None);
    assert!(!gone, "the ConfigMap `old` was pruned");

    // Drift as the agent sees it: a Secret and a Namespace read by name, the rest listed.
    let (code, report) = repo.drift_json(&["rbac"]);
    assert_eq!(code, 0, "{report:?}");
    let (scaled, output) = admin_kubectl(
        &cluster,
        &["-n", &ns, "scale", "deployment", "web", "--replicas", "2"],
        None,
    );
    assert!(scaled, "{output}");
    let (scaled, output) = admin_kubectl(
        &cluster,
        &["label", "namespace", &ns, "team=other", "--overwrite"],
        None,
    );
    assert!(scaled, "{output}");
    let drifted = repo.gitship(&["drift", "rbac"]);
    assert_eq!(drifted.code, 2, "{}", drifted.all());
    assert!(
        drifted.stdout.contains("spec.replicas") && drifted.stdout.contains("team"),
        "{}",
        drifted.all()
    );
    repo.ok(&["deploy", "rbac"]);
    let clean = repo.gitship(&["drift", "rbac"]);
    assert_eq!(clean.code, 0, "{}", clean.all());
}

/// `agent --once --sandbox` runs against the simulated cluster: it syncs the commit, and a second
/// run finds it running and checks for drift (the simulated cluster used to stop serving as soon
/// as the agent had connected: "Connection refused").
#[test]
fn agent_once_in_the_sandbox_syncs_then_finds_the_commit_running() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: web\nagent:\n  terraform: off\n",
    );
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  title: one\n",
    );
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("one");
    let cache = tempfile::tempdir().expect("temp");
    let cache_arg = cache.path().display().to_string();
    let once = |what: &str| {
        let run = repo.gitship(&[
            "agent",
            "staging",
            "--once",
            "--sandbox",
            "--cache",
            &cache_arg,
        ]);
        assert_eq!(run.code, 0, "{what}: {}", run.all());
        run
    };
    let first = once("the first run");
    assert!(first.stderr.contains("agent: synced"), "{}", first.all());
    let second = once("the second run");
    assert!(
        second.stderr.contains("runs") && second.stderr.contains("already"),
        "{}",
        second.all()
    );
    assert!(!second.stderr.contains("created"), "{}", second.all());
    // A running agent cannot share one process's simulated cluster with its deploys.
    let refused = repo.gitship(&["agent", "staging", "--sandbox", "--cache", &cache_arg]);
    assert_eq!(refused.code, 64, "{}", refused.all());
    assert!(refused.stderr.contains("--once"), "{}", refused.all());
}

/// `sync` without an agent: the request is written, and after the timeout the error says no
/// agent answered and how to check (`--no-wait` only asks).
#[test]
fn sync_without_an_agent_says_so_after_its_timeout() {
    let repo = Repo::example();
    let never = repo.gitship(&["sync", "staging", "--sandbox", "--no-wait"]);
    assert_eq!(never.code, 1, "{}", never.all());
    assert!(
        never.stderr.contains("has never been deployed")
            && never.stderr.contains("gitship deploy staging"),
        "{}",
        never.all()
    );
    repo.ok(&["deploy", "staging", "--sandbox"]);
    let asked = repo.ok(&["sync", "staging", "--sandbox", "--no-wait"]);
    assert!(asked.stdout.contains("asked the agent"), "{}", asked.all());
    let waited = repo.gitship(&["sync", "staging", "--sandbox", "--timeout", "1s"]);
    assert_eq!(waited.code, 1, "{}", waited.all());
    assert!(
        waited
            .stderr
            .contains("did not answer the sync request within 1s")
            && waited.stderr.contains("gitship status staging"),
        "{}",
        waited.all()
    );
    let bad = repo.gitship(&["sync", "staging", "--sandbox", "--timeout", "0s"]);
    assert_eq!(bad.code, 64, "{}", bad.all());
}
