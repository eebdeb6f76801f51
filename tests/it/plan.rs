//! Integration tests: `plan`, `diff`, `drift` and `deploy --plan`, through the built CLI, against
//! kubesim (the `--sandbox` one, or one started here and reached with `--kubeconfig`, so the real
//! `kubectl` can change it) and the real `terraform` binary.

use std::path::Path;
use std::process::Command;

use gitship::facade::plan::{
    DriftKind, ObjectAction, ObjectChange, ObjectRef, Plan, ResourceAction,
};

use crate::support::cluster::TestCluster;
use crate::support::repo::{Repo, Run};
use crate::support::require_tool;

fn kubectl(kubeconfig: &Path, args: &[&str]) {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl");
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn kubernetes(plan: &Plan) -> &[ObjectChange] {
    plan.kubernetes
        .as_ref()
        .map(|k| k.objects.as_slice())
        .unwrap_or_default()
}

fn changed(plan: &Plan) -> Vec<&ObjectChange> {
    kubernetes(plan)
        .iter()
        .filter(|o| o.action != ObjectAction::Unchanged)
        .collect()
}

/// The real value of the example's database password, from `render` (which reads the
/// environment's Terraform state: the only output that shows Secret values).
fn rendered_password(repo: &Repo, env: &str, extra: &[&str]) -> String {
    let mut args = vec!["render", env];
    args.extend_from_slice(extra);
    let run = repo.ok(&args);
    let line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("POSTGRES_PASSWORD:"))
        .expect("the Secret has the password");
    let value = line
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .trim_matches('"')
        .to_string();
    assert!(value.len() >= 16, "a real password: {value}");
    value
}

/// The example in the sandbox: freshly deployed, it plans and drifts clean, and no output format
/// shows the Secret's value.
#[test]
fn sandbox_blog_freshly_deployed_plans_and_drifts_clean_and_never_shows_secrets() {
    if !require_tool("terraform", "version") {
        return;
    }
    let repo = Repo::example();
    let first = repo.gitship(&["plan", "production", "--sandbox", "--exit-code"]);
    assert_eq!(first.code, 2, "{}", first.all());
    assert!(
        first.stdout.contains("(known after apply)"),
        "{}",
        first.stdout
    );
    assert!(first.all().contains("SIMULATION") || first.all().contains("sandbox"));

    repo.ok(&["deploy", "production", "--sandbox"]);

    let clean = repo.gitship(&["plan", "production", "--sandbox", "--exit-code"]);
    assert_eq!(clean.code, 0, "{}", clean.all());
    let (code, plan) = repo.plan_json(&["production", "--sandbox", "--exit-code"]);
    assert_eq!(code, 0);
    assert!(!plan.has_changes(), "{plan:#?}");
    assert!(plan.terraform.as_ref().unwrap().resources.is_empty());
    assert_eq!(kubernetes(&plan).len(), 9);
    assert!(changed(&plan).is_empty());
    assert!(plan.sandbox);

    let (code, report) = repo.drift_json(&["production", "--sandbox"]);
    assert_eq!(code, 0, "{report:#?}");
    assert!(!report.drifted());
    let diff = repo.gitship(&["diff", "production", "--sandbox"]);
    assert_eq!(diff.code, 0, "{}", diff.all());

    // Secrets: the value is in the state (render shows it) but in no other output.
    let password = rendered_password(&repo, "production", &[]);
    let encoded = base64_of(&password);
    for format in ["human", "json", "markdown"] {
        for command in ["plan", "diff", "drift"] {
            let run = repo.gitship(&["-o", format, command, "production", "--sandbox"]);
            assert!(run.code == 0 || run.code == 2, "{}", run.all());
            let text = run.all();
            assert!(
                !text.contains(&password) && !text.contains(&encoded),
                "{command} -o {format} leaks the password"
            );
        }
    }
    let fresh_plan = repo.gitship(&["-o", "json", "plan", "development", "--sandbox"]);
    assert!(!fresh_plan.all().contains(&password));
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The example without apps (no registry here), its manifests pinned to fixed images, pointed at
/// a kubesim started by the test.
fn example_on(cluster: &TestCluster) -> Repo {
    let mut repo = Repo::example();
    std::fs::remove_dir_all(repo.path().join("apps")).expect("remove apps");
    repo.edit(
        "infrastructure/kubernetes/backend.yaml",
        "${images.backend}",
        "registry.local/blog/backend:1",
    );
    repo.edit(
        "infrastructure/kubernetes/frontend.yaml",
        "${images.frontend}",
        "registry.local/blog/frontend:1",
    );
    repo.edit(
        "config/production.yaml",
        "context: prod",
        "context: kubesim",
    );
    repo.edit(
        "config/production.yaml",
        "namespace: blog\n",
        &format!("namespace: {}\n", cluster.ns("blog")),
    );
    repo.commit("no apps; kubesim");
    repo.kubeconfig = Some(cluster.kubeconfig_path().to_path_buf());
    repo
}

/// The seed scenario: `kubectl scale` is drift naming the field, the values and the manager;
/// `plan` shows the update; a saved plan made before the change is refused as stale; a deploy
/// heals it; a plan from another commit is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scale_is_drift_until_the_next_deploy_and_stale_plans_are_refused() {
    if !require_tool("terraform", "version") || !require_tool("kubectl", "help") {
        return;
    }
    let cluster = TestCluster::start().await;
    let repo = example_on(&cluster);
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let ns = cluster.ns("blog");
    tokio::task::spawn_blocking(move || {
        repo.ok(&["deploy", "production"]);
        let clean = repo.gitship(&["plan", "production", "--exit-code"]);
        assert_eq!(clean.code, 0, "{}", clean.all());
        assert!(clean.stdout.contains("No changes"), "{}", clean.stdout);
        assert_eq!(repo.gitship(&["drift", "production"]).code, 0);

        let saved = repo.path().join(".gitship/before-scale.json");
        let saved = saved.to_string_lossy().into_owned();
        repo.ok(&["plan", "production", "--out", &saved]);

        kubectl(
            &kubeconfig,
            &[
                "-n",
                &ns,
                "scale",
                "deployment",
                "blog-backend",
                "--replicas=10",
            ],
        );
        let (code, report) = repo.drift_json(&["production"]);
        assert_eq!(code, 2);
        assert_eq!(report.kubernetes.len(), 1, "{report:#?}");
        let drifted = &report.kubernetes[0];
        assert_eq!(drifted.kind, DriftKind::Modified);
        assert_eq!(drifted.object.name, "blog-backend");
        assert_eq!(drifted.fields.len(), 1, "{drifted:#?}");
        let field = &drifted.fields[0];
        assert_eq!(field.path, "spec.replicas");
        assert_eq!(field.before.as_deref(), Some("10"));
        assert_eq!(field.after.as_deref(), Some("3"));
        assert_eq!(field.manager.as_deref(), Some("kubectl"), "{field:#?}");
        let human = repo.gitship(&["drift", "production"]);
        assert_eq!(human.code, 2);
        assert!(
            human.stdout.contains("spec.replicas") && human.stdout.contains("kubectl"),
            "{}",
            human.stdout
        );

        let (code, plan) = repo.plan_json(&["production", "--exit-code"]);
        assert_eq!(code, 2);
        let updates = changed(&plan);
        assert_eq!(updates.len(), 1, "{updates:#?}");
        assert_eq!(updates[0].action, ObjectAction::Update);
        assert_eq!(updates[0].fields[0].path, "spec.replicas");
        assert_eq!(updates[0].fields[0].before.as_deref(), Some("10"));
        assert_eq!(updates[0].fields[0].after.as_deref(), Some("3"));
        let diff = repo.gitship(&["diff", "production"]);
        assert_eq!(diff.code, 2, "{}", diff.all());

        // The plan saved before `kubectl scale` no longer matches the cluster.
        let stale = repo.gitship(&["deploy", "production", "--plan", &saved]);
        assert_eq!(stale.code, 1, "{}", stale.all());
        assert!(
            stale.stderr.contains("is stale")
                && stale
                    .stderr
                    .contains(&format!("Deployment {ns}/blog-backend changed")),
            "{}",
            stale.stderr
        );

        repo.ok(&["deploy", "production"]);
        let (code, report) = repo.drift_json(&["production"]);
        assert_eq!(code, 0, "{report:#?}");
        let (code, plan) = repo.plan_json(&["production", "--exit-code"]);
        assert_eq!(code, 0, "{plan:#?}");

        // A plan of an older commit is refused.
        let older = repo.path().join(".gitship/older.json");
        let older = older.to_string_lossy().into_owned();
        repo.ok(&["plan", "production", "--out", &older]);
        repo.edit("config/production.yaml", "log_level: warn", "log_level: info");
        repo.commit("log level");
        let stale = repo.gitship(&["deploy", "production", "--plan", &older]);
        assert_eq!(stale.code, 1);
        assert!(stale.stderr.contains("Git commit"), "{}", stale.stderr);

        // Ignore rules suppress expected drift; a deleted inventory object is drift.
        repo.ok(&["deploy", "production", "--plan", &{
            let p = repo.path().join(".gitship/new.json");
            let p = p.to_string_lossy().into_owned();
            repo.ok(&["plan", "production", "--out", &p]);
            p
        }]);
        kubectl(
            &kubeconfig,
            &[
                "-n",
                &ns,
                "scale",
                "deployment",
                "blog-backend",
                "--replicas=5",
            ],
        );
        kubectl(&kubeconfig, &["-n", &ns, "delete", "service", "blog-frontend"]);
        repo.edit(
            "config/production.yaml",
            "    - { manager: horizontal-pod-autoscaler, pointer: /spec/replicas }",
            "    - { manager: horizontal-pod-autoscaler, pointer: /spec/replicas }\n    - { kind: Deployment, name: blog-backend, pointer: /spec/replicas }",
        );
        repo.commit("ignore replicas");
        let (code, report) = repo.drift_json(&["production"]);
        assert_eq!(code, 2);
        assert_eq!(report.ignored, 1, "{report:#?}");
        assert_eq!(report.kubernetes.len(), 1, "{report:#?}");
        assert_eq!(report.kubernetes[0].kind, DriftKind::Deleted);
        assert_eq!(report.kubernetes[0].object.name, "blog-frontend");
        // The line `plan::Drifted` gives it, as the agent's status shows it too.
        let human = repo.gitship(&["drift", "production"]);
        assert!(
            human.stdout.contains(&format!(
                "- Service {ns}/blog-frontend (deleted: in the inventory, missing from the cluster)"
            )),
            "{}",
            human.all()
        );
    })
    .await
    .expect("test body");
}

