//! Preview environments (`env new NAME --from ENV --ephemeral`) through the built CLI, on the
//! test cluster (kubesim, or the real server): recorded on their namespace in the base's
//! cluster, found by name from a fresh checkout by `deploy`, `plan`, `drift`, `status`,
//! `history`, listed by `envs`, destroyed by `destroy` and (expired) `gc`, leaving nothing behind;
//! and the refusals (unknown name, a committed environment's name, bad `--set`, bad `--ttl`, a
//! namespace too long).

use std::path::Path;

use gitship::facade::ops::envs::PreviewSummary;
use gitship::facade::ops::gc::GcReport;
use gitship::facade::ops::preview::PreviewReport;

use crate::support::cluster::TestCluster;
use crate::support::repo::Repo;

/// Environment `staging` (namespace `ns`) on the test cluster: one ConfigMap showing its
/// `values.host`, the environment's name and, with `terraform`, a Terraform output of a root
/// with a `terraform_data` (local state); committed.
fn preview_repo(cluster: &TestCluster, ns: &str, terraform: bool) -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
    };
    repo.write(".gitignore", ".gitship/\nterraform.tfstate*\n.terraform*\n");
    let mut config = format!(
        "cluster:\n  context: kubesim\n  namespace: {ns}\nvalues:\n  host: staging.example\n  web:\n    replicas: 2\n"
    );
    let mut data = String::from(
        "  host: ${values.host}\n  env: ${env.name}\n  replicas: \"${values.web.replicas}\"\n",
    );
    if terraform {
        repo.write(
            "infrastructure/terraform/main.tf",
            "resource \"terraform_data\" \"site\" {\n  input = terraform.workspace\n}\n\
             output \"site\" {\n  value = terraform_data.site.output\n}\n\
             output \"password\" {\n  value     = \"hunter2\"\n  sensitive = true\n}\n",
        );
        config.push_str("  site: ${terraform.site}\n  password: ${terraform.password}\n");
        data.push_str("  site: ${terraform.site}\n");
    }
    repo.write("config/staging.yaml", &config);
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n{data}"),
    );
    repo.git(&["init", "-q"]);
    repo.commit("site");
    repo
}

