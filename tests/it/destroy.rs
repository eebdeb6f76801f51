//! `gitship destroy`, on kubesim and the real control plane (`support::cluster`): everything an
//! environment deployed goes (objects last wave first, Terraform's resources, gitship's records,
//! the namespace gitship made), a finalizer holds it until removed, an interrupt at any step is
//! finished by a second run, and a protected environment, a missing `--yes`, an unknown
//! environment, an unreachable cluster and a held lock change nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use gitship::facade::ops::destroy::DestroyReport;

use crate::rollback::Background;
use crate::support::cluster::TestCluster;
use crate::support::repo::{Repo, Run};
use crate::support::require_tool;

/// Objects in three waves (and a ServiceAccount beside a ConfigMap in wave 1), a Terraform root
/// with local state, environment `staging` in `namespace` (which gitship creates).
fn repo_on(cluster: &TestCluster, namespace: &str, terraform: &str) -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
    };
    repo.write(".gitignore", ".gitship/\n");
    let configmap = |name: &str, wave: i64| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  annotations:\n    gitship.dev/wave: \"{wave}\"\ndata:\n  a: b\n"
        )
    };
    let manifests = [
        configmap("first", 0),
        configmap("second", 1),
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: robot\n  annotations:\n    gitship.dev/wave: \"1\"\n".to_string(),
        configmap("third", 2),
    ];
    repo.write(
        "infrastructure/kubernetes/objects.yaml",
        &manifests.join("---\n"),
    );
    repo.write("infrastructure/terraform/main.tf", terraform);
    repo.write(
        "config/staging.yaml",
        &format!(
            "cluster:\n  context: kubesim\n  namespace: {namespace}\nterraform:\n  lock_timeout: 2m\n"
        ),
    );
    repo.git(&["init", "-q"]);
    repo.commit("objects in waves, a Terraform root");
    repo
}

const TERRAFORM: &str = "resource \"terraform_data\" \"db\" {\n  input = \"x\"\n}\n";

/// Terraform whose destroy takes a while (a destroy-time provisioner sleeps), so that a test can
/// interrupt gitship while `terraform destroy` runs.
const SLOW_TERRAFORM: &str = "resource \"terraform_data\" \"db\" {\n  input = \"x\"\n}\nresource \"terraform_data\" \"slow\" {\n  provisioner \"local-exec\" {\n    when    = destroy\n    command = \"sleep 3\"\n  }\n}\n";

/// The resources of every Terraform state file below `root`.
fn terraform_resources(root: &Path) -> usize {
    let mut count = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path: PathBuf = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| n == "terraform.tfstate") {
                let text = std::fs::read_to_string(&path).expect("state");
                let state: serde_json::Value = serde_json::from_str(&text).expect("state JSON");
                count += state["resources"].as_array().map_or(0, Vec::len);
            }
        }
    }
    count
}

fn tools() -> bool {
    require_tool("terraform", "version")
}

/// What is left of environment `staging` in `namespace`.
struct Left {
    client: kube::Client,
    namespace: String,
}

impl Left {
    async fn of(cluster: &TestCluster, namespace: &str) -> Left {
        Left {
            client: cluster.client().await,
            namespace: namespace.to_string(),
        }
    }

    async fn namespace(&self) -> bool {
        let api: Api<Namespace> = Api::all(self.client.clone());
        api.get_opt(&self.namespace)
            .await
            .expect("namespace")
            .is_some()
    }

    async fn configmap(&self, name: &str) -> bool {
        self.exists::<ConfigMap>(name).await
    }

    /// Whether the `K` named `name` is in the namespace.
    async fn exists<K>(&self, name: &str) -> bool
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.namespace);
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        api.get_opt(name).await.expect(&kind).is_some()
    }

    /// Every object and record gitship deployed or wrote, by name, that is still there.
    async fn anything(&self) -> Vec<String> {
        let mut left = Vec::new();
        for name in [
            "first",
            "second",
            "third",
            "gitship-staging",
            "gitship-staging.history",
        ] {
            if self.configmap(name).await {
                left.push(format!("ConfigMap {name}"));
            }
        }
        if self.exists::<ServiceAccount>("robot").await {
            left.push("ServiceAccount robot".into());
        }
        if self.exists::<Secret>("gitship-staging.revisions").await {
            left.push("Secret gitship-staging.revisions".into());
        }
        if self.exists::<Lease>("gitship-staging").await {
            left.push("Lease gitship-staging".into());
        }
        left
    }
}

