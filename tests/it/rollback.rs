//! `deploy --rev`, `rollback`, `pin` and `resume`, in the sandbox and on a cluster (kubesim, or
//! the real control plane: `support::cluster`): the work tree is never touched, a rollback pins
//! the environment, and `resume` lets Git back in.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::support::cluster::{Mark, TestCluster, sim_only};
use crate::support::registry::{TestRegistry, counting_shims};
use crate::support::repo::{Repo, Run};
use crate::support::require_tool;

fn title(repo: &Repo) -> String {
    let state = std::fs::read_to_string(repo.path().join(".gitship/sandbox/staging.json"))
        .expect("sandbox state");
    let state: serde_json::Value = serde_json::from_str(&state).expect("state JSON");
    let mut found = None;
    let mut stack = vec![&state];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if map.get("kind").and_then(|k| k.as_str()) == Some("ConfigMap")
                    && map
                        .get("metadata")
                        .and_then(|m| m.get("name"))
                        .and_then(|n| n.as_str())
                        == Some("site")
                {
                    found = map
                        .get("data")
                        .and_then(|d| d.get("title"))
                        .and_then(|t| t.as_str())
                        .map(str::to_string);
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found.expect("ConfigMap site in the sandbox")
}

fn git_status(dir: &Path) -> String {
    let output = Command::new("git")
        .args(["status", "--porcelain=v1", "--untracked-files=all"])
        .current_dir(dir)
        .output()
        .expect("git status");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn site(repo: &Repo, value: &str) {
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  title: {value}\n"
        ),
    );
}

/// A repository on `main` with one commit, `a`, never deployed.
fn one_commit() -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write("config/staging.yaml", "cluster:\n  namespace: web\n");
    site(&repo, "a");
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("a");
    repo
}

fn two_commits() -> Repo {
    let repo = one_commit();
    repo.git(&["tag", "v-a"]);
    repo.ok(&["deploy", "staging", "--sandbox"]);
    site(&repo, "b");
    repo.commit("b");
    repo.ok(&["deploy", "staging", "--sandbox"]);
    assert_eq!(title(&repo), "b");
    repo
}

#[test]
fn deploy_rev_leaves_the_work_tree_and_index_untouched() {
    let repo = two_commits();
    // Uncommitted changes, staged and not: they must survive, as they are.
    site(&repo, "uncommitted");
    repo.git(&["add", "infrastructure/kubernetes/site.yaml"]);
    repo.write("notes.txt", "scratch\n");
    let before = git_status(repo.path());
    let head = std::fs::read_to_string(repo.path().join(".git/HEAD")).expect("HEAD");
    let plan = repo.ok(&["plan", "staging", "--sandbox", "--rev", "v-a"]);
    assert!(
        plan.stdout.contains("ConfigMap web/site"),
        "{}",
        plan.stdout
    );
    assert_eq!(title(&repo), "b", "plan changes nothing");
    let run = repo.ok(&["deploy", "staging", "--sandbox", "--rev", "v-a"]);
    assert!(
        run.stderr.contains("the work tree is not touched"),
        "{}",
        run.stderr
    );
    assert_eq!(title(&repo), "a");
    assert_eq!(git_status(repo.path()), before);
    assert_eq!(
        std::fs::read_to_string(repo.path().join(".git/HEAD")).expect("HEAD"),
        head
    );
    assert!(
        std::fs::read_to_string(repo.path().join("infrastructure/kubernetes/site.yaml"))
            .expect("site")
            .contains("uncommitted")
    );
    // A revision that does not exist: a clear error, nothing deployed.
    let bad = repo.gitship(&["deploy", "staging", "--sandbox", "--rev", "no-such-rev"]);
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(bad.stderr.contains("no-such-rev"), "{}", bad.stderr);
    assert_eq!(title(&repo), "a");
}

