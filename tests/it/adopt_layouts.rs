//! Adopting the layouts Argo CD and Flux users have (issue 31): fixture repositories under
//! `tests/fixtures/adopt/` go from a clone to `init`, `validate`, `deploy` and `drift` = 0 with no
//! hand edit, on kubesim and on the real control plane. And the silent success that deployed
//! nothing is gone: an environment that renders no object fails, unless it says
//! `kubernetes: false`.

use serde_json::Value;

use crate::support::cluster::TestCluster;
use crate::support::repo::Repo;
use crate::support::require_tool;

/// The fixture `name` copied into a fresh Git repository (one commit), as a clone would be.
fn fixture(name: &str) -> Repo {
    Repo::copy_of(&format!("tests/fixtures/adopt/{name}"), "as cloned")
}

/// `gitship init --env ENV` as JSON; its report must ask for no edit.
fn init(repo: &Repo, env: &str) -> Value {
    let run = repo.ok(&["-o", "json", "init", "--env", env]);
    let report: Value = serde_json::from_str(&run.stdout).expect("init JSON");
    assert_eq!(report["format_version"], 2);
    assert_eq!(
        report["edit"],
        serde_json::json!([]),
        "init asks for an edit:\n{}",
        run.stdout
    );
    report
}

/// The namespace `init` wrote into `config/<env>.yaml`.
fn written_namespace(repo: &Repo, env: &str) -> String {
    let text = std::fs::read_to_string(repo.path().join(format!("config/{env}.yaml"))).unwrap();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("namespace: "))
        .expect("a namespace")
        .to_string()
}

/// init -> commit -> validate -> deploy -> drift = 0 on the test cluster; the deployed objects'
/// kinds and names.
fn adopt_and_deploy(repo: &mut Repo, env: &str) -> Vec<String> {
    let report = init(repo, env);
    let namespace = written_namespace(repo, env);
    repo.commit("gitship init");
    let validate = repo.ok(&["validate", env]);
    assert!(
        !validate.stdout.contains(" 0 objects"),
        "{}",
        validate.all()
    );
    let cluster = TestCluster::start_blocking();
    cluster.adopt(repo, env, &namespace);
    let deploy = repo.ok(&["deploy", env]);
    assert!(deploy.all().contains("deployed"), "{}", deploy.all());
    let (code, drift) = repo.drift_json(&[env]);
    assert_eq!(code, 0, "no drift right after a deploy: {drift:?}");
    let render = repo.ok(&["-o", "json", "render", env]);
    let rendered: Value = serde_json::from_str(&render.stdout).expect("render JSON");
    let mut objects: Vec<String> = rendered["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["object"]["kind"].as_str().unwrap_or_default(),
                m["object"]["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    objects.sort();
    assert!(report["deploy"].as_array().is_some_and(|d| !d.is_empty()));
    objects
}

#[test]
fn plain_manifests_at_the_root_are_found_and_other_yaml_is_left_out() {
    let mut repo = fixture("root-manifests");
    let objects = adopt_and_deploy(&mut repo, "staging");
    assert_eq!(
        objects,
        [
            "ConfigMap guestbook-settings",
            "Deployment guestbook",
            "Service guestbook"
        ]
    );
    let settings = std::fs::read_to_string(repo.path().join("gitship.yaml")).unwrap();
    assert!(settings.contains("kubernetes: \".\""), "{settings}");
    assert!(settings.contains("\"docker-compose.yaml\""), "{settings}");
}

#[test]
fn a_kustomization_at_the_root_is_built_whole() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let mut repo = fixture("kustomize-root");
    let objects = adopt_and_deploy(&mut repo, "staging");
    let generated = objects
        .iter()
        .any(|o| o.starts_with("ConfigMap shop-settings-"));
    assert!(generated, "{objects:?}");
    assert!(
        objects.contains(&"Deployment shop-cart".to_string()),
        "{objects:?}"
    );
    assert!(
        objects.contains(&"Service shop-cart".to_string()),
        "{objects:?}"
    );
    let render = repo.ok(&["-o", "json", "render", "staging"]);
    assert!(
        render.stdout.contains("\"replicas\": 3"),
        "the patch applies"
    );
}

#[test]
fn a_flux_repository_deploys_its_clusters_apps_overlay() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let mut repo = fixture("flux");
    let report = init(&repo, "staging");
    let text = report.to_string();
    assert!(text.contains("Flux Kustomization `apps`"), "{text}");
    assert!(
        text.contains("infra-controllers"),
        "not used, and said so: {text}"
    );
    assert!(text.contains("flux-system"), "{text}");
    assert!(
        text.contains("gitship env new production --from staging"),
        "the other environment is named with its command: {text}"
    );
    std::fs::remove_file(repo.path().join("gitship.yaml")).unwrap();
    std::fs::remove_file(repo.path().join("config/staging.yaml")).unwrap();
    let objects = adopt_and_deploy(&mut repo, "staging");
    assert_eq!(objects, ["Deployment podinfo", "Service podinfo"]);
    let render = repo.ok(&["-o", "json", "render", "staging"]);
    assert!(render.stdout.contains("\"replicas\": 2"), "staging's patch");
    assert!(render.stdout.contains("\"staging\""), "staging's message");
    let settings = std::fs::read_to_string(repo.path().join("gitship.yaml")).unwrap();
    assert!(settings.contains("apps: false"), "{settings}");
    // Production maps to its own overlay by name.
    repo.ok(&["env", "new", "production", "--from", "staging"]);
    let production = std::fs::read_to_string(repo.path().join("config/production.yaml")).unwrap();
    assert!(production.contains("path: apps/production"), "{production}");
}