fn destroy_json(repo: &Repo, extra: &[&str]) -> (Run, Option<DestroyReport>) {
    let mut args = vec!["-o", "json", "destroy", "staging", "--yes"];
    args.extend_from_slice(extra);
    let run = repo.gitship(&args);
    let report = serde_json::from_str(&run.stdout).ok();
    (run, report)
}

/// Deploy, then `destroy --yes`: nothing of the inventory, no Lease, no inventory or revisions,
/// no Terraform resource, no namespace (gitship created it); the objects went last wave first,
/// and the run is recorded locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_everything_last_wave_first() {
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("gone");
    let repo = repo_on(&cluster, &namespace, TERRAFORM);
    repo.ok(&["deploy", "staging"]);
    assert_eq!(terraform_resources(repo.path()), 1);
    let left = Left::of(&cluster, &namespace).await;
    assert!(left.configmap("gitship-staging").await);

    let (run, report) = destroy_json(&repo, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let report = report.expect("a destroy report");
    assert_eq!(report.format_version, 1);
    let order: Vec<String> = report
        .objects
        .iter()
        .map(|o| format!("{} {}", o.id.kind, o.id.name))
        .collect();
    assert_eq!(
        order,
        [
            "ConfigMap third",
            "ConfigMap second",
            "ServiceAccount robot",
            "ConfigMap first"
        ]
    );
    assert!(
        run.stderr.contains("Destroy plan for `staging`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Terraform destroy plan"),
        "{}",
        run.stderr
    );
    assert!(
        left.anything().await.is_empty(),
        "{:?}",
        left.anything().await
    );
    assert!(
        !left.namespace().await,
        "gitship created the namespace: it goes"
    );
    assert_eq!(terraform_resources(repo.path()), 0);
    let record = std::fs::read_to_string(repo.path().join(".gitship/destroy/staging.jsonl"))
        .expect("the local record");
    assert_eq!(record.lines().count(), 1, "{record}");
    // The Event outlives the namespace: it is kept in `default`, about the Namespace.
    let events: Api<Event> = Api::namespaced(left.client.clone(), "default");
    let destroyed = events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .any(|event| {
            event.involved_object.kind.as_deref() == Some("Namespace")
                && event.involved_object.name.as_deref() == Some(namespace.as_str())
                && event.reason.as_deref() == Some("Destroyed")
        });
    assert!(
        destroyed,
        "no `Destroyed` Event about Namespace {namespace}"
    );

    // Again: everything is gone already, and it says so.
    let (again, report) = destroy_json(&repo, &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    let report = report.expect("a destroy report");
    assert!(
        report.steps.iter().all(|s| s.outcome != "done"),
        "{:?}",
        report.steps
    );
}

/// `--keep-namespace --keep-terraform`: the objects and records go, the namespace and the
/// Terraform resources stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_namespace_and_keep_terraform_keep_them() {
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("kept");
    let repo = repo_on(&cluster, &namespace, TERRAFORM);
    repo.ok(&["deploy", "staging"]);
    let (run, _) = destroy_json(&repo, &["--keep-namespace", "--keep-terraform"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let left = Left::of(&cluster, &namespace).await;
    assert!(
        left.anything().await.is_empty(),
        "{:?}",
        left.anything().await
    );
    assert!(left.namespace().await);
    assert_eq!(terraform_resources(repo.path()), 1);
}

/// An object annotated `gitship.dev/prune: "false"` is kept and reported, and so is the
/// namespace holding it (deleting it would delete the object); the rest goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_annotated_not_to_prune_stays_with_its_namespace() {
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("keep");
    let repo = repo_on(&cluster, &namespace, TERRAFORM);
    repo.write(
        "infrastructure/kubernetes/kept.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  annotations:\n    gitship.dev/prune: \"false\"\ndata:\n  a: b\n",
    );
    repo.commit("a ConfigMap never pruned");
    repo.ok(&["deploy", "staging"]);
    let (run, report) = destroy_json(&repo, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr
            .contains(&format!("keep ConfigMap {namespace}/kept: annotated")),
        "{}",
        run.stderr
    );
    let report = report.expect("a destroy report");
    assert!(
        report
            .objects
            .iter()
            .any(|o| o.id.name == "kept" && format!("{:?}", o.removal) == "Kept"),
        "{:?}",
        report.objects
    );
    let left = Left::of(&cluster, &namespace).await;
    assert!(left.configmap("kept").await);
    assert!(left.namespace().await, "the namespace holding it stays");
    assert!(
        left.anything().await.is_empty(),
        "{:?}",
        left.anything().await
    );
    assert_eq!(terraform_resources(repo.path()), 0);

    // Again (a re-run, a repeated CI job): the inventory that said why is gone, and still the
    // namespace and what it holds stay.
    let (again, _) = destroy_json(&repo, &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(left.configmap("kept").await, "{}", again.all());
    assert!(left.namespace().await, "{}", again.all());
}

/// A Namespace the environment declares (besides its own) that holds an object destroy keeps
/// stays with it: deleting the Namespace would delete the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_namespace_holding_a_kept_object_stays() {
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("own");
    let extra = cluster.ns("extra");
    let repo = repo_on(&cluster, &namespace, TERRAFORM);
    repo.write(
        "infrastructure/kubernetes/extra.yaml",
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {extra}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: {extra}\n  annotations:\n    gitship.dev/prune: \"false\"\ndata:\n  a: b\n"
        ),
    );
    repo.commit("a Namespace of its own holding a ConfigMap never pruned");
    repo.ok(&["deploy", "staging"]);
    let (run, _) = destroy_json(&repo, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains(&format!(
            "keep Namespace {extra}: it holds what destroy keeps (ConfigMap {extra}/kept)"
        )),
        "{}",
        run.stderr
    );
    let left = Left::of(&cluster, &extra).await;
    assert!(left.namespace().await, "{}", run.all());
    assert!(left.configmap("kept").await, "{}", run.all());
    assert!(!Left::of(&cluster, &namespace).await.namespace().await);
}

