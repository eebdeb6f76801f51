//! Integration tests: the Terraform driver against the real `terraform` binary.
//!
//! Every test copies `tests/fixtures/terraform/basic` (only `terraform_data` resources, no
//! provider download) into a fresh repository in a temp dir, with two environments: `staging`
//! (workspace `staging`) and `production` (its own local state file through `-backend-config`).

use gitship_foundation::diagnostics::StageError as _;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gitship::facade::repo::config::{
    ClusterConfig, DeployConfig, DriftConfig, SpanMap, TerraformConfig,
};
use gitship::facade::repo::{EnvConfig, Layout, Repository};
use gitship::facade::terraform::{
    ChangeAction, DriftReport, InitOutcome, PlanMode, PlanSummary, StaticProblem, Terraform,
    TerraformError, TerraformSettings, check_static, redacted_outputs,
};
use gitship_foundation::diagnostics::Location;
use serde_json::{Value, json};

use crate::support::require_tool;

/// The sensitive variable's value: it must never appear in anything gitship produces.
const SECRET: &str = "correct-horse-battery-staple";

/// A throwaway repository holding the fixture module.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        let module_dir = root.join("infrastructure/terraform");
        std::fs::create_dir_all(&module_dir).unwrap();
        std::fs::create_dir_all(root.join("config")).unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/basic");
        for entry in std::fs::read_dir(&source).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, module_dir.join(path.file_name().unwrap())).unwrap();
        }
        Fixture { _dir: dir, root }
    }

    fn module_dir(&self) -> PathBuf {
        self.root.join("infrastructure/terraform")
    }

    fn repository(&self) -> Repository {
        Repository {
            root: self.root.clone(),
            layout: Layout {
                apps_dir: None,
                terraform_dir: Some(self.module_dir()),
                kubernetes_dir: None,
                config_dir: self.root.join("config"),
                terraform_binary: "terraform".to_string(),
                builder: None,
                kustomize_binary: None,
                helm_binary: None,
                exclude: Default::default(),
                bare_image_names: true,
                not_manifests: Vec::new(),
            },
            apps: Vec::new(),
            environments: BTreeMap::new(),
            skipped_configs: Vec::new(),
            manifests: Default::default(),
        }
    }

    /// The state file of an environment with a backend of its own.
    fn backend_state(&self, env: &str) -> PathBuf {
        self.root.join(format!("state/{env}.tfstate"))
    }

    /// An environment with a workspace of its own (`staging`, `production`).
    fn settings(&self, env: &str, vars: Value) -> TerraformSettings {
        self.environment(env, vars, false)
    }

    /// An environment with a backend of its own: `-backend-config path=state/<env>.tfstate`.
    fn settings_with_backend(&self, env: &str, vars: Value) -> TerraformSettings {
        self.environment(env, vars, true)
    }

    fn environment(&self, env: &str, vars: Value, own_backend: bool) -> TerraformSettings {
        let mut terraform = TerraformConfig {
            vars: vars.as_object().cloned().unwrap_or_default(),
            lock_timeout: Some(Duration::from_secs(0)),
            ..TerraformConfig::default()
        };
        if own_backend {
            std::fs::create_dir_all(self.root.join("state")).unwrap();
            terraform
                .backend_config
                .insert("path".into(), self.backend_state(env).display().to_string());
        } else {
            terraform.workspace = Some(env.to_string());
        }
        let file = self.root.join(format!("config/{env}.yaml"));
        let mut spans = SpanMap {
            file: file.clone(),
            keys: BTreeMap::new(),
        };
        spans.keys.insert("terraform".into(), (3, 1));
        spans.keys.insert("terraform.vars".into(), (4, 3));
        for (index, name) in terraform.vars.keys().enumerate() {
            spans
                .keys
                .insert(format!("terraform.vars.{name}"), (5 + index, 5));
        }
        let config = EnvConfig {
            name: env.to_string(),
            file,
            cluster: ClusterConfig {
                context: None,
                namespace: "blog".into(),
                kubeconfig: None,
                force_conflicts: true,
                from_terraform: None,
            },
            registry: None,
            registry_output: None,
            terraform,
            deploy: DeployConfig {
                timeout: Duration::from_secs(60),
                lock_timeout: Duration::from_secs(60),
                require_clean_tree: false,
                history: 10,
                reachable_from: None,
            },
            drift: DriftConfig::default(),
            agent: Default::default(),
            kubernetes: Default::default(),
            protected: false,
            values: json!({}),
            spans,
        };
        let mut settings = TerraformSettings::for_environment(&self.repository(), &config)
            .expect("terraform layer");
        settings.interrupt_grace = Duration::from_secs(20);
        settings
    }
}

