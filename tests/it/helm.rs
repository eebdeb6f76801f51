//! Helm charts (issue 31): a chart of the repository named by `kubernetes.helm` is rendered
//! with the real `helm template`, its values files templated first, and deployed like any
//! manifest. The adopted fixture `tests/fixtures/adopt/helm` goes from a clone through `init`,
//! `validate`, `deploy` and `drift`, on kubesim and on the real server; the error paths (helm
//! missing, a dependency not vendored, a values file outside the repository, a bad template, a
//! chart in the manifests tree that no environment renders) fail with what and where.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::kustomize::{find, objects, repo};
use crate::support::cluster::TestCluster;
use crate::support::repo::{Repo, Run};
use crate::support::require_tool;

/// The fixture copied into a fresh committed repository (as a `git clone` of it would be).
fn clone_fixture() -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adopt/helm");
    let status = Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", source.display()))
        .arg(repo.path())
        .status()
        .expect("cp");
    assert!(status.success());
    repo.write(".gitignore", ".gitship/\n");
    repo.git(&["init", "-q"]);
    repo.commit("clone");
    repo
}

/// Point `config/dev.yaml` (as `init` wrote it) at the test cluster, in namespace `ns`.
fn on_cluster(repo: &mut Repo, cluster: &TestCluster, ns: &str) {
    let config = repo.path().join("config/dev.yaml");
    let text = std::fs::read_to_string(&config).expect("config/dev.yaml");
    let text: String = text
        .lines()
        .map(|line| match line.strip_prefix("  namespace: ") {
            Some(_) => format!("  context: kubesim\n  namespace: {ns}\n"),
            None => format!("{line}\n"),
        })
        .collect();
    repo.write("config/dev.yaml", &text);
    repo.commit("dev on the test cluster");
    repo.kubeconfig = Some(cluster.kubeconfig_path().to_path_buf());
}

#[test]
fn an_adopted_helm_chart_deploys_with_terraform_values_and_shows_drift() {
    if !require_tool("helm", "version") || !require_tool("terraform", "version") {
        return;
    }
    let Some(registry) = crate::support::registry::TestRegistry::start() else {
        return;
    };
    if crate::plan::working_builder().is_none() {
        return;
    }
    let mut repo = clone_fixture();
    let prefix = format!("{}/helm", registry.address);
    let init = repo.ok(&["init", "--env", "dev", "--registry", &prefix]);
    assert!(
        init.stdout.contains(
            "will deploy: the Helm chart `charts/web/` as release `web` (`helm template` with `charts/web/values-dev.yaml`)"
        ),
        "{}",
        init.all()
    );
    let config = std::fs::read_to_string(repo.path().join("config/dev.yaml")).expect("config");
    assert!(
        config.contains(
            "kubernetes:\n  helm:\n    - chart: charts/web\n      release: web\n      values: [charts/web/values-dev.yaml]\n"
        ),
        "{config}"
    );
    repo.commit("init");
    let cluster = TestCluster::start_blocking();
    let ns = cluster.ns("helm-dev");
    on_cluster(&mut repo, &cluster, &ns);

    let validate = repo.ok(&["validate", "dev"]);
    assert!(validate.stdout.starts_with("ok "), "{}", validate.all());
    let deploy = repo.ok(&["deploy", "dev"]);
    assert!(deploy.all().contains("deployed"), "{}", deploy.all());

    let live = kubectl_json(
        &cluster,
        &ns,
        &["get", "deployment,configmap,service", "-o", "json"],
    );
    let items = live["items"].as_array().expect("items").clone();
    let deployment = find(&items, "Deployment", "web");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let image = container["image"].as_str().expect("image");
    assert!(
        image.starts_with(&format!("{prefix}/web:")),
        "the app's built image from `${{images.web}}`: {image}"
    );
    assert_eq!(
        container["env"][0]["value"], "https://web-dev.example.test",
        "the Terraform output from `${{terraform.app_url}}`"
    );
    assert_eq!(
        deployment["metadata"]["labels"]["gitship.dev/environment"],
        "dev"
    );
    let common = find(&items, "ConfigMap", "web-common");
    assert_eq!(
        common["data"]["greeting"], "hello from dev",
        "the vendored subchart"
    );
    find(&items, "Service", "web");

    let clean = repo.gitship(&["drift", "dev"]);
    assert_eq!(clean.code, 0, "no drift after the deploy:\n{}", clean.all());
    assert!(
        !clean.all().contains("inventory"),
        "drift reads the inventory of an environment of charts only: {}",
        clean.all()
    );
    let render = repo.ok(&["render", "dev"]);
    assert!(
        render
            .stdout
            .contains("# Source: charts/web/charts/common/templates/configmap.yaml:1:1\n"),
        "each object's source is its template: {}",
        render.stdout
    );
    let (code, plan) = repo.plan_json(&["dev"]);
    assert_eq!(code, 0, "nothing to change after the deploy: {plan:#?}");

    kubectl(
        &cluster,
        &ns,
        &[
            "patch",
            "configmap",
            "web-common",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"greeting":"changed by hand"}}"#,
        ],
    );
    let drift = repo.gitship(&["drift", "dev"]);
    assert_eq!(
        drift.code,
        2,
        "the changed field is drift:\n{}",
        drift.all()
    );
    assert!(
        drift.stdout.contains("web-common") && drift.stdout.contains("greeting"),
        "{}",
        drift.all()
    );
}