/// A fresh clone of `repo` (no `.gitship/`, no Terraform state): what a CI job checks out.
fn fresh_checkout(repo: &Repo) -> Repo {
    let dir = tempfile::tempdir().expect("temp");
    let status = std::process::Command::new("git")
        .args(["clone", "-q"])
        .arg(repo.path())
        .arg(dir.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .expect("git clone");
    assert!(status.success());
    Repo {
        dir,
        kubeconfig: repo.kubeconfig.clone(),
    }
}

fn kubectl(cluster: &TestCluster, args: &[&str]) -> std::process::Output {
    std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(args)
        .output()
        .expect("kubectl")
}

fn kubectl_ok(cluster: &TestCluster, args: &[&str]) -> String {
    let output = kubectl(cluster, args);
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn create_preview(repo: &Repo, name: &str, extra: &[&str]) -> PreviewReport {
    let mut args = vec![
        "-o",
        "json",
        "env",
        "new",
        name,
        "--from",
        "staging",
        "--ephemeral",
    ];
    args.extend_from_slice(extra);
    let run = repo.ok(&args);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("not a preview report ({error}):\n{}", run.all()))
}

fn previews(repo: &Repo) -> Vec<PreviewSummary> {
    let run = repo.ok(&["-o", "json", "envs"]);
    let listing: serde_json::Value = serde_json::from_str(&run.stdout).expect("envs JSON");
    assert_eq!(listing["format_version"], 2, "{listing:#}");
    serde_json::from_value(listing["previews"].clone()).expect("previews")
}

fn configmap(cluster: &TestCluster, namespace: &str) -> serde_json::Value {
    let text = kubectl_ok(
        cluster,
        &["get", "configmap", "site", "-n", namespace, "-o", "json"],
    );
    serde_json::from_str(&text).expect("ConfigMap JSON")
}

#[test]
fn a_preview_is_recorded_in_the_cluster_and_found_by_name_from_a_fresh_checkout() {
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("site");
    let preview_ns = format!("{ns}-pr-1");
    cluster.track(&preview_ns);
    let repo = preview_repo(&cluster, &ns, false);

    let created = create_preview(
        &repo,
        "pr-1",
        &[
            "--ttl",
            "2h",
            "--set",
            "values.host=pr-1.example",
            "--set",
            "values.web.replicas=1",
        ],
    );
    assert_eq!(created.action, "created");
    assert_eq!(created.preview.namespace, preview_ns);
    assert_eq!(created.preview.base, "staging");
    assert_eq!(created.preview.values["host"], "pr-1.example");
    assert_eq!(created.preview.values["web.replicas"], 1);
    // Nothing was written to the repository.
    assert!(!repo.path().join("config/pr-1.yaml").exists());
    let namespace = kubectl_ok(&cluster, &["get", "namespace", &preview_ns, "-o", "json"]);
    let namespace: serde_json::Value = serde_json::from_str(&namespace).unwrap();
    let labels = &namespace["metadata"]["labels"];
    assert_eq!(labels["gitship.dev/preview"], "pr-1");
    assert_eq!(labels["gitship.dev/preview-of"], "staging");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "gitship");

    // A CI job on a fresh checkout: `env new` again updates it, then it deploys by name.
    let ci = fresh_checkout(&repo);
    let updated = create_preview(
        &ci,
        "pr-1",
        &["--ttl", "3h", "--set", "values.host=pr-1.example"],
    );
    assert_eq!(updated.action, "updated");
    assert_eq!(updated.preview.created_at, created.preview.created_at);
    assert!(updated.preview.expires_at > created.preview.expires_at);
    assert!(!updated.preview.values.contains_key("web.replicas"));
    let deploy = ci.ok(&["deploy", "pr-1"]);
    assert!(
        deploy.stderr.contains("`pr-1` is a preview of `staging`"),
        "{}",
        deploy.all()
    );
    let data = configmap(&cluster, &preview_ns)["data"].clone();
    assert_eq!(data["host"], "pr-1.example");
    assert_eq!(data["env"], "pr-1");
    assert_eq!(data["replicas"], "2");
    // The base's namespace holds nothing of the preview's.
    assert!(
        !kubectl(&cluster, &["get", "configmap", "site", "-n", &ns])
            .status
            .success()
    );

    let other = fresh_checkout(&repo);
    let (code, drift) = other.drift_json(&["pr-1"]);
    assert_eq!(code, 0, "{drift:#?}");
    let (code, _) = other.plan_json(&["pr-1"]);
    assert_eq!(code, 0);
    other.ok(&["status", "pr-1"]);
    let history = other.ok(&["history", "pr-1"]);
    assert!(history.stdout.contains("#1"), "{}", history.all());

    let listed = previews(&other);
    let [preview] = listed.as_slice() else {
        panic!("one preview: {listed:#?}");
    };
    assert_eq!(
        (
            preview.name.as_str(),
            preview.base.as_str(),
            preview.namespace.as_str()
        ),
        ("pr-1", "staging", preview_ns.as_str())
    );
    assert!(!preview.expired && preview.age_seconds < 3600);
    let human = other.ok(&["envs"]);
    assert!(
        human.stdout.contains("PREVIEW") && human.stdout.contains(&preview_ns),
        "{}",
        human.all()
    );
}