#[test]
fn rollback_pins_the_previous_revision_until_resumed() {
    let repo = two_commits();
    // Without a terminal, a rollback needs --yes.
    let asked = repo.gitship(&["rollback", "staging", "--sandbox"]);
    assert_eq!(asked.code, 64, "{}", asked.all());
    assert!(asked.stderr.contains("--yes"), "{}", asked.stderr);
    assert_eq!(title(&repo), "b");

    let rolled = repo.ok(&["rollback", "staging", "--sandbox", "--yes"]);
    assert!(
        rolled.stdout.contains("rolled `staging` back to"),
        "{}",
        rolled.all()
    );
    assert!(rolled.stdout.contains("git revert"), "{}", rolled.stdout);
    assert_eq!(title(&repo), "a");
    let status = repo.ok(&["status", "staging", "--sandbox"]);
    assert!(status.stdout.contains("pinned at"), "{}", status.stdout);
    assert!(status.stdout.contains("rollback"), "{}", status.stdout);
    // The history: the rollback over B over A, with the revision's subject and the source.
    let history = repo.ok(&["history", "staging", "--sandbox", "-o", "json"]);
    let history: serde_json::Value = serde_json::from_str(&history.stdout).expect("JSON");
    let records = history["records"].as_array().expect("records");
    let sources: Vec<&str> = records
        .iter()
        .filter_map(|r| r["source"].as_str())
        .collect();
    let subjects: Vec<&str> = records
        .iter()
        .filter_map(|r| r["subject"].as_str())
        .collect();
    assert_eq!(sources, ["rollback", "deploy", "deploy"], "{history}");
    assert_eq!(subjects, ["a", "b", "a"], "{history}");
    let human = repo.ok(&["history", "staging", "--sandbox"]);
    assert!(human.stdout.contains("rollback"), "{}", human.stdout);

    // A deploy of HEAD refuses while pinned, unless forced.
    let refused = repo.gitship(&["deploy", "staging", "--sandbox"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains("is pinned at"),
        "{}",
        refused.stderr
    );
    assert_eq!(title(&repo), "a");

    let resumed = repo.ok(&["resume", "staging", "--sandbox"]);
    assert!(
        resumed.stdout.contains("follows Git again"),
        "{}",
        resumed.stdout
    );
    repo.ok(&["deploy", "staging", "--sandbox"]);
    assert_eq!(title(&repo), "b");
    // Nothing older than the first deploy: a clear error.
    let none = repo.gitship(&["rollback", "staging", "--sandbox", "--yes", "--steps", "5"]);
    assert_eq!(none.code, 1, "{}", none.all());
    assert!(none.stderr.contains("--to REV"), "{}", none.stderr);
}

/// Before the first deploy: `pin` and `rollback` refuse with the same error, `history` says so.
#[test]
fn pin_rollback_and_history_of_an_environment_never_deployed() {
    let repo = one_commit();
    for (args, what) in [
        (&["pin", "staging", "--sandbox", "--rev", "HEAD"][..], "pin"),
        (
            &["rollback", "staging", "--sandbox", "--yes"][..],
            "roll back",
        ),
    ] {
        let run = repo.gitship(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(
            run.stderr.contains(&format!(
                "error: `staging` has never been deployed: there is nothing to {what}"
            )) && run
                .stderr
                .contains("hint: deploy it first: `gitship deploy staging`"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let history = repo.ok(&["history", "staging", "--sandbox"]);
    assert!(
        history.stdout.contains("never deployed"),
        "{}",
        history.stdout
    );
}

#[test]
fn allowed_revisions_refuse_a_commit_on_a_side_branch() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: web\ndeploy:\n  allowed_revisions: { reachable_from: main }\n",
    );
    site(&repo, "a");
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("a");
    repo.git(&["checkout", "-q", "-b", "side"]);
    site(&repo, "side");
    repo.commit("side");
    let refused = repo.gitship(&["deploy", "staging", "--sandbox"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains(
            "`deploy.allowed_revisions` allows only commits reachable from `origin/main`"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("config/staging.yaml:4"),
        "{}",
        refused.stderr
    );
    assert!(!repo.path().join(".gitship/sandbox/staging.json").exists());
    // `main` itself, and --rev of it from the side branch, are allowed.
    repo.ok(&["deploy", "staging", "--sandbox", "--rev", "main"]);
    assert_eq!(title(&repo), "a");
    let bad = repo.gitship(&["deploy", "staging", "--sandbox", "--rev", "side"]);
    assert_eq!(bad.code, 1, "{}", bad.all());
}

/// A rollback of an app puts A's image back by digest without calling a builder, and the
/// Events say `RolledBack` and `Pinned`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_puts_the_previous_image_digest_back_without_building() {
    if !require_tool("docker", "version") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = Repo::web_app(cluster.kubeconfig_path(), &registry.address, "<h1>A</h1>\n");
    let config = std::fs::read_to_string(repo.path().join("config/staging.yaml")).expect("config");
    repo.write("config/staging.yaml", &cluster.localize(&config, &["web"]));
    repo.commit("the test's namespace");
    repo.ok(&["deploy", "staging"]);
    let image_a = web.configmap_value("web", "image").await;
    repo.write("apps/web/index.html", "<h1>B</h1>\n");
    repo.commit("B");
    repo.ok(&["deploy", "staging"]);
    let image_b = web.configmap_value("web", "image").await;
    assert_ne!(image_a, image_b);
    assert!(image_a.contains("@sha256:"), "{image_a}");

    let shims = tempfile::tempdir().expect("temp");
    let log = shims.path().join("calls.log");
    std::fs::write(&log, "").expect("log");
    let path = counting_shims(shims.path(), &log, &["docker", "podman", "buildah"]);
    let output = crate::support::gitship()
        .env("PATH", path)
        .arg("-C")
        .arg(repo.path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["rollback", "staging", "--yes"])
        .output()
        .expect("rollback");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        web.configmap_value("web", "image").await,
        image_a,
        "A's image, by digest"
    );
    let calls = std::fs::read_to_string(&log).expect("log");
    assert_eq!(calls, "", "no builder was called");
    let reasons: Vec<String> = web
        .events_about("gitship-staging")
        .await
        .into_iter()
        .map(|(reason, _)| reason)
        .collect();
    assert!(reasons.iter().any(|r| r == "RolledBack"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "Pinned"), "{reasons:?}");
}

/// Two commits on `main`: `a` (tag `v-a`, deployed to the cluster's namespace `web`) and `b`
/// (not deployed). The deploy lock times out after 3 s unless a flag says otherwise.
fn on_cluster(cluster: &TestCluster) -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "config/staging.yaml",
        &format!(
            "cluster:\n  context: kubesim\n  namespace: {}\ndeploy:\n  lock_timeout: 3s\n",
            cluster.ns("web")
        ),
    );
    site(&repo, "a");
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("a");
    repo.git(&["tag", "v-a"]);
    repo.ok(&["deploy", "staging"]);
    site(&repo, "b");
    repo.commit("b");
    repo
}

/// The environment's namespace (the test's `web`) on a cluster, read and written as another
/// tool would.
struct Namespace {
    client: kube::Client,
    name: String,
}

impl Namespace {
    async fn of(cluster: &TestCluster) -> Namespace {
        Namespace {
            client: cluster.client().await,
            name: cluster.ns("web"),
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    async fn configmap(&self, name: &str) -> Option<ConfigMap> {
        self.api::<ConfigMap>()
            .get_opt(name)
            .await
            .unwrap_or_else(|error| panic!("read ConfigMap {}/{name}: {error}", self.name))
    }

    /// `data[key]` of ConfigMap `name`, which must exist.
    async fn configmap_value(&self, name: &str, key: &str) -> String {
        let configmap = self
            .configmap(name)
            .await
            .unwrap_or_else(|| panic!("no ConfigMap {}/{name}", self.name));
        configmap
            .data
            .and_then(|mut data| data.remove(key))
            .unwrap_or_else(|| panic!("ConfigMap {}/{name} has no `{key}`", self.name))
    }

    async fn title(&self) -> String {
        self.configmap_value("site", "title").await
    }

    /// The pin stored in the inventory, as JSON.
    async fn stored_pin(&self) -> Option<serde_json::Value> {
        let inventory = self.configmap("gitship-staging").await?;
        let text = inventory.data?.remove("pin.json")?;
        Some(serde_json::from_str(&text).expect("pin JSON"))
    }

    async fn lease(&self) -> Option<Lease> {
        self.api::<Lease>()
            .get_opt("gitship-staging")
            .await
            .expect("read the Lease")
    }

    /// Server-side apply `object` (in this namespace) as `manager`, taking its fields over.
    async fn apply<K>(&self, name: &str, manager: &str, object: serde_json::Value)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        self.api::<K>()
            .patch(
                name,
                &PatchParams::apply(manager).force(),
                &Patch::Apply(object),
            )
            .await
            .unwrap_or_else(|error| panic!("apply {name} as {manager}: {error}"));
    }

    /// The deploy lock, as another deployer holds it: renewed `age` ago for 60 s.
    async fn hold_lock(&self, age: chrono::TimeDelta) {
        let renewed = (chrono::Utc::now() - age)
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "gitship-staging", "namespace": self.name},
            "spec": {"holderIdentity": "ann@laptop 1234", "leaseDurationSeconds": 60,
                "renewTime": renewed}});
        self.apply::<Lease>("gitship-staging", "test", lease).await;
    }

    /// The `(reason, message)` of the Events about the object named `involved`.
    async fn events_about(&self, involved: &str) -> Vec<(String, String)> {
        let events = self
            .api::<Event>()
            .list(&ListParams::default())
            .await
            .expect("list Events");
        events
            .items
            .into_iter()
            .filter(|event| event.involved_object.name.as_deref() == Some(involved))
            .map(|event| {
                (
                    event.reason.unwrap_or_default(),
                    event.message.unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// Poll `done` until it holds, or fail naming `what` after a minute.
async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn head_sha(repo: &Repo, revision: &str) -> String {
    let output = Command::new("git")
        .args(["rev-parse", revision])
        .current_dir(repo.path())
        .output()
        .expect("git rev-parse");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `gitship` in the background, its stderr read as it comes.
pub(crate) struct Background {
    child: std::process::Child,
    stderr: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Background {
    /// Watch `child`, started with its stdout and stderr piped.
    pub(crate) fn watch(mut child: std::process::Child) -> Background {
        let pipe = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut sink = sink.lock().expect("stderr");
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        Background {
            child,
            stderr,
            reader,
        }
    }

    pub(crate) fn child(&self) -> &std::process::Child {
        &self.child
    }

    /// Its stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr").clone()
    }

    pub(crate) fn finish(self) -> Run {
        let output = self.child.wait_with_output().expect("gitship");
        self.reader.join().expect("stderr reader");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: self.stderr.lock().expect("stderr").clone(),
        }
    }
}

/// A deploy that waits for the lock while a rollback (here: `pin`) pins the environment reads
/// the pin once it holds the lock, and refuses the branch head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_waiting_for_the_lock_sees_a_pin_written_meanwhile() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    web.hold_lock(chrono::TimeDelta::zero()).await;
    let waiting = Background::watch(repo.spawn(&["deploy", "staging", "--lock-timeout", "60s"]));
    wait_for("the deploy to wait for the lock", async || {
        waiting
            .stderr()
            .contains("waiting for the lock of `staging`, held by `ann@laptop 1234`")
    })
    .await;
    repo.ok(&["pin", "staging", "--rev", "v-a"]);
    // The other deployer is gone: its Lease expires, the waiting deploy takes it.
    web.hold_lock(chrono::TimeDelta::minutes(10)).await;
    let run = waiting.finish();
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("is pinned at"), "{}", run.stderr);
    assert_eq!(
        web.title().await,
        "a",
        "the branch head was deployed over the pin"
    );
    assert!(
        web.lease().await.is_none(),
        "the refused deploy released the lock"
    );
}

/// A rollback pins before it deploys (a deploy waiting for the lock would see the pin), and puts
/// the previous pin back when its deploy fails.
/// History A ok, B ok, C failed (the cluster runs part of C): the record says why, a Warning
/// Event names it, `rollback` goes to B (not A), and a second rollback goes further back to A,
/// never forward to C; a failed record cannot be a target, and no-op deploys collapse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_deploy_rollback_goes_to_the_last_good_revision_then_further_back() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    repo.ok(&["deploy", "staging"]);
    // Deploying B again changes nothing: one record with a count, not two.
    repo.ok(&["deploy", "staging"]);
    repo.ok(&["deploy", "staging"]);
    // C: a new title, and a Deployment whose rollout never finishes.
    site(&repo, "c");
    write_failing_deployment(&repo, &cluster);
    repo.commit("c");
    let c = head_sha(&repo, "HEAD");
    let failed = repo.gitship(&["deploy", "staging", "--timeout", "30s"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    assert_eq!(web.title().await, "c", "C was applied in part");

    let history = repo.ok(&["history", "staging"]);
    assert!(history.stdout.contains("#4  "), "{}", history.stdout);
    assert!(
        history.stdout.contains("failed at health: "),
        "the record says why: {}",
        history.stdout
    );
    assert!(
        history
            .stdout
            .contains("(x2, the same revision, nothing changed)"),
        "{}",
        history.stdout
    );
    let json = repo.ok(&["history", "staging", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(json["format_version"], 2);
    assert_eq!(json["records"][0]["error"]["stage"], "health", "{json}");
    let reasons = web.events_about("gitship-staging").await;
    assert!(
        reasons
            .iter()
            .any(|(reason, message)| reason == "DeployFailed" && message.contains(&c[..12])),
        "{reasons:?}"
    );

    // A failed record is no target.
    let refused = repo.gitship(&["rollback", "staging", "--to", "#4", "--yes"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains("failed deploy"),
        "{}",
        refused.stderr
    );
    let unknown = repo.gitship(&["rollback", "staging", "--to", "#99", "--yes"]);
    assert_eq!(unknown.code, 1, "{}", unknown.all());
    assert!(
        unknown.stderr.contains("no record #99")
            && unknown.stderr.contains("gitship history staging"),
        "{}",
        unknown.stderr
    );

    if let Some(sim) = cluster.sim() {
        sim.handle()
            .script_rollout(&cluster.ns("web"), "web", kubesim::Rollout::Healthy);
    }
    repo.ok(&["rollback", "staging", "--yes"]);
    assert_eq!(
        web.title().await,
        "b",
        "back to the last good revision, not two back"
    );
    repo.ok(&["rollback", "staging", "--yes"]);
    assert_eq!(web.title().await, "a", "further back, never forward to C");
    // Record numbers are accepted by `--to`.
    repo.ok(&["rollback", "staging", "--to", "#2", "--yes"]);
    assert_eq!(web.title().await, "b");
}

/// The Deployment `web` of commit C: its rollout never finishes (kubesim's scripted rollout, or
/// on the real server pods that never become Ready and a 3 s progress deadline).
fn write_failing_deployment(repo: &Repo, cluster: &TestCluster) {
    let unready = match cluster.sim() {
        Some(sim) => {
            sim.handle()
                .script_rollout(&cluster.ns("web"), "web", kubesim::Rollout::Fail);
            ""
        }
        None => "        sim.gitship.dev/unready: \"true\"\n",
    };
    repo.write(
        "infrastructure/kubernetes/web.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  progressDeadlineSeconds: 3\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels:\n        app: web\n{unready}    spec:\n      containers:\n        - name: web\n          image: registry.local/web:1\n"
        ),
    );
}

/// Deleting the inventory ConfigMap loses neither the history nor the pin: both are read from
/// its copy, `status` and `history` still show them, a deploy of the bad HEAD is still refused,
/// and the next deploy writes the inventory again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_inventory_keeps_its_history_and_pin_from_the_copy() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    repo.ok(&["deploy", "staging"]);
    repo.ok(&["rollback", "staging", "--yes"]);
    assert_eq!(web.title().await, "a");
    web.api::<ConfigMap>()
        .delete("gitship-staging", &Default::default())
        .await
        .expect("delete the inventory");
    wait_for("the inventory to be gone", async || {
        web.configmap("gitship-staging").await.is_none()
    })
    .await;

    let history = repo.ok(&["history", "staging"]);
    assert!(history.stdout.contains("#3"), "{}", history.stdout);
    assert!(history.stdout.contains("rollback"), "{}", history.stdout);
    let status = repo.ok(&["status", "staging"]);
    assert!(status.stdout.contains("pinned at"), "{}", status.stdout);
    let refused = repo.gitship(&["deploy", "staging"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains("is pinned at"),
        "{}",
        refused.stderr
    );
    assert_eq!(web.title().await, "a", "the bad HEAD is not deployed");

    // A deploy of the pinned revision writes the inventory again, from the copy.
    let redeploy = repo.ok(&["deploy", "staging", "--rev", "v-a"]);
    assert!(
        redeploy.stderr.contains("read from its copy"),
        "{}",
        redeploy.stderr
    );
    assert!(web.configmap("gitship-staging").await.is_some());
    let history = repo.ok(&["history", "staging"]);
    assert!(history.stdout.contains("#4"), "{}", history.stdout);
}

/// `rollback --terraform` previews the whole plan, Terraform's changes and the manifests with
/// the outputs it plans, and applies exactly that plan: the ConfigMap that takes a Terraform
/// output goes back too (before, the preview compared with today's outputs and said "no
/// changes", then the apply changed it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_terraform_previews_the_terraform_plan_and_applies_exactly_it() {
    if !require_tool("terraform", "version") {
        return;
    }
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "infrastructure/terraform/main.tf",
        "variable \"size\" { type = string }\nresource \"terraform_data\" \"size\" { input = var.size }\noutput \"memory\" { value = terraform_data.size.output }\n",
    );
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  title: \"${terraform.memory}\"\n",
    );
    let config = |size: &str| {
        format!(
            "cluster:\n  context: kubesim\n  namespace: {}\nterraform:\n  vars:\n    size: \"{size}\"\n",
            cluster.ns("web")
        )
    };
    repo.write("config/staging.yaml", &config("1Gi"));
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("1Gi");
    repo.ok(&["deploy", "staging"]);
    assert_eq!(web.title().await, "1Gi");
    repo.write("config/staging.yaml", &config("2Gi"));
    repo.commit("2Gi");
    repo.ok(&["deploy", "staging"]);
    assert_eq!(web.title().await, "2Gi");

    let rollback = repo.ok(&["rollback", "staging", "--terraform", "--yes"]);
    assert!(
        rollback.stdout.contains("terraform_data.size"),
        "the preview shows Terraform's plan: {}",
        rollback.all()
    );
    assert!(
        rollback.stdout.contains("ConfigMap") && rollback.stdout.contains("site"),
        "and the ConfigMap the output changes: {}",
        rollback.all()
    );
    assert_eq!(web.title().await, "1Gi", "applied as previewed");
    let history = repo.ok(&["history", "staging", "-o", "json"]);
    let history: serde_json::Value = serde_json::from_str(&history.stdout).expect("JSON");
    assert_eq!(history["records"][0]["source"], "rollback", "{history}");
    assert!(
        history["records"][0]["terraform"].is_object(),
        "the rollback applied Terraform: {history}"
    );
}

/// `deploy --atomic`: the health wait fails, the previous good revision is deployed back at
/// once (a rollback record after the failed one), nothing is pinned, and the exit code is 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_atomic_restores_the_previous_revision_after_a_health_failure() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    repo.ok(&["deploy", "staging"]);
    let b = head_sha(&repo, "HEAD");
    site(&repo, "c");
    write_failing_deployment(&repo, &cluster);
    repo.commit("c");
    let failed = repo.gitship(&["deploy", "staging", "--atomic", "--timeout", "30s"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    assert!(
        failed
            .stderr
            .contains(&format!("`--atomic` rolled it back to {}", &b[..12])),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("did not become healthy"),
        "{}",
        failed.stderr
    );
    assert_eq!(web.title().await, "b", "the previous revision is back");
    assert!(
        web.stored_pin().await.is_none(),
        "an atomic deploy pins nothing"
    );
    let json = repo.ok(&["history", "staging", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(json["records"][0]["source"], "rollback", "{json}");
    assert_eq!(json["records"][0]["sha"], b.as_str(), "{json}");
    assert_eq!(json["records"][1]["outcome"], "failed", "{json}");
}

/// A stuck deploy holds the lock: `rollback --lock-timeout` gives up quickly, `unlock --force`
/// breaks the lock (asking first, or `--yes`), records who did, and the rollback goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_force_breaks_a_stuck_lock_so_a_rollback_gets_ahead() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    repo.ok(&["deploy", "staging"]);
    web.hold_lock(chrono::TimeDelta::zero()).await;
    let started = Instant::now();
    let waited = repo.gitship(&["rollback", "staging", "--yes", "--lock-timeout", "1s"]);
    assert_eq!(waited.code, 1, "{}", waited.all());
    assert!(
        waited.stderr.contains("ann@laptop 1234"),
        "{}",
        waited.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    let refused = repo.gitship(&["unlock", "staging"]);
    assert_eq!(refused.code, 64, "{}", refused.all());
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    let unasked = repo.gitship(&["unlock", "staging", "--force"]);
    assert_eq!(unasked.code, 64, "{}", unasked.all());
    assert!(unasked.stderr.contains("--yes"), "{}", unasked.stderr);

    let broken = repo.ok(&["unlock", "staging", "--force", "--yes"]);
    assert!(
        broken.stdout.contains("held by `ann@laptop 1234`"),
        "{}",
        broken.all()
    );
    let reasons = web.events_about("gitship-staging").await;
    assert!(
        reasons
            .iter()
            .any(|(reason, message)| reason == "LockBroken" && message.contains("ann@laptop 1234")),
        "{reasons:?}"
    );
    repo.ok(&["rollback", "staging", "--yes", "--lock-timeout", "5s"]);
    assert_eq!(web.title().await, "a");
    let again = repo.ok(&["unlock", "staging", "--force", "--yes"]);
    assert!(again.stdout.contains("is not held"), "{}", again.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_pins_before_it_deploys_and_restores_the_pin_when_it_fails() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    repo.ok(&["deploy", "staging"]);
    let (a, b) = (head_sha(&repo, "v-a"), head_sha(&repo, "HEAD"));
    repo.ok(&["pin", "staging", "--rev", "HEAD"]);
    assert_eq!(web.stored_pin().await.expect("pinned")["sha"], b.as_str());

    // The lock is held (3 s lock timeout): the rollback pins, then waits, then fails.
    web.hold_lock(chrono::TimeDelta::zero()).await;
    let rollback = repo.spawn(&["rollback", "staging", "--yes"]);
    wait_for("the rollback's pin", async || {
        web.stored_pin()
            .await
            .is_some_and(|pin| pin["sha"] == a.as_str() && pin["reason"] == "rollback")
    })
    .await;
    let run = Repo::finish(rollback);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("ann@laptop 1234"), "{}", run.stderr);
    let pin = web.stored_pin().await.expect("the previous pin is back");
    assert_eq!(pin["sha"], b.as_str(), "{pin}");
    assert_eq!(pin["reason"], "pin", "{pin}");
    assert_eq!(web.title().await, "b");
    // The Events tell the story: pinned by the rollback, then the previous pin restored.
    let reasons = web.events_about("gitship-staging").await;
    let restored = reasons
        .iter()
        .find(|(reason, _)| reason == "PinRestored")
        .unwrap_or_else(|| panic!("no `PinRestored` Event: {reasons:?}"));
    assert!(
        restored
            .1
            .contains(&format!("is pinned at {} again (pin by", &b[..12])),
        "{restored:?}"
    );
}

/// An unreadable pin stops `deploy`, `status` and `agent --once` with a hint to `resume`, and
/// `resume` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_pin_is_named_and_resume_removes_it() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    web.apply::<ConfigMap>(
        "gitship-staging",
        "someone",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "gitship-staging", "namespace": web.name},
            "data": {"pin.json": "{\"sha\": "}}),
    )
    .await;
    for args in [["deploy", "staging"], ["status", "staging"]] {
        let run = repo.gitship(&args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(
            run.stderr
                .contains("error: the pin of `staging` in the inventory ConfigMap `gitship-staging` is unreadable"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("hint: run `gitship resume staging`"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(web.title().await, "a");
    // The agent neither syncs nor heals without knowing the pin, and `--once` says why.
    let source = tempfile::tempdir().expect("temp");
    let source_path = source.path().to_string_lossy().into_owned();
    repo.git(&["init", "-q", "--bare", &source_path]);
    repo.git(&["push", "-q", &source_path, "main"]);
    let cache = tempfile::tempdir().expect("temp");
    let cache_path = cache.path().to_string_lossy().into_owned();
    let agent = repo.gitship(&[
        "agent",
        "staging",
        "--once",
        "--source",
        &source_path,
        "--branch",
        "main",
        "--cache",
        &cache_path,
    ]);
    assert_eq!(agent.code, 1, "{}", agent.all());
    assert!(agent.stderr.contains("is unreadable"), "{}", agent.stderr);
    assert!(
        agent.stderr.contains("hint: run `gitship resume staging`"),
        "{}",
        agent.stderr
    );
    assert_eq!(web.title().await, "a");
    let resumed = repo.ok(&["resume", "staging"]);
    assert!(
        resumed
            .stdout
            .contains("its pin was unreadable and is removed"),
        "{}",
        resumed.all()
    );
    assert_eq!(web.stored_pin().await, None);
    repo.ok(&["deploy", "staging"]);
    assert_eq!(web.title().await, "b");
}

/// Pushes `main` to a new bare `origin`, then commits `c` on top without pushing it: the remote
/// (kept alive by the caller) and the pushed commit.
fn push_then_commit(repo: &Repo) -> (tempfile::TempDir, String) {
    let remote = tempfile::tempdir().expect("temp");
    let remote_path = remote.path().to_string_lossy().into_owned();
    repo.git(&["init", "-q", "--bare", &remote_path]);
    repo.git(&["remote", "add", "origin", &remote_path]);
    repo.git(&["push", "-q", "origin", "main"]);
    let pushed = head_sha(repo, "HEAD");
    site(repo, "c");
    repo.commit("c");
    (remote, pushed)
}

/// The refusal of an unpushed `HEAD`: exit 1, what and the hint.
fn assert_refused_as_unpushed(refused: &Run) {
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains("error: `HEAD` (")
            && refused.stderr.contains("has not been pushed"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("hint: push it first (`git push`"),
        "{}",
        refused.stderr
    );
}
/// `pin --rev` refuses a commit no remote-tracking branch has (the agent heals to the pin from
/// its own clone of the source, which could not check it out), and pins a pushed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_refuses_an_unpushed_commit() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    let (_remote, pushed) = push_then_commit(&repo);

    let mark = cluster.mark();
    let refused = repo.gitship(&["pin", "staging", "--rev", "HEAD"]);
    assert_refused_as_unpushed(&refused);
    assert_eq!(web.stored_pin().await, None, "nothing pinned");
    let writes = cluster.writes_since(mark);
    assert!(writes.is_empty(), "the refused pin wrote: {writes:?}");

    repo.ok(&["pin", "staging", "--rev", "origin/main"]);
    assert_eq!(
        web.stored_pin().await.expect("pinned")["sha"],
        pushed.as_str()
    );
    assert_pin_written(&cluster, mark);
}

/// The record of writes since `mark` holds a write of the inventory ConfigMap (where the pin
/// is): the record that is empty for a refusal sees a pin.
fn assert_pin_written(cluster: &TestCluster, mark: Mark) {
    let writes = cluster.writes_since(mark);
    assert!(
        writes
            .iter()
            .any(|write| write.starts_with("PATCH ")
                && write.ends_with("/configmaps/gitship-staging")),
        "{writes:?}"
    );
}

/// `rollback --to` refuses an unpushed commit as `pin --rev` does (the rollback pins it), and
/// rolls back to a pushed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_refuses_an_unpushed_commit() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    let (_remote, pushed) = push_then_commit(&repo);

    let mark = cluster.mark();
    let refused = repo.gitship(&["rollback", "staging", "--yes", "--to", "HEAD"]);
    assert_refused_as_unpushed(&refused);
    assert_eq!(web.stored_pin().await, None, "nothing pinned");
    assert_eq!(web.title().await, "a", "nothing deployed");
    let writes = cluster.writes_since(mark);
    assert!(writes.is_empty(), "the refused rollback wrote: {writes:?}");

    repo.ok(&["rollback", "staging", "--yes", "--to", "origin/main"]);
    assert_eq!(
        web.stored_pin().await.expect("pinned")["sha"],
        pushed.as_str()
    );
    assert_eq!(web.title().await, "b");
    assert_pin_written(&cluster, mark);
}

/// `deploy --force` deploys over a pin, says so, and leaves the pin in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_force_deploys_over_a_pin_and_keeps_it() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    let a = head_sha(&repo, "v-a");
    repo.ok(&["pin", "staging", "--rev", "v-a"]);
    let refused = repo.gitship(&["deploy", "staging"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("or pass `--force` to deploy anyway"),
        "{}",
        refused.stderr
    );
    assert_eq!(web.title().await, "a");

    let forced = repo.ok(&["deploy", "staging", "--force"]);
    assert!(
        forced.stderr.contains("is pinned at")
            && forced.stderr.contains("over it (`--force`); the pin stays"),
        "{}",
        forced.stderr
    );
    assert_eq!(web.title().await, "b");
    assert_eq!(
        web.stored_pin().await.expect("still pinned")["sha"],
        a.as_str()
    );
}

/// `status` and `drift` read the inventory ConfigMap once, for the inventory and the pin alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_drift_read_the_inventory_once_sim_only() {
    if !sim_only("counts GET requests: the real server's audit log records writes only") {
        return;
    }
    let cluster = TestCluster::start().await;
    let sim = cluster.sim().expect("kubesim");
    let repo = on_cluster(&cluster);
    repo.ok(&["pin", "staging", "--rev", "v-a"]);
    let inventory_reads = || {
        sim.handle()
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/configmaps/gitship-staging"))
            .count()
    };
    sim.handle().reset_requests();
    let status = repo.ok(&["status", "staging"]);
    assert!(status.stdout.contains("pinned at"), "{}", status.stdout);
    assert_eq!(inventory_reads(), 1, "status");
    sim.handle().reset_requests();
    let drift = repo.gitship(&["drift", "staging"]);
    assert_eq!(drift.code, 0, "the pinned revision runs: {}", drift.all());
    assert!(drift.stdout.contains("is pinned at"), "{}", drift.stdout);
    assert_eq!(inventory_reads(), 1, "drift");
}

/// A pinned environment whose Git moved on is compared with its pinned revision: the cluster
/// runs it, so `drift` finds nothing and `plan` no change, and both say "pinned at X, Git at Y"
/// (the pin in `-o json` too). `--rev` compares with any revision and still says it is pinned;
/// an unknown revision is a clear error; after `resume`, Git is compared again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_environment_is_compared_with_its_pinned_revision() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    let (a, b) = (head_sha(&repo, "v-a"), head_sha(&repo, "HEAD"));
    repo.ok(&["pin", "staging", "--rev", "v-a"]);
    assert_eq!(web.stored_pin().await.expect("pinned")["sha"], a.as_str());
    let pinned = format!("`staging` is pinned at {} (pin by ", &a[..12]);
    let git_at = format!("Git at {}: ", &b[..12]);

    tokio::task::spawn_blocking(move || {
        let drift = repo.gitship(&["drift", "staging"]);
        assert_eq!(drift.code, 0, "the cluster runs the pinned revision: {}", drift.all());
        assert!(
            drift.stdout.contains(&pinned)
                && drift.stdout.contains(&format!(
                    "{git_at}compared with the pinned revision (`gitship resume staging` follows Git again, `--rev HEAD` compares with Git)"
                )),
            "{}",
            drift.stdout
        );
        assert!(
            drift.stdout.contains(&format!(
                "No drift. The environment matches the pinned revision {}.",
                &a[..12]
            )),
            "{}",
            drift.stdout
        );
        let (code, report) = repo.drift_json(&["staging"]);
        assert_eq!(code, 0, "{report:#?}");
        assert_eq!(report.git.sha, a, "`git` is the revision compared");
        let pin = report.pin.as_ref().expect("the pin in the JSON");
        assert_eq!((pin.sha.as_str(), pin.git_sha.as_str()), (a.as_str(), b.as_str()));
        assert_eq!(pin.reason, "pin");
        assert!(!pin.by.is_empty(), "{pin:?}");

        let (code, plan) = repo.plan_json(&["staging", "--exit-code"]);
        assert_eq!(code, 0, "no change against the pinned revision: {plan:#?}");
        assert_eq!(plan.git.sha, a);
        assert_eq!(plan.pin.as_ref().map(|pin| pin.git_sha.as_str()), Some(b.as_str()));
        let human = repo.ok(&["plan", "staging"]);
        assert!(
            human.stdout.contains(&pinned)
                && human.stdout.contains(&format!(
                    "{git_at}planned the pinned revision (a deploy of Git is refused while pinned; `gitship resume staging` follows Git again, `--rev HEAD` plans Git)"
                )),
            "{}",
            human.stdout
        );

        // `--rev` overrides the pin, and says so.
        let head = repo.gitship(&["drift", "staging", "--rev", "HEAD"]);
        assert_eq!(head.code, 2, "{}", head.all());
        assert!(
            head.stdout.contains(&pinned)
                && head
                    .stdout
                    .contains(&format!("{git_at}compared with Git (`--rev`), not the pinned revision")),
            "{}",
            head.stdout
        );
        let (code, report) = repo.drift_json(&["staging", "--rev", "HEAD"]);
        assert_eq!(code, 2);
        assert_eq!(report.git.sha, b);
        assert_eq!(report.pin.as_ref().map(|pin| pin.sha.as_str()), Some(a.as_str()));
        let title = report
            .kubernetes
            .iter()
            .flat_map(|object| &object.fields)
            .find(|field| field.path == "data.title")
            .unwrap_or_else(|| panic!("no drift of data.title: {report:#?}"));
        assert_eq!((title.before.as_deref(), title.after.as_deref()), (Some("a"), Some("b")));
        let (code, plan) = repo.plan_json(&["staging", "--rev", "HEAD", "--exit-code"]);
        assert_eq!(code, 2, "{plan:#?}");
        assert_eq!(plan.git.sha, b);
        let (code, _) = repo.drift_json(&["staging", "--rev", "v-a"]);
        assert_eq!(code, 0);

        let unknown = repo.gitship(&["drift", "staging", "--rev", "no-such-rev"]);
        assert_eq!(unknown.code, 1, "{}", unknown.all());
        assert!(
            unknown
                .stderr
                .starts_with("error: `no-such-rev` names no commit of the repository `")
                && unknown.stderr.contains("` (environment `staging`)\n  caused by: "),
            "{}",
            unknown.stderr
        );
        assert!(
            unknown
                .stderr
                .contains("hint: give a commit SHA, a tag or a branch of this repository"),
            "{}",
            unknown.stderr
        );
        assert!(unknown.stdout.is_empty(), "{}", unknown.stdout);

        // The saved plan of a pinned environment is the pinned revision's: deployed with `--rev`.
        let saved = repo.path().join(".gitship/pinned.json");
        let saved = saved.to_string_lossy().into_owned();
        let planned = repo.ok(&["plan", "staging", "--out", &saved]);
        let deploy = format!("gitship deploy staging --rev {a} --plan {saved}");
        assert!(planned.stderr.contains(&deploy), "{}", planned.stderr);
        let as_head = repo.gitship(&["deploy", "staging", "--plan", &saved]);
        assert_eq!(as_head.code, 1, "{}", as_head.all());
        assert!(
            as_head.stderr.contains(&format!(
                "is the plan of `staging`'s pinned revision {}, not of {}",
                &a[..12],
                &b[..12]
            )) && as_head.stderr.contains(&format!("hint: deploy it as that revision: `{deploy}`")),
            "{}",
            as_head.stderr
        );
        repo.ok(&["deploy", "staging", "--rev", &a, "--plan", &saved]);

        repo.ok(&["resume", "staging"]);
        let (code, report) = repo.drift_json(&["staging"]);
        assert_eq!(code, 2, "Git again: {report:#?}");
        assert_eq!((report.git.sha.as_str(), report.pin.is_none()), (b.as_str(), true));
    })
    .await
    .expect("the checks");
    assert_eq!(web.title().await, "a");
}

/// A pin at a commit this clone does not have (pinned from another clone, not fetched): `drift`
/// and `plan` say which commit is missing and how to go on; `--rev HEAD` still compares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_at_a_commit_the_repository_lacks_is_named_with_a_hint() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let pin = json!({"sha": missing, "who": "ann@laptop", "time": "2025-03-02T10:14:00Z",
        "reason": "pin"});
    web.apply::<ConfigMap>(
        "gitship-staging",
        "someone",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "gitship-staging", "namespace": web.name},
            "data": {"pin.json": pin.to_string()}}),
    )
    .await;
    tokio::task::spawn_blocking(move || {
        for command in ["drift", "plan"] {
            let run = repo.gitship(&[command, "staging"]);
            assert_eq!(run.code, 1, "{command}: {}", run.all());
            assert!(
                run.stderr.contains(
                    "error: `staging` is pinned at 0123456789ab (pin by ann@laptop), a commit the repository `"
                ) && run.stderr.contains(&format!(
                    "hint: fetch it (`git fetch`), or compare with Git instead: `gitship {command} staging --rev HEAD`"
                )),
                "{command}: {}",
                run.stderr
            );
        }
        let (code, report) = repo.drift_json(&["staging", "--rev", "HEAD"]);
        assert_eq!(code, 2, "Git's `b` against the cluster's `a`: {report:#?}");
        assert_eq!(
            report.pin.as_ref().map(|pin| pin.sha.as_str()),
            Some(missing)
        );
    })
    .await
    .expect("the checks");
}