/// `kubectl ARGS -n NS` against `cluster`, which must succeed; its stdout.
fn kubectl(cluster: &TestCluster, ns: &str, args: &[&str]) -> String {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["--context", "kubesim", "-n", ns])
        .args(args)
        .output()
        .expect("kubectl");
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn kubectl_json(cluster: &TestCluster, ns: &str, args: &[&str]) -> Value {
    serde_json::from_str(&kubectl(cluster, ns, args)).expect("kubectl JSON")
}

const CHART: &str = "apiVersion: v2\nname: web\nversion: 0.1.0\n";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: {{ .Values.image | quote }}
";

/// A repository holding only a chart and environment `dev` rendering it with `values`.
fn chart_repo(extra: &[(&str, &str)]) -> Repo {
    let mut files = vec![
        (
            "config/dev.yaml",
            "cluster:\n  namespace: shop\nvalues:\n  replicas: 2\nkubernetes:\n  helm:\n    - chart: charts/web\n      release: web\n      values: [charts/web/values-dev.yaml]\n",
        ),
        ("charts/web/Chart.yaml", CHART),
        ("charts/web/values.yaml", "replicas: 1\nimage: nginx\n"),
        (
            "charts/web/values-dev.yaml",
            "replicas: ${values.replicas}\nimage: nginx:${env.name}\n",
        ),
        ("charts/web/templates/deployment.yaml", DEPLOYMENT),
    ];
    files.extend_from_slice(extra);
    repo(&files)
}

/// `gitship ARGS` in `repo` with `PATH` holding no `helm` (kubectl and git stay reachable).
fn without_helm(repo: &Repo, args: &[&str]) -> Run {
    let links = tempfile::tempdir().expect("temp");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = vec![links.path().to_path_buf()];
    for dir in std::env::split_paths(&path) {
        if dir.join("helm").exists() {
            for tool in ["kubectl", "git", "kustomize"] {
                let program = dir.join(tool);
                if program.exists() && !links.path().join(tool).exists() {
                    std::os::unix::fs::symlink(&program, links.path().join(tool)).expect("link");
                }
            }
        } else {
            dirs.push(dir);
        }
    }
    let output = crate::support::gitship()
        .env("PATH", std::env::join_paths(dirs).expect("PATH"))
        .arg("-C")
        .arg(repo.path())
        .args(args)
        .output()
        .expect("gitship");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn a_chart_renders_with_the_environments_values() {
    if !require_tool("helm", "version") {
        return;
    }
    let repo = chart_repo(&[]);
    let render = repo.ok(&["render", "dev"]);
    let rendered = objects(&render.stdout);
    assert_eq!(rendered.len(), 1, "{rendered:#?}");
    let deployment = find(&rendered, "Deployment", "web");
    assert_eq!(deployment["spec"]["replicas"], 2, "`${{values.replicas}}`");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:dev"
    );
    assert_eq!(
        deployment["metadata"]["namespace"], "shop",
        "the environment's namespace"
    );
    assert_eq!(
        deployment["metadata"]["labels"]["gitship.dev/environment"],
        "dev"
    );
}

