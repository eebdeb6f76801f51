//! Adopting an Argo CD application directory (issue 31): `tests/fixtures/adopt/argo`, cloned as
//! it is, validates, plans (its hooks per phase), deploys in the order of its sync waves with its
//! PreSync and PostSync hooks, and shows no drift; a deploy that changes nothing runs no hook; a
//! failing PreSync hook stops the deploy before any object is applied and runs the SyncFail
//! hooks; the delete policies are observed. On kubesim and on the real control plane (the order
//! is read from kubesim's request record, or the real server's audit log).

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use crate::support::cluster::TestCluster;
use crate::support::gitship;
use crate::support::repo::Repo;

/// A clone of the fixture: its files copied and committed, as `git clone` gives them.
fn clone_fixture() -> Repo {
    let dir = tempfile::tempdir().expect("temp");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adopt/argo");
    let status = Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", source.display()))
        .arg(dir.path())
        .status()
        .expect("cp");
    assert!(status.success());
    let repo = Repo {
        dir,
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("argo app");
    repo
}

/// The index of the first write matching `method` and ending in (or containing) `path`.
fn position(writes: &[String], method: &str, path: &str) -> usize {
    writes
        .iter()
        .position(|w| w.starts_with(&format!("{method} ")) && w.contains(path))
        .unwrap_or_else(|| panic!("no `{method} ...{path}` among the writes:\n{writes:#?}"))
}

/// The Jobs in `namespace`, by name.
fn jobs(cluster: &TestCluster, namespace: &str) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let api: Api<Job> = Api::namespaced(cluster.client().await, namespace);
        let list = api.list(&ListParams::default()).await.expect("list jobs");
        list.items
            .into_iter()
            .filter(|job| job.metadata.deletion_timestamp.is_none())
            .filter_map(|job| job.metadata.name)
            .collect()
    })
}

fn deploy_json(repo: &Repo) -> Value {
    let run = repo.ok(&["-o", "json", "deploy", "dev"]);
    serde_json::from_str(&run.stdout).expect("deploy JSON")
}

#[test]
fn an_argo_app_deploys_in_its_waves_with_its_hooks_and_shows_no_drift() {
    let mut repo = clone_fixture();
    let cluster = TestCluster::start_blocking();
    let ns = cluster.adopt(&mut repo, "dev", "shop");
    let validate = repo.ok(&["validate", "dev"]);
    assert!(validate.all().contains("ok"), "{}", validate.all());
    let render = repo.ok(&["-o", "json", "render", "dev"]);
    assert!(
        render
            .stdout
            .contains(&format!("\"id\": \"batch/Job {ns}/migrate-\"")),
        "a hook is named by its generateName:\n{}",
        render.stdout
    );
    let plan = repo.gitship(&["plan", "dev"]);
    assert!(plan.code == 0 || plan.code == 2, "{}", plan.all());
    for line in [
        format!("PreSync   Job {ns}/migrate- (manifests/hooks/migrate.yaml:"),
        "delete policy BeforeHookCreation".to_string(),
        format!("PostSync  Job {ns}/smoke-test- (manifests/hooks/smoke-test.yaml:"),
        "delete policy HookSucceeded".to_string(),
    ] {
        assert!(plan.stdout.contains(&line), "{line}:\n{}", plan.stdout);
    }
    assert!(
        !plan.stdout.contains("+ Job"),
        "hooks are no objects:\n{}",
        plan.stdout
    );

    let mark = cluster.mark();
    let report = deploy_json(&repo);
    let writes = cluster.writes_since(mark);
    let jobs_path = format!("/apis/batch/v1/namespaces/{ns}/jobs");
    let migrate = position(&writes, "POST", &jobs_path);
    let settings = position(&writes, "PATCH", "/configmaps/shop-settings");
    let api = position(&writes, "PATCH", "/deployments/api");
    let frontend = position(&writes, "PATCH", "/deployments/frontend");
    let smoke = migrate + 1 + position(&writes[migrate + 1..], "POST", &jobs_path);
    let smoke_deleted = position(&writes, "DELETE", &format!("{jobs_path}/smoke-test-"));
    assert!(
        migrate < settings
            && settings < api
            && api < frontend
            && frontend < smoke
            && smoke < smoke_deleted,
        "PreSync, waves -1, 0, 1, PostSync, then its deletion:\n{writes:#?}"
    );
    let hooks = report["hooks"].as_array().expect("hooks in the report");
    assert_eq!(hooks.len(), 2, "{report:#}");
    assert_eq!(hooks[0]["phase"], "PreSync");
    assert_eq!(hooks[0]["outcome"], "succeeded");
    assert!(hooks[0]["object"].as_str().unwrap().contains("/migrate-"));
    assert_eq!(hooks[1]["phase"], "PostSync");
    assert_eq!(hooks[1]["deleted"], true, "HookSucceeded: {report:#}");
    let left = jobs(&cluster, &ns);
    assert!(
        left.len() == 1 && left[0].starts_with("migrate-"),
        "the migration stays until the next run, the smoke test is gone: {left:?}"
    );
    let history = repo.ok(&["-o", "json", "history", "dev"]);
    assert!(
        history.stdout.contains("\"PostSync\""),
        "the record says which hooks ran:\n{}",
        history.stdout
    );

    let drift = repo.gitship(&["drift", "dev"]);
    assert_eq!(drift.code, 0, "no drift after the deploy:\n{}", drift.all());
    assert!(
        drift.stderr.contains("not drift-checked"),
        "{}",
        drift.stderr
    );

    // Nothing changed: no hook runs.
    let mark = cluster.mark();
    let again = deploy_json(&repo);
    assert_eq!(again["changed"], false, "{again:#}");
    assert!(again.get("hooks").is_none(), "{again:#}");
    let writes = cluster.writes_since(mark);
    assert!(
        !writes.iter().any(|w| w.contains("/jobs")),
        "a no-op runs no hook:\n{writes:#?}"
    );

    // A change runs them again; BeforeHookCreation deletes the earlier migration first.
    repo.edit(
        "manifests/config.yaml",
        "LOG_LEVEL: info",
        "LOG_LEVEL: debug",
    );
    repo.commit("debug logs");
    let mark = cluster.mark();
    deploy_json(&repo);
    let writes = cluster.writes_since(mark);
    let deleted = position(&writes, "DELETE", &format!("{jobs_path}/{}", left[0]));
    let created = position(&writes, "POST", &jobs_path);
    assert!(deleted < created, "{writes:#?}");
    let now = jobs(&cluster, &ns);
    assert!(
        now.len() == 1 && now[0].starts_with("migrate-") && now[0] != left[0],
        "one new migration: {now:?} (was {left:?})"
    );
}