/// Before: `validate` said "ok dev 0 objects" and `deploy` exited 0 having deployed nothing.
#[test]
fn an_environment_that_renders_nothing_fails_unless_it_says_so() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write("config/dev.yaml", "cluster:\n  namespace: dev\n");
    repo.write("infrastructure/kubernetes/README.md", "manifests go here\n");
    repo.git(&["init", "-q"]);
    repo.commit("nothing to deploy");
    for args in [
        &["validate", "dev"][..],
        &["render", "dev"],
        &["deploy", "dev", "--sandbox"],
    ] {
        let run = repo.gitship(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(
            run.stderr
                .contains("environment `dev` renders no Kubernetes object"),
            "{}",
            run.all()
        );
        assert!(run.stderr.contains("kubernetes: false"), "{}", run.all());
    }
    repo.write(
        "config/dev.yaml",
        "cluster:\n  namespace: dev\nkubernetes: false\n",
    );
    repo.commit("dev deploys no Kubernetes objects");
    repo.ok(&["validate", "dev"]);
}

/// A repository written by hand, committed.
fn repo_of(files: &[(&str, &str)]) -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    for (path, text) in files {
        repo.write(path, text);
    }
    repo.git(&["init", "-q"]);
    repo.commit("initial");
    repo
}

const CONFIGMAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n";

/// In a Flux repository `apps/` holds kustomize bases: no Dockerfile there is no app, and
/// `paths.apps: false` turns discovery off; `""`, `~` and `[]` are errors that name `false`.
#[test]
fn paths_apps_false_turns_app_discovery_off_and_empty_values_say_so() {
    let repo = repo_of(&[
        ("apps/base/kustomization.yaml", "resources: []\n"),
        ("apps/web/Dockerfile", "FROM scratch\n"),
        ("infrastructure/kubernetes/settings.yaml", CONFIGMAP),
        ("config/dev.yaml", "cluster:\n  namespace: dev\n"),
        ("gitship.yaml", "paths:\n  apps: false\n"),
    ]);
    // With discovery off, `web` is no app: no registry is needed.
    repo.ok(&["validate", "dev"]);
    for (value, shown) in [("\"\"", "an empty string"), ("~", "null"), ("[]", "a list")] {
        repo.write("gitship.yaml", &format!("paths:\n  apps: {value}\n"));
        let run = repo.gitship(&["validate", "dev"]);
        assert_eq!(run.code, 1, "{value}: {}", run.all());
        assert!(
            run.stderr.contains("gitship.yaml:2:9")
                && run.stderr.contains("or `false` to turn the apps layer off")
                && run.stderr.contains(shown),
            "{value}: {}",
            run.stderr
        );
    }
}

/// `terraform: false`: the environment does not run the repository's module (no static check,
/// no plan), where another environment still does.
#[test]
fn terraform_false_leaves_the_module_to_other_environments() {
    let repo = repo_of(&[
        (
            "infrastructure/terraform/main.tf",
            "variable \"region\" {}\nresource \"terraform_data\" \"x\" {}\n",
        ),
        ("infrastructure/kubernetes/settings.yaml", CONFIGMAP),
        (
            "config/dev.yaml",
            "cluster:\n  namespace: dev\nterraform: false\n",
        ),
        ("config/prod.yaml", "cluster:\n  namespace: prod\n"),
    ]);
    repo.ok(&["validate", "dev"]);
    let prod = repo.gitship(&["validate", "prod"]);
    assert_eq!(prod.code, 1, "{}", prod.all());
    assert!(
        prod.stderr.contains("required variable `region`"),
        "{}",
        prod.stderr
    );
    repo.write(
        "config/dev.yaml",
        "cluster:\n  namespace: dev\nterraform: maybe\n",
    );
    let bad = repo.gitship(&["validate", "dev"]);
    assert!(
        bad.stderr.contains("config/dev.yaml:3:12") && bad.stderr.contains("or `false`"),
        "{}",
        bad.stderr
    );
}