/// A small repository: one Terraform resource driven by a var, an output, and a Deployment whose
/// replicas come from `values`.
fn small_repo() -> Repo {
    let dir = tempfile::tempdir().expect("temp");
    let repo = Repo {
        dir,
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "infrastructure/terraform/main.tf",
        r#"variable "size" { type = number }
variable "name" { type = string }
resource "terraform_data" "database" { input = { size = var.size } }
output "database_name" { value = var.name }
output "token" {
  value     = "s3cr3t-${var.name}-token"
  sensitive = true
}
"#,
    );
    repo.write(
        "infrastructure/kubernetes/app.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: ${values.replicas}
  selector:
    matchLabels: { app: web }
  template:
    metadata:
      labels: { app: web }
    spec:
      containers:
        - name: web
          image: registry.local/web:1
          env:
            - { name: DATABASE, value: "${terraform.database_name}" }
---
apiVersion: v1
kind: Secret
metadata:
  name: token
stringData:
  token: ${terraform.token}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  name: ${terraform.database_name}
"#,
    );
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: web\nterraform:\n  vars:\n    size: 10\n    name: blog\nvalues:\n  replicas: 2\n",
    );
    repo.git(&["init", "-q"]);
    repo.commit("small");
    repo
}

/// Changing a value and a Terraform var: exactly one Kubernetes and one Terraform update.
#[test]
fn a_value_and_a_terraform_var_give_one_update_per_layer() {
    if !require_tool("terraform", "version") {
        return;
    }
    let repo = small_repo();
    repo.deploy("staging", &["--sandbox"]);
    let (code, plan) = repo.plan_json(&["staging", "--sandbox", "--exit-code"]);
    assert_eq!(code, 0, "{plan:#?}");

    repo.edit("config/staging.yaml", "replicas: 2", "replicas: 4");
    repo.edit("config/staging.yaml", "size: 10", "size: 20");
    repo.commit("bigger");
    let (code, plan) = repo.plan_json(&["staging", "--sandbox", "--exit-code"]);
    assert_eq!(code, 2);
    let checks: Vec<&str> = plan.preflight.iter().map(|c| c.check.as_str()).collect();
    assert_eq!(checks, ["cluster", "namespace", "terraform"], "{plan:#?}");
    assert!(plan.preflight.iter().all(|check| check.ok));
    let updates = changed(&plan);
    assert_eq!(updates.len(), 1, "{updates:#?}");
    assert_eq!(updates[0].action, ObjectAction::Update);
    assert_eq!(updates[0].object.name, "web");
    let terraform = plan.terraform.as_ref().expect("terraform part");
    assert_eq!(terraform.resources.len(), 1, "{terraform:#?}");
    assert_eq!(terraform.resources[0].action, ResourceAction::Update);
    assert_eq!(terraform.resources[0].address, "terraform_data.database");

    // Not deployed yet: Git differs from what runs, in both layers.
    let (code, report) = repo.drift_json(&["staging", "--sandbox"]);
    assert_eq!(code, 2);
    assert_eq!(report.terraform.len(), 1, "{report:#?}");
    assert_eq!(report.terraform[0].address, "terraform_data.database");
    assert_eq!(report.kubernetes.len(), 1, "{report:#?}");
    assert_eq!(report.kubernetes[0].fields[0].path, "spec.replicas");
    assert_eq!(report.kubernetes[0].fields[0].after.as_deref(), Some("4"));

    let drift_markdown = repo.gitship(&["-o", "markdown", "drift", "staging", "--sandbox"]);
    assert_eq!(drift_markdown.code, 2);
    check_markdown(&drift_markdown.stdout);
    snapshot(
        "drift_before_deploy",
        &repo.gitship(&["drift", "staging", "--sandbox"]),
        repo.path(),
    );
    snapshot(
        "plan_one_update_per_layer",
        &repo.gitship(&["plan", "staging", "--sandbox", "--exit-code"]),
        repo.path(),
    );

    let markdown = repo.gitship(&["-o", "markdown", "plan", "staging", "--sandbox"]);
    assert_eq!(markdown.code, 0);
    check_markdown(&markdown.stdout);
    for run in [
        &markdown,
        &repo.gitship(&["plan", "staging", "--sandbox"]),
        &repo.gitship(&["-o", "json", "plan", "staging", "--sandbox"]),
        &repo.gitship(&["-o", "json", "drift", "staging", "--sandbox"]),
    ] {
        assert!(!run.all().contains("s3cr3t"), "{}", run.all());
    }

    // Saved plans apply exactly what they say.
    let saved = repo.path().join(".gitship/p.json");
    let saved = saved.to_string_lossy().into_owned();
    repo.ok(&["plan", "staging", "--sandbox", "--out", &saved]);
    repo.ok(&["deploy", "staging", "--sandbox", "--plan", &saved]);
    let (code, plan) = repo.plan_json(&["staging", "--sandbox", "--exit-code"]);
    assert_eq!(code, 0, "{plan:#?}");
    // Terraform refuses its planfile once the state moved on.
    let stale = repo.gitship(&["deploy", "staging", "--sandbox", "--plan", &saved]);
    assert_eq!(stale.code, 1, "{}", stale.all());
    assert!(stale.all().contains("stale"), "{}", stale.all());

    // `diff` includes what a deploy would prune.
    repo.edit(
        "infrastructure/kubernetes/app.yaml",
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  name: ${terraform.database_name}\n",
        "",
    );
    repo.commit("drop settings");
    let diff = repo.gitship(&["-o", "json", "diff", "staging", "--sandbox"]);
    assert_eq!(diff.code, 2, "{}", diff.all());
    let diff: Plan = serde_json::from_str(&diff.stdout).expect("diff JSON");
    let pruned: Vec<_> = changed(&diff);
    assert_eq!(pruned.len(), 1, "{pruned:#?}");
    assert_eq!(pruned[0].action, ObjectAction::Prune);
    assert_eq!(pruned[0].object.name, "settings");
    assert!(diff.terraform.is_none());

    // `render` reads the real state.
    let rendered = repo.ok(&["render", "staging"]);
    assert!(
        rendered.stdout.contains("value: blog"),
        "{}",
        rendered.stdout
    );
}

