//! Bootstrap from zero: an environment whose cluster and registry come from Terraform outputs
//! (`cluster.kubeconfig: ${terraform.kubeconfig}`, or `cluster.server` with
//! `cluster.certificate_authority` and `cluster.token`, and `registry: ${terraform.registry_url}`).
//! The module's `terraform_data` outputs point at the test's cluster and loopback registry
//! through a variable file the test writes; the environment's config names neither. `plan`
//! first (known after apply, nothing touched), then one `deploy` brings everything up, `drift`
//! finds nothing and a second deploy changes nothing. On kubesim and the real server.

use std::path::Path;

use gitship::facade::plan::{DriftReport, ImageAction, ObjectAction, Plan};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};

use crate::support::cluster::{Backend, TestCluster};
use crate::support::registry::TestRegistry;
use crate::support::repo::{Repo, Run};
use crate::support::require_tool;

/// A token no other value of the test contains: it must appear in no output.
const TOKEN: &str = "gitship-bootstrap-token-5c81e2f7a9d4";

/// The Terraform module: every value is a variable the test sets, passed through a
/// `terraform_data` so that its output is known only after apply, as a cluster's would be.
const MODULE: &str = r#"variable "kubeconfig" {
  type      = string
  default   = ""
  sensitive = true
}
variable "endpoint" {
  type    = string
  default = ""
}
variable "ca" {
  type    = string
  default = ""
}
variable "token" {
  type      = string
  default   = ""
  sensitive = true
}
variable "registry" {
  type = string
}
resource "terraform_data" "cluster" {
  input = {
    kubeconfig = var.kubeconfig
    endpoint   = var.endpoint
    ca         = var.ca
  }
}
resource "terraform_data" "token" {
  input = var.token
}
resource "terraform_data" "registry" {
  input = var.registry
}
output "kubeconfig" {
  value     = terraform_data.cluster.output.kubeconfig
  sensitive = true
}
output "endpoint" {
  value = terraform_data.cluster.output.endpoint
}
output "ca" {
  value = terraform_data.cluster.output.ca
}
output "token" {
  value     = terraform_data.token.output
  sensitive = true
}
output "registry_url" {
  value = terraform_data.registry.output
}
"#;

/// How the environment's config names its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    KubeconfigPath,
    KubeconfigInline,
    Endpoint,
}

/// The cluster, a token-protected kubesim for [`Form::Endpoint`].
async fn cluster_for(form: Form) -> TestCluster {
    let options = kubesim::Options {
        token: (form == Form::Endpoint).then(|| TOKEN.to_string()),
        ..Default::default()
    };
    TestCluster::start_with(options).await
}

/// The module's variables for `form`, and the token the cluster accepts (to be kept out of
/// every output).
fn variables(cluster: &TestCluster, form: Form, registry: &str) -> (serde_json::Value, String) {
    let kubeconfig = cluster.kubeconfig_path();
    let mut vars = serde_json::json!({ "registry": format!("{registry}/blog") });
    match form {
        Form::KubeconfigPath => vars["kubeconfig"] = kubeconfig.to_string_lossy().into(),
        Form::KubeconfigInline => {
            vars["kubeconfig"] = std::fs::read_to_string(kubeconfig)
                .expect("kubeconfig")
                .into();
        }
        Form::Endpoint => {
            let (server, ca, token) = endpoint_of(cluster);
            vars["endpoint"] = server.into();
            vars["ca"] = ca.into();
            vars["token"] = token.clone().into();
            return (vars, token);
        }
    }
    (vars, TOKEN.to_string())
}

