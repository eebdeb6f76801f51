//! Benchmark, end to end: the release `gitship` binary against the real `kubectl`, each into its
//! own fresh kubesim *process* (`kubesim --latency-ms L --rollout-delay-ms D`), at a simulated
//! round-trip time of 0 ms (loopback) and 10 ms (a cluster in the same region as the CI runner).
//! Everything is timed as a whole process, as a user runs it.
//!
//! Per latency and round:
//! - **apply**: `gitship deploy bench` of 1,000 generated objects (ConfigMaps, Services,
//!   Deployments; discovery, checks, namespace, Lease, apply, health wait, inventory and record)
//!   into a fresh kubesim with `--rollout-delay-ms 0`, against `kubectl apply --server-side -n
//!   bench -f DIR` of the same files into another fresh one (its namespace created first,
//!   untimed). kubectl does not wait for health; with a rollout delay of 0, gitship's wait costs
//!   it one read and one watch round trip.
//! - **no-op deploy**: `gitship deploy bench` again on the same cluster: nothing changed.
//! - **drift**: `gitship drift bench` against `kubectl diff --server-side -f RENDERED` (what
//!   `gitship render bench` prints, so both compare the same objects) on the same cluster.
//! - **health-wait overhead**: `gitship deploy bench` into a third fresh kubesim with
//!   `--rollout-delay-ms 500`, minus the round's deploy at rollout delay 0, minus the 500 ms
//!   the last Deployment's rollout takes after its apply: the time gitship needs to notice.
//! - **plan of the blog example**: `gitship plan staging` of a copy of `examples/blog-infra`
//!   (two apps, the real `terraform`, six Kubernetes objects) against a fresh kubesim, its
//!   registry a stub on loopback that answers every tag as missing (so both images plan a
//!   build); the first plan (with `terraform init`) is a warm-up.
//!
//! Medians and ratios (peer / gitship) are printed as a table. Run: `cargo bench --bench e2e`
//! (needs `kubectl`; `terraform` for the plan, skipped without it). `GITSHIP_BENCH_OBJECTS`
//! (1000), `GITSHIP_BENCH_ROUNDS` (3) and `GITSHIP_BENCH_LATENCIES` (`0,10`, milliseconds)
//! override the defaults.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{SimProcess, env_number, git, gitship, kubectl_available, manifest, median};

/// A repository with the generated manifests and `config/bench.yaml` (namespace `bench`).
struct Fixture {
    _dir: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
    /// The manifests, as kubectl reads them.
    manifests: PathBuf,
    /// The namespace `bench`, for kubectl's side.
    namespace: PathBuf,
    /// What `gitship render bench` prints, for `kubectl diff`.
    rendered: PathBuf,
}