fn vars(app_name: &str) -> Value {
    json!({"app_name": app_name, "db_password": SECRET})
}

async fn terraform(settings: TerraformSettings) -> Terraform {
    Terraform::new(settings).await.expect("terraform binary")
}

fn plan_file(settings: &TerraformSettings, name: &str) -> PathBuf {
    settings.data_dir.join(format!("{name}.tfplan"))
}

fn addresses(plan: &PlanSummary, action: ChangeAction) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| c.action == action)
        .map(|c| c.address.clone())
        .collect()
}

/// Everything gitship would show of a plan: human text and JSON.
fn renderings_of_plan(plan: &PlanSummary) -> String {
    format!(
        "{}\n{}",
        plan.render_human(),
        serde_json::to_string(plan).unwrap()
    )
}

fn renderings_of_drift(drift: &DriftReport) -> String {
    format!(
        "{}\n{}",
        drift.render_human(),
        serde_json::to_string(drift).unwrap()
    )
}

#[tokio::test]
async fn plan_apply_replan_update_and_separate_states() {
    if !require_tool("terraform", "version") {
        return;
    }
    let fixture = Fixture::new();
    let staging = fixture.settings("staging", vars("blog"));
    let driver = terraform(staging.clone()).await;

    // First plan: everything is created.
    let plan = driver
        .plan(PlanMode::Normal, &plan_file(&staging, "first"))
        .await
        .unwrap();
    assert!(plan.has_changes);
    assert_eq!(
        addresses(&plan, ChangeAction::Create),
        vec![
            "terraform_data.app",
            "terraform_data.database",
            "terraform_data.slow"
        ]
    );
    assert_eq!(plan.counts.add, 3);
    assert!(plan.output_changes.iter().any(|o| o.name == "app_url"));
    assert!(
        plan.render_human()
            .contains("+ terraform_data.app (create)"),
        "{}",
        plan.render_human()
    );

    // Apply exactly that plan; the outputs flow out typed.
    driver.apply(&plan.planfile).await.unwrap();
    let outputs = driver.outputs().await.unwrap();
    assert_eq!(
        outputs["app_url"].value,
        Some(json!("https://blog.example.test"))
    );
    assert_eq!(outputs["replicas"].value, Some(json!(1)));
    assert!(outputs["db_password"].sensitive);
    assert_eq!(
        outputs["db_password"].value,
        Some(json!(SECRET)),
        "outputs keep the real value for templates"
    );

    // Unchanged: no changes.
    let again = driver
        .plan(PlanMode::Normal, &plan_file(&staging, "second"))
        .await
        .unwrap();
    assert!(!again.has_changes, "{}", again.render_human());
    assert!(again.changes.is_empty());

    // A changed variable: an in-place update of the one resource, with the attribute shown.
    let changed = fixture.settings(
        "staging",
        json!({"app_name": "blog", "db_password": SECRET, "replicas": 3}),
    );
    let changed_driver = terraform(changed.clone()).await;
    let update = changed_driver
        .plan(PlanMode::Normal, &plan_file(&changed, "third"))
        .await
        .unwrap();
    assert!(update.has_changes);
    assert_eq!(
        addresses(&update, ChangeAction::Update),
        vec!["terraform_data.app"]
    );
    assert_eq!(update.changes.len(), 1, "{}", update.render_human());
    let human = update.render_human();
    assert!(human.contains("~ terraform_data.app (update)"), "{human}");
    assert!(human.contains("\"replicas\":3"), "{human}");
    assert!(
        update
            .output_changes
            .iter()
            .any(|o| o.name == "replicas" && o.action == ChangeAction::Update)
    );

    // A changed trigger: a replacement, with its reason.
    let replaced = fixture.settings(
        "staging",
        json!({"app_name": "blog", "db_password": SECRET, "slow_token": "rotated"}),
    );
    let replace = terraform(replaced.clone())
        .await
        .plan(PlanMode::Normal, &plan_file(&replaced, "fourth"))
        .await
        .unwrap();
    let slow = replace
        .changes
        .iter()
        .find(|c| c.address == "terraform_data.slow")
        .expect("slow changes");
    assert_eq!(slow.action, ChangeAction::Replace);
    assert_eq!(slow.replace_reasons, vec!["triggers_replace".to_string()]);
    assert!(
        replace
            .render_human()
            .contains("REPLACE because of triggers_replace")
    );

    // The other environment has its own state: everything is still to create there.
    let production = fixture.settings("production", vars("shop"));
    let production_driver = terraform(production.clone()).await;
    let production_plan = production_driver
        .plan(PlanMode::Normal, &plan_file(&production, "first"))
        .await
        .unwrap();
    assert_eq!(
        production_plan.counts.add,
        3,
        "{}",
        production_plan.render_human()
    );
    production_driver
        .apply(&production_plan.planfile)
        .await
        .unwrap();
    assert_eq!(
        production_driver.outputs().await.unwrap()["app_url"].value,
        Some(json!("https://shop.example.test"))
    );
    // ... and applying it did not touch staging's.
    assert_eq!(
        driver.outputs().await.unwrap()["app_url"].value,
        Some(json!("https://blog.example.test"))
    );
    for env in ["staging", "production"] {
        let state = fixture
            .module_dir()
            .join(format!("terraform.tfstate.d/{env}/terraform.tfstate"));
        assert!(state.is_file(), "{env} state in its own workspace");
    }
    assert_ne!(staging.data_dir, production.data_dir);
    assert!(staging.data_dir.ends_with(".gitship/terraform/staging"));
    assert_eq!(
        std::fs::read_to_string(staging.data_dir.join(".gitignore")).unwrap(),
        "*\n",
        "kept out of Git"
    );
}