#[test]
fn previews_are_refused_with_clear_errors() {
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("site");
    let repo = preview_repo(&cluster, &ns, true);

    let unknown = repo.gitship(&["deploy", "pr-404"]);
    assert_eq!(unknown.code, 1, "{}", unknown.all());
    assert!(
        unknown.stderr.contains("unknown environment `pr-404`")
            && unknown.stderr.contains("`staging`")
            && unknown
                .stderr
                .contains("gitship env new pr-404 --from ENV --ephemeral"),
        "{}",
        unknown.all()
    );

    let committed = repo.gitship(&["env", "new", "staging", "--from", "staging", "--ephemeral"]);
    assert_eq!(committed.code, 64, "{}", committed.all());
    assert!(
        committed
            .stderr
            .contains("`staging` is a committed environment"),
        "{}",
        committed.all()
    );

    for (args, code, expected) in [
        (
            &["--set", "cluster.namespace=x"][..],
            64,
            "only `values.*` keys",
        ),
        (&["--set", "values.host"][..], 64, "no `=`"),
        (
            &["--ttl", "3d"][..],
            64,
            "invalid duration `3d` for `--ttl`",
        ),
        (&["--ttl", "200h"][..], 64, "longer than the maximum"),
        (&["--ttl", "0s"][..], 64, "is zero"),
        (
            &["--set", "values.host.name=x"][..],
            1,
            "`values.host` of `staging` is not an object",
        ),
        (
            &["--set", "values.password=x"][..],
            64,
            "from the sensitive Terraform output `password`",
        ),
    ] {
        let mut all = vec!["env", "new", "pr-2", "--from", "staging", "--ephemeral"];
        all.extend_from_slice(args);
        let run = repo.gitship(&all);
        assert_eq!(run.code, code, "{args:?}: {}", run.all());
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.all());
        assert!(!run.all().contains("hunter2"), "{args:?}: {}", run.all());
    }
    let long = "p".repeat(63 - ns.len());
    let too_long = repo.gitship(&["env", "new", &long, "--from", "staging", "--ephemeral"]);
    assert_eq!(too_long.code, 1, "{}", too_long.all());
    assert!(
        too_long.stderr.contains("is not a DNS label")
            && too_long.stderr.contains("choose a shorter preview name"),
        "{}",
        too_long.all()
    );
    // None of them recorded anything.
    assert!(previews(&repo).is_empty());

    // A base whose cluster comes from Terraform: the preview's own workspace would make another.
    repo.write(
        "config/made.yaml",
        &format!("cluster:\n  namespace: {ns}-made\n  kubeconfig: ${{terraform.kubeconfig}}\n"),
    );
    let made = repo.gitship(&["env", "new", "pr-3", "--from", "made", "--ephemeral"]);
    assert_eq!(made.code, 64, "{}", made.all());
    assert!(
        made.stderr
            .contains("`made` takes its cluster from Terraform outputs")
            && made
                .stderr
                .contains("derive previews from an environment that names its cluster"),
        "{}",
        made.all()
    );
    assert!(previews(&repo).is_empty());
}

/// Set the expiry of preview namespace `namespace` to the past, as time passing would.
fn expire(cluster: &TestCluster, namespace: &str) {
    kubectl_ok(
        cluster,
        &[
            "annotate",
            "namespace",
            namespace,
            "--overwrite",
            "gitship.dev/expires-at=2020-01-01T00:00:00Z",
        ],
    );
}

fn gc_json(repo: &Repo, args: &[&str]) -> GcReport {
    let mut all = vec!["-o", "json", "gc"];
    all.extend_from_slice(args);
    let run = repo.ok(&all);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("not a gc report ({error}):\n{}", run.all()))
}

#[test]
fn gc_lists_the_expired_previews_and_asks_before_destroying() {
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("site");
    let repo = preview_repo(&cluster, &ns, false);
    for name in ["pr-3", "pr-4"] {
        cluster.track(&format!("{ns}-{name}"));
        create_preview(&repo, name, &["--ttl", "1h"]);
    }
    expire(&cluster, &format!("{ns}-pr-3"));
    let listed = previews(&repo);
    let expired: Vec<(&str, bool)> = listed
        .iter()
        .map(|p| (p.name.as_str(), p.expired))
        .collect();
    assert_eq!(expired, [("pr-3", true), ("pr-4", false)]);

    let dry = gc_json(&repo, &["--dry-run"]);
    assert!(dry.dry_run);
    let names = |list: &[PreviewSummary]| list.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&dry.destroyed), ["pr-3"]);
    assert_eq!(names(&dry.kept), ["pr-4"]);
    let human = repo.ok(&["gc", "--dry-run"]);
    assert!(
        human.stdout.contains("would destroy preview `pr-3`"),
        "{}",
        human.all()
    );
    // Off a terminal, without `--yes`: refused, nothing destroyed.
    let refused = repo.gitship(&["gc"]);
    assert_eq!(refused.code, 64, "{}", refused.all());
    assert!(refused.stderr.contains("pass `--yes`"), "{}", refused.all());
    assert_eq!(previews(&repo).len(), 2);

    // An expired preview still resolves (so it can be destroyed); a deploy says it expired.
    let late = repo.ok(&["deploy", "pr-3"]);
    assert!(
        late.stderr
            .contains("preview `pr-3` expired at 2020-01-01T00:00:00Z"),
        "{}",
        late.all()
    );
    let gc = gc_json(&repo, &["--yes"]);
    assert!(!gc.dry_run && gc.failed.is_empty(), "{gc:#?}");
    assert_eq!(names(&gc.destroyed), ["pr-3"]);
    assert_eq!(names(&gc.kept), ["pr-4"]);
    assert!(
        !kubectl(&cluster, &["get", "namespace", &format!("{ns}-pr-3")])
            .status
            .success()
    );
    let left: Vec<String> = previews(&repo).into_iter().map(|p| p.name).collect();
    assert_eq!(left, ["pr-4"]);
    let none = gc_json(&repo, &["--yes"]);
    assert!(none.destroyed.is_empty(), "{none:#?}");
}