/// A namespace goes only with the environment that created it, and never while another
/// environment deploys in it: destroying `staging` (which made it) leaves `qa`'s objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_another_environment_deploys_in_stays() {
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("shared");
    let staging = repo_on(&cluster, &namespace, TERRAFORM);
    staging.ok(&["deploy", "staging"]);
    let qa = repo_on(&cluster, &namespace, TERRAFORM);
    std::fs::remove_file(qa.path().join("config/staging.yaml")).expect("remove");
    qa.write(
        "config/qa.yaml",
        &format!("cluster:\n  context: kubesim\n  namespace: {namespace}\n"),
    );
    qa.write(
        "infrastructure/kubernetes/objects.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: qa-only\ndata:\n  a: b\n",
    );
    qa.commit("environment qa in the same namespace");
    qa.ok(&["deploy", "qa"]);

    let (run, _) = destroy_json(&staging, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr
            .contains("kept: environment `qa` deploys there too"),
        "{}",
        run.stderr
    );
    let left = Left::of(&cluster, &namespace).await;
    assert!(left.namespace().await);
    assert!(left.configmap("qa-only").await, "qa's object went");
    assert!(left.configmap("gitship-qa").await, "qa's inventory went");
    assert!(!left.configmap("first").await);

    // qa did not create the namespace: its destroy keeps it too.
    let run = qa.gitship(&["destroy", "qa", "--yes"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("kept: not created by this environment"),
        "{}",
        run.stderr
    );
    assert!(left.namespace().await);
    assert!(!left.configmap("qa-only").await);
}

