//! Repositories built with kustomize (a kustomization in the manifests directory, overlays per
//! environment through `kubernetes.path`), templates inside kustomize's sources, kustomize's own
//! errors, and `paths.exclude`. Fixture repositories are written by each test.

use std::process::Command;

use serde_json::Value;

use crate::support::cluster::TestCluster;
use crate::support::repo::Repo;
use crate::support::require_tool;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
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
          image: nginx
";

const CONFIG_MAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: plain
";

/// A committed repository with `files` and nothing else.
pub(crate) fn repo(files: &[(&str, &str)]) -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    for (path, text) in files {
        repo.write(path, text);
    }
    repo.git(&["init", "-q"]);
    repo.commit("fixture");
    repo
}

/// The objects of a YAML stream, in order.
pub(crate) fn objects(stream: &str) -> Vec<Value> {
    gitship::facade::repo::yaml::parse_documents(stream)
        .expect("valid YAML")
        .into_iter()
        .filter_map(|document| document.root)
        .filter(|root| !root.is_null())
        .map(|root| root.to_json())
        .collect()
}

pub(crate) fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {objects:#?}"))
}

/// Every field of `expected` is in `actual` with the same value (`actual` may have more).
pub(crate) fn assert_contains(expected: &Value, actual: &Value, at: &str) {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            for (key, value) in expected {
                let field = format!("{at}.{key}");
                let other = actual
                    .get(key)
                    .unwrap_or_else(|| panic!("`{field}` is missing"));
                assert_contains(value, other, &field);
            }
        }
        (Value::Array(expected), Value::Array(actual)) => {
            assert_eq!(expected.len(), actual.len(), "`{at}` has another length");
            for (index, (value, other)) in expected.iter().zip(actual).enumerate() {
                assert_contains(value, other, &format!("{at}[{index}]"));
            }
        }
        _ => assert_eq!(expected, actual, "`{at}` differs"),
    }
}

pub(crate) fn kubectl_kustomize(repo: &Repo, dir: &str) -> Vec<Value> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo.path().join(dir))
        .output()
        .expect("kubectl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    objects(&String::from_utf8_lossy(&output.stdout))
}

pub(crate) fn has_gitship_labels(object: &Value, environment: &str) {
    let labels = &object["metadata"]["labels"];
    assert_eq!(
        labels["app.kubernetes.io/managed-by"], "gitship",
        "{object}"
    );
    assert_eq!(labels["gitship.dev/environment"], environment, "{object}");
}

#[test]
fn a_kustomization_is_built_by_kustomize_and_deployed_like_plain_manifests() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let mut repo = repo(&[
        (
            "config/staging.yaml",
            "cluster:\n  namespace: shop\nregistry: registry.example.com/shop\n",
        ),
        (
            "infrastructure/kubernetes/kustomization.yaml",
            "resources:\n  - web.yaml\n  - settings.yaml\nlabels:\n  - pairs:\n      team: shop\n    includeSelectors: false\nimages:\n  - name: nginx\n    newName: registry.example.com/mirror/nginx\n    newTag: \"1.27\"\n",
        ),
        ("infrastructure/kubernetes/web.yaml", DEPLOYMENT),
        ("infrastructure/kubernetes/settings.yaml", CONFIG_MAP),
        // Not listed in `resources`: kustomize decides, so it is not deployed.
        (
            "infrastructure/kubernetes/unused.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unused\n",
        ),
    ]);

    let run = repo.ok(&["render", "staging"]);
    let rendered = objects(&run.stdout);
    let built = kubectl_kustomize(&repo, "infrastructure/kubernetes");
    assert_eq!(rendered.len(), built.len(), "{}", run.stdout);
    assert_eq!(built.len(), 2);
    for object in &built {
        let kind = object["kind"].as_str().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap();
        let ours = find(&rendered, kind, name);
        assert_contains(object, ours, &format!("{kind} {name}"));
        has_gitship_labels(ours, "staging");
        assert_eq!(ours["metadata"]["namespace"], "shop");
        assert_eq!(ours["metadata"]["labels"]["team"], "shop");
        assert!(
            ours["metadata"].get("annotations").is_none(),
            "gitship's origin annotations are removed: {ours}"
        );
    }
    let web = find(&rendered, "Deployment", "web");
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/mirror/nginx:1.27"
    );
    // Each object names the file it came from.
    assert!(
        run.stdout
            .contains("# Source: infrastructure/kubernetes/web.yaml"),
        "{}",
        run.stdout
    );

    let cluster = TestCluster::start_blocking();
    cluster.adopt(&mut repo, "staging", "shop");
    let deploy = repo.ok(&["deploy", "staging"]);
    assert!(deploy.all().contains("deployed"), "{}", deploy.all());
    let drift = repo.gitship(&["drift", "staging"]);
    assert_eq!(
        drift.code,
        0,
        "no drift right after a deploy:\n{}",
        drift.all()
    );
}