/// The server, CA (PEM, empty for kubesim's plain HTTP) and token of the test's cluster.
fn endpoint_of(cluster: &TestCluster) -> (String, String, String) {
    if let Some(sim) = cluster.sim() {
        return (sim.url(), String::new(), TOKEN.to_string());
    }
    let text = std::fs::read_to_string(cluster.kubeconfig_path()).expect("kubeconfig");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("kubeconfig YAML");
    let doc = &docs[0];
    let cluster_entry = &doc["clusters"][0]["cluster"];
    let server = cluster_entry["server"]
        .as_str()
        .expect("server")
        .to_string();
    let ca = match cluster_entry["certificate-authority"].as_str() {
        Some(path) => std::fs::read_to_string(path).expect("CA file"),
        None => cluster_entry["certificate-authority-data"]
            .as_str()
            .expect("CA data")
            .to_string(),
    };
    let token = doc["users"][0]["user"]["token"]
        .as_str()
        .expect("the real server's test user has a token")
        .to_string();
    (server, ca, token)
}

/// The `cluster` lines of the config for `form` (the namespace is added).
fn cluster_lines(form: Form, with_ca: bool) -> String {
    match form {
        Form::KubeconfigPath | Form::KubeconfigInline => {
            "  kubeconfig: ${terraform.kubeconfig}\n".to_string()
        }
        Form::Endpoint => format!(
            "  server: ${{terraform.endpoint}}\n{}  token: ${{terraform.token}}\n",
            if with_ca {
                "  certificate_authority: ${terraform.ca}\n"
            } else {
                ""
            }
        ),
    }
}

/// The web app's repository with environment `staging` taking its cluster and registry from the
/// module's outputs; no `--kubeconfig` is passed.
fn repository(cluster: &TestCluster, form: Form, registry: &str) -> (Repo, String, String) {
    let ns = cluster.ns("boot");
    let mut repo = Repo::web_app_in(cluster.kubeconfig_path(), &ns, registry, "<p>boot</p>\n");
    repo.kubeconfig = None;
    let (vars, token) = variables(cluster, form, registry);
    let with_ca = form == Form::Endpoint && cluster.backend() == Backend::Real;
    repo.write(
        "config/staging.yaml",
        &format!(
            "cluster:\n  namespace: {ns}\n{}registry: ${{terraform.registry_url}}\n",
            cluster_lines(form, with_ca)
        ),
    );
    repo.write("infrastructure/terraform/main.tf", MODULE);
    repo.write(
        "infrastructure/terraform/terraform.tfvars.json",
        &serde_json::to_string_pretty(&vars).expect("JSON"),
    );
    repo.commit("staging from Terraform outputs");
    (repo, ns, token)
}