#[tokio::test]
async fn a_backend_per_environment_keeps_states_apart() {
    if !require_tool("terraform", "version") {
        return;
    }
    let fixture = Fixture::new();
    std::fs::write(
        fixture.module_dir().join("backend.tf"),
        "terraform {\n  backend \"local\" {}\n}\n",
    )
    .unwrap();
    let mut outputs = Vec::new();
    for (env, app) in [("qa", "quality"), ("prod", "shop")] {
        let settings = fixture.settings_with_backend(env, vars(app));
        assert_eq!(
            settings.workspace, None,
            "the default workspace of a backend of its own"
        );
        let driver = terraform(settings.clone()).await;
        let plan = driver
            .plan(PlanMode::Normal, &plan_file(&settings, "first"))
            .await
            .unwrap();
        assert_eq!(plan.counts.add, 3, "{env}: {}", plan.render_human());
        driver.apply(&plan.planfile).await.unwrap();
        assert!(
            fixture.backend_state(env).is_file(),
            "{env} state at its backend path"
        );
        outputs.push(driver.outputs().await.unwrap()["app_url"].value.clone());
    }
    assert_eq!(
        outputs,
        vec![
            Some(json!("https://quality.example.test")),
            Some(json!("https://shop.example.test"))
        ]
    );
    assert!(
        !fixture.module_dir().join("terraform.tfstate").exists(),
        "no state in the module directory"
    );
    let qa = terraform(fixture.settings_with_backend("qa", vars("quality"))).await;
    let again = qa
        .plan(PlanMode::Normal, &fixture.root.join("again.tfplan"))
        .await
        .unwrap();
    assert!(!again.has_changes, "{}", again.render_human());
}