/// `render` before the first apply names the output that has no value yet.
#[test]
fn render_before_apply_names_the_missing_output() {
    if !require_tool("terraform", "version") {
        return;
    }
    let repo = small_repo();
    let run = repo.gitship(&["render", "staging"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("terraform.database_name") && run.stderr.contains("no value yet"),
        "{}",
        run.stderr
    );
}

/// Markdown for a pull request: balanced `<details>` and fences, under the size limit even for a
/// 2,000-object change, and it says what was cut.
#[test]
fn markdown_of_a_huge_change_is_balanced_and_bounded() {
    let mut plan = Plan::new(
        "production",
        gitship::facade::plan::GitInfo {
            sha: "abc".into(),
            dirty: false,
        },
        false,
    );
    let objects = (0..2000)
        .map(|i| ObjectChange {
            object: ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("blog".into()),
                name: format!("config-{i}"),
            },
            action: ObjectAction::Update,
            source: Some(format!("infrastructure/kubernetes/many.yaml:{}", i * 6 + 1)),
            fields: vec![gitship::facade::plan::FieldChange::new(
                "data.value",
                Some(format!("old-{i}")),
                Some(format!("new-{i}")),
            )],
            diff: Some(gitship::facade::plan::unified_diff(
                &format!("data.value: old-{i}\n"),
                &format!("data.value: new-{i}\n"),
                "live",
                "git",
            )),
        })
        .collect();
    plan.kubernetes = Some(gitship::facade::plan::KubernetesPart {
        objects,
        hooks: Vec::new(),
    });
    let text = gitship::facade::plan::markdown::render_plan(
        &plan,
        gitship::facade::plan::report::MARKDOWN_LIMIT,
    );
    assert!(text.len() < 65_000, "{} chars", text.len());
    assert!(text.contains("config-0"));
    assert!(
        text.to_lowercase().contains("truncated") || text.to_lowercase().contains("omitted"),
        "says what was cut"
    );
    check_markdown(&text);
}