/// The Terraform state of workspace `workspace` of the root module in `repo`, if any.
fn workspace_state(repo: &Repo, workspace: &str) -> Option<serde_json::Value> {
    let path = repo
        .path()
        .join("infrastructure/terraform/terraform.tfstate.d")
        .join(workspace)
        .join("terraform.tfstate");
    let text = std::fs::read_to_string(Path::new(&path)).ok()?;
    serde_json::from_str(&text).ok()
}

fn resources(state: &serde_json::Value) -> usize {
    state["resources"].as_array().map_or(0, Vec::len)
}

/// Every object of `kind` in every namespace whose name (or namespace) names `needle`.
fn objects_naming(cluster: &TestCluster, kind: &str, needle: &str) -> Vec<String> {
    kubectl_ok(
        cluster,
        &[
            "get",
            kind,
            "--all-namespaces",
            "-o",
            "custom-columns=NS:.metadata.namespace,NAME:.metadata.name",
            "--no-headers",
        ],
    )
    .lines()
    .filter(|line| line.contains(needle))
    .map(str::to_string)
    .collect()
}

/// The done-when of previews: a preview of an environment with a Terraform root (local state)
/// deploys in its own namespace and workspace, then its destroy leaves no object, Lease,
/// ConfigMap or Terraform resource of it, and nothing of the base's changes.
#[test]
fn a_preview_deploys_in_its_own_workspace_and_its_destroy_leaves_nothing() {
    if !crate::support::require_tool("terraform", "version") {
        return;
    }
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("site");
    let preview_ns = format!("{ns}-pr-5");
    cluster.track(&preview_ns);
    let repo = preview_repo(&cluster, &ns, true);
    repo.ok(&["deploy", "staging"]);
    let base_state = workspace_state(&repo, "staging").expect("staging's state");
    assert_eq!(resources(&base_state), 1);

    create_preview(&repo, "pr-5", &["--set", "values.host=pr-5.example"]);
    repo.ok(&["deploy", "pr-5"]);
    let state = workspace_state(&repo, "pr-5").expect("the preview's state");
    assert_eq!(resources(&state), 1);
    assert_eq!(configmap(&cluster, &preview_ns)["data"]["site"], "pr-5");
    assert_eq!(configmap(&cluster, &ns)["data"]["site"], "staging");
    assert_eq!(workspace_state(&repo, "staging"), Some(base_state.clone()));
    let base_objects = kubectl_ok(
        &cluster,
        &["get", "configmap,lease", "-n", &ns, "-o", "name"],
    );

    let destroyed = repo.gitship(&["destroy", "pr-5", "--yes"]);
    assert_eq!(destroyed.code, 0, "{}", destroyed.all());
    assert!(
        !kubectl(&cluster, &["get", "namespace", &preview_ns])
            .status
            .success()
    );
    for kind in ["configmaps", "leases", "secrets"] {
        assert_eq!(
            objects_naming(&cluster, kind, "pr-5"),
            Vec::<String>::new(),
            "{kind}"
        );
    }
    // No state at all: the preview's workspace is deleted, not only emptied.
    let state = workspace_state(&repo, "pr-5");
    assert_eq!(state, None, "{state:#?}");
    assert!(
        !repo
            .path()
            .join("infrastructure/terraform/terraform.tfstate.d/pr-5")
            .exists()
    );
    assert!(
        destroyed.stderr.contains("workspace `pr-5` deleted"),
        "{}",
        destroyed.all()
    );
    assert!(previews(&repo).is_empty());
    // The base: its state, objects and records as they were.
    assert_eq!(workspace_state(&repo, "staging"), Some(base_state));
    assert_eq!(configmap(&cluster, &ns)["data"]["site"], "staging");
    assert_eq!(
        kubectl_ok(
            &cluster,
            &["get", "configmap,lease", "-n", &ns, "-o", "name"]
        ),
        base_objects
    );
    let gone = repo.gitship(&["deploy", "pr-5"]);
    assert_eq!(gone.code, 1, "{}", gone.all());
    assert!(
        gone.stderr.contains("unknown environment `pr-5`"),
        "{}",
        gone.all()
    );
}