/// A repository whose site title and database password come from Terraform outputs
/// (`endpoint`, and the sensitive `password`), deployed at `db-1`; then at `db-2` with one more
/// ConfigMap. `None` without terraform.
async fn deployed_twice_with_outputs(cluster: &TestCluster) -> Option<Repo> {
    if !require_tool("terraform", "version") {
        return None;
    }
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "infrastructure/terraform/main.tf",
        "variable \"endpoint\" { type = string }\nvariable \"password\" {\n  type = string\n  sensitive = true\n}\nresource \"terraform_data\" \"db\" { input = var.endpoint }\noutput \"endpoint\" { value = terraform_data.db.output }\noutput \"password\" {\n  value = var.password\n  sensitive = true\n}\n",
    );
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  title: \"${terraform.endpoint}\"\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: \"${terraform.password}\"\n",
    );
    let config = |n: u32| {
        format!(
            "cluster:\n  context: kubesim\n  namespace: {}\nterraform:\n  vars:\n    endpoint: \"db-{n}\"\n    password: \"hunter{n}-secret\"\n",
            cluster.ns("web")
        )
    };
    repo.write("config/staging.yaml", &config(1));
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("db-1");
    repo.ok(&["deploy", "staging"]);
    repo.write("config/staging.yaml", &config(2));
    repo.write(
        "infrastructure/kubernetes/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: b\n",
    );
    repo.commit("db-2");
    repo.ok(&["deploy", "staging"]);
    Some(repo)
}