#[tokio::test]
async fn sensitive_values_appear_in_no_rendering() {
    if !require_tool("terraform", "version") {
        return;
    }
    let fixture = Fixture::new();
    let settings = fixture.settings("staging", vars("blog"));
    let progress_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = progress_lines.clone();
    let driver = terraform(settings.clone())
        .await
        .with_progress(Arc::new(move |line: &str| {
            sink.lock().unwrap().push(line.to_string())
        }));

    let mut shown = String::new();
    let plan = driver
        .plan(PlanMode::Normal, &plan_file(&settings, "first"))
        .await
        .unwrap();
    shown += &renderings_of_plan(&plan);
    driver.apply(&plan.planfile).await.unwrap();
    let outputs = driver.outputs().await.unwrap();
    shown += &redacted_outputs(&outputs).to_string();

    // Rotate the secret: the plan now changes a sensitive attribute and a sensitive output,
    // whose before and after values are both secrets.
    let rotated_secret = "tr0ub4dor-and-3";
    let rotated = fixture.settings(
        "staging",
        json!({"app_name": "blog", "db_password": rotated_secret}),
    );
    let rotated_driver = terraform(rotated.clone()).await;
    let rotation = rotated_driver
        .plan(PlanMode::Normal, &plan_file(&rotated, "rotate"))
        .await
        .unwrap();
    assert!(
        rotation
            .changes
            .iter()
            .any(|c| c.address == "terraform_data.database")
    );
    assert!(
        rotation
            .output_changes
            .iter()
            .any(|o| o.name == "db_password" && o.sensitive)
    );
    shown += &renderings_of_plan(&rotation);
    shown += &renderings_of_drift(&rotated_driver.drift().await.unwrap());
    shown += &renderings_of_drift(&driver.drift().await.unwrap());

    // Terraform's own error text passes through the redactor too.
    let broken = fixture.settings(
        "staging",
        json!({"app_name": "blog", "db_password": SECRET, "replicas": SECRET}),
    );
    let error = terraform(broken.clone())
        .await
        .plan(PlanMode::Normal, &plan_file(&broken, "broken"))
        .await
        .unwrap_err();
    shown += &gitship_foundation::diagnostics::render(
        &gitship_foundation::diagnostics::user_error(error),
    );
    shown += &progress_lines.lock().unwrap().join("\n");

    assert!(
        shown.contains("<sensitive>"),
        "the secret is shown as redacted: {shown}"
    );
    for secret in [SECRET, rotated_secret] {
        assert!(
            !shown.contains(secret),
            "secret `{secret}` leaked into:\n{shown}"
        );
    }
    assert!(
        !progress_lines.lock().unwrap().is_empty(),
        "apply reported progress"
    );
}