#[test]
fn helm_missing_is_named_for_a_chart_and_for_kustomize_helm_charts() {
    let charted = chart_repo(&[]);
    let run = without_helm(&charted, &["validate", "dev"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("the chart `charts/web` needs helm, but `helm` was not found on `PATH`"),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("hint: install helm"), "{}", run.all());

    if !require_tool("kubectl", "help") {
        return;
    }
    let kustomized = repo(&[
        ("config/dev.yaml", "cluster:\n  namespace: shop\n"),
        (
            "infrastructure/kubernetes/kustomization.yaml",
            "helmCharts:\n  - name: web\n    releaseName: web\n    valuesInline: {replicas: 3, image: nginx}\n",
        ),
        ("infrastructure/kubernetes/charts/web/Chart.yaml", CHART),
        (
            "infrastructure/kubernetes/charts/web/templates/deployment.yaml",
            DEPLOYMENT,
        ),
    ]);
    let run = without_helm(&kustomized, &["validate", "dev"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "the `helmCharts` of the kustomization in `infrastructure/kubernetes` needs helm, but `helm` was not found on `PATH`"
        ),
        "{}",
        run.all()
    );
}

/// The `PATH` for a `kubectl kustomize` that runs helm v4 (kustomize 5.8 or later): `PATH`'s
/// own `kubectl`, else the real control plane's (`tests/real-cluster/real-cluster bin`) first.
fn path_for_kustomize_helm() -> Option<std::ffi::OsString> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let recent = |kubectl: &Path| {
        Command::new(kubectl)
            .args(["version", "--client"])
            .output()
            .ok()
            .and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let version = text.split("Kustomize Version: v").nth(1)?.to_string();
                let mut parts = version.trim().split('.');
                let major: u32 = parts.next()?.parse().ok()?;
                let minor: u32 = parts.next()?.parse().ok()?;
                Some((major, minor) >= (5, 8))
            })
            .unwrap_or(false)
    };
    if recent(Path::new("kubectl")) {
        return Some(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real-cluster/real-cluster");
    let bin = Command::new(script).arg("bin").output().ok()?;
    let bin = PathBuf::from(String::from_utf8_lossy(&bin.stdout).trim());
    if !recent(&bin.join("kubectl")) {
        return None;
    }
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(&path));
    std::env::join_paths(dirs).ok()
}

#[test]
fn kustomize_helm_charts_are_inflated_with_helm() {
    if !require_tool("helm", "version") || !require_tool("kubectl", "help") {
        return;
    }
    let Some(path) = path_for_kustomize_helm() else {
        assert!(
            !crate::support::tools_required(),
            "no kubectl bundling kustomize 5.8 or later (which runs helm v4)"
        );
        eprintln!("\n*** SKIPPED: no kubectl bundling kustomize 5.8 or later ***\n");
        return;
    };
    let repo = repo(&[
        ("config/dev.yaml", "cluster:\n  namespace: shop\n"),
        (
            "infrastructure/kubernetes/kustomization.yaml",
            "helmCharts:\n  - name: web\n    releaseName: web\n    valuesInline: {replicas: 3, image: nginx}\n",
        ),
        ("infrastructure/kubernetes/charts/web/Chart.yaml", CHART),
        (
            "infrastructure/kubernetes/charts/web/values.yaml",
            "replicas: 1\nimage: nginx\n",
        ),
        (
            "infrastructure/kubernetes/charts/web/templates/deployment.yaml",
            DEPLOYMENT,
        ),
    ]);
    let output = crate::support::gitship()
        .env("PATH", path)
        .arg("-C")
        .arg(repo.path())
        .args(["render", "dev"])
        .output()
        .expect("gitship");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = objects(&stdout);
    let deployment = find(&rendered, "Deployment", "web");
    assert_eq!(deployment["spec"]["replicas"], 3, "{deployment}");
    assert_eq!(deployment["metadata"]["namespace"], "shop");
}

#[test]
fn a_dependency_that_is_not_vendored_fails_before_helm_runs() {
    let repo = chart_repo(&[(
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n  - name: redis\n    version: 19.0.0\n    repository: https://charts.bitnami.com/bitnami\n",
    )]);
    // No helm at all: the check comes first.
    let run = without_helm(&repo, &["validate", "dev"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "`redis` 19.0.0 from `https://charts.bitnami.com/bitnami` (declared in `charts/web/Chart.yaml`)"
        ),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("helm dependency build charts/web"),
        "{}",
        run.all()
    );
}