/// `gitship -C REPO ARGS` with `TMPDIR` set to `tmp`.
fn run(repo: &Repo, tmp: &Path, args: &[&str]) -> Run {
    let output = crate::support::gitship()
        .arg("-C")
        .arg(repo.path())
        .args(args)
        .env("TMPDIR", tmp)
        .output()
        .expect("run gitship");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn tools() -> bool {
    require_tool("terraform", "version") && require_tool("docker", "version")
}

/// The whole bootstrap for one form: plan, deploy, drift, deploy again.
async fn bootstraps_from_zero(form: Form) {
    if !tools() {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let cluster = cluster_for(form).await;
    let (repo, ns, token) = repository(&cluster, form, &registry.address);
    let tmp = tempfile::tempdir().expect("temp");
    let mut outputs = String::new();
    let mut step = |args: &[&str], codes: &[i32]| {
        let run = run(&repo, tmp.path(), args);
        assert!(
            codes.contains(&run.code),
            "gitship {args:?}:\n{}",
            run.all()
        );
        outputs.push_str(&run.all());
        // The kubeconfig written for the run is gone with it.
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("tmp")
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("gitship-kubeconfig"))
            .collect();
        assert!(
            left.is_empty(),
            "gitship {args:?} left {left:?} in its TMPDIR"
        );
        run
    };

    // The plan: cluster and registry known after apply, every object created, nothing touched.
    let planned = step(&["-o", "json", "plan", "staging", "--exit-code"], &[2]);
    let plan: Plan = serde_json::from_str(&planned.stdout).expect("plan JSON");
    let targets: Vec<&str> = plan
        .known_after_apply
        .iter()
        .map(|unknown| unknown.target.as_str())
        .collect();
    assert!(
        targets.contains(&"cluster") && targets.contains(&"registry"),
        "{targets:?}"
    );
    let kubernetes = plan.kubernetes.as_ref().expect("the objects to create");
    assert_eq!(kubernetes.objects.len(), 1, "{kubernetes:?}");
    assert_eq!(kubernetes.objects[0].action, ObjectAction::Create);
    assert_eq!(plan.images[0].action, ImageAction::Build);
    assert!(
        plan.images[0]
            .reference
            .starts_with("(known after apply)/web:"),
        "{:?}",
        plan.images
    );
    let human = step(&["plan", "staging"], &[0]);
    assert!(
        human
            .stdout
            .contains("cluster: known after apply (Terraform output"),
        "{}",
        human.all()
    );
    let client = cluster.client().await;
    let namespaces: kube::Api<Namespace> = kube::Api::all(client.clone());
    assert!(
        namespaces.get_opt(&ns).await.expect("read").is_none(),
        "plan created the namespace"
    );
    assert!(
        registry.catalog().is_empty(),
        "plan pushed {:?}",
        registry.catalog()
    );

    // One deploy: Terraform, then the image, then the objects.
    let deployed = step(&["deploy", "staging"], &[0]);
    let text = &deployed.stderr;
    let at = |line: &str| {
        text.find(line)
            .unwrap_or_else(|| panic!("no `{line}` in:\n{text}"))
    };
    assert!(
        at("terraform: Apply complete!") < at("preflight:")
            && at("preflight:") < at("web: pushing")
            && at("web: pushing") < at("applying 1 objects"),
        "Terraform, then preflight, then images, then objects:\n{text}"
    );
    assert!(!registry.tags("blog/web").is_empty(), "{text}");
    let configmaps: kube::Api<ConfigMap> = kube::Api::namespaced(client, &ns);
    let web = configmaps
        .get("web")
        .await
        .expect("the ConfigMap is applied");
    let image = web
        .data
        .unwrap_or_default()
        .remove("image")
        .unwrap_or_default();
    assert!(
        image.starts_with(&format!("{}/blog/web:", registry.address)),
        "{image}"
    );

    // Everything that connects finds the cluster through the outputs.
    let drift = step(&["-o", "json", "drift", "staging"], &[0]);
    let report: DriftReport = serde_json::from_str(&drift.stdout).expect("drift JSON");
    assert!(
        report.kubernetes.is_empty() && report.terraform.is_empty(),
        "{}",
        drift.all()
    );
    step(&["status", "staging"], &[0]);
    step(&["history", "staging"], &[0]);
    let plan_after = step(&["-o", "json", "plan", "staging", "--exit-code"], &[0]);
    let plan: Plan = serde_json::from_str(&plan_after.stdout).expect("plan JSON");
    assert!(plan.known_after_apply.is_empty(), "{}", plan_after.all());

    let mark = cluster.mark();
    let again = step(&["deploy", "staging"], &[0]);
    assert!(
        again.all().contains("terraform: no changes"),
        "{}",
        again.all()
    );
    // A no-op: the Lease and the deploy record are all it writes.
    let writes: Vec<String> = cluster
        .writes_since(mark)
        .into_iter()
        .filter(|write| !write.contains("/leases") && !write.contains("/events"))
        .collect();
    assert!(
        writes
            .iter()
            .all(|w| w.contains("/configmaps/gitship-staging")),
        "{writes:#?}"
    );
    assert_eq!(registry.tags("blog/web").len(), 1);

    // Destroy: the cluster comes from Terraform, so every Kubernetes step runs before
    // `terraform destroy` (which would take a real cluster with it).
    let destroyed = step(&["destroy", "staging", "--yes"], &[0]);
    let text = &destroyed.stderr;
    let at = |line: &str| {
        text.find(line)
            .unwrap_or_else(|| panic!("no `{line}` in:\n{text}"))
    };
    assert!(
        at("destroy: step prune") < at("destroy: step records")
            && at("destroy: step records") < at("destroy: step namespace")
            && at("destroy: step namespace") < at("destroy: step terraform"),
        "Kubernetes first, Terraform last:\n{text}"
    );
    assert!(
        namespaces.get_opt(&ns).await.expect("read").is_none(),
        "the namespace stays:\n{text}"
    );
    // Again: the outputs name no cluster any more, so only Terraform is left, already done.
    let again = step(&["-o", "json", "destroy", "staging", "--yes"], &[0]);
    let report: serde_json::Value = serde_json::from_str(&again.stdout).expect("destroy JSON");
    let outcomes: Vec<(&str, &str)> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap_or_default(),
                s["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        outcomes
            .iter()
            .all(|(_, outcome)| *outcome == "already_done"),
        "{outcomes:?}\n{}",
        again.all()
    );
    assert_eq!(
        report["plan"]["kubernetes"]["namespace"]["reason"],
        "no cluster: the Terraform outputs it comes from have no value",
        "{}",
        again.all()
    );

    assert!(
        !outputs.contains(&token),
        "the token was printed:\n{outputs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_with_a_kubeconfig_path() {
    bootstraps_from_zero(Form::KubeconfigPath).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_with_an_inline_kubeconfig() {
    bootstraps_from_zero(Form::KubeconfigInline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_with_server_ca_and_token() {
    bootstraps_from_zero(Form::Endpoint).await;
}

/// Errors: a command that connects before the first deploy, an output that is not a registry
/// prefix, a literal token; each names the output or key and the config line, and changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_errors_name_the_output_and_the_line() {
    if !tools() {
        return;
    }
    let cluster = cluster_for(Form::Endpoint).await;
    let (repo, ns, token) = repository(&cluster, Form::Endpoint, "127.0.0.1:1");
    let tmp = tempfile::tempdir().expect("temp");

    let drift = run(&repo, tmp.path(), &["drift", "staging"]);
    assert_eq!(drift.code, 1, "{}", drift.all());
    assert!(
        drift
            .stderr
            .contains("the cluster comes from Terraform output `endpoint`, which has no value yet")
            && drift.stderr.contains("config/staging.yaml:3:")
            && drift.stderr.contains("gitship deploy staging"),
        "{}",
        drift.all()
    );

    // A registry output that is no prefix stops the deploy after Terraform, before anything
    // reaches the cluster.
    let vars_file = "infrastructure/terraform/terraform.tfvars.json";
    let vars = std::fs::read_to_string(repo.path().join(vars_file)).expect("vars");
    repo.write(
        vars_file,
        &vars.replace("127.0.0.1:1/blog", "https://registry.example/blog/"),
    );
    repo.commit("a registry URL, not a prefix");
    let deploy = run(&repo, tmp.path(), &["deploy", "staging"]);
    assert_eq!(deploy.code, 1, "{}", deploy.all());
    assert!(
        deploy.stderr.contains("Terraform output `registry_url`")
            && deploy.stderr.contains("config/staging.yaml:")
            && deploy.stderr.contains("not an image repository prefix"),
        "{}",
        deploy.all()
    );
    let namespaces: kube::Api<Namespace> = kube::Api::all(cluster.client().await);
    assert!(namespaces.get_opt(&ns).await.expect("read").is_none());

    // A literal token is refused at its line, without repeating it.
    repo.write(
        "config/staging.yaml",
        &format!(
            "cluster:\n  namespace: {ns}\n  server: ${{terraform.endpoint}}\n  token: {TOKEN}\n"
        ),
    );
    let validate = run(&repo, tmp.path(), &["validate", "staging"]);
    assert_ne!(validate.code, 0, "{}", validate.all());
    assert!(
        validate.all().contains("config/staging.yaml:4:10")
            && validate.all().contains("sensitive Terraform output"),
        "{}",
        validate.all()
    );
    for output in [&drift, &deploy, &validate] {
        assert!(
            !output.all().contains(&token) && !output.all().contains(TOKEN),
            "{}",
            output.all()
        );
    }

    // A cluster the outputs name that does not answer: the preflight after Terraform says so,
    // naming the outputs, and nothing is deployed.
    let port = crate::support::registry::free_port();
    let dead = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster: {{server: 'http://127.0.0.1:{port}'}}\nusers:\n- name: u\n  user: {{token: {TOKEN}}}\ncontexts:\n- name: dead\n  context: {{cluster: dead, user: u}}\ncurrent-context: dead\n"
    );
    repo.write(
        vars_file,
        &serde_json::json!({ "kubeconfig": dead, "registry": "127.0.0.1:1/blog" }).to_string(),
    );
    repo.write(
        "config/staging.yaml",
        &format!("cluster:\n  namespace: {ns}\n  kubeconfig: ${{terraform.kubeconfig}}\nregistry: ${{terraform.registry_url}}\n"),
    );
    repo.commit("a cluster that does not answer");
    let unreachable = run(&repo, tmp.path(), &["deploy", "staging"]);
    assert_eq!(unreachable.code, 1, "{}", unreachable.all());
    assert!(
        unreachable
            .stderr
            .contains("preflight of environment `staging` failed")
            && unreachable
                .stderr
                .contains("the cluster comes from the Terraform output(s) `kubeconfig`"),
        "{}",
        unreachable.all()
    );
    assert!(!unreachable.all().contains(TOKEN), "{}", unreachable.all());
    // Its destroy cannot reach the cluster either: it says how to destroy Terraform alone.
    let destroy = run(&repo, tmp.path(), &["destroy", "staging", "--yes"]);
    assert_eq!(destroy.code, 1, "{}", destroy.all());
    assert!(
        destroy.stderr.contains(
            "`gitship destroy staging --skip-kubernetes` destroys only its Terraform resources"
        ),
        "{}",
        destroy.all()
    );
    let skipped = run(
        &repo,
        tmp.path(),
        &[
            "-o",
            "json",
            "destroy",
            "staging",
            "--yes",
            "--skip-kubernetes",
        ],
    );
    assert_eq!(skipped.code, 0, "{}", skipped.all());
    let report: serde_json::Value = serde_json::from_str(&skipped.stdout).expect("destroy JSON");
    for step in report["steps"].as_array().expect("steps") {
        let expected = if step["step"] == "terraform" {
            "done"
        } else {
            "skipped"
        };
        assert_eq!(step["outcome"], expected, "{step}");
    }
    assert!(!skipped.all().contains(TOKEN), "{}", skipped.all());

    // An output the module does not declare is named by `validate` at its line.
    repo.write(
        "config/staging.yaml",
        &format!("cluster:\n  namespace: {ns}\n  kubeconfig: ${{terraform.cluster_config}}\nregistry: ${{terraform.registry_url}}\n"),
    );
    let validate = run(&repo, tmp.path(), &["validate", "staging"]);
    assert_ne!(validate.code, 0, "{}", validate.all());
    assert!(
        validate.all().contains("config/staging.yaml:3:15")
            && validate.all().contains("`cluster_config`"),
        "{}",
        validate.all()
    );

    // A token from an output not declared sensitive: a plan would print it.
    repo.write(
        "infrastructure/terraform/main.tf",
        &MODULE.replace(
            "output \"token\" {\n  value     = terraform_data.token.output\n  sensitive = true\n}",
            "output \"token\" {\n  value = terraform_data.token.output\n}",
        ),
    );
    repo.write(
        "config/staging.yaml",
        &format!("cluster:\n  namespace: {ns}\n  server: ${{terraform.endpoint}}\n  token: ${{terraform.token}}\nregistry: ${{terraform.registry_url}}\n"),
    );
    let validate = run(&repo, tmp.path(), &["validate", "staging"]);
    assert_ne!(validate.code, 0, "{}", validate.all());
    assert!(
        validate.all().contains("config/staging.yaml:4:10")
            && validate
                .all()
                .contains("which is not declared `sensitive = true`"),
        "{}",
        validate.all()
    );
}