/// A base and one overlay per environment.
fn overlays() -> Repo {
    let overlay = |count: u32| {
        format!("resources:\n  - ../../base\nreplicas:\n  - name: web\n    count: {count}\n")
    };
    repo(&[
        (
            "config/staging.yaml",
            "cluster:\n  namespace: shop-staging\nkubernetes:\n  path: kustomize/overlays/staging\nvalues:\n  mode: calm\n",
        ),
        (
            "config/production.yaml",
            "cluster:\n  namespace: shop\nkubernetes: { path: kustomize/overlays/production }\ndeploy:\n  require_clean_tree: false\nvalues:\n  mode: busy\n",
        ),
        (
            "kustomize/base/kustomization.yaml",
            "resources:\n  - web.yaml\n  - settings.yaml\n",
        ),
        ("kustomize/base/web.yaml", DEPLOYMENT),
        (
            "kustomize/base/settings.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: ${values.mode}\n  environment: \"${env.name}\"\n",
        ),
        ("kustomize/overlays/staging/kustomization.yaml", &overlay(2)),
        (
            "kustomize/overlays/production/kustomization.yaml",
            &overlay(5),
        ),
    ])
}

#[test]
fn each_environment_builds_its_own_overlay_of_a_shared_base() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let mut repo = overlays();
    for (environment, namespace, replicas) in
        [("staging", "shop-staging", 2), ("production", "shop", 5)]
    {
        let run = repo.ok(&["render", environment]);
        let rendered = objects(&run.stdout);
        let web = find(&rendered, "Deployment", "web");
        assert_eq!(web["spec"]["replicas"], replicas, "{environment}");
        assert_eq!(web["metadata"]["namespace"], namespace);
        has_gitship_labels(web, environment);
        assert!(
            run.stdout.contains("# Source: kustomize/base/web.yaml"),
            "{}",
            run.stdout
        );
    }
    let cluster = TestCluster::start_blocking();
    cluster.adopt(&mut repo, "staging", "shop-staging");
    let deploy = repo.ok(&["deploy", "staging"]);
    assert!(deploy.all().contains("deployed"), "{}", deploy.all());
    let drift = repo.gitship(&["drift", "staging"]);
    assert_eq!(drift.code, 0, "{}", drift.all());

    // A path that does not exist is named where it was written.
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: shop-staging\nkubernetes:\n  path: kustomize/overlays/stagin\n",
    );
    let run = repo.gitship(&["render", "staging"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "config/staging.yaml:4:9: the manifests directory `kustomize/overlays/stagin` of environment `staging` does not exist"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn placeholders_in_kustomize_sources_are_substituted_and_errors_name_the_source() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let repo = overlays();
    let run = repo.ok(&["render", "production"]);
    let settings = find(&objects(&run.stdout), "ConfigMap", "settings").clone();
    assert_eq!(settings["data"]["mode"], "busy");
    assert_eq!(settings["data"]["environment"], "production");

    repo.edit(
        "kustomize/base/settings.yaml",
        "${values.mode}",
        "${values.mood}",
    );
    let run = repo.gitship(&["render", "production"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "kustomize/base/settings.yaml:6:9: `${values.mood}`: `values.mood` is not defined (did you mean `values.mode`?)"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_kustomize_error_is_kustomizes_message_with_the_directory() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let repo = repo(&[
        ("config/staging.yaml", "cluster:\n  namespace: shop\n"),
        (
            "infrastructure/kubernetes/kustomization.yaml",
            "resources:\n  - web.yaml\n  - missing.yaml\n",
        ),
        ("infrastructure/kubernetes/web.yaml", DEPLOYMENT),
    ]);
    let run = repo.gitship(&["render", "staging"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("error: kustomize could not build `infrastructure/kubernetes`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("accumulating resources")
            && run
                .stderr
                .contains("infrastructure/kubernetes/missing.yaml"),
        "kustomize's own words: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("gitship-kustomize-"),
        "the private copy is not shown: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: fix the kustomization"),
        "{}",
        run.stderr
    );

    // Neither kubectl nor kustomize: both are named.
    repo.write("gitship.yaml", "kustomize:\n  binary: no-such-kustomize\n");
    let run = repo.gitship(&["render", "staging"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("`no-such-kustomize` (`kustomize.binary` in `gitship.yaml`) was not found"),
        "{}",
        run.stderr
    );
}

#[test]
fn paths_exclude_skips_files_that_are_not_objects() {
    let repo = repo(&[
        ("config/staging.yaml", "cluster:\n  namespace: shop\n"),
        ("infrastructure/kubernetes/settings.yaml", CONFIG_MAP),
        (
            "infrastructure/kubernetes/testdata/bad.yaml",
            "input: ${not a placeholder}\nexpected: []\n",
        ),
    ]);
    let run = repo.gitship(&["render", "staging"]);
    assert_eq!(
        run.code,
        1,
        "without exclude, test data is read:\n{}",
        run.all()
    );
    assert!(run.stderr.contains("testdata/bad.yaml"), "{}", run.stderr);

    repo.write(
        "gitship.yaml",
        "paths:\n  exclude:\n    - testdata/**\n    - \"**/*.md.yaml\"\n",
    );
    let run = repo.ok(&["render", "staging"]);
    let rendered = objects(&run.stdout);
    assert_eq!(rendered.len(), 1, "{}", run.stdout);
    find(&rendered, "ConfigMap", "settings");

    repo.write("gitship.yaml", "paths:\n  exclude: [\"testdata/[x\"]\n");
    let run = repo.gitship(&["render", "staging"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("gitship.yaml:2:13: invalid `paths.exclude.0`: `testdata/[x` is not a glob"),
        "{}",
        run.stderr
    );

    repo.write("gitship.yaml", "paths:\n  exclud: [testdata/**]\n");
    let run = repo.gitship(&["render", "staging"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("gitship.yaml:2:3: unknown key `paths.exclud`")
            && run.stderr.contains("did you mean `paths.exclude`?"),
        "{}",
        run.stderr
    );
}