/// The live previews' names and the unreadable records' `(name, why)` of `envs -o json`.
fn unreadable(repo: &Repo) -> Vec<(String, String)> {
    let run = repo.ok(&["-o", "json", "envs"]);
    let listing: serde_json::Value = serde_json::from_str(&run.stdout).expect("envs JSON");
    listing["unreadable"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap_or_default().to_string(),
                        r["why"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_committed_environment_that_took_over_a_preview_namespace_is_never_gc_ed() {
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("site");
    let repo = preview_repo(&cluster, &ns, false);
    let namespace = format!("{ns}-demo");
    cluster.track(&namespace);
    create_preview(&repo, "demo", &["--ttl", "1h"]);
    expire(&cluster, &namespace);
    // `env new demo --from staging` would take the preview's namespace (its default,
    // `<staging's>-demo`): refused, nothing written.
    let refused = repo.gitship(&["env", "new", "demo", "--from", "staging"]);
    assert_eq!(refused.code, 64, "{}", refused.all());
    assert!(
        refused.stderr.contains(&format!(
            "namespace `{namespace}` of the new environment `demo` holds the record of preview `demo`"
        )) && refused.stderr.contains("gitship destroy demo"),
        "{}",
        refused.all()
    );
    assert!(!repo.path().join("config/demo.yaml").exists());
    // Written by hand, the committed `demo` still carries the preview's labels and expiry once
    // deployed: it is no preview, and `gc` never destroys it.
    let staging = std::fs::read_to_string(repo.path().join("config/staging.yaml")).expect("read");
    repo.write(
        "config/demo.yaml",
        &staging.replace(
            &format!("namespace: {ns}\n"),
            &format!("namespace: {namespace}\n"),
        ),
    );
    repo.commit("demo");
    repo.ok(&["deploy", "demo"]);
    assert!(previews(&repo).is_empty(), "{:?}", previews(&repo));
    let gc = gc_json(&repo, &["--yes"]);
    assert!(gc.destroyed.is_empty() && gc.failed.is_empty(), "{gc:#?}");
    assert_eq!(configmap(&cluster, &namespace)["data"]["env"], "demo");
}

#[test]
fn a_preview_never_takes_another_environment_s_terraform_workspace() {
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("site");
    let repo = preview_repo(&cluster, &ns, true);
    repo.write(
        "config/production.yaml",
        &format!(
            "cluster:\n  context: kubesim\n  namespace: {ns}-prod\nterraform:\n  workspace: live\nvalues:\n  host: prod.example\n  web:\n    replicas: 2\n  site: ${{terraform.site}}\n  password: ${{terraform.password}}\n"
        ),
    );
    repo.commit("production");
    for (name, owner) in [
        ("default", "the default workspace"),
        ("live", "`production`"),
    ] {
        let refused = repo.gitship(&["env", "new", name, "--from", "staging", "--ephemeral"]);
        assert_eq!(refused.code, 64, "{}", refused.all());
        assert!(
            refused
                .stderr
                .contains(&format!("its Terraform workspace `{name}` is"))
                && refused.stderr.contains(owner)
                && refused.stderr.contains("choose another name"),
            "{}",
            refused.all()
        );
        assert!(
            !kubectl(&cluster, &["get", "namespace", &format!("{ns}-{name}")])
                .status
                .success()
        );
    }
    assert!(previews(&repo).is_empty());
}

#[test]
fn an_unreadable_preview_record_is_listed_and_never_destroyed_nor_deployed() {
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("site");
    let repo = preview_repo(&cluster, &ns, false);
    // A namespace labelled by hand, no annotation at all.
    let bare = format!("{ns}-pr-7");
    cluster.track(&bare);
    kubectl_ok(&cluster, &["create", "namespace", &bare]);
    kubectl_ok(
        &cluster,
        &[
            "label",
            "namespace",
            &bare,
            "gitship.dev/preview=pr-7",
            "gitship.dev/preview-of=staging",
        ],
    );
    // A real preview whose values no longer parse.
    let broken = format!("{ns}-pr-8");
    cluster.track(&broken);
    create_preview(&repo, "pr-8", &["--set", "values.host=pr-8.example"]);
    expire(&cluster, &broken);
    kubectl_ok(
        &cluster,
        &[
            "annotate",
            "namespace",
            &broken,
            "--overwrite",
            "gitship.dev/preview-values=[1",
        ],
    );
    let listed = unreadable(&repo);
    let names: Vec<&str> = listed.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["pr-7", "pr-8"], "{listed:?}");
    assert!(listed[0].1.contains("is missing"), "{listed:?}");
    assert!(
        listed[1].1.contains("gitship.dev/preview-values"),
        "{listed:?}"
    );
    let human = repo.ok(&["envs"]);
    assert!(
        human.stdout.contains("unreadable preview record `pr-7`"),
        "{}",
        human.all()
    );

    let gc = gc_json(&repo, &["--yes"]);
    assert!(gc.destroyed.is_empty() && gc.failed.is_empty(), "{gc:#?}");
    for namespace in [&bare, &broken] {
        assert!(
            kubectl(&cluster, &["get", "namespace", namespace])
                .status
                .success()
        );
    }
    for args in [["deploy", "pr-8", ""], ["destroy", "pr-8", "--yes"]] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let refused = repo.gitship(&args);
        assert_ne!(refused.code, 0, "{}", refused.all());
        assert!(
            refused.stderr.contains("unreadable record")
                && refused.stderr.contains(&format!("namespace `{broken}`"))
                && refused.stderr.contains("gitship.dev/preview-values"),
            "{}",
            refused.all()
        );
    }
    assert!(
        kubectl(&cluster, &["get", "configmap", "site", "-n", &broken])
            .stdout
            .is_empty()
    );
    // Recording it again repairs it: a preview like any other.
    create_preview(&repo, "pr-8", &["--set", "values.host=pr-8.example"]);
    let names: Vec<String> = previews(&repo).into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["pr-8"]);
    repo.ok(&["deploy", "pr-8"]);
    assert_eq!(configmap(&cluster, &broken)["data"]["host"], "pr-8.example");
}

