//! `deploy --rev`, `rollback`, `pin` and `resume` in the sandbox: the work tree is never touched,
//! a rollback pins the environment, and `resume` lets Git back in.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kubesim::KubeSim;
use serde_json::json;

use crate::support::repo::{Repo, Run};

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

#[test]
fn rollback_puts_the_previous_image_digest_back_without_building() {
    if !crate::support::require_tool("kubectl", "help")
        || !crate::support::require_tool("docker", "version")
    {
        return;
    }
    let Some(registry) = crate::support::registry::TestRegistry::start() else {
        return;
    };
    let sim = crate::agent::Sim::start();
    let repo = Repo::web_app(&sim.kubeconfig, &registry.address, "<h1>A</h1>\n");
    let image = || {
        sim.get(&[
            "get",
            "configmap",
            "web",
            "-n",
            "web",
            "-o",
            "jsonpath={.data.image}",
        ])
        .expect("ConfigMap web")
    };
    repo.ok(&["deploy", "staging"]);
    let image_a = image();
    repo.write("apps/web/index.html", "<h1>B</h1>\n");
    repo.commit("B");
    repo.ok(&["deploy", "staging"]);
    let image_b = image();
    assert_ne!(image_a, image_b);
    assert!(image_a.contains("@sha256:"), "{image_a}");

    let shims = tempfile::tempdir().expect("temp");
    let log = shims.path().join("calls.log");
    std::fs::write(&log, "").expect("log");
    let path = crate::support::registry::counting_shims(
        shims.path(),
        &log,
        &["docker", "podman", "buildah"],
    );
    let output = crate::support::gitship()
        .env("PATH", path)
        .arg("-C")
        .arg(repo.path())
        .arg("--kubeconfig")
        .arg(&sim.kubeconfig)
        .args(["rollback", "staging", "--yes"])
        .output()
        .expect("rollback");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(image(), image_a, "A's image, by digest");
    let calls = std::fs::read_to_string(&log).expect("log");
    assert_eq!(calls, "", "no builder was called");
    let events = sim
        .get(&["get", "events", "-n", "web", "-o", "json"])
        .expect("events");
    assert!(events.contains("\"RolledBack\""), "{events}");
    assert!(events.contains("\"Pinned\""), "{events}");
}

/// Two commits on `main`: `a` (tag `v-a`, deployed to kubesim's namespace `web`) and `b` (not
/// deployed). The deploy lock times out after 3 s unless a flag says otherwise.
fn on_kubesim(sim: &KubeSim) -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: Some(sim.kubeconfig_path().to_path_buf()),
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "config/staging.yaml",
        "cluster:\n  context: kubesim\n  namespace: web\ndeploy:\n  lock_timeout: 3s\n",
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

fn cluster_title(sim: &KubeSim) -> String {
    let site = sim
        .handle()
        .get("v1", "ConfigMap", "web", "site")
        .expect("ConfigMap web/site");
    site["data"]["title"].as_str().expect("title").to_string()
}

/// The pin stored in the inventory, as JSON.
fn stored_pin(sim: &KubeSim) -> Option<serde_json::Value> {
    let inventory = sim
        .handle()
        .get("v1", "ConfigMap", "web", "gitship-staging")?;
    let text = inventory["data"]["pin.json"].as_str()?;
    Some(serde_json::from_str(text).expect("pin JSON"))
}

/// The deploy lock, as another deployer holds it: renewed `age` ago for 60 s.
fn hold_lock(sim: &KubeSim, age: chrono::TimeDelta) {
    let renewed = (chrono::Utc::now() - age)
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    sim.handle()
        .apply(
            &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "gitship-staging", "namespace": "web"},
                "spec": {"holderIdentity": "ann@laptop 1234", "leaseDurationSeconds": 60,
                    "renewTime": renewed}}),
            "test",
            true,
        )
        .expect("Lease applied");
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
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

/// A deploy that waits for the lock while a rollback (here: `pin`) pins the environment reads
/// the pin once it holds the lock, and refuses the branch head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_waiting_for_the_lock_sees_a_pin_written_meanwhile() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let repo = on_kubesim(&sim);
    hold_lock(&sim, chrono::TimeDelta::zero());
    sim.handle().reset_requests();
    let waiting = repo.spawn(&["deploy", "staging", "--lock-timeout", "60s"]);
    wait_for("the deploy to wait for the lock", || {
        sim.handle()
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/leases/gitship-staging"))
            .count()
            >= 2
    });
    repo.ok(&["pin", "staging", "--rev", "v-a"]);
    // The other deployer is gone: its Lease expires, the waiting deploy takes it.
    hold_lock(&sim, chrono::TimeDelta::minutes(10));
    let run = Repo::finish(waiting);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("is pinned at"), "{}", run.stderr);
    assert_eq!(
        cluster_title(&sim),
        "a",
        "the branch head was deployed over the pin"
    );
    assert!(
        sim.handle()
            .get("coordination.k8s.io/v1", "Lease", "web", "gitship-staging")
            .is_none(),
        "the refused deploy released the lock"
    );
}