#[test]
fn a_values_file_outside_the_repository_is_refused_at_its_line() {
    let repo = chart_repo(&[(
        "config/dev.yaml",
        "cluster:\n  namespace: shop\nkubernetes:\n  helm:\n    - chart: charts/web\n      release: web\n      values: [../../etc/passwd]\n",
    )]);
    let run = repo.gitship(&["validate", "dev"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("config/dev.yaml:7:16"), "{}", run.all());
    assert!(run.stderr.contains("../../etc/passwd"), "{}", run.all());
    assert!(!run.all().contains("root:"), "{}", run.all());
}

#[test]
fn a_bad_template_fails_with_helms_error_at_the_template() {
    if !require_tool("helm", "version") {
        return;
    }
    let repo = chart_repo(&[(
        "charts/web/templates/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  x: {{ .Values.nope.deeper }}\n",
    )]);
    let run = repo.gitship(&["validate", "dev"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "charts/web/templates/broken.yaml:6:15: helm could not render the chart `charts/web`"
        ),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("nil pointer"), "{}", run.all());
    assert!(
        !run.all().contains("gitship-helm-"),
        "no private path: {}",
        run.all()
    );
}

#[test]
fn a_chart_in_the_manifests_tree_is_not_read_as_manifests() {
    let repo = repo(&[
        ("config/dev.yaml", "cluster:\n  namespace: shop\n"),
        (
            "infrastructure/kubernetes/settings.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n",
        ),
        ("infrastructure/kubernetes/web/Chart.yaml", CHART),
        ("infrastructure/kubernetes/web/values.yaml", "replicas: 1\n"),
        (
            "infrastructure/kubernetes/web/templates/deployment.yaml",
            DEPLOYMENT,
        ),
    ]);
    let run = repo.gitship(&["validate", "dev"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "infrastructure/kubernetes/web/Chart.yaml:1:1: `infrastructure/kubernetes/web` is a Helm chart"
        ),
        "{}",
        run.all()
    );
    assert!(
        run.stderr
            .contains("kubernetes: {helm: [{chart: infrastructure/kubernetes/web, release: web}]}"),
        "{}",
        run.all()
    );
    assert!(!run.stderr.contains("invalid YAML"), "{}", run.all());

    // Rendered through `kubernetes.helm`, it joins the plain manifests.
    if !require_tool("helm", "version") {
        return;
    }
    repo.write(
        "config/dev.yaml",
        "cluster:\n  namespace: shop\nkubernetes:\n  helm:\n    - {chart: infrastructure/kubernetes/web, release: web}\n",
    );
    let render = repo.ok(&["render", "dev"]);
    let rendered = objects(&render.stdout);
    assert_eq!(rendered.len(), 2, "{rendered:#?}");
    find(&rendered, "ConfigMap", "settings");
    find(&rendered, "Deployment", "web");
}

#[test]
fn a_change_to_a_chart_or_its_values_affects_the_environments_that_render_it() {
    let repo = chart_repo(&[
        (
            "config/prod.yaml",
            "cluster:\n  namespace: shop\nkubernetes:\n  helm:\n    - {chart: charts/api, release: api}\n",
        ),
        (
            "charts/api/Chart.yaml",
            "apiVersion: v2\nname: api\nversion: 0.1.0\n",
        ),
    ]);
    repo.git(&["tag", "base"]);
    let environments = |repo: &Repo| {
        let run = repo.ok(&["-o", "json", "affected", "--since", "base"]);
        let report: Value = serde_json::from_str(&run.stdout).expect("affected JSON");
        report["environments"].clone()
    };
    repo.write(
        "charts/web/templates/deployment.yaml",
        &format!("{DEPLOYMENT}# edited\n"),
    );
    repo.commit("a template");
    assert_eq!(environments(&repo), serde_json::json!(["dev"]));
    repo.git(&["tag", "-f", "base"]);
    repo.write("charts/web/values-dev.yaml", "replicas: 3\nimage: nginx\n");
    repo.write("charts/api/values.yaml", "a: 1\n");
    repo.commit("values");
    assert_eq!(environments(&repo), serde_json::json!(["dev", "prod"]));
}

#[test]
fn env_new_maps_a_charts_values_file_by_name_or_refuses() {
    let repo = chart_repo(&[]);
    let refused = repo.gitship(&["env", "new", "prod", "--from", "dev"]);
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(
        refused.stderr.contains(
            "config/dev.yaml:9:16: `dev` renders its chart with its own values `charts/web/values-dev.yaml`, and `charts/web/values-prod.yaml` does not exist"
        ),
        "{}",
        refused.all()
    );
    assert!(!repo.path().join("config/prod.yaml").exists());

    repo.write(
        "charts/web/values-prod.yaml",
        "replicas: 5\nimage: nginx:prod\n",
    );
    repo.commit("prod values");
    repo.ok(&["env", "new", "prod", "--from", "dev"]);
    let config = std::fs::read_to_string(repo.path().join("config/prod.yaml")).expect("config");
    assert!(
        config.contains("values: [charts/web/values-prod.yaml]"),
        "{config}"
    );
}

#[test]
fn a_kustomize_helm_chart_from_a_repository_must_be_vendored() {
    let repo = repo(&[
        ("config/dev.yaml", "cluster:\n  namespace: shop\n"),
        (
            "infrastructure/kubernetes/kustomization.yaml",
            "helmCharts:\n  - name: redis\n    version: 19.0.0\n    repo: https://charts.bitnami.com/bitnami\n    releaseName: cache\n",
        ),
    ]);
    let run = repo.gitship(&["validate", "dev"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "infrastructure/kubernetes/kustomization.yaml:1:1: the `helmCharts` entry `redis` from `https://charts.bitnami.com/bitnami` is not vendored in `infrastructure/kubernetes/charts/redis-19.0.0/redis`"
        ),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("helm pull --untar --untardir infrastructure/kubernetes/charts/redis-19.0.0 --repo https://charts.bitnami.com/bitnami redis --version 19.0.0"),
        "{}",
        run.all()
    );
}