/// A kustomization below a plain manifests directory is built whole (its prefix and patch
/// apply), never read file by file.
#[test]
fn a_nested_kustomization_is_built_not_read_file_by_file() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let repo = repo_of(&[
        ("infrastructure/kubernetes/settings.yaml", CONFIGMAP),
        (
            "infrastructure/kubernetes/cache/kustomization.yaml",
            "namePrefix: cache-\nresources:\n  - settings.yaml\n",
        ),
        ("infrastructure/kubernetes/cache/settings.yaml", CONFIGMAP),
        (
            "infrastructure/kubernetes/component/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n",
        ),
        (
            "infrastructure/kubernetes/component/patch.yaml",
            "kind: Nothing\n",
        ),
        ("config/dev.yaml", "cluster:\n  namespace: dev\n"),
    ]);
    let render = repo.ok(&["-o", "json", "render", "dev"]);
    let rendered: Value = serde_json::from_str(&render.stdout).expect("render JSON");
    let mut names: Vec<&str> = rendered["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["object"]["metadata"]["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["cache-settings", "settings"]);
}

/// `env new production --from staging` must not copy staging's overlay path: it maps it to
/// `apps/production` when that exists, and refuses, naming the path, when it does not.
#[test]
fn env_new_maps_an_overlay_by_name_or_refuses() {
    let overlay = "resources:\n  - ../base\n";
    let repo = repo_of(&[
        (
            "apps/base/kustomization.yaml",
            "resources:\n  - settings.yaml\n",
        ),
        ("apps/base/settings.yaml", CONFIGMAP),
        ("apps/staging/kustomization.yaml", overlay),
        (
            "config/staging.yaml",
            "cluster:\n  namespace: shop-staging\nkubernetes:\n  path: apps/staging\n",
        ),
    ]);
    let refused = repo.gitship(&["env", "new", "production", "--from", "staging"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains("config/staging.yaml:4:9")
            && refused.stderr.contains("`apps/production` does not exist")
            && refused
                .stderr
                .contains("create the overlay `apps/production`"),
        "{}",
        refused.stderr
    );
    assert!(!repo.path().join("config/production.yaml").exists());
    repo.write("apps/production/kustomization.yaml", overlay);
    let run = repo.ok(&["env", "new", "production", "--from", "staging"]);
    assert!(
        run.all()
            .contains("kubernetes.path `apps/staging` -> `apps/production`"),
        "{}",
        run.all()
    );
}

/// Before: `validate` ignored the module's own `terraform.tfvars`, so it failed right after
/// `init`, and so did the `deploy --sandbox` that `init` suggests. Now both pass, with the real
/// Terraform reading the file itself.
#[test]
fn a_modules_own_tfvars_satisfy_validate_and_the_sandbox_deploy() {
    if !require_tool("terraform", "version") {
        return;
    }
    let repo = repo_of(&[
        (
            "terraform/main.tf",
            "variable \"bucket\" {}\nvariable \"size\" {}\nresource \"terraform_data\" \"bucket\" {\n  input = var.bucket\n}\noutput \"bucket\" {\n  value = terraform_data.bucket.output\n}\n",
        ),
        ("terraform/terraform.tfvars", "bucket = \"assets\"\n"),
        ("terraform/sizes.auto.tfvars.json", "{\"size\": 3}\n"),
        (
            "k8s/settings.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  bucket: ${terraform.bucket}\n",
        ),
    ]);
    let report = init(&repo, "dev");
    assert!(
        report["deploy"]
            .to_string()
            .contains("Terraform root `terraform/`"),
        "{report}"
    );
    repo.commit("gitship init");
    repo.ok(&["validate", "dev"]);
    let deploy = repo.ok(&["-o", "json", "deploy", "dev", "--sandbox"]);
    assert!(deploy.stdout.contains("\"settings\""), "{}", deploy.all());
    assert!(
        deploy.all().contains("terraform: Apply complete!"),
        "{}",
        deploy.all()
    );
    // The value came from terraform.tfvars, through the real Terraform and its output.
    let render = repo.ok(&["render", "dev"]);
    assert!(render.stdout.contains("bucket: assets"), "{}", render.all());
}