/// Snapshot exit code, stdout and stderr, with commits and temp paths filtered.
fn snapshot(name: &str, run: &Run, temp: &Path) {
    let text = format!(
        "exit: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        run.code, run.stdout, run.stderr
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(true);
    let canonical = temp.canonicalize().unwrap_or_else(|_| temp.to_path_buf());
    for path in [canonical.as_path(), temp] {
        let escaped: String = path
            .display()
            .to_string()
            .chars()
            .flat_map(|c| {
                let special = "\\.+*?()|[]{}^$".contains(c);
                special.then_some('\\').into_iter().chain([c])
            })
            .collect();
        settings.add_filter(&escaped, "[TEMP]");
    }
    settings.add_filter(r"\b[0-9a-f]{40}\b", "[SHA]");
    settings.add_filter(r"\b[0-9a-f]{12}\b", "[SHA]");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// Parse with pulldown-cmark: fences closed, `<details>` opened as often as closed.
fn check_markdown(text: &str) {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut open_fences = 0i64;
    let mut html = String::new();
    for event in Parser::new(text) {
        match event {
            Event::Start(Tag::CodeBlock(_)) => open_fences += 1,
            Event::End(TagEnd::CodeBlock) => open_fences -= 1,
            Event::Html(h) | Event::InlineHtml(h) => html.push_str(&h),
            _ => {}
        }
    }
    assert_eq!(open_fences, 0);
    assert_eq!(
        html.matches("<details>").count(),
        html.matches("</details>").count(),
        "{text}"
    );
    // An unclosed fence would swallow the rest of the document into one code block.
    assert_eq!(text.matches("```").count() % 2, 0);
}

/// The first image builder (docker, podman, buildah) that works here; `None` after a loud SKIP
/// line (a failure under `GITSHIP_REQUIRE_TOOLS=1`) when none does.
pub(crate) fn working_builder() -> Option<&'static str> {
    let builder = ["docker", "podman", "buildah"].into_iter().find(|tool| {
        Command::new(tool)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if builder.is_none() {
        assert!(
            !crate::support::tools_required(),
            "no image builder (docker, podman, buildah) works"
        );
        eprintln!("\n*** SKIPPED: no image builder works on this machine ***\n");
    }
    builder
}

/// `deploy --plan` of a plan that still had an image to build applies the manifests with the
/// digest the build pushed (`name:tag@sha256:...`), as a plain deploy renders them: `drift`
/// right after finds nothing, where it used to report tag vs digest until the next deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_deploy_pins_the_image_it_built_by_digest() {
    let Some(registry) = crate::support::registry::TestRegistry::start() else {
        return;
    };
    if working_builder().is_none() {
        return;
    }
    let cluster = TestCluster::start().await;
    let ns = cluster.ns("web");
    let repo = Repo::web_app_in(
        cluster.kubeconfig_path(),
        &ns,
        &registry.address,
        "<h1>saved</h1>\n",
    );
    let repo = tokio::task::spawn_blocking(move || {
        let saved = repo.path().join(".gitship/build.json");
        let saved = saved.to_string_lossy().into_owned();
        let (_, plan) = repo.plan_json(&["staging", "--out", &saved]);
        assert_eq!(plan.images.len(), 1, "{plan:#?}");
        assert_eq!(
            plan.images[0].action,
            gitship::facade::plan::ImageAction::Build
        );
        repo.ok(&["deploy", "staging", "--plan", &saved]);
        let drift = repo.gitship(&["drift", "staging"]);
        assert_eq!(
            drift.code,
            0,
            "no drift after `deploy --plan`: {}",
            drift.all()
        );
        repo
    })
    .await
    .expect("plan, deploy, drift");

    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(cluster.client().await, &ns);
    let live = configmaps.get("web").await.expect("ConfigMap web");
    let image = live
        .data
        .and_then(|mut data| data.remove("image"))
        .expect("the image reference");
    let tags = registry.tags("blog/web");
    assert_eq!(tags.len(), 1, "one image pushed: {tags:?}");
    let (digest, _) = registry
        .manifest("blog/web", &tags[0])
        .expect("the pushed manifest");
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(
        image,
        format!("{}/blog/web:{}@{digest}", registry.address, tags[0]),
        "the live image is pinned by the digest the registry holds"
    );
    // The deploy record names the same reference.
    tokio::task::spawn_blocking(move || {
        let history = repo.ok(&["history", "staging", "-o", "json"]);
        assert!(history.stdout.contains(&image), "{}", history.stdout);
    })
    .await
    .expect("history");
}

/// Images against a real registry: `plan` says `build` (and why) while the tag is missing, never
/// builds; once the image is pushed it says `reuse` and the manifests are pinned by digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_planned_against_a_real_registry_without_building() {
    let Some(registry) = crate::support::registry::TestRegistry::start() else {
        return;
    };
    let Some(builder) = working_builder() else {
        return;
    };
    let cluster = TestCluster::start().await;
    let repo = Repo::web_app_in(
        cluster.kubeconfig_path(),
        &cluster.ns("web"),
        &registry.address,
        "<h1>plan</h1>\n",
    );
    let root = repo.path().to_path_buf();
    let repo = tokio::task::spawn_blocking(move || {
        let (code, plan) = repo.plan_json(&["staging", "--exit-code"]);
        assert_eq!(code, 2);
        assert_eq!(plan.images.len(), 1);
        assert_eq!(
            plan.images[0].action,
            gitship::facade::plan::ImageAction::Build
        );
        assert!(
            plan.images[0]
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("missing"),
            "{plan:#?}"
        );
        repo
    })
    .await
    .expect("first plan");
    assert!(
        registry.tags("blog/web").is_empty(),
        "plan never builds or pushes"
    );

    // A saved plan builds and pushes what it said it would build, under the planned tag.
    let repo = tokio::task::spawn_blocking(move || {
        let saved = repo.path().join(".gitship/images.json");
        let saved = saved.to_string_lossy().into_owned();
        repo.ok(&["plan", "staging", "--out", &saved]);
        repo.ok(&["deploy", "staging", "--plan", &saved]);
        repo
    })
    .await
    .expect("deploy");
    let source = gitship::facade::repo::Repository::open(root.clone()).expect("repository");
    let planned_tag =
        gitship::facade::image::image_refs(&source, &source.load_env("staging").expect("config"))
            .expect("image refs")["web"]
            .tag
            .clone();
    assert_eq!(registry.tags("blog/web"), vec![planned_tag]);

    let config = source.load_env("staging").expect("config");
    let references = gitship::facade::image::image_refs(&source, &config).expect("image refs");
    let reference = &references["web"];
    let requests = vec![gitship::facade::image::BuildRequest {
        app: source.app("web").expect("app").clone(),
        image_repository: reference.repository.clone(),
        tag: reference.tag.clone(),
        revision: "0".repeat(40),
        source: "test".into(),
    }];
    let options = gitship::facade::image::BuildOptions {
        builder: Some(builder.to_string()),
        ..gitship::facade::image::BuildOptions::default()
    };
    let printer = gitship_foundation::output::Printer {
        quiet: true,
        ..gitship_foundation::output::Printer::plain(
            gitship_foundation::output::OutputFormat::Human,
        )
    };
    let built = gitship::facade::image::build_images(
        &requests,
        &options,
        &gitship::facade::image::Registry::new(),
        &printer,
    )
    .await
    .expect("build");
    let digest = built[0].digest.clone();
    let local = format!("{}:{}", built[0].repository, built[0].tag);

    tokio::task::spawn_blocking(move || {
        let (_, plan) = repo.plan_json(&["staging"]);
        assert_eq!(
            plan.images[0].action,
            gitship::facade::plan::ImageAction::Reuse
        );
        assert!(plan.images[0].reference.ends_with(&digest), "{plan:#?}");
        // The saved plan's deploy applied the image pinned by the digest it pushed, which is
        // how this plan renders it: nothing to change.
        let pod = &kubernetes(&plan)[0];
        assert_eq!(pod.action, ObjectAction::Unchanged, "{pod:#?}");
    })
    .await
    .expect("second plan");
    let _ = Command::new(builder).args(["rmi", &local]).output();
}

/// A repository whose Terraform apply fails once `fail` is set (a provisioner that exits 3 runs
/// when the resource is replaced), with a ConfigMap that shows which commit was applied.
fn failing_apply_repo() -> Repo {
    let dir = tempfile::tempdir().expect("temp");
    let repo = Repo {
        dir,
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "infrastructure/terraform/main.tf",
        r#"variable "fail" { type = bool }
resource "terraform_data" "migrate" {
  triggers_replace = [var.fail]
  provisioner "local-exec" {
    command = var.fail ? "exit 3" : "true"
  }
}
output "mode" { value = var.fail ? "failing" : "fine" }
"#,
    );
    repo.write(
        "infrastructure/kubernetes/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  value: ${values.value}\n  mode: ${terraform.mode}\n",
    );
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: web\nterraform:\n  vars:\n    fail: false\nvalues:\n  value: a\n",
    );
    repo.git(&["init", "-q"]);
    repo.commit("fine");
    repo
}

