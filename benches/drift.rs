//! Benchmark: `gitship drift` vs `kubectl diff --server-side -f <dir>` over the same 1,000
//! deployed objects (ConfigMaps, Services, Deployments) on the same kubesim, side by side in one
//! run.
//!
//! Setup (not timed): a repository with the 1,000 manifests and an environment pointed at a
//! kubesim started here; `gitship plan --out` + `gitship deploy --plan` deploy them; the rendered
//! manifests (what gitship applied) are written to one directory for `kubectl`. Then each round
//! times the whole built `gitship drift bench` process (render, discovery, reads, dry-runs,
//! inventory) and `kubectl diff --server-side -f <dir>` (reads and dry-runs). Both find no
//! difference. Medians and their ratio are printed.
//!
//! Run: `cargo bench --bench drift` (needs `kubectl` and `diff` on PATH).
//! `GITSHIP_BENCH_OBJECTS` and `GITSHIP_BENCH_ROUNDS` override the object count (1000) and
//! rounds (3).

mod common;

use std::process::Command;
use std::time::Instant;

use common::{env_number, git, gitship, kubectl_available, manifest, median};

fn run(command: &mut Command, what: &str) -> std::process::Output {
    command.output().unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn main() {
    let count = env_number("GITSHIP_BENCH_OBJECTS", 1000);
    let rounds = env_number("GITSHIP_BENCH_ROUNDS", 3);
    if !kubectl_available("drift") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let sim = kubesim::KubeSim::start().await.expect("kubesim starts");
        let kubeconfig = sim.kubeconfig_path().to_path_buf();
        let work = tempfile::tempdir().expect("tempdir");
        let home = work.path().join("home");
        let repo = work.path().join("repo");
        let kubectl_dir = work.path().join("kubectl");
        for dir in [&home, &repo, &kubectl_dir] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        let manifests = repo.join("infrastructure/kubernetes");
        std::fs::create_dir_all(&manifests).expect("mkdir");
        std::fs::create_dir_all(repo.join("config")).expect("mkdir");
        for index in 0..count {
            std::fs::write(manifests.join(format!("{index:04}.yaml")), manifest(index))
                .expect("write manifest");
        }
        std::fs::write(
            repo.join("config/bench.yaml"),
            "cluster:\n  context: kubesim\n  namespace: bench\n",
        )
        .expect("config");
        std::fs::write(repo.join(".gitignore"), ".gitship/\n").expect("gitignore");
        git(&repo, &home, &["init", "-q"]);
        git(&repo, &home, &["add", "-A"]);
        git(&repo, &home, &["commit", "-qm", "bench"]);

        let (repo2, kubeconfig2, home2) = (repo.clone(), kubeconfig.clone(), home.clone());
        let setup = tokio::task::spawn_blocking(move || {
            let planfile = repo2.join(".gitship/bench-plan.json");
            let plan = run(
                gitship(&repo2, &kubeconfig2, &home2)
                    .args(["plan", "bench", "--out"])
                    .arg(&planfile),
                "gitship plan",
            );
            assert!(plan.status.success(), "plan: {}", String::from_utf8_lossy(&plan.stderr));
            let deploy = run(
                gitship(&repo2, &kubeconfig2, &home2)
                    .args(["deploy", "bench", "--timeout", "10m", "--plan"])
                    .arg(&planfile),
                "gitship deploy",
            );
            assert!(deploy.status.success(), "deploy: {}", String::from_utf8_lossy(&deploy.stderr));
            let rendered = run(
                gitship(&repo2, &kubeconfig2, &home2).args(["render", "bench"]),
                "gitship render",
            );
            assert!(rendered.status.success());
            rendered.stdout
        });
        let rendered = setup.await.expect("setup");
        std::fs::write(kubectl_dir.join("rendered.yaml"), rendered).expect("write rendered");

        let mut gitship_times = Vec::new();
        let mut kubectl_times = Vec::new();
        for round in 0..rounds {
            let (repo2, kubeconfig2, home2, dir2) =
                (repo.clone(), kubeconfig.clone(), home.clone(), kubectl_dir.clone());
            let (gitship_elapsed, kubectl_elapsed) = tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let drift = run(
                    gitship(&repo2, &kubeconfig2, &home2).args(["drift", "bench"]),
                    "gitship drift",
                );
                let gitship_elapsed = started.elapsed();
                assert_eq!(
                    drift.status.code(),
                    Some(0),
                    "gitship drift: {}{}",
                    String::from_utf8_lossy(&drift.stdout),
                    String::from_utf8_lossy(&drift.stderr)
                );
                let started = Instant::now();
                let diff = run(
                    Command::new("kubectl")
                        .arg("--kubeconfig")
                        .arg(&kubeconfig2)
                        .args(["diff", "--server-side", "-f"])
                        .arg(&dir2),
                    "kubectl diff",
                );
                let kubectl_elapsed = started.elapsed();
                assert_eq!(
                    diff.status.code(),
                    Some(0),
                    "kubectl diff found differences or failed: {}{}",
                    String::from_utf8_lossy(&diff.stdout),
                    String::from_utf8_lossy(&diff.stderr)
                );
                (gitship_elapsed, kubectl_elapsed)
            })
            .await
            .expect("round");
            eprintln!("round {round}: gitship drift {gitship_elapsed:?}, kubectl diff {kubectl_elapsed:?}");
            gitship_times.push(gitship_elapsed);
            kubectl_times.push(kubectl_elapsed);
        }
        let gitship = median(&gitship_times);
        let kubectl = median(&kubectl_times);
        println!(
            "drift over {count} deployed objects (median of {rounds}): gitship drift {gitship:?}, kubectl diff --server-side {kubectl:?}"
        );
        println!(
            "ratio kubectl/gitship: {:.1}x",
            kubectl.as_secs_f64() / gitship.as_secs_f64()
        );
    });
}
