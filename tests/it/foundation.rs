//! Integration tests: foundation. The repository model, environment configs, the template engine,
//! content-addressed image tags and the `envs`, `validate`, `render` and `env new` verbs, all
//! through the built CLI. Temporary repositories are real Git repositories made with git2.

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::gitship;

/// The package root (where `examples/` lives).
fn package_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example() -> PathBuf {
    package_root().join("examples/blog-infra")
}

/// `gitship -C examples/blog-infra ARGS`, run from the package root.
fn gitship_example(args: &[&str]) -> Run {
    let mut all = vec!["-C", "examples/blog-infra"];
    all.extend_from_slice(args);
    gitship_in(&package_root(), &all)
}

fn example_outputs() -> PathBuf {
    example().join("terraform-outputs.example.json")
}

/// The sensitive value in `terraform-outputs.example.json`.
const EXAMPLE_PASSWORD: &str = "example-only-3f9c2a7d41b8e6c0";

/// The result of one CLI run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Exit code, stdout and stderr, for snapshots.
    fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run(command: &mut Command) -> Run {
    let output = command.output().expect("run gitship");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `gitship ARGS` in `dir`.
fn gitship_in(dir: &Path, args: &[&str]) -> Run {
    run(gitship().current_dir(dir).args(args))
}

/// Snapshot with temp paths, SHAs and content tags filtered.
fn snapshot(name: &str, text: &str, temp: Option<&Path>) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(true);
    if let Some(temp) = temp {
        let canonical = temp.canonicalize().unwrap_or_else(|_| temp.to_path_buf());
        settings.add_filter(&regex_escape(&canonical.display().to_string()), "[TEMP]");
        settings.add_filter(&regex_escape(&temp.display().to_string()), "[TEMP]");
    }
    settings.add_filter(r"\b[0-9a-f]{40}\b", "[SHA]");
    settings.add_filter(r"\b[0-9a-f]{12}(-dirty-[0-9a-f]{8})?\b", "[TAG]");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A throwaway Git repository.
struct TempRepo {
    dir: tempfile::TempDir,
    git: git2::Repository,
}

impl TempRepo {
    fn new() -> TempRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let git = git2::Repository::init(dir.path()).expect("git init");
        TempRepo { dir, git }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, relative: &str, content: &str) -> &Self {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
        self
    }

    fn remove(&self, relative: &str) {
        std::fs::remove_file(self.path().join(relative)).expect("remove");
    }

    /// Stage everything (respecting `.gitignore`) and commit.
    fn commit(&self, message: &str) {
        crate::support::commit_all(&self.git, message);
    }

    fn gitship(&self, args: &[&str]) -> Run {
        gitship_in(self.path(), args)
    }
}

/// A small repository: one app, manifests, two environments.
fn small_repo() -> TempRepo {
    let repo = TempRepo::new();
    repo.write("apps/api/Dockerfile", "FROM scratch\nCOPY app.txt /\n")
        .write("apps/api/app.txt", "v1\n")
        .write("apps/api/.dockerignore", "*.log\nscratch/\n")
        .write("README.md", "a test repository\n")
        .write(
            "infrastructure/kubernetes/app.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: ${values.replicas}\n  template:\n    spec:\n      containers:\n        - name: api\n          image: ${images.api}\n",
        )
        .write(
            "config/staging.yaml",
            "cluster:\n  namespace: shop-staging\nregistry: registry.example.com/shop\nterraform:\n  workspace: staging\nvalues:\n  replicas: 2\n",
        )
        .write(
            "config/production.yaml",
            "cluster:\n  context: prod\n  namespace: shop\nregistry: registry.example.com/shop\nvalues:\n  replicas: 3\n",
        );
    repo.commit("initial");
    repo
}

fn parse_stream(text: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(text).unwrap_or_else(|err| panic!("invalid YAML ({err}):\n{text}"))
}