/// One pipeline: a saved plan whose deploy fails leaves the sandbox exactly as it was, as a plain
/// deploy that fails does.
#[test]
fn a_failed_saved_plan_deploy_leaves_the_sandbox_as_it_was() {
    if !require_tool("terraform", "version") {
        return;
    }
    let repo = failing_apply_repo();
    repo.ok(&["deploy", "staging", "--sandbox"]);
    let state_file = repo.path().join(".gitship/sandbox/staging.json");
    // The simulated cluster's objects (its resourceVersion counter moves with the deploy lock's
    // Lease, which is taken and released around Terraform).
    let objects = || -> serde_json::Value {
        let text = std::fs::read_to_string(&state_file).expect("sandbox state");
        let state: serde_json::Value = serde_json::from_str(&text).expect("sandbox state JSON");
        state["objects"].clone()
    };
    let before = objects();

    repo.edit("config/staging.yaml", "fail: false", "fail: true");
    repo.edit("config/staging.yaml", "value: a", "value: b");
    repo.commit("failing");
    let saved = repo.path().join(".gitship/failing.json");
    let saved = saved.to_string_lossy().into_owned();
    repo.ok(&["plan", "staging", "--sandbox", "--out", &saved]);

    let failed = repo.gitship(&["deploy", "staging", "--sandbox", "--plan", &saved]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    assert!(failed.stderr.contains("error:"), "{}", failed.all());
    assert!(
        objects() == before,
        "a failed `deploy --plan --sandbox` changed the sandbox"
    );
    let plain = repo.gitship(&["deploy", "staging", "--sandbox"]);
    assert_eq!(plain.code, 1, "{}", plain.all());
    assert!(
        objects() == before,
        "a failed `deploy --sandbox` changed the sandbox"
    );
    // The cluster still runs `a`: Git's `b` is drift, never applied.
    let (_, report) = repo.drift_json(&["staging", "--sandbox"]);
    let value = report
        .kubernetes
        .iter()
        .flat_map(|object| &object.fields)
        .find(|field| field.path == "data.value")
        .unwrap_or_else(|| panic!("no drift of data.value: {report:#?}"));
    assert_eq!(value.before.as_deref(), Some("a"), "{report:#?}");
    assert_eq!(value.after.as_deref(), Some("b"), "{report:#?}");
}

/// One pipeline: `deploy --plan` whose image build fails gives the same error and hint as a plain
/// `deploy` (here: the registry went away between the plan and the deploy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_deploy_with_a_failing_build_shows_the_plain_deploys_hint() {
    let Some(registry) = crate::support::registry::TestRegistry::start() else {
        return;
    };
    let cluster = TestCluster::start().await;
    let ns = cluster.ns("web");
    let repo = Repo::web_app_in(
        cluster.kubeconfig_path(),
        &ns,
        &registry.address,
        "<h1>hint</h1>\n",
    );
    let address = registry.address.clone();
    let repo = tokio::task::spawn_blocking(move || {
        let saved = repo.path().join(".gitship/web.json");
        let saved = saved.to_string_lossy().into_owned();
        repo.ok(&["plan", "staging", "--out", &saved]);
        (repo, saved)
    })
    .await
    .expect("plan");
    drop(registry);
    tokio::task::spawn_blocking(move || {
        let (repo, saved) = repo;
        let hint = |run: &Run| {
            run.stderr
                .lines()
                .find(|line| line.starts_with("hint: "))
                .map(str::to_string)
        };
        // Preflight finds the registry gone; without preflight, the image stage does.
        for extra in [&[][..], &["--skip-preflight"]] {
            let mut with_plan = vec!["deploy", "staging", "--plan", &saved];
            with_plan.extend_from_slice(extra);
            let from_plan = repo.gitship(&with_plan);
            assert_eq!(from_plan.code, 1, "{}", from_plan.all());
            let mut without = vec!["deploy", "staging"];
            without.extend_from_slice(extra);
            let plain = repo.gitship(&without);
            assert_eq!(plain.code, 1, "{}", plain.all());
            let expected = hint(&plain).unwrap_or_else(|| panic!("no hint:\n{}", plain.all()));
            assert!(expected.contains(&address), "{}", plain.all());
            assert_eq!(hint(&from_plan), Some(expected), "{}", from_plan.all());
        }
    })
    .await
    .expect("deploys");
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let get = tokio::task::spawn_blocking(move || {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "configmap", "web", "-n", &ns])
            .output()
            .expect("kubectl")
    })
    .await
    .expect("kubectl");
    assert!(
        !get.status.success(),
        "nothing is applied when the build fails: {}",
        String::from_utf8_lossy(&get.stdout)
    );
}

/// Saved plans and Terraform's planfiles hold secrets: 0600 on every write, in 0700
/// directories; an existing readable file is made private, and a symlink is refused, neither
/// followed nor replaced (its target keeps its content; `writes.rs` has the other refusals).
#[test]
fn saved_plans_and_planfiles_are_private_whatever_was_there() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !require_tool("terraform", "version") {
        return;
    }
    let mode = |path: &Path| std::fs::symlink_metadata(path).expect("metadata").mode() & 0o777;
    let repo = small_repo();
    let out = repo.path().join(".gitship/out/plan.json");
    std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
    std::fs::write(&out, "old").expect("old plan");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out_text = out.to_string_lossy().into_owned();
    repo.ok(&["plan", "staging", "--sandbox", "--out", &out_text]);
    assert_eq!(mode(&out), 0o600, "the saved plan");
    let sidecar = repo.path().join(".gitship/out/plan.json.tfplan");
    assert_eq!(mode(&sidecar), 0o600, "the copied Terraform plan");
    let planfile = repo.path().join(".gitship/plans/staging.tfplan");
    assert_eq!(mode(&planfile), 0o600, "Terraform's own planfile");
    assert_eq!(mode(planfile.parent().expect("dir")), 0o700);

    let target = repo.path().join("innocent.txt");
    std::fs::write(&target, "keep me").expect("target");
    let link = repo.path().join(".gitship/out/link.json");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let link_text = link.to_string_lossy().into_owned();
    let refused = repo.gitship(&["plan", "staging", "--sandbox", "--out", &link_text]);
    assert_eq!(refused.code, 64, "{}", refused.all());
    assert!(
        refused.stderr.contains("is a symlink"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(&target).expect("target"), "keep me");
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink(),
        "the link is left as it was"
    );
    for secret_holder in [&out, &sidecar] {
        let bytes = std::fs::read(secret_holder).expect("read");
        assert!(!bytes.is_empty());
    }
}