/// The password of Secret `db`, decoded.
async fn password(web: &Namespace) -> String {
    let secret = web
        .api::<k8s_openapi::api::core::v1::Secret>()
        .get("db")
        .await
        .expect("Secret db");
    let bytes = secret
        .data
        .and_then(|mut data| data.remove("password"))
        .expect("password");
    String::from_utf8(bytes.0).expect("UTF-8")
}

/// Each successful deploy keeps what it applied (compressed, in the Secret
/// `gitship-<env>.revisions`): a rollback re-applies exactly that, although the Terraform
/// outputs have changed since (a render would take today's `db-2`), and `history --diff` shows
/// what changed between two records, the Secret's value never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_restores_the_stored_objects_exactly_after_terraform_outputs_changed() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let Some(repo) = deployed_twice_with_outputs(&cluster).await else {
        return;
    };
    assert_eq!(web.title().await, "db-2");
    assert_eq!(password(&web).await, "hunter2-secret");

    let diff = repo.ok(&["history", "staging", "--diff", "#1", "#2"]);
    let ns = cluster.ns("web");
    for expected in [
        format!("~ ConfigMap {ns}/site"),
        "~ data.title: db-1 -> db-2".to_string(),
        format!("+ ConfigMap {ns}/extra"),
        "stringData.password: <sensitive> (changed)".to_string(),
        "1 added, 0 removed, 2 changed".to_string(),
    ] {
        assert!(
            diff.stdout.contains(&expected),
            "{expected}: {}",
            diff.all()
        );
    }
    let json = repo.ok(&["history", "staging", "--diff", "1", "2", "-o", "json"]);
    assert!(
        json.stdout.contains("\"format_version\": 1"),
        "{}",
        json.stdout
    );
    for secret in ["hunter1-secret", "hunter2-secret"] {
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret);
        for output in [&diff, &json] {
            assert!(
                !output.all().contains(secret) && !output.all().contains(&encoded),
                "{}",
                output.all()
            );
        }
    }

    let rollback = repo.ok(&["rollback", "staging", "--yes"]);
    assert!(
        rollback
            .stderr
            .contains("re-applying the manifests record #1 applied"),
        "{}",
        rollback.all()
    );
    assert!(!rollback.all().contains("hunter"), "{}", rollback.all());
    assert_eq!(
        web.title().await,
        "db-1",
        "the old object, not today's output"
    );
    assert_eq!(password(&web).await, "hunter1-secret");
    assert!(
        web.configmap("extra").await.is_none(),
        "what #2 added is pruned"
    );
    let history = repo.ok(&["history", "staging"]);
    assert!(
        history.stdout.contains("re-applied the manifests of #1"),
        "{}",
        history.stdout
    );
    let json = repo.ok(&["history", "staging", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(json["records"][0]["manifests"], 1, "{json}");
    // One Secret; the rollback stored nothing new.
    let revisions = web
        .api::<k8s_openapi::api::core::v1::Secret>()
        .get("gitship-staging.revisions")
        .await
        .expect("the revisions Secret");
    assert_eq!(revisions.type_.as_deref(), Some("gitship.dev/revisions"));
    let keys: Vec<String> = revisions.data.unwrap_or_default().into_keys().collect();
    assert_eq!(keys, ["r1", "r2"]);

    // `--render` renders the revision again, with today's outputs.
    let again = repo.ok(&["rollback", "staging", "--to", "#2", "--yes"]);
    assert_eq!(web.title().await, "db-2", "{}", again.all());
    repo.ok(&["rollback", "staging", "--to", "#1", "--render", "--yes"]);
    assert_eq!(web.title().await, "db-2", "rendered with today's outputs");
}

/// Stored manifests that were edited into nonsense stop the rollback (naming the Secret and the
/// key, with the hint `--render`) before anything changes; gone ones make it render the
/// revision again, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_missing_stored_manifests_are_named_and_render_is_the_way_out() {
    let cluster = TestCluster::start().await;
    let web = Namespace::of(&cluster).await;
    let repo = on_cluster(&cluster);
    repo.ok(&["deploy", "staging"]);
    assert_eq!(web.title().await, "b");
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gitship-staging.revisions", "namespace": web.name},
        "type": "gitship.dev/revisions", "data": {"r1": "bm90IGd6aXA="}});
    web.apply::<k8s_openapi::api::core::v1::Secret>("gitship-staging.revisions", "gitship", secret)
        .await;
    let refused = repo.gitship(&["rollback", "staging", "--yes"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("key `r1` of Secret `gitship-staging.revisions`")
            && refused.stderr.contains("--render"),
        "{}",
        refused.stderr
    );
    assert_eq!(web.title().await, "b", "nothing changed");
    assert!(web.stored_pin().await.is_none(), "nothing pinned");
    let diff = repo.gitship(&["history", "staging", "--diff", "#1", "#2"]);
    assert_eq!(diff.code, 1, "{}", diff.all());
    assert!(
        diff.stderr
            .contains("key `r1` of Secret `gitship-staging.revisions`"),
        "{}",
        diff.stderr
    );
    let unknown = repo.gitship(&["history", "staging", "--diff", "#1", "#9"]);
    assert_eq!(unknown.code, 1, "{}", unknown.all());
    assert!(
        unknown.stderr.contains("`staging` has no record `#9`")
            && unknown.stderr.contains("hint: give a record number"),
        "{}",
        unknown.stderr
    );
    web.api::<k8s_openapi::api::core::v1::Secret>()
        .delete("gitship-staging.revisions", &Default::default())
        .await
        .expect("delete");
    let gone = repo.gitship(&["history", "staging", "--diff", "#1", "#2"]);
    assert_eq!(gone.code, 1, "{}", gone.all());
    assert!(
        gone.stderr
            .contains("record #1 of `staging` has no stored manifests")
            && gone
                .stderr
                .contains("hint: `gitship history staging` lists the records"),
        "{}",
        gone.stderr
    );
    let rendered = repo.ok(&["rollback", "staging", "--yes"]);
    assert!(
        rendered.stderr.contains("rendering")
            && rendered
                .stderr
                .contains("are gone from `gitship-staging.revisions`"),
        "{}",
        rendered.stderr
    );
    assert_eq!(web.title().await, "a");
}