#[test]
fn a_failing_presync_hook_stops_the_deploy_before_any_object_and_runs_syncfail() {
    let mut repo = clone_fixture();
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("shop");
    // A named migration that fails: kubesim's scripted rollout, or on the real server a pod
    // that kwok fails (tests/real-cluster/stages.yaml).
    let fail_label = match cluster.sim() {
        Some(sim) => {
            sim.handle()
                .script_rollout(&ns, "migrate", kubesim::Rollout::Fail);
            ""
        }
        None => "    metadata:\n      labels:\n        sim.gitship.dev/fail: \"true\"\n",
    };
    repo.write(
        "manifests/hooks/migrate.yaml",
        &format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n    argocd.argoproj.io/hook-delete-policy: HookFailed\nspec:\n  backoffLimit: 0\n  template:\n{fail_label}    spec:\n      restartPolicy: Never\n      containers:\n        - name: migrate\n          image: registry.example.com/shop/api:1.4.2\n"
        ),
    );
    repo.write(
        "manifests/hooks/on-failure.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: notify-failure-\n  annotations:\n    argocd.argoproj.io/hook: SyncFail\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: notify\n          image: registry.example.com/shop/notify:1\n",
    );
    repo.commit("a failing migration");
    cluster.adopt(&mut repo, "dev", "shop");

    let mark = cluster.mark();
    let run = repo.gitship(&["deploy", "dev"]);
    assert_ne!(run.code, 0, "{}", run.all());
    let expected = format!(
        "PreSync hook Job {ns}/migrate (manifests/hooks/migrate.yaml:1:1) failed: BackoffLimitExceeded"
    );
    assert!(
        run.stderr.contains(&expected),
        "{expected}:\n{}",
        run.stderr
    );
    if cluster.sim().is_none() {
        // The failed pod, as the real server reports it (kubesim makes no pods for a Job).
        assert!(
            run.stderr.contains("; pod migrate-")
                && run
                    .stderr
                    .contains("container migrate exited 1 (Error): the hook failed"),
            "{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("SyncFail hook Job") && run.stderr.contains("notify-failure-"),
        "the SyncFail hook ran:\n{}",
        run.stderr
    );
    let history = repo.ok(&["-o", "json", "history", "dev"]);
    let history: Value = serde_json::from_str(&history.stdout).expect("history JSON");
    let failed = &history["records"][0];
    assert_eq!(failed["error"]["stage"], "hook", "{history:#}");
    assert_eq!(failed["hooks"][0]["outcome"], "failed", "{history:#}");
    assert_eq!(
        failed["hooks"][0]["deleted"], true,
        "HookFailed: {history:#}"
    );
    assert_eq!(failed["hooks"][1]["phase"], "SyncFail", "{history:#}");
    let writes = cluster.writes_since(mark);
    assert!(
        !writes.iter().any(|w| w.contains("/deployments")
            || w.contains("/services")
            || w.contains("shop-settings")),
        "no object applied:\n{writes:#?}"
    );
    let jobs_path = format!("/apis/batch/v1/namespaces/{ns}/jobs");
    position(&writes, "DELETE", &format!("{jobs_path}/migrate"));
    let left = jobs(&cluster, &ns);
    assert!(
        !left.contains(&"migrate".to_string())
            && left.iter().any(|j| j.starts_with("notify-failure-")),
        "HookFailed deleted the migration; the SyncFail hook stays: {left:?}"
    );
}