/// A deleted inventory ConfigMap is visible: `drift` and the next `deploy` say it is missing and
/// what can no longer be pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_inventory_is_reported_by_drift_and_deploy() {
    let cluster = TestCluster::start().await;
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let ns = cluster.ns("web");
    let dir = tempfile::tempdir().expect("temp");
    let repo = Repo {
        dir,
        kubeconfig: Some(kubeconfig.clone()),
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "infrastructure/kubernetes/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    );
    repo.write(
        "config/staging.yaml",
        &format!("cluster:\n  context: kubesim\n  namespace: {ns}\n"),
    );
    repo.git(&["init", "-q"]);
    repo.commit("settings");
    tokio::task::spawn_blocking(move || {
        repo.ok(&["deploy", "staging"]);
        // The inventory alone: its copy stands in for it, and both commands say so.
        kubectl(
            &kubeconfig,
            &["-n", &ns, "delete", "configmap", "gitship-staging"],
        );
        let drift = repo.gitship(&["drift", "staging"]);
        assert!(
            drift.stderr.contains("read from its copy"),
            "{}",
            drift.all()
        );
        let deploy = repo.ok(&["deploy", "staging"]);
        assert!(
            deploy.stderr.contains("read from its copy"),
            "{}",
            deploy.all()
        );
        // The inventory and its copy: nothing to read, and what that costs is said.
        kubectl(
            &kubeconfig,
            &[
                "-n",
                &ns,
                "delete",
                "configmap",
                "gitship-staging",
                "gitship-staging.history",
            ],
        );
        let drift = repo.gitship(&["drift", "staging"]);
        assert!(
            drift
                .stderr
                .contains("the inventory ConfigMap `gitship-staging` is missing"),
            "{}",
            drift.all()
        );
        assert!(
            drift.stderr.contains("can no longer be pruned"),
            "{}",
            drift.all()
        );
        // A deploy would start a new history over running objects: refused without `--force`.
        let refused = repo.gitship(&["deploy", "staging"]);
        assert_eq!(refused.code, 1, "{}", refused.all());
        assert!(
            refused
                .stderr
                .contains("and its copy `gitship-staging.history` are gone")
                && refused.stderr.contains("--force"),
            "{}",
            refused.all()
        );
        let deploy = repo.ok(&["deploy", "staging", "--force"]);
        assert!(
            deploy.stderr.contains(
                "the inventory ConfigMap `gitship-staging` of environment `staging` is missing"
            ),
            "{}",
            deploy.all()
        );
        // The deploy wrote a new one: the next deploy is quiet about it.
        let again = repo.ok(&["deploy", "staging"]);
        assert!(!again.stderr.contains("is missing"), "{}", again.all());
    })
    .await
    .expect("deploys");
}

/// Every file under `dir` (recursively) with its mode.
fn files_below(dir: &Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(metadata) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if metadata.is_dir() {
                pending.push(path);
            } else if metadata.is_file() {
                found.push((path, metadata.mode() & 0o777));
            }
        }
    }
    found
}

/// The secret-leak test: a sensitive output deployed into a Secret never shows in any output
/// (deploy, plan in every format, diff, drift, render -o json, validate, `-vv` logs), and every
/// file under `.gitship/` that holds it is 0600.
#[test]
fn sensitive_values_leak_into_no_output_and_no_readable_file() {
    if !require_tool("terraform", "version") {
        return;
    }
    let secret = "s3cr3t-blog-token";
    let encoded = base64_of(secret);
    let repo = small_repo();
    let mut runs = vec![repo.ok(&["-vv", "deploy", "staging", "--sandbox"])];
    runs.push(repo.ok(&["-o", "json", "deploy", "staging", "--sandbox"]));
    repo.edit("config/staging.yaml", "replicas: 2", "replicas: 3");
    repo.commit("three");
    for args in [
        &["plan", "staging", "--sandbox"][..],
        &["-o", "json", "plan", "staging", "--sandbox"],
        &["-o", "markdown", "plan", "staging", "--sandbox"],
        &["-vv", "plan", "staging", "--sandbox"],
        &["diff", "staging", "--sandbox"],
        &["-o", "json", "diff", "staging", "--sandbox"],
        &["drift", "staging", "--sandbox"],
        &["-o", "json", "drift", "staging", "--sandbox"],
        &["-o", "markdown", "drift", "staging", "--sandbox"],
        &["-o", "json", "render", "staging"],
        &["validate"],
    ] {
        runs.push(repo.gitship(args));
    }
    for run in &runs {
        let all = run.all();
        assert!(!all.contains(secret), "leaked:\n{all}");
        assert!(!all.contains(&encoded), "leaked (base64):\n{all}");
    }
    let mut holders = 0;
    for (path, mode) in files_below(&repo.path().join(".gitship")) {
        let bytes = std::fs::read(&path).expect("read");
        let text = String::from_utf8_lossy(&bytes);
        if text.contains(secret) || text.contains(&encoded) {
            assert_eq!(mode, 0o600, "{} holds the secret", path.display());
            holders += 1;
        }
    }
    assert!(holders > 0, "the sandbox's state holds the Secret");
}

/// The first plan of an environment whose manifests use a Terraform output that only the apply
/// makes known (a quantity here): nothing is sent with the placeholder (a real server answers
/// 500 to a dry run of `memory: "(known after apply)"`), the object shows as Terraform shows it,
/// and after the deploy `plan` and `drift` are clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_with_outputs_unknown_until_apply_sends_no_placeholder_and_deploy_drifts_clean() {
    if !require_tool("terraform", "version") || !require_tool("kubectl", "help") {
        return;
    }
    let cluster = TestCluster::start().await;
    let ns = cluster.ns("quota");
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "infrastructure/terraform/main.tf",
        r#"resource "terraform_data" "size" { input = "2Gi" }