#[tokio::test]
async fn static_errors_name_variable_env_file_and_tf_file_before_terraform_runs() {
    let fixture = Fixture::new();
    // A binary that does not exist proves nothing ran: check_static never starts a process.
    let mut missing = fixture.settings("staging", json!({"app_nme": "blog"}));
    missing.binary = "/nonexistent/terraform".into();
    let error = check_static(&missing).unwrap_err();
    let TerraformError::Static { problems, .. } = &error else {
        panic!("expected a static error, got {error:?}")
    };
    let text = error.to_string();
    assert!(
        problems.iter().any(|p| matches!(p, StaticProblem::MissingVariable { name, declared_at, .. }
            if name == "app_name" && declared_at == &Location::new("infrastructure/terraform/variables.tf", 1, 1))),
        "{text}"
    );
    assert!(
        problems.iter().any(
            |p| matches!(p, StaticProblem::MissingVariable { name, .. } if name == "db_password")
        ),
        "{text}"
    );
    assert!(
        problems.iter().any(
            |p| matches!(p, StaticProblem::UndeclaredVariable { name, env_location, suggestion, .. }
            if name == "app_nme"
                && env_location == &Location::new("config/staging.yaml", 5, 5)
                && suggestion.as_deref() == Some("app_name"))
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "required variable `app_name` (declared at infrastructure/terraform/variables.tf:1:1)"
        ),
        "{text}"
    );
    assert!(
        text.contains("config/staging.yaml:4:3"),
        "missing variables point at `terraform.vars`: {text}"
    );
    assert!(
        text.contains("`app_nme` set at config/staging.yaml:5:5 is not declared"),
        "{text}"
    );
    assert!(text.contains("did you mean `app_name`?"), "{text}");

    // A syntax error: file and line.
    std::fs::write(
        fixture.module_dir().join("broken.tf"),
        "resource \"terraform_data\" \"x\" {\n  input = \n}\n",
    )
    .unwrap();
    let error = check_static(&fixture.settings("staging", vars("blog"))).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(
            "syntax error at infrastructure/terraform/broken.tf:2:11: invalid expression"
        ),
        "{text}"
    );

    // Through the driver with the real binary: the same error, and `init` never ran.
    if !require_tool("terraform", "version") {
        return;
    }
    let settings = fixture.settings("staging", vars("blog"));
    let driver = terraform(settings.clone()).await;
    let error = driver
        .plan(PlanMode::Normal, &plan_file(&settings, "never"))
        .await
        .unwrap_err();
    assert!(matches!(error, TerraformError::Static { .. }), "{error:?}");
    assert_eq!(driver.init_runs(), 0);
    assert!(!settings.data_dir.join("gitship-init.sha256").exists());
    assert!(
        error
            .hint()
            .is_some_and(|hint| hint.contains("`terraform.vars`"))
    );
    let rendered = gitship_foundation::diagnostics::render(
        &gitship_foundation::diagnostics::user_error(error),
    );
    assert!(
        rendered.starts_with("error: the Terraform module does not fit environment `staging`"),
        "{rendered}"
    );
}

#[tokio::test]
async fn terraform_diagnostics_keep_summary_detail_and_source_range() {
    if !require_tool("terraform", "version") {
        return;
    }
    let fixture = Fixture::new();
    // Valid HCL that Terraform rejects: a reference to an undeclared resource.
    std::fs::write(
        fixture.module_dir().join("extra.tf"),
        "output \"nope\" {\n  value = terraform_data.missing.output\n}\n",
    )
    .unwrap();
    let settings = fixture.settings("staging", vars("blog"));
    let error = terraform(settings.clone())
        .await
        .plan(PlanMode::Normal, &plan_file(&settings, "x"))
        .await
        .unwrap_err();
    let TerraformError::Diagnostics { diagnostics, .. } = &error else {
        panic!("expected diagnostics, got {error:?}")
    };
    let diagnostic = &diagnostics[0];
    assert_eq!(diagnostic.summary, "Reference to undeclared resource");
    assert!(!diagnostic.detail.is_empty());
    let range = diagnostic.range.as_ref().expect("source range");
    assert_eq!(range.file, Path::new("infrastructure/terraform/extra.tf"));
    assert_eq!(range.line, 2);
    let text = error.to_string();
    assert!(
        text.contains("at infrastructure/terraform/extra.tf:2:"),
        "{text}"
    );

    // A value of the wrong type: Terraform's diagnostic, pointed at the environment file.
    std::fs::remove_file(fixture.module_dir().join("extra.tf")).unwrap();
    let settings = fixture.settings(
        "staging",
        json!({"app_name": "blog", "db_password": SECRET, "replicas": "many"}),
    );
    let error = terraform(settings.clone())
        .await
        .plan(PlanMode::Normal, &plan_file(&settings, "y"))
        .await
        .unwrap_err();
    let TerraformError::Diagnostics { diagnostics, .. } = &error else {
        panic!("expected diagnostics, got {error:?}")
    };
    assert_eq!(diagnostics[0].summary, "Invalid value for input variable");
    assert!(
        diagnostics[0].detail.contains("var.replicas"),
        "{:?}",
        diagnostics[0]
    );
    // `replicas` is the third var written in the env file (line 5 + 2).
    assert_eq!(
        diagnostics[0].range,
        Some(Location::new("config/staging.yaml", 7, 5))
    );
}

