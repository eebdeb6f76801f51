//! Benchmark: what skipping `terraform init` saves on a plan.
//!
//! Runs `Terraform::plan` on the `terraform_data` fixture module (tests/fixtures/terraform/basic),
//! N times with `init` forced (its fingerprint removed before each plan, as on a cold run) and N
//! times with `init` skipped (fingerprint unchanged), and prints the medians and their ratio.
//! `cargo bench --bench terraform_init [-- RUNS]` (default 15 runs each).

use std::path::Path;
use std::time::{Duration, Instant};

use gitship::facade::terraform::{InitOutcome, PlanMode, Terraform, TerraformSettings};

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(15);
    if !std::process::Command::new("terraform")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("terraform_init: SKIPPED, `terraform` is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let module_dir = root.join("infrastructure/terraform");
    std::fs::create_dir_all(&module_dir).expect("module dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/basic");
    for entry in std::fs::read_dir(&fixture).expect("fixture") {
        let path = entry.expect("fixture entry").path();
        std::fs::copy(&path, module_dir.join(path.file_name().expect("file name")))
            .expect("copy fixture");
    }
    let mut vars = serde_json::Map::new();
    vars.insert("app_name".into(), "bench".into());
    vars.insert("db_password".into(), "bench-secret".into());
    let settings = TerraformSettings {
        binary: "terraform".into(),
        module_dir: module_dir.clone(),
        data_dir: root.join(".gitship/terraform/bench"),
        env_name: "bench".into(),
        env_file: root.join("config/bench.yaml"),
        workspace: Some("bench".into()),
        backend_config: Default::default(),
        vars,
        var_spans: Default::default(),
        vars_location: None,
        lock_timeout: Duration::from_secs(60),
        interrupt_grace: Duration::from_secs(30),
        display_root: root.to_path_buf(),
    };
    let fingerprint = settings.data_dir.join("gitship-init.sha256");
    let planfile = settings.data_dir.join("bench.tfplan");

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let terraform = Terraform::new(settings.clone()).await.expect("terraform");
        // Warm up (first init, workspace creation, page cache).
        terraform.plan(PlanMode::Normal, &planfile).await.expect("warm-up plan");

        let mut with_init = Vec::with_capacity(runs);
        let mut skipped = Vec::with_capacity(runs);
        for _ in 0..runs {
            std::fs::remove_file(&fingerprint).expect("remove fingerprint");
            let start = Instant::now();
            terraform.plan(PlanMode::Normal, &planfile).await.expect("plan with init");
            with_init.push(start.elapsed());

            let start = Instant::now();
            terraform.plan(PlanMode::Normal, &planfile).await.expect("plan without init");
            skipped.push(start.elapsed());
        }
        assert_eq!(terraform.init_if_needed().await.expect("init check"), InitOutcome::Skipped);
        assert_eq!(terraform.init_runs(), runs + 1, "init ran exactly once per forced run");

        let with_init = median(&mut with_init);
        let skipped = median(&mut skipped);
        println!("terraform_init: {runs} runs each, terraform_data fixture (3 resources), median wall time");
        println!("  plan with init:         {:>8.1} ms", millis(with_init));
        println!("  plan with init skipped: {:>8.1} ms", millis(skipped));
        println!(
            "  saved per plan:         {:>8.1} ms  (ratio {:.2}x)",
            millis(with_init) - millis(skipped),
            with_init.as_secs_f64() / skipped.as_secs_f64()
        );
    });
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