#[test]
fn generate_name_is_for_hooks_and_waves_must_agree() {
    let repo = clone_fixture();
    repo.write(
        "manifests/report.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: report-\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: report\n          image: busybox\n",
    );
    repo.edit(
        "manifests/frontend.yaml",
        "argocd.argoproj.io/sync-wave: \"1\"",
        "argocd.argoproj.io/sync-wave: \"1\"\n    gitship.dev/wave: \"2\"",
    );
    repo.commit("bad");
    let run = repo.gitship(&["validate", "dev"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("manifests/report.yaml:1:1")
            && run
                .stderr
                .contains("`metadata.generateName: report-` is only for hooks"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("manifests/frontend.yaml:1:1") && run.stderr.contains("disagree"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_agent_runs_the_hooks_of_its_sync() {
    let mut repo = clone_fixture();
    // A Sync hook of wave 0: after the objects of wave 0, before those of wave 1.
    repo.write(
        "manifests/hooks/warm-cache.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: warm-cache-\n  annotations:\n    argocd.argoproj.io/hook: Sync\n    argocd.argoproj.io/hook-delete-policy: HookSucceeded\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: warm\n          image: registry.example.com/shop/api:1.4.2\n",
    );
    repo.commit("a Sync hook");
    let cluster = TestCluster::start_blocking();
    let ns = cluster.adopt(&mut repo, "dev", "shop");
    let bare = tempfile::tempdir().expect("temp");
    repo.git(&[
        "clone",
        "-q",
        "--bare",
        ".",
        bare.path().to_str().expect("utf-8"),
    ]);
    let cache = tempfile::tempdir().expect("temp");
    let mark = cluster.mark();
    let output = gitship()
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["agent", "dev", "--once", "--source"])
        .arg(bare.path())
        .arg("--cache")
        .arg(cache.path())
        .output()
        .expect("gitship agent --once");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let history = repo.ok(&["-o", "json", "history", "dev"]);
    let history: Value = serde_json::from_str(&history.stdout).expect("history JSON");
    let sync = &history["records"][0];
    assert_eq!(sync["source"], "agent", "{history:#}");
    let phases: Vec<&str> = sync["hooks"]
        .as_array()
        .expect("the agent's record lists its hooks")
        .iter()
        .filter_map(|hook| hook["phase"].as_str())
        .collect();
    assert_eq!(phases, ["PreSync", "Sync", "PostSync"], "{history:#}");
    let writes = cluster.writes_since(mark);
    let jobs_path = format!("/apis/batch/v1/namespaces/{ns}/jobs");
    let api = position(&writes, "PATCH", "/deployments/api");
    let frontend = position(&writes, "PATCH", "/deployments/frontend");
    let warm = api + position(&writes[api..], "POST", &jobs_path);
    assert!(
        api < warm && warm < frontend,
        "the Sync hook ran in wave 0:\n{writes:#?}"
    );
    assert!(
        jobs(&cluster, &ns)
            .iter()
            .any(|job| job.starts_with("migrate-"))
    );
}

/// A Job of `helm template`'s output (its `helm.sh/*` annotations as Helm writes them).
fn helm_job(name: &str, annotations: &str, template_metadata: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations:\n{annotations}spec:\n  backoffLimit: 0\n  template:\n{template_metadata}    spec:\n      restartPolicy: Never\n      containers:\n        - name: {name}\n          image: registry.example.com/shop/api:1.4.2\n"
    )
}

#[test]
fn helm_hooks_run_as_their_argo_phases_and_test_hooks_are_not_applied() {
    let mut repo = clone_fixture();
    std::fs::remove_dir_all(repo.path().join("manifests/hooks")).expect("rm hooks");
    repo.write(
        "manifests/db-init.yaml",
        &helm_job(
            "db-init",
            "    helm.sh/hook: pre-install,pre-upgrade\n    helm.sh/hook-weight: \"-5\"\n    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded\n",
            "",
        ),
    );
    repo.write(
        "manifests/test-connection.yaml",
        &helm_job("test-connection", "    helm.sh/hook: test\n", ""),
    );
    repo.commit("helm hooks");
    let cluster = TestCluster::start_blocking();
    let ns = cluster.adopt(&mut repo, "dev", "shop");
    let plan = repo.ok(&["plan", "dev"]);
    for line in [
        format!(
            "PreSync   Job {ns}/db-init (manifests/db-init.yaml:1:1), weight -5, delete policy BeforeHookCreation, HookSucceeded"
        ),
        format!(
            "Skip      Job {ns}/test-connection (manifests/test-connection.yaml:1:1), not applied: `helm.sh/hook: test`"
        ),
    ] {
        assert!(plan.stdout.contains(&line), "{line}:\n{}", plan.stdout);
    }
    let mark = cluster.mark();
    let report = deploy_json(&repo);
    assert_eq!(report["hooks"][0]["phase"], "PreSync", "{report:#}");
    assert_eq!(report["hooks"][0]["object"], format!("Job {ns}/db-init"));
    assert_eq!(report["hooks"][0]["deleted"], true, "{report:#}");
    let writes = cluster.writes_since(mark);
    assert!(
        !writes.iter().any(|w| w.contains("test-connection")),
        "a Helm test hook is never applied:\n{writes:#?}"
    );
    assert!(jobs(&cluster, &ns).is_empty(), "hook-succeeded deleted it");
}

#[test]
fn a_hook_that_does_not_finish_in_time_stops_the_deploy() {
    let mut repo = clone_fixture();
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("shop");
    // kubesim's slow rollout, or on the real server a pod that never runs.
    let slow = match cluster.sim() {
        Some(sim) => {
            sim.handle().script_rollout(
                &ns,
                "migrate",
                kubesim::Rollout::Slow(std::time::Duration::from_secs(60)),
            );
            ""
        }
        None => "    metadata:\n      labels:\n        sim.gitship.dev/unready: \"true\"\n",
    };
    repo.write(
        "manifests/hooks/migrate.yaml",
        &helm_job("migrate", "    argocd.argoproj.io/hook: PreSync\n", slow),
    );
    repo.commit("a slow migration");
    cluster.adopt(&mut repo, "dev", "shop");
    let run = repo.gitship(&["deploy", "dev", "--timeout", "2s"]);
    assert_ne!(run.code, 0, "{}", run.all());
    let expected =
        format!("PreSync hook Job {ns}/migrate (manifests/hooks/migrate.yaml:1:1) timed out:");
    assert!(
        run.stderr.contains(&expected),
        "{expected}:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("after 2s"), "{}", run.stderr);
}

#[test]
fn init_adopts_the_argo_app_with_no_edit_and_its_sandbox_deploy_runs_the_hooks() {
    let repo = clone_fixture();
    std::fs::remove_dir_all(repo.path().join("config")).expect("rm config");
    repo.commit("as Argo CD users have it: no gitship config");
    let init = repo.ok(&["init", "--env", "dev"]);
    assert!(init.all().contains("`manifests/`"), "{}", init.all());
    repo.commit("gitship init");
    repo.ok(&["validate", "dev"]);
    let deploy = repo.ok(&["deploy", "dev", "--sandbox"]);
    for line in [
        "PreSync hook Job",
        "/migrate-",
        "PostSync hook Job",
        "/smoke-test-",
    ] {
        assert!(deploy.stdout.contains(line), "{line}:\n{}", deploy.all());
    }
    let drift = repo.gitship(&["drift", "dev", "--sandbox"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
}