#[tokio::test]
async fn a_held_state_lock_is_reported_with_id_holder_and_hint() {
    if !require_tool("terraform", "version") {
        return;
    }
    let fixture = Fixture::new();
    let settings = fixture.settings("staging", vars("blog"));
    let driver = terraform(settings.clone()).await;
    let plan = driver
        .plan(PlanMode::Normal, &plan_file(&settings, "first"))
        .await
        .unwrap();
    driver.apply(&plan.planfile).await.unwrap();

    // Another process holds the lock: a plain `terraform apply` stuck in a slow provisioner.
    let mut holder = raw_terraform(&settings)
        .args([
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-var=app_name=blog",
        ])
        .arg(format!("-var=db_password={SECRET}"))
        .args(["-var=slow_token=held", "-var=sleep_seconds=30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let lock_file = fixture
        .module_dir()
        .join("terraform.tfstate.d/staging/.terraform.tfstate.lock.info");
    wait_for(|| lock_file.exists(), Duration::from_secs(20));

    let error = driver
        .plan(PlanMode::Normal, &plan_file(&settings, "locked"))
        .await
        .unwrap_err();
    // Stop the holder like Ctrl-C would (its whole group, the provisioner's `sleep` too).
    let group = nix::unistd::Pid::from_raw(i32::try_from(holder.id()).unwrap());
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGINT);
    let _ = holder.wait();
    let TerraformError::StateLocked {
        lock, environment, ..
    } = &error
    else {
        panic!("expected a lock error, got {error:?}")
    };
    let lock = (**lock).clone();
    assert_eq!(environment, "staging");
    assert_eq!(lock.id.len(), 36, "a lock UUID: {lock:?}");
    assert!(
        lock.who.as_deref().is_some_and(|who| who.contains('@')),
        "{lock:?}"
    );
    assert!(lock.created.is_some(), "{lock:?}");
    assert_eq!(lock.operation.as_deref(), Some("OperationTypeApply"));
    let hint = error.hint().expect("a hint");
    assert!(
        hint.contains(&format!(
            "release the lock with `terraform force-unlock {}`",
            lock.id
        )),
        "{hint}"
    );
    let rendered = gitship_foundation::diagnostics::render(
        &gitship_foundation::diagnostics::user_error(error),
    );
    assert!(
        rendered.contains(&format!("lock ID `{}`", lock.id)),
        "{rendered}"
    );
}

#[tokio::test]
async fn interrupting_apply_stops_terraform_gracefully_and_leaves_no_lock() {
    if !require_tool("terraform", "version") {
        return;
    }
    let fixture = Fixture::new();
    let settings = fixture.settings(
        "staging",
        json!({"app_name": "blog", "db_password": SECRET, "sleep_seconds": 30}),
    );
    let (interrupt, interrupted) = tokio::sync::watch::channel(false);
    let driver = Arc::new(
        terraform(settings.clone())
            .await
            .with_interrupt(interrupted),
    );
    let plan = driver
        .plan(PlanMode::Normal, &plan_file(&settings, "slow"))
        .await
        .unwrap();

    let applying = {
        let driver = driver.clone();
        let planfile = plan.planfile.clone();
        tokio::spawn(async move { driver.apply(&planfile).await })
    };
    let lock_file = fixture
        .module_dir()
        .join("terraform.tfstate.d/staging/.terraform.tfstate.lock.info");
    let started = Instant::now();
    while !lock_file.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "apply never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let interrupted_at = Instant::now();
    interrupt.send_replace(true);
    let result = tokio::time::timeout(Duration::from_secs(25), applying)
        .await
        .expect("apply stopped")
        .unwrap();
    let error = result.unwrap_err();
    assert!(
        matches!(error, TerraformError::Interrupted { .. }),
        "{error:?}"
    );
    assert!(
        interrupted_at.elapsed() < Duration::from_secs(15),
        "stopped well before the 30 s provisioner ended"
    );
    assert!(!lock_file.exists(), "terraform released its lock");

    // A fresh run can take the lock at once (lock timeout 0).
    let after = terraform(settings.clone()).await;
    let replan = after
        .plan(PlanMode::Normal, &plan_file(&settings, "after"))
        .await
        .unwrap();
    assert!(
        replan.has_changes,
        "the interrupted resource is still to create"
    );
}

#[tokio::test]
async fn init_is_skipped_while_its_inputs_are_unchanged() {
    if !require_tool("terraform", "version") {
        return;
    }
    let fixture = Fixture::new();
    let settings = fixture.settings("staging", vars("blog"));
    let driver = terraform(settings.clone()).await;
    assert_eq!(driver.init_if_needed().await.unwrap(), InitOutcome::Ran);
    assert_eq!(driver.init_if_needed().await.unwrap(), InitOutcome::Skipped);

    let with_init = Instant::now();
    std::fs::remove_file(settings.data_dir.join("gitship-init.sha256")).unwrap();
    driver
        .plan(PlanMode::Normal, &plan_file(&settings, "a"))
        .await
        .unwrap();
    let with_init = with_init.elapsed();
    assert_eq!(driver.init_runs(), 2);

    // A new driver (a new gitship run) finds the fingerprint and skips init.
    let second = terraform(settings.clone()).await;
    let skipped = Instant::now();
    second
        .plan(PlanMode::Normal, &plan_file(&settings, "b"))
        .await
        .unwrap();
    let skipped = skipped.elapsed();
    assert_eq!(second.init_runs(), 0);
    eprintln!("plan with init: {with_init:?}, with init skipped: {skipped:?}");

    // Editing a resource does not need init; changing the `terraform` block does.
    let main = fixture.module_dir().join("main.tf");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        text.replace("input = var.db_password", "input = \"${var.db_password}\""),
    )
    .unwrap();
    assert_eq!(second.init_if_needed().await.unwrap(), InitOutcome::Skipped);
    std::fs::write(
        &main,
        text.replace(
            "required_version = \">= 1.5\"",
            "required_version = \">= 1.5.0\"",
        ),
    )
    .unwrap();
    assert_eq!(second.init_if_needed().await.unwrap(), InitOutcome::Ran);

    // Another environment has its own data dir and its own fingerprint.
    let production = terraform(fixture.settings("production", vars("shop"))).await;
    assert_eq!(production.init_if_needed().await.unwrap(), InitOutcome::Ran);
    assert_eq!(
        production.init_if_needed().await.unwrap(),
        InitOutcome::Skipped
    );
}