/// A finalizer holds an object: with a short `--timeout` destroy fails naming it and its
/// finalizer; once it is removed, a second run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalizer_holds_destroy_until_it_is_removed() {
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("held");
    let repo = repo_on(&cluster, &namespace, TERRAFORM);
    repo.ok(&["deploy", "staging"]);
    let left = Left::of(&cluster, &namespace).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(left.client.clone(), &namespace);
    let hold = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "second", "finalizers": ["example.com/hold"]}});
    configmaps
        .patch("second", &PatchParams::apply("test"), &Patch::Apply(&hold))
        .await
        .expect("add a finalizer");

    let run = repo.gitship(&["destroy", "staging", "--yes", "--timeout", "2s"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(&format!(
            "ConfigMap {namespace}/second (finalizers: example.com/hold)"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert!(!left.configmap("third").await, "the later wave went first");
    assert!(
        left.configmap("first").await,
        "nothing after the held object"
    );
    assert_eq!(
        terraform_resources(repo.path()),
        1,
        "Terraform waits for Kubernetes"
    );
    // The saved destroy plan (it holds the variables) is not left behind by the failure.
    let planfiles: Vec<_> = crate::agent::walkdir(&repo.path().join(".gitship"))
        .into_iter()
        .filter(|path| path.ends_with("gitship-destroy.tfplan"))
        .collect();
    assert!(planfiles.is_empty(), "{planfiles:?}");

    let release = json!({"metadata": {"finalizers": null}});
    configmaps
        .patch("second", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("remove the finalizer");
    let (again, _) = destroy_json(&repo, &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        left.anything().await.is_empty(),
        "{:?}",
        left.anything().await
    );
    assert!(!left.namespace().await);
    assert_eq!(terraform_resources(repo.path()), 0);
}

/// Killed (SIGKILL) right after each step's announcement, then run again: the second run
/// finishes the job, whatever the first left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_at_any_step_is_finished_by_a_second_run() {
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let markers = [
        "destroy: step prune",
        "deleted ConfigMap",
        "destroy: step terraform",
        // Inside `terraform destroy` (its destroy-time provisioner sleeps): the kill leaves it
        // running, holding the state's lock, which the second run waits for.
        ": Destroying...",
        "destroy: step records",
        "destroy: records done",
        "destroy: step namespace",
    ];
    for (index, marker) in markers.iter().enumerate() {
        let namespace = cluster.ns(&format!("cut{index}"));
        let repo = repo_on(&cluster, &namespace, SLOW_TERRAFORM);
        repo.ok(&["deploy", "staging"]);
        let cut =
            Background::watch(repo.spawn(&["destroy", "staging", "--yes", "--lock-lease", "2s"]));
        let started = Instant::now();
        while !cut.stderr().contains(marker) {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no `{marker}` line:\n{}",
                cut.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pid = cut.child().id().to_string();
        let killed = Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let first = cut.finish();
        assert_ne!(first.code, 0, "killed after `{marker}`: {}", first.all());

        let run = repo.gitship(&["destroy", "staging", "--yes"]);
        assert_eq!(run.code, 0, "after `{marker}`:\n{}", run.all());
        let left = Left::of(&cluster, &namespace).await;
        assert!(
            left.anything().await.is_empty(),
            "after `{marker}`: {:?}",
            left.anything().await
        );
        assert!(!left.namespace().await, "after `{marker}`");
        // A `terraform destroy` the kill left running finishes on its own; the second run
        // waited for its state lock or destroyed what was left.
        assert_eq!(terraform_resources(repo.path()), 0, "after `{marker}`");
    }
}

/// SIGINT while destroy waits for an object held by a finalizer: it stops at once (exit 130),
/// releases the lock, and a second run (the finalizer removed) finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_stops_the_wait_and_releases_the_lock() {
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("stop");
    let repo = repo_on(&cluster, &namespace, TERRAFORM);
    repo.ok(&["deploy", "staging"]);
    let left = Left::of(&cluster, &namespace).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(left.client.clone(), &namespace);
    let hold = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "second", "finalizers": ["example.com/hold"]}});
    configmaps
        .patch("second", &PatchParams::apply("test"), &Patch::Apply(&hold))
        .await
        .expect("add a finalizer");
    let waiting =
        Background::watch(repo.spawn(&["destroy", "staging", "--yes", "--timeout", "5m"]));
    let marker = format!("deleted ConfigMap {namespace}/third");
    let started = Instant::now();
    while !waiting.stderr().contains(&marker) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            waiting.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = waiting.child().id().to_string();
    let signalled = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let interrupted = Instant::now();
    let run = waiting.finish();
    assert_eq!(run.code, 130, "{}", run.all());
    assert!(
        interrupted.elapsed() < Duration::from_secs(20),
        "{}",
        run.all()
    );
    let leases: Api<Lease> = Api::namespaced(left.client.clone(), &namespace);
    assert!(
        leases
            .get_opt("gitship-staging")
            .await
            .expect("Lease")
            .is_none(),
        "the lock was released"
    );

    let release = json!({"metadata": {"finalizers": null}});
    configmaps
        .patch("second", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("remove the finalizer");
    repo.ok(&["destroy", "staging", "--yes"]);
    assert!(
        left.anything().await.is_empty(),
        "{:?}",
        left.anything().await
    );
    assert!(!left.namespace().await);
}

/// `protected: true`: refused, naming the key's line and how to go ahead; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_environment_is_refused() {
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("safe");
    let repo = repo_on(&cluster, &namespace, TERRAFORM);
    repo.ok(&["deploy", "staging"]);
    let config = std::fs::read_to_string(repo.path().join("config/staging.yaml")).expect("config");
    repo.write("config/staging.yaml", &format!("{config}protected: true\n"));
    repo.commit("protected");
    let line = config.lines().count() + 1;
    let run = repo.gitship(&["destroy", "staging", "--yes"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains(&format!("config/staging.yaml:{line}:1")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("remove `protected: true`"),
        "{}",
        run.stderr
    );
    let left = Left::of(&cluster, &namespace).await;
    assert_eq!(left.anything().await.len(), 7, "nothing was deleted");
    assert_eq!(terraform_resources(repo.path()), 1);
}

/// Off a terminal without `--yes`: refused (usage), nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_yes_off_a_terminal_it_is_refused() {
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("ask");
    let repo = repo_on(&cluster, &namespace, TERRAFORM);
    repo.ok(&["deploy", "staging"]);
    let run = repo.gitship(&["destroy", "staging"]);
    assert_eq!(run.code, 64, "{}", run.all());
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    let left = Left::of(&cluster, &namespace).await;
    assert_eq!(left.anything().await.len(), 7, "nothing was deleted");
    assert_eq!(terraform_resources(repo.path()), 1);
}

/// On a terminal, the plan is shown and answering no changes nothing (the saved Terraform plan
/// is removed too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_no_on_a_terminal_changes_nothing() {
    if !tools() || !require_tool("script", "--version") {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("no");
    let repo = repo_on(&cluster, &namespace, TERRAFORM);
    repo.ok(&["deploy", "staging"]);
    // `script` gives gitship a terminal; its stdin is the answer.
    let line = format!(
        "{} -C {} --kubeconfig {} destroy staging",
        env!("CARGO_BIN_EXE_gitship"),
        repo.path().display(),
        cluster.kubeconfig_path().display()
    );
    let gitship = crate::support::gitship();
    let mut script = Command::new("script");
    script.env_clear();
    for (key, value) in gitship.get_envs() {
        if let Some(value) = value {
            script.env(key, value);
        }
    }
    let mut child = script
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"n\n").expect("answer");
    }
    let output = child.wait_with_output().expect("script");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Destroy plan for `staging`"), "{text}");
    assert!(text.contains("[y/N]"), "{text}");
    assert!(text.contains("cancelled: destroying `staging`"), "{text}");
    let left = Left::of(&cluster, &namespace).await;
    assert_eq!(left.anything().await.len(), 7, "nothing was deleted");
    assert_eq!(terraform_resources(repo.path()), 1);
    let planfile = repo
        .path()
        .join(".gitship/terraform/staging/gitship-destroy.tfplan");
    assert!(
        planfile.parent().is_some_and(Path::is_dir),
        "Terraform's data directory"
    );
    assert!(!planfile.exists(), "the saved destroy plan is removed");
}