#[test]
fn gc_keeps_a_preview_extended_after_it_was_listed() {
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("site");
    let repo = preview_repo(&cluster, &ns, false);
    let namespace = format!("{ns}-pr-9");
    cluster.track(&namespace);
    create_preview(&repo, "pr-9", &["--ttl", "1h"]);
    expire(&cluster, &namespace);
    let workspace = gitship::facade::ops::gc::Workspace {
        repo: Some(repo.path().to_path_buf()),
        kubeconfig: repo.kubeconfig.clone(),
    };
    let printer = gitship_foundation::output::Printer::new(
        gitship_foundation::output::OutputFormat::Json,
        gitship_foundation::output::ColorMode::Never,
        true,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime
        .block_on(gitship::facade::ops::gc::gc(
            &workspace,
            &printer,
            false,
            |expired| {
                assert_eq!(expired.len(), 1);
                // A CI push extends the preview while `gc` waits for its confirmation.
                create_preview(&repo, "pr-9", &["--ttl", "2h"]);
                Ok(())
            },
        ))
        .expect("gc");
    assert!(
        report.destroyed.is_empty() && report.failed.is_empty(),
        "{report:#?}"
    );
    let kept: Vec<(&str, bool)> = report
        .kept
        .iter()
        .map(|p| (p.name.as_str(), p.expired))
        .collect();
    assert_eq!(kept, [("pr-9", false)]);
    assert!(
        kubectl(&cluster, &["get", "namespace", &namespace])
            .status
            .success()
    );
}
