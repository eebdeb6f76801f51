//! Benchmark, end to end: the release `gitship` binary against `kubectl`, everything timed as a
//! whole process, as a user runs it, on one of two kinds of cluster:
//!
//! - **kubesim** (the default): each side into its own fresh kubesim *process* (`kubesim
//!   --latency-ms L --rollout-delay-ms D`), at a simulated round-trip time of 0 ms (loopback) and
//!   10 ms (a cluster in the same region as the CI runner).
//! - **real** (`GITSHIP_BENCH_CLUSTER=real`): a real kube-apiserver, the control plane that
//!   `tests/real-cluster/real-cluster up DIR` starts on loopback (etcd, kube-apiserver,
//!   kube-controller-manager, kube-scheduler, and kwok making pods Ready without a kubelet),
//!   `GITSHIP_TEST_KUBECONFIG` naming its `DIR/kubeconfig`. Each round works in fresh namespaces
//!   of its own, `bench-<round>-gitship`, `bench-<round>-kubectl` and `bench-<round>-slow`, each
//!   gitship namespace an environment of that name (its config uses the kubeconfig's current
//!   context); they are deleted after the round, untimed, and the next round starts once they are
//!   gone. The `kubectl` first on PATH must be the server's release (put `real-cluster bin` first
//!   on PATH); the bench checks. There is no latency to choose (the table says "real, loopback").
//!
//! Per latency (or on the real server) and round:
//! - **apply**: `gitship deploy ENV` of 1,000 generated objects (ConfigMaps, Services,
//!   Deployments; discovery, checks, namespace, Lease, apply, health wait, inventory and record)
//!   into a fresh cluster (kubesim with `--rollout-delay-ms 0`), against `kubectl apply
//!   --server-side -n NAMESPACE -f DIR` of the same files into another fresh one (its namespace
//!   created first, untimed). kubectl does not wait for health; with a rollout delay of 0, gitship's
//!   wait costs it one read and one watch round trip on kubesim. On the real server the
//!   controllers and kwok roll the Deployments out, and gitship's deploy waits for that, so the
//!   real mode also times `kubectl wait --for=condition=Available deployment --all` after the
//!   apply (**apply and wait**).
//! - **no-op deploy**: `gitship deploy ENV` again on the same cluster: nothing changed. On the
//!   real server the writes it makes in its namespace are counted from the audit log
//!   (`DIR/audit.log`, beside the kubeconfig).
//! - **drift**: `gitship drift ENV` against `kubectl diff --server-side -f RENDERED` (what
//!   `gitship render ENV` prints, so both compare the same objects) on the same cluster.
//! - **health-wait overhead**: `gitship deploy ENV` into a third fresh cluster where every
//!   rollout takes 500 ms (kubesim `--rollout-delay-ms 500`; on the real server the pods carry the
//!   annotation `pod-ready.stage.kwok.x-k8s.io/delay: "500ms"`, so kwok makes each Ready 500 ms
//!   after it is bound), minus the round's deploy at rollout delay 0, minus 500 ms: the time
//!   gitship needs to notice the last rollout. On the real server, where the controllers take
//!   tens of seconds to roll 333 Deployments out, that difference is within their noise.
//! - **plan of the blog example** (kubesim only): `gitship plan staging` of a copy of
//!   `examples/blog-infra` (two apps, the real `terraform`, six Kubernetes objects) against a
//!   fresh kubesim, its registry a stub on loopback that answers every tag as missing (so both
//!   images plan a build); the first plan (with `terraform init`) is a warm-up.
//!
//! Medians and ratios (peer / gitship) are printed as a table. Run: `cargo bench --bench e2e`
//! (needs `kubectl`; `terraform` for the plan, skipped without it), or on the real server:
//!
//! ```text
//! tests/real-cluster/real-cluster up DIR
//! PATH="$(tests/real-cluster/real-cluster bin):$PATH" GITSHIP_BENCH_CLUSTER=real \
//!   GITSHIP_TEST_KUBECONFIG=DIR/kubeconfig cargo bench --bench e2e
//! tests/real-cluster/real-cluster down DIR
//! ```
//!
//! `GITSHIP_BENCH_OBJECTS` (1000), `GITSHIP_BENCH_ROUNDS` (3) and `GITSHIP_BENCH_LATENCIES`
//! (`0,10`, milliseconds; kubesim only) override the defaults.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{SimProcess, env_number, git, gitship, kubectl_available, manifest, median};