fn image_of(run: &Run) -> String {
    let docs = parse_stream(&run.stdout);
    docs[0]["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("image")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The example

#[test]
fn render_production_example() {
    let outputs = example_outputs();
    let result = gitship_in(
        &package_root(),
        &[
            "render",
            "production",
            "-C",
            "examples/blog-infra",
            "--terraform-outputs",
            outputs.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(result.code, 0, "{}", result.stderr);
    let docs = parse_stream(&result.stdout);
    assert_eq!(
        docs.len(),
        9,
        "namespace, backend x2, frontend x2, postgres x3, ingress"
    );

    // Split the stream into its documents' text to check where the secret appears.
    let texts: Vec<&str> = result.stdout.split("\n---\n").collect();
    assert_eq!(texts.len(), docs.len());
    let mut secrets_seen = 0;
    for (doc, text) in docs.iter().zip(&texts) {
        let kind = doc["kind"].as_str().expect("kind");
        let name = doc["metadata"]["name"].as_str().expect("name");
        let labels = &doc["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/managed-by"].as_str(),
            Some("gitship"),
            "{kind} {name}"
        );
        assert_eq!(
            labels["gitship.dev/environment"].as_str(),
            Some("production"),
            "{kind} {name}"
        );
        if kind == "Namespace" {
            assert_eq!(name, "blog");
            assert!(
                doc["metadata"]["namespace"].is_badvalue(),
                "a Namespace has no namespace"
            );
        } else {
            assert_eq!(
                doc["metadata"]["namespace"].as_str(),
                Some("blog"),
                "{kind} {name}"
            );
        }
        if kind == "Secret" {
            secrets_seen += 1;
            assert_eq!(
                doc["stringData"]["POSTGRES_PASSWORD"].as_str(),
                Some(EXAMPLE_PASSWORD)
            );
        } else {
            assert!(
                !text.contains(EXAMPLE_PASSWORD),
                "the sensitive value leaked into {kind} {name}"
            );
        }
        if kind == "Deployment" && name == "blog-backend" {
            assert_eq!(
                doc["spec"]["replicas"],
                Yaml::Integer(3),
                "replicas is the integer 3"
            );
            let image = doc["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .expect("image");
            assert!(image.starts_with("ghcr.io/acme/blog/backend:"), "{image}");
        }
    }
    assert_eq!(secrets_seen, 1);
    assert!(!result.stderr.contains(EXAMPLE_PASSWORD));
    snapshot("render_production", &result.transcript(), None);
}

#[test]
fn render_each_example_environment() {
    let outputs = example_outputs();
    for env in ["development", "staging"] {
        let result = gitship_example(&[
            "render",
            env,
            "--terraform-outputs",
            outputs.to_str().expect("utf-8"),
        ]);
        assert_eq!(result.code, 0, "{}", result.stderr);
        let docs = parse_stream(&result.stdout);
        let backend = docs
            .iter()
            .find(|d| {
                d["kind"].as_str() == Some("Deployment")
                    && d["metadata"]["name"].as_str() == Some("blog-backend")
            })
            .expect("backend");
        let expected = if env == "development" { 1 } else { 2 };
        assert_eq!(backend["spec"]["replicas"], Yaml::Integer(expected));
        snapshot(&format!("render_{env}"), &result.transcript(), None);
    }
}

#[test]
fn render_json_is_redacted() {
    let outputs = example_outputs();
    let result = gitship_example(&[
        "render",
        "production",
        "-o",
        "json",
        "--terraform-outputs",
        outputs.to_str().expect("utf-8"),
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(!result.stdout.contains(EXAMPLE_PASSWORD));
    let report: serde_json::Value = serde_json::from_str(&result.stdout).expect("json");
    assert_eq!(report["format_version"], 1, "{report}");
    let items: Vec<serde_json::Value> =
        serde_json::from_value(report["manifests"].clone()).expect("the manifests");
    let secret = items
        .iter()
        .find(|i| i["object"]["kind"] == "Secret")
        .expect("secret");
    assert_eq!(
        secret["object"]["stringData"]["POSTGRES_PASSWORD"],
        "<sensitive>"
    );
    assert_eq!(secret["id"], "Secret blog/postgres-credentials");
}

#[test]
fn render_without_terraform_outputs_explains() {
    let result = gitship_example(&["render", "staging"]);
    assert_eq!(result.code, 1);
    assert!(result.stdout.is_empty());
    assert!(
        result.stderr.contains("--terraform-outputs FILE"),
        "{}",
        result.stderr
    );
    snapshot(
        "render_without_terraform_outputs",
        &result.transcript(),
        None,
    );
}

#[test]
fn validate_each_example_environment() {
    for env in ["development", "staging", "production"] {
        let result = gitship_example(&["validate", env]);
        assert_eq!(result.code, 0, "{env}: {}", result.stderr);
    }
    let all = gitship_example(&["validate"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    snapshot("validate_example", &all.transcript(), None);
    let outputs = example_outputs();
    let with_outputs = gitship_example(&[
        "validate",
        "--terraform-outputs",
        outputs.to_str().expect("utf-8"),
    ]);
    assert_eq!(with_outputs.code, 0, "{}", with_outputs.stderr);
}

#[test]
fn envs_lists_the_example() {
    let result = gitship_example(&["envs"]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    snapshot("envs_example", &result.transcript(), None);
    let json = gitship_example(&["envs", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(report["format_version"], 2, "{report}");
    // No cluster to ask: no preview, and each cluster named as unreachable (not development's,
    // which comes from Terraform: no preview is derived from it).
    assert_eq!(report["previews"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["unreachable"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    let rows: Vec<gitship::facade::ops::envs::EnvironmentSummary> =
        serde_json::from_value(report["environments"].clone()).expect("the environments");
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["development", "production", "staging"]);
    assert_eq!(rows[1].namespace, "blog");
    assert_eq!(rows[1].context.as_deref(), Some("prod"));
}

// ---------------------------------------------------------------------------------------------
// Templates

#[test]
fn unknown_placeholders_are_all_reported() {
    let repo = small_repo();
    repo.write(
        "infrastructure/kubernetes/app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: ${values.nope}\n  template:\n    spec:\n      containers:\n        - name: api\n          image: ${images.api}\n",
    )
    .write(
        "infrastructure/kubernetes/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  greeting: \"hello ${values.nope} and ${values.replica}\"\n",
    );
    let result = repo.gitship(&["render", "staging"]);
    assert_eq!(result.code, 1);
    assert!(
        result.stdout.is_empty(),
        "nothing on stdout: {}",
        result.stdout
    );
    assert!(
        result
            .stderr
            .contains("infrastructure/kubernetes/app.yaml:6:13"),
        "{}",
        result.stderr
    );
    assert!(
        result
            .stderr
            .contains("infrastructure/kubernetes/config.yaml:6:20"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("environment `staging`"),
        "{}",
        result.stderr
    );
    snapshot(
        "unknown_placeholders",
        &result.transcript(),
        Some(repo.path()),
    );
}

#[test]
fn values_never_inject_structure() {
    let repo = small_repo();
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: shop-staging\nregistry: registry.example.com/shop\nvalues:\n  replicas: 2\n  evil: \"\\n  evil: true\"\n  number_text: \"3\"\n",
    )
    .write(
        "infrastructure/kubernetes/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  whole: ${values.evil}\n  inside: x${values.evil}\n  quoted: \"${values.replicas}\"\n  text: ${values.number_text}\n  escaped: $${values.evil}\n",
    );
    let result = repo.gitship(&["render", "staging"]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let docs = parse_stream(&result.stdout);
    let config = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("ConfigMap"))
        .expect("configmap");
    assert_eq!(config["data"]["whole"].as_str(), Some("\n  evil: true"));
    assert_eq!(config["data"]["inside"].as_str(), Some("x\n  evil: true"));
    assert_eq!(config["data"]["quoted"].as_str(), Some("2"));
    assert_eq!(
        config["data"]["text"].as_str(),
        Some("3"),
        "a string value stays a string"
    );
    assert_eq!(config["data"]["escaped"].as_str(), Some("${values.evil}"));
    assert!(config["evil"].is_badvalue() && config["data"]["evil"].is_badvalue());
    assert_eq!(config["data"].as_hash().expect("data").len(), 5);
}

#[test]
fn sensitive_outputs_only_in_secrets() {
    let repo = small_repo();
    repo.write(
        "infrastructure/kubernetes/leak.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\ndata:\n  password: ${terraform.db_password}\n",
    );
    let outputs = repo.path().join("outputs.json");
    std::fs::write(
        &outputs,
        r#"{"db_password": {"sensitive": true, "type": "string", "value": "s3cr3t-value"}}"#,
    )
    .expect("write");
    let result = repo.gitship(&[
        "render",
        "staging",
        "--terraform-outputs",
        outputs.to_str().expect("utf-8"),
    ]);
    assert_eq!(result.code, 1);
    assert!(!result.stderr.contains("s3cr3t-value") && !result.stdout.contains("s3cr3t-value"));
    snapshot(
        "sensitive_outside_secret",
        &result.transcript(),
        Some(repo.path()),
    );
}

#[test]
fn duplicate_objects_name_both_files() {
    let repo = small_repo();
    repo.write(
        "infrastructure/kubernetes/again.yaml",
        "# the same Deployment again\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n",
    );
    let result = repo.gitship(&["render", "staging"]);
    assert_eq!(result.code, 1);
    assert!(
        result
            .stderr
            .contains("infrastructure/kubernetes/again.yaml:2:1"),
        "{}",
        result.stderr
    );
    assert!(
        result
            .stderr
            .contains("infrastructure/kubernetes/app.yaml:1:1"),
        "{}",
        result.stderr
    );
    snapshot("duplicate_objects", &result.transcript(), Some(repo.path()));
}

#[test]
fn invalid_yaml_and_bad_placeholders_have_positions() {
    let repo = small_repo();
    repo.write("infrastructure/kubernetes/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n")
        .write("infrastructure/kubernetes/bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  a: ${values.replicas\n  b: ${nope.x}\n");
    let result = repo.gitship(&["render", "staging"]);
    assert_eq!(result.code, 1);
    snapshot(
        "invalid_yaml_and_placeholders",
        &result.transcript(),
        Some(repo.path()),
    );
}

// ---------------------------------------------------------------------------------------------
// Environment configs

#[test]
fn typo_key_gets_did_you_mean() {
    let repo = small_repo();
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: shop-staging\nregisty: registry.example.com/shop\nvalues:\n  replicas: 2\n",
    );
    let result = repo.gitship(&["validate", "staging"]);
    assert_eq!(result.code, 1);
    assert!(
        result.stderr.contains("config/staging.yaml:3:1"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("did you mean `registry`?"),
        "{}",
        result.stderr
    );
    snapshot("typo_key", &result.transcript(), Some(repo.path()));

    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: shop-staging\n  contxt: prod\nregistry: r.example/x\n",
    );
    let nested = repo.gitship(&["validate", "staging"]);
    assert_eq!(nested.code, 1);
    snapshot("typo_nested_key", &nested.transcript(), Some(repo.path()));
}

#[test]
fn config_errors() {
    let repo = small_repo();
    let cases = [
        (
            "missing_namespace",
            "cluster:\n  context: x\nregistry: r.example/x\n",
        ),
        (
            "bad_namespace",
            "cluster:\n  namespace: Shop_Staging\nregistry: r.example/x\n",
        ),
        ("missing_registry", "cluster:\n  namespace: shop\n"),
        (
            "workspace_and_backend",
            "cluster:\n  namespace: shop\nregistry: r.example/x\nterraform:\n  workspace: a\n  backend_config:\n    key: a.tfstate\n",
        ),
        (
            "bad_duration",
            "cluster:\n  namespace: shop\nregistry: r.example/x\ndeploy:\n  timeout: soon\n",
        ),
        (
            "values_not_mapping",
            "cluster:\n  namespace: shop\nregistry: r.example/x\nvalues: [1, 2]\n",
        ),
        (
            "duplicate_key",
            "cluster:\n  namespace: shop\nregistry: r.example/x\nregistry: r.example/y\n",
        ),
    ];
    for (name, text) in cases {
        repo.write("config/staging.yaml", text);
        let result = repo.gitship(&["render", "staging"]);
        assert_eq!(result.code, 1, "{name}: {}", result.stderr);
        assert!(result.stdout.is_empty());
        snapshot(
            &format!("config_error_{name}"),
            &result.transcript(),
            Some(repo.path()),
        );
    }
}

#[test]
fn unknown_and_invalid_environments() {
    let repo = small_repo();
    let unknown = repo.gitship(&["render", "stagign"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("did you mean `staging`?"),
        "{}",
        unknown.stderr
    );
    snapshot(
        "unknown_environment",
        &unknown.transcript(),
        Some(repo.path()),
    );

    // A stray file does not break the other environments (`tests/it/bad_input.rs`), but asking
    // for it by name is an error.
    repo.write("config/Bad_Name.yaml", "cluster:\n  namespace: x\n");
    let invalid = repo.gitship(&["render", "Bad_Name"]);
    assert_eq!(invalid.code, 1);
    snapshot(
        "invalid_environment_name",
        &invalid.transcript(),
        Some(repo.path()),
    );
}

#[test]
fn env_new_copies_and_renames() {
    let repo = small_repo();
    repo.write(
        "config/staging.yaml",
        "# staging\ncluster:\n  context: staging\n  namespace: shop-staging # the namespace\nregistry: registry.example.com/shop\nterraform:\n  workspace: staging\n  vars:\n    size: 2\nvalues:\n  replicas: 2\n",
    );
    let result = repo.gitship(&["env", "new", "qa", "--from", "staging"]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let written =
        std::fs::read_to_string(repo.path().join("config/qa.yaml")).expect("config/qa.yaml");
    assert!(
        written.contains("namespace: shop-qa # the namespace"),
        "{written}"
    );
    assert!(written.contains("workspace: qa"), "{written}");
    snapshot(
        "env_new_output",
        &format!("{}\n--- config/qa.yaml ---\n{written}", result.transcript()),
        Some(repo.path()),
    );

    let validate = repo.gitship(&["validate", "qa"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);

    let again = repo.gitship(&["env", "new", "qa", "--from", "staging"]);
    assert_eq!(again.code, 1);
    assert_eq!(
        std::fs::read_to_string(repo.path().join("config/qa.yaml")).expect("read"),
        written,
        "not overwritten"
    );
    snapshot(
        "env_new_refuses_overwrite",
        &again.transcript(),
        Some(repo.path()),
    );

    let production = repo.gitship(&["env", "new", "prod-eu", "--from", "production"]);
    assert_eq!(production.code, 0, "{}", production.stderr);
    let written = std::fs::read_to_string(repo.path().join("config/prod-eu.yaml")).expect("read");
    assert!(written.contains("namespace: shop-prod-eu"), "{written}");

    let invalid = repo.gitship(&["env", "new", "QA!", "--from", "staging"]);
    assert_eq!(invalid.code, 64);
}

#[test]
fn env_new_renames_backend_state_key() {
    let repo = small_repo();
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: shop-staging\nregistry: r.example/shop\nterraform:\n  backend_config:\n    key: shop/staging.tfstate\n    bucket: shop-state\n",
    );
    let result = repo.gitship(&["env", "new", "qa", "--from", "staging"]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let written = std::fs::read_to_string(repo.path().join("config/qa.yaml")).expect("read");
    assert!(written.contains("key: shop/qa.tfstate"), "{written}");
    assert!(written.contains("bucket: shop-state"), "{written}");
}

// ---------------------------------------------------------------------------------------------
// Layout

#[test]
fn gitship_yaml_overrides_the_layout() {
    let repo = TempRepo::new();
    repo.write("src/cart/Dockerfile", "FROM scratch\n")
        .write("src/checkout/Dockerfile", "FROM scratch\n")
        .write("src/checkout/build/Dockerfile.prod", "FROM scratch\n")
        .write(
            "kubernetes-manifests/cart.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: images\ndata:\n  cart: ${images.cart}\n  checkout: ${images.checkout.repository}\n",
        )
        .write("terraform/main.tf", "output \"bucket\" {\n  value = \"b\"\n}\n")
        .write("config/dev.yaml", "cluster:\n  namespace: shop\nregistry: r.example/shop\n")
        .write(
            "gitship.yaml",
            "paths:\n  apps: src\n  kubernetes: kubernetes-manifests\n  terraform: terraform\napps:\n  checkout:\n    dockerfile: src/checkout/build/Dockerfile.prod\n    context: src/checkout\n    build_args: { MODE: prod }\n    target: runtime\nterraform:\n  binary: tofu\n",
        );
    repo.commit("initial");
    let result = repo.gitship(&["render", "dev"]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let docs = parse_stream(&result.stdout);
    assert!(
        docs[0]["data"]["cart"]
            .as_str()
            .expect("cart")
            .starts_with("r.example/shop/cart:")
    );
    assert_eq!(
        docs[0]["data"]["checkout"].as_str(),
        Some("r.example/shop/checkout")
    );
    let validate = repo.gitship(&["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);

    repo.write("gitship.yaml", "paths:\n  aps: src\n");
    let typo = repo.gitship(&["envs"]);
    assert_eq!(typo.code, 1);
    snapshot("gitship_yaml_typo", &typo.transcript(), Some(repo.path()));

    repo.write("gitship.yaml", "paths:\n  kubernetes: k8s\n");
    let missing = repo.gitship(&["envs"]);
    assert_eq!(missing.code, 1);
    snapshot(
        "gitship_yaml_missing_dir",
        &missing.transcript(),
        Some(repo.path()),
    );
}

/// An app declared by its `context:` alone: its Dockerfile is `<context>/Dockerfile` (what
/// `init` writes for each Skaffold artifact with the default Dockerfile).
#[test]
fn an_app_is_declared_by_its_context_alone() {
    let repo = TempRepo::new();
    repo.write("services/api/Dockerfile", "FROM scratch\n")
        .write(
            "infrastructure/kubernetes/api.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: images\ndata:\n  api: ${images.api}\n",
        )
        .write("config/dev.yaml", "cluster:\n  namespace: shop\nregistry: r.example/shop\n")
        .write("gitship.yaml", "apps:\n  api:\n    context: services/api\n");
    repo.commit("initial");
    let result = repo.gitship(&["render", "dev"]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let docs = parse_stream(&result.stdout);
    assert!(
        docs[0]["data"]["api"]
            .as_str()
            .expect("api")
            .starts_with("r.example/shop/api:")
    );

    repo.write("gitship.yaml", "apps:\n  api:\n    context: services\n");
    let missing = repo.gitship(&["render", "dev"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("the Dockerfile of app `api` does not exist: `services/Dockerfile`"),
        "{}",
        missing.stderr
    );
}

#[test]
fn every_layer_is_optional() {
    // Only manifests.
    let manifests_only = TempRepo::new();
    manifests_only
        .write("infrastructure/kubernetes/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  env: ${env.name}\n  sha: ${git.sha}\n")
        .write("config/dev.yaml", "cluster:\n  namespace: plain\n");
    manifests_only.commit("initial");
    let result = manifests_only.gitship(&["render", "dev"]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let docs = parse_stream(&result.stdout);
    assert_eq!(docs[0]["data"]["env"].as_str(), Some("dev"));
    assert_eq!(docs[0]["data"]["sha"].as_str().map(str::len), Some(40));

    // Only Terraform.
    let terraform_only = TempRepo::new();
    terraform_only
        .write(
            "infrastructure/terraform/main.tf",
            "resource \"terraform_data\" \"x\" {}\n",
        )
        .write(
            "config/dev.yaml",
            "cluster:\n  namespace: plain\nterraform:\n  workspace: dev\n",
        );
    terraform_only.commit("initial");
    // Rendering nothing is an error unless the environment says so.
    let result = terraform_only.gitship(&["validate"]);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result.stderr.contains("renders no Kubernetes object"),
        "{}",
        result.stderr
    );
    terraform_only.write(
        "config/dev.yaml",
        "cluster:\n  namespace: plain\nterraform:\n  workspace: dev\nkubernetes: false\n",
    );
    terraform_only.commit("dev deploys no Kubernetes objects");
    let result = terraform_only.gitship(&["validate"]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let rendered = terraform_only.gitship(&["render", "dev"]);
    assert_eq!(rendered.code, 0, "{}", rendered.stderr);
    assert!(rendered.stdout.is_empty());
}

#[test]
fn broken_layouts_say_what_was_looked_for() {
    let no_dockerfile = small_repo();
    no_dockerfile.write("apps/worker/main.py", "print('hi')\n");
    // A directory without a Dockerfile is not an app (a kustomize base in a Flux repository's
    // `apps/`), not an error; a `Containerfile` makes one.
    let result = no_dockerfile.gitship(&["plan", "staging", "--sandbox", "-o", "json"]);
    assert_eq!(result.code, 0, "{}", result.transcript());
    assert!(!result.stdout.contains("worker"), "{}", result.stdout);
    no_dockerfile.write("apps/worker/Containerfile", "FROM scratch\n");
    let result = no_dockerfile.gitship(&["plan", "staging", "--sandbox", "-o", "json"]);
    assert!(result.stdout.contains("worker"), "{}", result.transcript());

    let empty_terraform = small_repo();
    empty_terraform.write("infrastructure/terraform/README.md", "nothing here\n");
    let result = empty_terraform.gitship(&["envs"]);
    assert_eq!(result.code, 1);
    snapshot(
        "terraform_without_tf_files",
        &result.transcript(),
        Some(empty_terraform.path()),
    );

    let nothing = TempRepo::new();
    nothing.write("hello.txt", "hi\n");
    nothing.commit("initial");
    let result = nothing.gitship(&["envs"]);
    assert_eq!(result.code, 1);
    snapshot("no_layout", &result.transcript(), Some(nothing.path()));

    let outside = tempfile::tempdir().expect("temp");
    let result = gitship_in(outside.path(), &["envs"]);
    assert_eq!(result.code, 1);
    snapshot("not_in_git", &result.transcript(), Some(outside.path()));
}

#[test]
fn subdirectory_of_a_git_repository_works_as_repo() {
    // Like `-C examples/blog-infra` inside the gitship repository.
    let repo = TempRepo::new();
    repo.write("examples/shop/apps/api/Dockerfile", "FROM scratch\n")
        .write("examples/shop/infrastructure/kubernetes/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  image: ${images.api}\n")
        .write("examples/shop/config/dev.yaml", "cluster:\n  namespace: shop\nregistry: r.example/shop\n");
    repo.commit("initial");
    let result = repo.gitship(&["render", "dev", "-C", "examples/shop"]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result
            .stdout
            .contains("# Source: infrastructure/kubernetes/a.yaml:1:1"),
        "{}",
        result.stdout
    );
    let inside = gitship_in(&repo.path().join("examples/shop/config"), &["envs"]);
    assert_eq!(
        inside.code, 1,
        "without -C the Git root is the repository: {}",
        inside.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// Content-addressed image tags

#[test]
fn content_tags_follow_the_build_context() {
    let repo = small_repo();
    let first = repo.gitship(&["render", "staging"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let clean = image_of(&first);
    assert!(
        clean.starts_with("registry.example.com/shop/api:"),
        "{clean}"
    );
    assert!(!clean.contains("-dirty-"), "{clean}");

    // A commit outside the context keeps the tag.
    repo.write("README.md", "changed\n");
    repo.commit("docs");
    assert_eq!(image_of(&repo.gitship(&["render", "staging"])), clean);

    // An uncommitted change in the context makes it dirty.
    repo.write("apps/api/app.txt", "v2\n");
    let dirty = image_of(&repo.gitship(&["render", "staging"]));
    let prefix = format!("{clean}-dirty-");
    assert!(dirty.starts_with(&prefix), "{dirty}");
    assert_eq!(dirty.len(), prefix.len() + 8);
    // The same dirty content gives the same tag; other content another.
    assert_eq!(image_of(&repo.gitship(&["render", "staging"])), dirty);
    repo.write("apps/api/app.txt", "v3\n");
    let dirty_again = image_of(&repo.gitship(&["render", "staging"]));
    assert_ne!(dirty_again, dirty);

    // Back to the committed content: clean again; files ignored by .dockerignore do not count.
    repo.write("apps/api/app.txt", "v1\n");
    repo.write("apps/api/debug.log", "noise\n");
    repo.write("apps/api/scratch/notes.txt", "noise\n");
    assert_eq!(image_of(&repo.gitship(&["render", "staging"])), clean);
    repo.remove("apps/api/debug.log");

    // Committing a change to the context gives a new clean tag.
    repo.write("apps/api/app.txt", "v2\n");
    repo.commit("v2");
    let second = image_of(&repo.gitship(&["render", "staging"]));
    assert!(!second.contains("-dirty-"), "{second}");
    assert_ne!(second, clean);

    // The Dockerfile counts even when `.dockerignore` lists it.
    repo.write("apps/api/.dockerignore", "*.log\nscratch/\nDockerfile\n");
    repo.commit("ignore the Dockerfile");
    let ignoring = image_of(&repo.gitship(&["render", "staging"]));
    repo.write(
        "apps/api/Dockerfile",
        "FROM scratch\nCOPY app.txt /app.txt\n",
    );
    let dockerfile_dirty = image_of(&repo.gitship(&["render", "staging"]));
    assert!(
        dockerfile_dirty.starts_with(&format!("{ignoring}-dirty-")),
        "{dockerfile_dirty}"
    );
    repo.commit("dockerfile");
    let dockerfile_changed = image_of(&repo.gitship(&["render", "staging"]));
    assert!(!dockerfile_changed.contains("-dirty-"));
    assert_ne!(dockerfile_changed, ignoring);
    let second = dockerfile_changed;

    // Build settings are part of the tag.
    repo.write(
        "gitship.yaml",
        "apps:\n  api:\n    build_args: { VERSION: \"2\" }\n",
    );
    repo.commit("build args");
    let with_args = image_of(&repo.gitship(&["render", "staging"]));
    assert_ne!(with_args, second);
    repo.write(
        "gitship.yaml",
        "apps:\n  api:\n    build_args: { VERSION: \"2\" }\n    target: runtime\n",
    );
    repo.commit("target");
    let with_target = image_of(&repo.gitship(&["render", "staging"]));
    assert_ne!(with_target, with_args);
}

// ---------------------------------------------------------------------------------------------
// The example's Terraform, for real

/// The example's Terraform module applies offline with each environment's `terraform.vars`, and
/// its real `terraform output -json` renders the manifests: the example outputs file has the same
/// outputs with the same sensitivity.
#[test]
fn example_terraform_runs_offline_and_feeds_render() {
    if !crate::support::require_tool("terraform", "version") {
        return;
    }
    let work = tempfile::tempdir().expect("temp");
    let module = example().join("infrastructure/terraform");
    for entry in std::fs::read_dir(&module).expect("module") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "tf") {
            std::fs::copy(&path, work.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let terraform = |args: &[&str]| {
        let output = Command::new("terraform")
            .args(args)
            .current_dir(work.path())
            .env("HOME", crate::support::test_home())
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .expect("run terraform");
        assert!(
            output.status.success(),
            "terraform {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    terraform(&["init", "-input=false", "-no-color"]);

    // The production config's vars, as a var file.
    let config = std::fs::read_to_string(example().join("config/production.yaml")).expect("config");
    let config = &YamlLoader::load_from_str(&config).expect("yaml")[0];
    let mut vars = serde_json::Map::new();
    for (key, value) in config["terraform"]["vars"].as_hash().expect("vars") {
        let value = match value {
            Yaml::Integer(i) => serde_json::json!(i),
            Yaml::String(s) => serde_json::json!(s),
            other => panic!("unexpected var {other:?}"),
        };
        vars.insert(key.as_str().expect("key").to_string(), value);
    }
    std::fs::write(
        work.path().join("vars.tfvars.json"),
        serde_json::Value::Object(vars).to_string(),
    )
    .expect("vars");
    terraform(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-var-file=vars.tfvars.json",
    ]);
    let outputs_json = terraform(&["output", "-json"]);
    let outputs_file = work.path().join("outputs.json");
    std::fs::write(&outputs_file, &outputs_json).expect("write outputs");

    let real: serde_json::Value = serde_json::from_str(&outputs_json).expect("outputs");
    let example_outputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example_outputs()).expect("example"))
            .expect("json");
    let shape = |value: &serde_json::Value| -> Vec<(String, bool)> {
        value
            .as_object()
            .expect("object")
            .iter()
            .map(|(name, output)| (name.clone(), output["sensitive"].as_bool().unwrap_or(false)))
            .collect()
    };
    assert_eq!(
        shape(&real),
        shape(&example_outputs),
        "the example outputs file matches the module"
    );

    let password = real["db_password"]["value"]
        .as_str()
        .expect("password")
        .to_string();
    let result = gitship_example(&[
        "render",
        "production",
        "--terraform-outputs",
        outputs_file.to_str().expect("utf-8"),
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let docs = parse_stream(&result.stdout);
    let secret = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Secret"))
        .expect("secret");
    assert_eq!(
        secret["stringData"]["POSTGRES_PASSWORD"].as_str(),
        Some(password.as_str())
    );
    assert_eq!(
        result.stdout.matches(&password).count(),
        1,
        "the password appears once, in the Secret"
    );
}

#[test]
fn validate_json_reports_each_environment() {
    let repo = small_repo();
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: shop-staging\nregistry: r.example/shop\nvalues: {}\n",
    );
    let result = repo.gitship(&["validate", "-o", "json"]);
    assert_eq!(result.code, 1);
    let report: gitship::facade::ops::validate::ValidateReport =
        serde_json::from_str(&result.stdout).expect("json");
    assert_eq!(report.format_version, 1);
    let results = report.environments;
    assert_eq!(results.len(), 2);
    assert_eq!(
        (
            results[0].environment.as_str(),
            results[0].valid,
            results[0].objects
        ),
        ("production", true, 1)
    );
    assert_eq!(results[1].environment, "staging");
    assert!(!results[1].valid);
    let error = results[1].error.as_deref().expect("error");
    assert!(
        error.contains("infrastructure/kubernetes/app.yaml:6:13"),
        "{error}"
    );
}

#[test]
fn bad_terraform_outputs_files() {
    let repo = small_repo();
    let missing = repo.gitship(&["render", "staging", "--terraform-outputs", "nope.json"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("hint: "), "{}", missing.stderr);
    snapshot(
        "terraform_outputs_missing",
        &missing.transcript(),
        Some(repo.path()),
    );

    repo.write(
        "outputs.json",
        "{\"db_password\": {\"sensitive\": true, \"value\": \"s3cr3t\"}, \"x\": 5}",
    );
    let malformed = repo.gitship(&["render", "staging", "--terraform-outputs", "outputs.json"]);
    assert_eq!(malformed.code, 1);
    assert!(!malformed.stderr.contains("s3cr3t"));
    snapshot(
        "terraform_outputs_malformed",
        &malformed.transcript(),
        Some(repo.path()),
    );
}

#[test]
fn validate_checks_terraform_vars_and_outputs_statically() {
    let repo = small_repo();
    repo.write(
        "infrastructure/terraform/main.tf",
        "variable \"size\" {\n  type = number\n}\n\noutput \"url\" {\n  value = \"https://x\"\n}\n\noutput \"password\" {\n  value     = \"x\"\n  sensitive = true\n}\n",
    )
    .write(
        "config/staging.yaml",
        "cluster:\n  namespace: shop-staging\nregistry: r.example/shop\nterraform:\n  vars:\n    size: 2\nvalues:\n  replicas: 2\n",
    )
    .write(
        "config/production.yaml",
        "cluster:\n  namespace: shop\nregistry: r.example/shop\nterraform:\n  vars:\n    sise: 3\nvalues:\n  replicas: 3\n",
    )
    .write(
        "infrastructure/kubernetes/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  url: ${terraform.url}\n",
    );
    let staging = repo.gitship(&["validate", "staging"]);
    assert_eq!(staging.code, 0, "{}", staging.stderr);
    let production = repo.gitship(&["validate", "production"]);
    assert_eq!(production.code, 1);
    assert!(production.stderr.contains("sise"), "{}", production.stderr);

    repo.write(
        "infrastructure/kubernetes/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  url: ${terraform.ur1}\n  password: ${terraform.password}\n",
    );
    let outputs = repo.gitship(&["validate", "staging"]);
    assert_eq!(outputs.code, 1);
    snapshot(
        "validate_static_outputs",
        &outputs.transcript(),
        Some(repo.path()),
    );
}