output "memory" { value = terraform_data.size.output }
"#,
    );
    repo.write(
        "infrastructure/kubernetes/quota.yaml",
        r#"apiVersion: v1
kind: ResourceQuota
metadata:
  name: compute
spec:
  hard:
    requests.memory: ${terraform.memory}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  memory: "${terraform.memory}"
  level: info
"#,
    );
    repo.write(
        "config/staging.yaml",
        &format!("cluster:\n  context: kubesim\n  namespace: {ns}\n"),
    );
    repo.git(&["init", "-q"]);
    repo.commit("quota");
    // The namespace exists, so a dry run would reach the body's validation.
    cluster.create_namespace(&ns).await;
    let mark = cluster.mark();
    let repo = tokio::task::spawn_blocking(move || {
        let (code, plan) = repo.plan_json(&["staging", "--exit-code"]);
        assert_eq!(code, 2, "{plan:#?}");
        let objects = kubernetes(&plan);
        assert_eq!(objects.len(), 2, "{plan:#?}");
        assert!(
            objects.iter().all(|o| o.action == ObjectAction::Create),
            "{plan:#?}"
        );
        let human = repo.gitship(&["plan", "staging"]);
        assert_eq!(human.code, 0, "{}", human.all());
        assert!(
            human.stdout.contains("ResourceQuota") && human.stdout.contains("(known after apply)"),
            "{}",
            human.stdout
        );
        repo
    })
    .await
    .expect("first plan");
    // The plan wrote nothing.
    let writes = cluster.writes_since(mark);
    assert!(writes.is_empty(), "{writes:?}");
    let after_plan = cluster.mark();
    tokio::task::spawn_blocking(move || {
        repo.ok(&["deploy", "staging"]);
        let (code, report) = repo.drift_json(&["staging"]);
        assert_eq!(code, 0, "drift right after the deploy: {report:#?}");
        let (code, plan) = repo.plan_json(&["staging", "--exit-code"]);
        assert_eq!(code, 0, "{plan:#?}");
    })
    .await
    .expect("deploy");
    assert!(
        !cluster.writes_since(after_plan).is_empty(),
        "the deploy is seen in the record of writes"
    );
}

/// A changed Secret value is shown as a change, never as its value: `plan`, `diff` and `drift`
/// print `data.password: <sensitive> (changed)` in every format.
#[test]
fn a_changed_secret_value_shows_as_changed_and_never_as_its_value() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write("config/staging.yaml", "cluster:\n  namespace: web\n");
    repo.write(
        "infrastructure/kubernetes/db.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: old-hunter2\n  user: blog\n",
    );
    repo.git(&["init", "-q"]);
    repo.commit("secret");
    repo.deploy("staging", &["--sandbox"]);
    repo.edit(
        "infrastructure/kubernetes/db.yaml",
        "password: old-hunter2",
        "password: new-hunter3",
    );
    repo.commit("rotate");
    let (code, plan) = repo.plan_json(&["staging", "--sandbox", "--exit-code"]);
    assert_eq!(code, 2);
    let updates = changed(&plan);
    assert_eq!(updates.len(), 1, "{updates:#?}");
    let fields = &updates[0].fields;
    assert_eq!(fields.len(), 1, "{fields:#?}");
    assert_eq!(fields[0].path, "data.password");
    assert!(fields[0].sensitive, "{fields:#?}");
    assert_eq!(fields[0].line(), "data.password: <sensitive> (changed)");
    for args in [
        &["plan", "staging", "--sandbox"][..],
        &["-o", "markdown", "plan", "staging", "--sandbox"],
        &["diff", "staging", "--sandbox"],
        &["drift", "staging", "--sandbox"],
        &["-o", "markdown", "drift", "staging", "--sandbox"],
    ] {
        let run = repo.gitship(args);
        assert!(
            run.stdout.contains("data.password: <sensitive> (changed)"),
            "{args:?}:\n{}",
            run.all()
        );
        for value in ["hunter", "aHVudGVy", "bmV3LWh1bnRlcjM", "b2xkLWh1bnRlcjI"] {
            assert!(
                !run.all().contains(value),
                "{args:?} shows {value}:\n{}",
                run.all()
            );
        }
    }
}

/// What the cluster would refuse is found before Terraform changes anything: a manifest of a
/// kind the cluster does not serve fails the deploy before `terraform apply`, so no half deploy
/// is left (the state stays empty).
#[test]
fn an_unknown_kind_fails_the_deploy_before_terraform_applies() {
    if !require_tool("terraform", "version") {
        return;
    }
    let repo = small_repo();
    repo.write(
        "infrastructure/kubernetes/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 1\n",
    );
    repo.commit("a widget");
    let run = repo.gitship(&["deploy", "staging", "--sandbox"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("Widget"), "{}", run.stderr);
    assert!(!run.all().contains("Apply complete"), "{}", run.all());
    let state = repo
        .path()
        .join("infrastructure/terraform/terraform.tfstate.d/staging/terraform.tfstate");
    let text = std::fs::read_to_string(&state).unwrap_or_default();
    assert!(
        !text.contains("terraform_data"),
        "Terraform applied:\n{text}"
    );
}

/// A saved plan deploys at another commit of the same tree (the `--no-ff` merge of exactly the
/// reviewed pull request: compare trees, not SHAs), recorded as that commit; a commit that
/// changes a file makes it stale, as before.
#[test]
fn a_saved_plan_deploys_at_a_merge_of_the_same_tree_and_not_after_a_change() {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write("config/staging.yaml", "cluster:\n  namespace: web\n");
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  title: reviewed\n",
    );
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("the pull request");
    let saved = repo.path().join(".gitship/pr.json");
    let saved = saved.to_string_lossy().into_owned();
    repo.ok(&["plan", "staging", "--sandbox", "--out", &saved]);
    // The merge: a new commit, the same files.
    repo.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "Merge pull request #7",
    ]);
    let merged = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo.path())
        .output()
        .expect("git rev-parse");
    let merged = String::from_utf8_lossy(&merged.stdout).trim().to_string();
    repo.ok(&["deploy", "staging", "--sandbox", "--plan", &saved]);
    let history = repo.ok(&["history", "staging", "--sandbox", "-o", "json"]);
    let history: serde_json::Value = serde_json::from_str(&history.stdout).expect("JSON");
    assert_eq!(history["records"][0]["sha"], merged.as_str(), "{history}");

    repo.ok(&["plan", "staging", "--sandbox", "--out", &saved]);
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  title: changed after review\n",
    );
    repo.commit("a change after the review");
    let stale = repo.gitship(&["deploy", "staging", "--sandbox", "--plan", &saved]);
    assert_eq!(stale.code, 1, "{}", stale.all());
    assert!(
        stale.stderr.contains("is stale") && stale.stderr.contains("made at Git commit"),
        "{}",
        stale.stderr
    );
}

/// A repository of one ConfigMap `site` (its `title`) and a Secret, environment `staging` in
/// `namespace` of the cluster reached as context `kubesim`.
fn site_repo(cluster: &TestCluster, namespace: &str, title: &str) -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "config/staging.yaml",
        &format!("cluster:\n  context: kubesim\n  namespace: {namespace}\n"),
    );
    repo.write(
        "infrastructure/kubernetes/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: s3cr3t-reviewed\n",
    );
    set_title(&repo, title);
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("site");
    repo
}