/// A repository with the generated manifests, and the environments made of it.
struct Fixture {
    dir: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
    /// The manifests, as kubectl reads them.
    manifests: PathBuf,
}

/// One environment of the fixture: `config/NAME.yaml`, committed.
#[derive(Clone)]
struct Environment {
    name: String,
    /// What `gitship render NAME` prints, for `kubectl diff`.
    rendered: PathBuf,
}

impl Fixture {
    /// `count` generated objects; with `pod_ready_delay`, each Deployment's pods carry kwok's
    /// annotation that delays their readiness by that long (a value such as `500ms`).
    fn new(count: usize, pod_ready_delay: Option<&str>) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let repo = dir.path().join("repo");
        let manifests = repo.join("infrastructure/kubernetes");
        for path in [&home, &manifests, &repo.join("config")] {
            std::fs::create_dir_all(path).expect("mkdir");
        }
        for index in 0..count {
            let mut text = manifest(index);
            if let Some(delay) = pod_ready_delay {
                text = with_pod_ready_delay(&text, delay);
            }
            std::fs::write(manifests.join(format!("{index:04}.yaml")), text)
                .expect("write manifest");
        }
        std::fs::write(repo.join(".gitignore"), ".gitship/\n").expect("gitignore");
        git(&repo, &home, &["init", "-q"]);
        git(&repo, &home, &["add", "-A"]);
        git(&repo, &home, &["commit", "-qm", "bench"]);
        Fixture {
            dir,
            home,
            repo,
            manifests,
        }
    }

    /// Environment `name`, deploying into `namespace` through the kubeconfig context `context`:
    /// its config written and committed, and rendered.
    fn environment(&self, name: &str, context: &str, namespace: &str) -> Environment {
        std::fs::write(
            self.repo.join(format!("config/{name}.yaml")),
            format!("cluster:\n  context: {context}\n  namespace: {namespace}\n"),
        )
        .expect("config");
        git(&self.repo, &self.home, &["add", "-A"]);
        git(&self.repo, &self.home, &["commit", "-qm", name]);
        let rendered = self.dir.path().join(format!("rendered-{name}.yaml"));
        // Rendering reads no cluster: any kubeconfig path will do.
        let output = gitship(&self.repo, &self.dir.path().join("none"), &self.home)
            .args(["render", name])
            .output()
            .expect("gitship render");
        assert!(output.status.success(), "render: {}", text(&output.stderr));
        std::fs::write(&rendered, output.stdout).expect("write rendered");
        Environment {
            name: name.to_string(),
            rendered,
        }
    }

    /// A file with the Namespace `name`, for kubectl's side.
    fn namespace_manifest(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(format!("namespace-{name}.yaml"));
        std::fs::write(
            &path,
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"),
        )
        .expect("namespace");
        path
    }

    fn gitship(&self, side: &Side) -> Command {
        gitship(&self.repo, &side.kubeconfig, &self.home)
    }
}