#[tokio::test]
async fn an_apply_outside_gitship_is_reported_as_drift() {
    if !require_tool("terraform", "version") {
        return;
    }
    let fixture = Fixture::new();
    let settings = fixture.settings("staging", vars("blog"));
    let driver = terraform(settings.clone()).await;
    let plan = driver
        .plan(PlanMode::Normal, &plan_file(&settings, "first"))
        .await
        .unwrap();
    driver.apply(&plan.planfile).await.unwrap();

    let clean = driver.drift().await.unwrap();
    assert!(!clean.has_drift, "{}", clean.render_human());
    assert!(clean.render_human().contains("no drift"));

    // Someone runs terraform by hand with another value, in the same data dir and workspace.
    let status = raw_terraform(&settings)
        .args([
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-var=app_name=hand-edited",
        ])
        .arg(format!("-var=db_password={SECRET}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let drift = driver.drift().await.unwrap();
    assert!(drift.has_drift);
    let app = drift
        .pending_changes
        .iter()
        .find(|c| c.address == "terraform_data.app")
        .expect("app drifted");
    assert_eq!(app.action, ChangeAction::Update);
    let human = drift.render_human();
    assert!(human.contains("Terraform drift in `staging`"), "{human}");
    assert!(
        human.contains("hand-edited"),
        "shows what runs vs what Git says: {human}"
    );
    assert!(drift.output_changes.iter().any(|o| o.name == "app_url"));
    // JSON round trip through the public type.
    let back: DriftReport = serde_json::from_str(&serde_json::to_string(&drift).unwrap()).unwrap();
    assert_eq!(back, drift);
}

#[tokio::test]
async fn a_saved_plan_made_stale_by_another_apply_is_refused() {
    if !require_tool("terraform", "version") {
        return;
    }
    let fixture = Fixture::new();
    let settings = fixture.settings("staging", vars("blog"));
    let driver = terraform(settings.clone()).await;
    let first = driver
        .plan(PlanMode::Normal, &plan_file(&settings, "first"))
        .await
        .unwrap();
    driver.apply(&first.planfile).await.unwrap();

    let old = driver
        .plan(PlanMode::Normal, &plan_file(&settings, "old"))
        .await
        .unwrap();
    assert!(!old.has_changes);
    let other = fixture.settings(
        "staging",
        json!({"app_name": "other", "db_password": SECRET}),
    );
    let other_driver = terraform(other.clone()).await;
    let newer = other_driver
        .plan(PlanMode::Normal, &plan_file(&other, "newer"))
        .await
        .unwrap();
    other_driver.apply(&newer.planfile).await.unwrap();

    let error = driver.apply(&old.planfile).await.unwrap_err();
    assert!(
        matches!(error, TerraformError::StalePlan { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("is stale"));
}

#[tokio::test]
async fn missing_and_too_old_binaries_are_clear_errors() {
    let fixture = Fixture::new();
    let mut settings = fixture.settings("staging", vars("blog"));
    settings.binary = "/nonexistent/terraform".into();
    let error = Terraform::new(settings.clone()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot run `/nonexistent/terraform`"),
        "{error}"
    );
    assert!(
        matches!(error, TerraformError::BinaryMissing { .. }),
        "{error:?}"
    );
    assert!(error.hint().is_some_and(|h| h.contains(">= 1.5.0")));

    // A stand-in that reports an old version (only `version -json` is exercised).
    let old = fixture.root.join("old-terraform");
    std::fs::write(
        &old,
        "#!/bin/sh\necho '{\"terraform_version\":\"1.4.6\",\"platform\":\"linux_amd64\"}'\n",
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&old).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&old, permissions).unwrap();
    settings.binary = old.display().to_string();
    let error = Terraform::new(settings).await.unwrap_err();
    assert!(
        matches!(error, TerraformError::BinaryTooOld { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("is Terraform 1.4.6, but gitship needs Terraform >= 1.5.0"),
        "{error}"
    );
}

/// `terraform` run by hand in the environment's data dir and workspace (as a person would).
fn raw_terraform(settings: &TerraformSettings) -> Command {
    let mut command = Command::new("terraform");
    command
        .current_dir(&settings.module_dir)
        .env("TF_DATA_DIR", &settings.data_dir)
        .env("TF_IN_AUTOMATION", "1")
        .env_remove("TF_CLI_ARGS");
    if let Some(workspace) = &settings.workspace {
        command.env("TF_WORKSPACE", workspace);
    }
    command
}

fn wait_for(condition: impl Fn() -> bool, timeout: Duration) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < timeout,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