fn set_title(repo: &Repo, title: &str) {
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  title: {title}\n"
        ),
    );
}

/// `deploy --reviewed REPORT` (the Atlantis way): the pull request's redacted report (`plan
/// --report`, no Secret value in it) is applied after a merge of the same tree, said so; the
/// same tree in a changed world names the object and applies the plan made now, or refuses it
/// under `--require-reviewed` before any change; a moved tree is said so; a file that is no plan
/// report is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_reviewed_applies_the_reviewed_plan_or_says_how_it_differs() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let cluster = TestCluster::start().await;
    let ns = cluster.ns("reviewed");
    let repo = site_repo(&cluster, &ns, "one");
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        repo.ok(&["deploy", "staging"]);
        let report = repo.path().join(".gitship/reviewed.json");
        let report_arg = report.to_string_lossy().into_owned();
        let title = || {
            let (_, plan) = repo.plan_json(&["staging"]);
            plan
        };

        // The pull request: planned with its report; then merged (`--no-ff`: a new commit,
        // the same tree).
        set_title(&repo, "two");
        repo.commit("the pull request");
        let planned = repo.ok(&["plan", "staging", "--report", &report_arg]);
        let text = std::fs::read_to_string(&report).expect("report");
        assert!(!text.contains("s3cr3t"), "the report is redacted: {text}");
        let reviewed: Plan = serde_json::from_str(&text).expect("a plan report");
        assert!(reviewed.tree.is_some(), "{text}");
        assert!(
            planned.stderr.contains("wrote the plan's report"),
            "{}",
            planned.stderr
        );
        repo.git(&[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "Merge pull request #1",
        ]);
        let applied = repo.ok(&["deploy", "staging", "--reviewed", &report_arg]);
        assert!(
            applied.stderr.contains(&format!(
                "applying the plan reviewed in `{report_arg}`: the same tree"
            )),
            "{}",
            applied.stderr
        );
        assert!(!changed(&title()).iter().any(|c| c.object.name == "site"));

        // Reviewed, then someone changes the ConfigMap: the same tree, another world.
        set_title(&repo, "three");
        repo.commit("another pull request");
        repo.ok(&["plan", "staging", "--report", &report_arg]);
        kubectl(
            &kubeconfig,
            &[
                "-n",
                &ns,
                "patch",
                "configmap",
                "site",
                "--type=merge",
                "-p",
                r#"{"data":{"title":"by hand"}}"#,
            ],
        );
        let refused = repo.gitship(&[
            "deploy",
            "staging",
            "--reviewed",
            &report_arg,
            "--require-reviewed",
        ]);
        assert_eq!(refused.code, 1, "{}", refused.all());
        assert!(
            refused.stderr.contains("is not the plan reviewed in")
                && refused
                    .stderr
                    .contains(&format!("ConfigMap {ns}/site: update of data.title")),
            "{}",
            refused.stderr
        );
        let (_, now) = repo.plan_json(&["staging"]);
        let site = changed(&now)
            .into_iter()
            .find(|c| c.object.name == "site")
            .cloned();
        let site = site.expect("still to change: nothing was applied");
        assert_eq!(
            site.fields[0].before.as_deref(),
            Some("by hand"),
            "{site:#?}"
        );
        let fresh = repo.ok(&["deploy", "staging", "--reviewed", &report_arg]);
        assert!(
            fresh.stderr.contains("applying the plan made now")
                && fresh.stderr.contains(&format!("ConfigMap {ns}/site")),
            "{}",
            fresh.stderr
        );
        assert!(!changed(&title()).iter().any(|c| c.object.name == "site"));

        // A change after the review: the tree moved.
        set_title(&repo, "four");
        repo.commit("after the review");
        let moved = repo.ok(&["deploy", "staging", "--reviewed", &report_arg]);
        assert!(moved.stderr.contains("the tree moved"), "{}", moved.stderr);

        // Not a plan report: a clear error, nothing deployed.
        let saved = repo.path().join(".gitship/saved.json");
        let saved_arg = saved.to_string_lossy().into_owned();
        repo.ok(&["plan", "staging", "--out", &saved_arg]);
        let garbage = repo.path().join(".gitship/garbage.json");
        std::fs::write(&garbage, "not json").expect("write");
        let garbage = garbage.to_string_lossy().into_owned();
        for (file, says) in [
            (garbage.as_str(), "is not a plan report: line 1, column 2"),
            (
                saved_arg.as_str(),
                "is a saved plan (`plan --out`), not a plan report",
            ),
            ("/nonexistent/plan.json", "cannot read the reviewed plan"),
        ] {
            let bad = repo.gitship(&["deploy", "staging", "--reviewed", file]);
            assert_eq!(bad.code, 1, "{}", bad.all());
            assert!(bad.stderr.contains(says), "{}", bad.stderr);
            assert!(!bad.all().contains("s3cr3t"), "{}", bad.all());
        }
        let both = repo.gitship(&[
            "deploy",
            "staging",
            "--reviewed",
            &report_arg,
            "--plan",
            &saved_arg,
        ]);
        assert_eq!(both.code, 64, "{}", both.all());
    })
    .await
    .expect("test");
}

/// `deploy --reviewed` with a Terraform layer: the fresh plan's planfile is what is applied
/// (Terraform and Kubernetes both clean after), after a merge of the reviewed tree.
#[test]
fn deploy_reviewed_applies_the_fresh_terraform_plan_of_the_reviewed_tree() {
    if !require_tool("terraform", "version") {
        return;
    }
    let repo = small_repo();
    repo.deploy("staging", &["--sandbox"]);
    repo.edit("config/staging.yaml", "replicas: 2", "replicas: 4");
    repo.edit("config/staging.yaml", "size: 10", "size: 20");
    repo.commit("bigger");
    let report = repo.path().join(".gitship/reviewed.json");
    let report = report.to_string_lossy().into_owned();
    let planned = repo.gitship(&[
        "plan",
        "staging",
        "--sandbox",
        "--exit-code",
        "--report",
        &report,
    ]);
    assert_eq!(planned.code, 2, "{}", planned.all());
    repo.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "Merge pull request #2",
    ]);
    let applied = repo.ok(&["deploy", "staging", "--sandbox", "--reviewed", &report]);
    assert!(
        applied.stderr.contains("applying the plan reviewed in"),
        "{}",
        applied.stderr
    );
    let (code, plan) = repo.plan_json(&["staging", "--sandbox", "--exit-code"]);
    assert_eq!(code, 0, "Terraform and Kubernetes are applied: {plan:#?}");
}