/// A rollback pins before it deploys (a deploy waiting for the lock would see the pin), and puts
/// the previous pin back when its deploy fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_pins_before_it_deploys_and_restores_the_pin_when_it_fails() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let repo = on_kubesim(&sim);
    repo.ok(&["deploy", "staging"]);
    let (a, b) = (head_sha(&repo, "v-a"), head_sha(&repo, "HEAD"));
    repo.ok(&["pin", "staging", "--rev", "HEAD"]);
    assert_eq!(stored_pin(&sim).expect("pinned")["sha"], b.as_str());

    // The lock is held (3 s lock timeout): the rollback pins, then waits, then fails.
    hold_lock(&sim, chrono::TimeDelta::zero());
    let rollback = repo.spawn(&["rollback", "staging", "--yes"]);
    wait_for("the rollback's pin", || {
        stored_pin(&sim).is_some_and(|pin| pin["sha"] == a.as_str() && pin["reason"] == "rollback")
    });
    let run = Repo::finish(rollback);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("ann@laptop 1234"), "{}", run.stderr);
    let pin = stored_pin(&sim).expect("the previous pin is back");
    assert_eq!(pin["sha"], b.as_str(), "{pin}");
    assert_eq!(pin["reason"], "pin", "{pin}");
    assert_eq!(cluster_title(&sim), "b");
    // The Events tell the story: pinned by the rollback, then the previous pin restored.
    let reasons: Vec<(String, String)> = sim
        .handle()
        .objects()
        .iter()
        .filter(|o| o["kind"] == "Event" && o["involvedObject"]["name"] == "gitship-staging")
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
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
    let sim = KubeSim::start().await.expect("kubesim starts");
    let repo = on_kubesim(&sim);
    sim.handle()
        .apply(
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "gitship-staging", "namespace": "web"},
                "data": {"pin.json": "{\"sha\": "}}),
            "someone",
            true,
        )
        .expect("pin corrupted");
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
    assert_eq!(cluster_title(&sim), "a");
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
    assert_eq!(cluster_title(&sim), "a");
    let resumed = repo.ok(&["resume", "staging"]);
    assert!(
        resumed
            .stdout
            .contains("its pin was unreadable and is removed"),
        "{}",
        resumed.all()
    );
    assert_eq!(stored_pin(&sim), None);
    repo.ok(&["deploy", "staging"]);
    assert_eq!(cluster_title(&sim), "b");
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
    let sim = KubeSim::start().await.expect("kubesim starts");
    let repo = on_kubesim(&sim);
    let (_remote, pushed) = push_then_commit(&repo);

    let refused = repo.gitship(&["pin", "staging", "--rev", "HEAD"]);
    assert_refused_as_unpushed(&refused);
    assert_eq!(stored_pin(&sim), None, "nothing pinned");

    repo.ok(&["pin", "staging", "--rev", "origin/main"]);
    assert_eq!(stored_pin(&sim).expect("pinned")["sha"], pushed.as_str());
}

/// `rollback --to` refuses an unpushed commit as `pin --rev` does (the rollback pins it), and
/// rolls back to a pushed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_refuses_an_unpushed_commit() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let repo = on_kubesim(&sim);
    let (_remote, pushed) = push_then_commit(&repo);

    let refused = repo.gitship(&["rollback", "staging", "--yes", "--to", "HEAD"]);
    assert_refused_as_unpushed(&refused);
    assert_eq!(stored_pin(&sim), None, "nothing pinned");
    assert_eq!(cluster_title(&sim), "a", "nothing deployed");

    repo.ok(&["rollback", "staging", "--yes", "--to", "origin/main"]);
    assert_eq!(stored_pin(&sim).expect("pinned")["sha"], pushed.as_str());
    assert_eq!(cluster_title(&sim), "b");
}

/// `deploy --force` deploys over a pin, says so, and leaves the pin in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_force_deploys_over_a_pin_and_keeps_it() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let repo = on_kubesim(&sim);
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
    assert_eq!(cluster_title(&sim), "a");

    let forced = repo.ok(&["deploy", "staging", "--force"]);
    assert!(
        forced.stderr.contains("is pinned at")
            && forced.stderr.contains("over it (`--force`); the pin stays"),
        "{}",
        forced.stderr
    );
    assert_eq!(cluster_title(&sim), "b");
    assert_eq!(stored_pin(&sim).expect("still pinned")["sha"], a.as_str());
}

/// `status` and `drift` read the inventory ConfigMap once, for the inventory and the pin alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_drift_read_the_inventory_once() {
    let sim = KubeSim::start().await.expect("kubesim starts");
    let repo = on_kubesim(&sim);
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
    assert!(drift.code == 0 || drift.code == 2, "{}", drift.all());
    assert!(drift.stderr.contains("is pinned at"), "{}", drift.stderr);
    assert_eq!(inventory_reads(), 1, "drift");
}