/// An unknown environment, an unreachable cluster and a lock held by another deploy: clear
/// errors, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_change_nothing() {
    if !tools() {
        return;
    }
    let cluster = TestCluster::start().await;
    let namespace = cluster.ns("locked");
    let repo = repo_on(&cluster, &namespace, TERRAFORM);
    repo.ok(&["deploy", "staging"]);

    let unknown = repo.gitship(&["destroy", "nowhere", "--yes"]);
    assert_eq!(unknown.code, 1, "{}", unknown.all());
    assert!(unknown.stderr.contains("nowhere"), "{}", unknown.stderr);

    let elsewhere = tempfile::tempdir().expect("temp");
    let kubeconfig = elsewhere.path().join("kubeconfig");
    let port = crate::support::registry::free_port();
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\ncurrent-context: kubesim\nclusters:\n- name: c\n  cluster: {{ server: \"https://127.0.0.1:{port}\" }}\nusers:\n- name: u\n  user: {{ token: t0ken }}\ncontexts:\n- name: kubesim\n  context: {{ cluster: c, user: u }}\n"),
    )
    .expect("kubeconfig");
    let mut command = crate::support::gitship();
    let unreachable = command
        .arg("-C")
        .arg(repo.path())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["destroy", "staging", "--yes"])
        .output()
        .expect("gitship");
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(unreachable.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not reachable") && stderr.contains(&port.to_string()),
        "{stderr}"
    );

    let leases: Api<Lease> = Api::namespaced(cluster.client().await, &namespace);
    let renewed = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "gitship-staging", "namespace": namespace},
        "spec": {"holderIdentity": "ann@laptop 1234", "leaseDurationSeconds": 60,
            "renewTime": renewed}});
    leases
        .patch(
            "gitship-staging",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&lease),
        )
        .await
        .expect("hold the lock");
    let locked = repo.gitship(&["destroy", "staging", "--yes", "--lock-timeout", "1s"]);
    assert_eq!(locked.code, 1, "{}", locked.all());
    assert!(
        locked.stderr.contains("ann@laptop 1234"),
        "{}",
        locked.stderr
    );
    let left = Left::of(&cluster, &namespace).await;
    // The Lease is the other deployer's; every object and record is still there.
    assert_eq!(
        left.anything().await.len(),
        8,
        "{:?}",
        left.anything().await
    );
    assert_eq!(terraform_resources(repo.path()), 1);
}