impl Fixture {
    fn new(count: usize) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let repo = dir.path().join("repo");
        let manifests = repo.join("infrastructure/kubernetes");
        for path in [&home, &manifests, &repo.join("config")] {
            std::fs::create_dir_all(path).expect("mkdir");
        }
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
        let namespace = dir.path().join("namespace.yaml");
        std::fs::write(
            &namespace,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n",
        )
        .expect("namespace");
        let rendered = dir.path().join("rendered.yaml");
        // Rendering reads no cluster: any kubeconfig path will do.
        let output = gitship(&repo, &dir.path().join("none"), &home)
            .args(["render", "bench"])
            .output()
            .expect("gitship render");
        assert!(output.status.success(), "render: {}", text(&output.stderr));
        std::fs::write(&rendered, output.stdout).expect("write rendered");
        Fixture {
            _dir: dir,
            home,
            repo,
            manifests,
            namespace,
            rendered,
        }
    }

    fn gitship(&self, sim: &SimProcess) -> Command {
        gitship(&self.repo, &sim.kubeconfig, &self.home)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `command`, timing the whole process; panics (with its output) unless it exits `code`.
fn timed(command: &mut Command, code: i32, what: &str) -> Duration {
    let started = Instant::now();
    let output: Output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let elapsed = started.elapsed();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    elapsed
}

/// The figures of one latency, a sample per round.
#[derive(Default)]
struct Samples {
    deploy: Vec<Duration>,
    kubectl_apply: Vec<Duration>,
    noop: Vec<Duration>,
    drift: Vec<Duration>,
    kubectl_diff: Vec<Duration>,
    deploy_slow_rollouts: Vec<Duration>,
    health_overhead: Vec<Duration>,
    plan: Vec<Duration>,
}

const SLOW_ROLLOUT: Duration = Duration::from_millis(500);

fn round(fixture: &Fixture, latency: u64, samples: &mut Samples) {
    let timeout = ["--timeout", "10m"];
    // gitship: deploy, no-op deploy, drift; kubectl diff over what gitship deployed.
    let sim = SimProcess::start(latency, 0);
    let deploy = timed(
        fixture
            .gitship(&sim)
            .args(["deploy", "bench"])
            .args(timeout),
        0,
        "gitship deploy",
    );
    let noop = timed(
        fixture
            .gitship(&sim)
            .args(["deploy", "bench"])
            .args(timeout),
        0,
        "no-op gitship deploy",
    );
    let drift = timed(
        fixture.gitship(&sim).args(["drift", "bench"]),
        0,
        "gitship drift",
    );
    let diff = timed(
        sim.kubectl()
            .args(["diff", "--server-side", "-f"])
            .arg(&fixture.rendered),
        0,
        "kubectl diff --server-side (it must find no difference)",
    );
    drop(sim);

    // kubectl apply into a fresh kubesim of its own.
    let sim = SimProcess::start(latency, 0);
    timed(
        sim.kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(&fixture.namespace),
        0,
        "kubectl apply namespace",
    );
    let apply = timed(
        sim.kubectl()
            .args(["apply", "--server-side", "-n", "bench", "-f"])
            .arg(&fixture.manifests),
        0,
        "kubectl apply --server-side",
    );
    drop(sim);

    // The health wait on rollouts that take 500 ms.
    let sim = SimProcess::start(latency, SLOW_ROLLOUT.as_millis() as u64);
    let slow = timed(
        fixture
            .gitship(&sim)
            .args(["deploy", "bench"])
            .args(timeout),
        0,
        "gitship deploy with 500 ms rollouts",
    );
    drop(sim);

    eprintln!(
        "latency {latency} ms: deploy {deploy:?} (500 ms rollouts {slow:?}), kubectl apply \
         {apply:?}, no-op deploy {noop:?}, drift {drift:?}, kubectl diff {diff:?}"
    );
    samples.deploy.push(deploy);
    samples.kubectl_apply.push(apply);
    samples.noop.push(noop);
    samples.drift.push(drift);
    samples.kubectl_diff.push(diff);
    samples.deploy_slow_rollouts.push(slow);
    samples
        .health_overhead
        .push(slow.saturating_sub(deploy).saturating_sub(SLOW_ROLLOUT));
}

/// A registry on loopback that knows no image: `/v2/` answers 200, everything else 404
/// `MANIFEST_UNKNOWN` (what a registry answers for a tag nobody pushed).
fn start_registry_stub() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the registry stub");
    let address = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let line = String::from_utf8_lossy(&request);
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if path == "/v2/" || path == "/v2" {
                    ("200 OK", "{}".to_string())
                } else {
                    (
                        "404 Not Found",
                        r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                            .to_string(),
                    )
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            });
        }
    });
    address
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read example") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if [".gitship", ".terraform", "terraform.tfstate.d"]
            .iter()
            .any(|skip| name == *skip)
        {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `gitship plan staging` of the blog example, `rounds` times after a warm-up.
fn plan_rounds(latency: u64, rounds: usize, samples: &mut Samples) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&home).expect("mkdir");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/blog-infra"),
        &repo,
    );
    let registry = start_registry_stub();
    let config = repo.join("config/staging.yaml");
    let staging = std::fs::read_to_string(&config).expect("staging config");
    let staging = staging
        .replace("context: staging", "context: kubesim")
        .replace(
            "registry: ghcr.io/acme/blog",
            &format!("registry: {registry}/blog"),
        );
    std::fs::write(&config, staging).expect("write staging config");
    std::fs::write(repo.join(".gitignore"), ".gitship/\n").expect("gitignore");
    git(&repo, &home, &["init", "-q"]);
    git(&repo, &home, &["add", "-A"]);
    git(&repo, &home, &["commit", "-qm", "blog"]);
    let sim = SimProcess::start(latency, 0);
    let plan = || {
        let mut command = gitship(&repo, &sim.kubeconfig, &home);
        command.args(["plan", "staging"]);
        command
    };
    timed(&mut plan(), 0, "gitship plan (warm-up, terraform init)");
    for _ in 0..rounds {
        let took = timed(&mut plan(), 0, "gitship plan staging");
        eprintln!("latency {latency} ms: plan of the blog example {took:?}");
        samples.plan.push(took);
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

fn ratio(peer: Duration, ours: Duration) -> String {
    format!("{:.1}x", peer.as_secs_f64() / ours.as_secs_f64().max(1e-9))
}

fn main() {
    let count = env_number("GITSHIP_BENCH_OBJECTS", 1000);
    let rounds = env_number("GITSHIP_BENCH_ROUNDS", 3).max(1);
    let latencies: Vec<u64> = std::env::var("GITSHIP_BENCH_LATENCIES")
        .unwrap_or_else(|_| "0,10".into())
        .split(',')
        .filter_map(|latency| latency.trim().parse().ok())
        .collect();
    if !kubectl_available("e2e") {
        return;
    }
    let terraform = Command::new("terraform")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !terraform {
        eprintln!("SKIPPED: `terraform` is not on PATH; the plan of the blog example needs it");
    }
    let fixture = Fixture::new(count);
    let mut table = Vec::new();
    for &latency in &latencies {
        let mut samples = Samples::default();
        for _ in 0..rounds {
            round(&fixture, latency, &mut samples);
        }
        if terraform {
            plan_rounds(latency, rounds, &mut samples);
        }
        table.push((latency, samples));
    }
    println!(
        "\ne2e: {count} objects, medians of {rounds} rounds; each side its own fresh kubesim process"
    );
    println!("| what | latency | gitship | peer | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for (latency, samples) in &table {
        let (deploy, apply) = (median(&samples.deploy), median(&samples.kubectl_apply));
        println!(
            "| apply {count} objects (`gitship deploy` vs `kubectl apply --server-side`) | {latency} ms | {} | {} | {} |",
            ms(deploy),
            ms(apply),
            ratio(apply, deploy)
        );
        let (drift, diff) = (median(&samples.drift), median(&samples.kubectl_diff));
        println!(
            "| drift over {count} deployed objects (`gitship drift` vs `kubectl diff --server-side`) | {latency} ms | {} | {} | {} |",
            ms(drift),
            ms(diff),
            ratio(diff, drift)
        );
        println!(
            "| no-op `gitship deploy` of {count} objects | {latency} ms | {} | | |",
            ms(median(&samples.noop))
        );
        println!(
            "| health-wait overhead (deploy with 500 ms rollouts {}, minus deploy at 0, minus 500 ms) | {latency} ms | {} | | |",
            ms(median(&samples.deploy_slow_rollouts)),
            ms(median(&samples.health_overhead))
        );
        if !samples.plan.is_empty() {
            println!(
                "| `gitship plan staging` of the blog example (images, Terraform, Kubernetes) | {latency} ms | {} | | |",
                ms(median(&samples.plan))
            );
        }
    }
}