/// `manifest`'s text with, on a Deployment, the pod template annotated with kwok's readiness
/// delay (`tests/real-cluster/stages.yaml`).
fn with_pod_ready_delay(manifest: &str, delay: &str) -> String {
    let template = "  template:\n    metadata:\n";
    manifest.replace(
        template,
        &format!(
            "{template}      annotations:\n        pod-ready.stage.kwok.x-k8s.io/delay: \"{delay}\"\n"
        ),
    )
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

/// The real control plane of `tests/real-cluster`.
struct RealServer {
    /// `DIR/kubeconfig`, as `real-cluster up DIR` wrote it.
    kubeconfig: PathBuf,
    /// Its current context, which the environments' configs name.
    context: String,
    /// `DIR/audit.log`: every write, by user.
    audit_log: PathBuf,
    /// The server's (and kubectl's) release, such as `v1.37.2`.
    version: String,
}

impl RealServer {
    /// The server `GITSHIP_TEST_KUBECONFIG` names; panics unless the kubectl on PATH is its
    /// release.
    fn from_env() -> RealServer {
        let Some(kubeconfig) = std::env::var_os("GITSHIP_TEST_KUBECONFIG").map(PathBuf::from)
        else {
            panic!(
                "GITSHIP_BENCH_CLUSTER=real needs GITSHIP_TEST_KUBECONFIG: run \
                 `tests/real-cluster/real-cluster up DIR` and set it to DIR/kubeconfig"
            )
        };
        let config = kube::config::Kubeconfig::read_from(&kubeconfig)
            .unwrap_or_else(|e| panic!("read {}: {e}", kubeconfig.display()));
        let context = config
            .current_context
            .unwrap_or_else(|| panic!("{} names no current context", kubeconfig.display()));
        let audit_log = kubeconfig.with_file_name("audit.log");
        let output = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["version", "-o", "json"])
            .output()
            .expect("kubectl version");
        assert!(
            output.status.success(),
            "kubectl version: {}",
            text(&output.stderr)
        );
        let versions: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("kubectl version -o json");
        let client = versions["clientVersion"]["gitVersion"]
            .as_str()
            .unwrap_or("");
        let server = versions["serverVersion"]["gitVersion"]
            .as_str()
            .unwrap_or("");
        assert_eq!(
            client, server,
            "the kubectl on PATH is {client}, the server {server}: put \
             `tests/real-cluster/real-cluster bin` first on PATH"
        );
        RealServer {
            kubeconfig,
            context,
            audit_log,
            version: server.to_string(),
        }
    }

    fn kubectl(&self) -> Command {
        let mut command = Command::new("kubectl");
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// Where the audit log ends now.
    fn audit_mark(&self) -> u64 {
        std::fs::metadata(&self.audit_log).map_or(0, |m| m.len())
    }

    /// The writes (not dry runs) of the user `admin` (the bench's, gitship's and kubectl's)
    /// logged since `mark` in `namespace`, or to the namespace itself, as `VERB resource/name`.
    fn writes_since(&self, mark: u64, namespace: &str) -> Vec<String> {
        let bytes = std::fs::read(&self.audit_log)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.audit_log.display()));
        let start = usize::try_from(mark).unwrap_or(usize::MAX);
        let mut writes = Vec::new();
        for line in bytes
            .get(start..)
            .unwrap_or_default()
            .split(|b| *b == b'\n')
        {
            let Ok(event) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            let uri = event["requestURI"].as_str().unwrap_or_default();
            if event["user"]["username"] != "admin"
                || event["stage"] != "ResponseComplete"
                || uri.contains("dryRun=All")
            {
                continue;
            }
            let object = &event["objectRef"];
            let resource = object["resource"].as_str().unwrap_or_default();
            let name = object["name"].as_str().unwrap_or_default();
            let ours =
                object["namespace"] == namespace || (resource == "namespaces" && name == namespace);
            if ours {
                let verb = event["verb"].as_str().unwrap_or_default();
                writes.push(format!("{verb} {resource}/{name}"));
            }
        }
        writes
    }

    /// Deletes `namespaces` (`--wait=false`), then waits until they are gone, so that the next
    /// round does not share the machine with their deletion; returns how long that took.
    fn delete_namespaces(&self, namespaces: &[String]) -> Duration {
        let started = Instant::now();
        timed(
            self.kubectl()
                .args(["delete", "namespace", "--wait=false", "--ignore-not-found"])
                .args(namespaces),
            0,
            "kubectl delete namespace",
        );
        let deadline = started + Duration::from_secs(600);
        loop {
            let output = self
                .kubectl()
                .args(["get", "namespace", "--ignore-not-found", "-o", "name"])
                .args(namespaces)
                .output()
                .expect("kubectl get namespace");
            if output.status.success() && output.stdout.iter().all(u8::is_ascii_whitespace) {
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "namespaces {namespaces:?} still there after 10 minutes"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Where the rounds run.
enum Cluster {
    /// Each side into a fresh kubesim process of its own, `latency` milliseconds away.
    Sim { latency: u64 },
    /// Each side into fresh namespaces of its own on one real API server.
    Real(RealServer),
}

/// Where one side of a round deploys: a fresh kubesim process (killed when this drops), or a
/// fresh namespace on the real server.
struct Side {
    kubeconfig: PathBuf,
    namespace: String,
    _sim: Option<SimProcess>,
}

impl Cluster {
    /// The table's latency column.
    fn label(&self) -> String {
        match self {
            Cluster::Sim { latency } => format!("{latency} ms"),
            Cluster::Real(_) => "real, loopback".to_string(),
        }
    }

    /// A fresh place for side `who` of round `round`, its rollouts taking `rollout_delay_ms`
    /// (kubesim's option; on the real server the fixture's pods carry the delay).
    fn side(&self, round: usize, who: &str, rollout_delay_ms: u64) -> Side {
        match self {
            Cluster::Sim { latency } => {
                let sim = SimProcess::start(*latency, rollout_delay_ms);
                Side {
                    kubeconfig: sim.kubeconfig.clone(),
                    namespace: "bench".to_string(),
                    _sim: Some(sim),
                }
            }
            Cluster::Real(server) => Side {
                kubeconfig: server.kubeconfig.clone(),
                namespace: format!("bench-{round}-{who}"),
                _sim: None,
            },
        }
    }

    /// The environment of `fixture` that deploys into `side`: `bench` on kubesim (`bench_env`),
    /// one named after the side's namespace on the real server.
    fn environment(&self, fixture: &Fixture, bench_env: &Environment, side: &Side) -> Environment {
        match self {
            Cluster::Sim { .. } => bench_env.clone(),
            Cluster::Real(server) => {
                fixture.environment(&side.namespace, &server.context, &side.namespace)
            }
        }
    }
}

impl Side {
    /// `kubectl --kubeconfig <this> ARGS`.
    fn kubectl(&self) -> Command {
        let mut command = Command::new("kubectl");
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }
}

/// The figures of one latency (or of the real server), a sample per round.
#[derive(Default)]
struct Samples {
    deploy: Vec<Duration>,
    kubectl_apply: Vec<Duration>,
    /// Real server only: `kubectl apply` and then the wait for its rollouts.
    kubectl_apply_wait: Vec<Duration>,
    noop: Vec<Duration>,
    /// Real server only: the writes of the no-op deploy, from the audit log.
    noop_writes: Vec<usize>,
    drift: Vec<Duration>,
    kubectl_diff: Vec<Duration>,
    deploy_slow_rollouts: Vec<Duration>,
    health_overhead: Vec<Duration>,
    plan: Vec<Duration>,
}

const SLOW_ROLLOUT: Duration = Duration::from_millis(500);

/// The fixtures a round deploys: the plain one, and the one whose rollouts take
/// [`SLOW_ROLLOUT`] on the real server (on kubesim the plain one: the simulator delays them).
struct Fixtures {
    plain: Fixture,
    slow: Option<Fixture>,
    /// The plain fixture's environment `bench` (namespace `bench`, context `kubesim`).
    bench: Environment,
}

impl Fixtures {
    fn slow(&self) -> &Fixture {
        self.slow.as_ref().unwrap_or(&self.plain)
    }
}

const TIMEOUT: [&str; 2] = ["--timeout", "10m"];

fn round(fixtures: &Fixtures, cluster: &Cluster, number: usize, samples: &mut Samples) {
    let namespaces = ["gitship", "kubectl", "slow"].map(|who| format!("bench-{number}-{who}"));
    if let Cluster::Real(server) = cluster {
        // Fresh: a namespace of that name that an earlier, interrupted run left goes first.
        server.delete_namespaces(&namespaces);
    }
    let (deploy, noop, drift, diff) = gitship_side(fixtures, cluster, number, samples);
    let apply = kubectl_side(&fixtures.plain, cluster, number, samples);
    let slow = slow_rollouts(fixtures, cluster, number);
    eprintln!(
        "{} round {number}: deploy {deploy:?} (500 ms rollouts {slow:?}), kubectl apply \
         {apply:?}, no-op deploy {noop:?}, drift {drift:?}, kubectl diff {diff:?}",
        cluster.label()
    );
    if let Cluster::Real(server) = cluster {
        let took = server.delete_namespaces(&namespaces);
        eprintln!("round {number}: its namespaces were gone {took:?} after their deletion");
    }
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

/// gitship's deploy, no-op deploy and drift into a fresh cluster (or namespace), and `kubectl
/// diff` over what it deployed: their times, in that order. On the real server the no-op's
/// writes go to `samples`.
fn gitship_side(
    fixtures: &Fixtures,
    cluster: &Cluster,
    number: usize,
    samples: &mut Samples,
) -> (Duration, Duration, Duration, Duration) {
    let fixture = &fixtures.plain;
    let side = cluster.side(number, "gitship", 0);
    let env = cluster.environment(fixture, &fixtures.bench, &side);
    let deploy = || {
        let mut command = fixture.gitship(&side);
        command.args(["deploy", &env.name]).args(TIMEOUT);
        command
    };
    let took = timed(&mut deploy(), 0, "gitship deploy");
    let mark = match cluster {
        Cluster::Real(server) => server.audit_mark(),
        Cluster::Sim { .. } => 0,
    };
    let noop = timed(&mut deploy(), 0, "no-op gitship deploy");
    if let Cluster::Real(server) = cluster {
        let writes = server.writes_since(mark, &side.namespace);
        eprintln!(
            "round {number}: the no-op deploy wrote {} times: {writes:?}",
            writes.len()
        );
        samples.noop_writes.push(writes.len());
    }
    let drift = timed(
        fixture.gitship(&side).args(["drift", &env.name]),
        0,
        "gitship drift",
    );
    let diff = timed(
        side.kubectl()
            .args(["diff", "--server-side", "-f"])
            .arg(&env.rendered),
        0,
        "kubectl diff --server-side (it must find no difference)",
    );
    (took, noop, drift, diff)
}

/// `kubectl apply` into a fresh cluster (or namespace) of its own, its namespace created first
/// (untimed): its time. On the real server the wait for its rollouts follows, timed into
/// `samples`.
fn kubectl_side(
    fixture: &Fixture,
    cluster: &Cluster,
    number: usize,
    samples: &mut Samples,
) -> Duration {
    let side = cluster.side(number, "kubectl", 0);
    timed(
        side.kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(fixture.namespace_manifest(&side.namespace)),
        0,
        "kubectl apply namespace",
    );
    let apply = timed(
        side.kubectl()
            .args(["apply", "--server-side", "-n", &side.namespace, "-f"])
            .arg(&fixture.manifests),
        0,
        "kubectl apply --server-side",
    );
    if let Cluster::Real(_) = cluster {
        // The controllers roll kubectl's Deployments out; gitship's deploy waited for its own.
        // Timed as a user waits for them, and so that the next figure runs on a quiet server.
        let wait = timed(
            side.kubectl().args([
                "wait",
                "--for=condition=Available",
                "deployment",
                "--all",
                "-n",
                &side.namespace,
                "--timeout=10m",
            ]),
            0,
            "kubectl wait --for=condition=Available deployment --all",
        );
        samples.kubectl_apply_wait.push(apply + wait);
    }
    apply
}

/// gitship's deploy into a fresh cluster (or namespace) where every rollout takes 500 ms.
fn slow_rollouts(fixtures: &Fixtures, cluster: &Cluster, number: usize) -> Duration {
    let side = cluster.side(number, "slow", SLOW_ROLLOUT.as_millis() as u64);
    let env = cluster.environment(fixtures.slow(), &fixtures.bench, &side);
    timed(
        fixtures
            .slow()
            .gitship(&side)
            .args(["deploy", &env.name])
            .args(TIMEOUT),
        0,
        "gitship deploy with 500 ms rollouts",
    )
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
    if !kubectl_available("e2e") {
        return;
    }
    let real = std::env::var("GITSHIP_BENCH_CLUSTER").is_ok_and(|cluster| cluster == "real");
    let clusters: Vec<Cluster> = if real {
        vec![Cluster::Real(RealServer::from_env())]
    } else {
        std::env::var("GITSHIP_BENCH_LATENCIES")
            .unwrap_or_else(|_| "0,10".into())
            .split(',')
            .filter_map(|latency| latency.trim().parse().ok())
            .map(|latency| Cluster::Sim { latency })
            .collect()
    };
    let terraform = !real
        && Command::new("terraform")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
    if real {
        eprintln!("SKIPPED on the real server: the plan of the blog example (kubesim only)");
    } else if !terraform {
        eprintln!("SKIPPED: `terraform` is not on PATH; the plan of the blog example needs it");
    }
    let plain = Fixture::new(count, None);
    let bench = plain.environment("bench", "kubesim", "bench");
    let fixtures = Fixtures {
        plain,
        slow: real.then(|| Fixture::new(count, Some("500ms"))),
        bench,
    };
    let mut table = Vec::new();
    for cluster in clusters {
        let mut samples = Samples::default();
        for number in 1..=rounds {
            round(&fixtures, &cluster, number, &mut samples);
        }
        if let (Cluster::Sim { latency }, true) = (&cluster, terraform) {
            plan_rounds(*latency, rounds, &mut samples);
        }
        table.push((cluster, samples));
    }
    print_table(count, rounds, &table);
}

fn print_table(count: usize, rounds: usize, table: &[(Cluster, Samples)]) {
    match table.first() {
        Some((Cluster::Real(server), _)) => println!(
            "\ne2e: {count} objects, medians of {rounds} rounds; each side in fresh namespaces of \
             its own on one real kube-apiserver {} (pods made Ready by kwok), kubectl {}",
            server.version, server.version
        ),
        _ => println!(
            "\ne2e: {count} objects, medians of {rounds} rounds; each side its own fresh kubesim process"
        ),
    }
    println!("| what | latency | gitship | peer | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for (cluster, samples) in table {
        let latency = cluster.label();
        let (deploy, apply) = (median(&samples.deploy), median(&samples.kubectl_apply));
        println!(
            "| apply {count} objects (`gitship deploy` vs `kubectl apply --server-side`) | {latency} | {} | {} | {} |",
            ms(deploy),
            ms(apply),
            ratio(apply, deploy)
        );
        if !samples.kubectl_apply_wait.is_empty() {
            let applied = median(&samples.kubectl_apply_wait);
            println!(
                "| apply {count} objects and wait for the rollouts (`gitship deploy` vs `kubectl apply --server-side` then `kubectl wait --for=condition=Available deployment --all`) | {latency} | {} | {} | {} |",
                ms(deploy),
                ms(applied),
                ratio(applied, deploy)
            );
        }
        let (drift, diff) = (median(&samples.drift), median(&samples.kubectl_diff));
        println!(
            "| drift over {count} deployed objects (`gitship drift` vs `kubectl diff --server-side`) | {latency} | {} | {} | {} |",
            ms(drift),
            ms(diff),
            ratio(diff, drift)
        );
        println!(
            "| no-op `gitship deploy` of {count} objects | {latency} | {} | | |",
            ms(median(&samples.noop))
        );
        if !samples.noop_writes.is_empty() {
            println!(
                "| writes of the no-op deploy in its namespace (audit log, per round) | {latency} | {:?} | | |",
                samples.noop_writes
            );
        }
        println!(
            "| health-wait overhead (deploy with 500 ms rollouts {}, minus deploy at 0, minus 500 ms) | {latency} | {} | | |",
            ms(median(&samples.deploy_slow_rollouts)),
            ms(median(&samples.health_overhead))
        );
        if !samples.plan.is_empty() {
            println!(
                "| `gitship plan staging` of the blog example (images, Terraform, Kubernetes) | {latency} | {} | | |",
                ms(median(&samples.plan))
            );
        }
    }
}
