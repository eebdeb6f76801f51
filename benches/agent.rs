//! Benchmark: the agent (`gitship agent ENV`) against the three targets of its issue, side by
//! side with figures.
//!
//! 1. **Commit to applied with the webhook** (target: median < 2 s). A repository with a few
//!    objects, a bare clone of it as the agent's `--source`, the agent running with
//!    `--interval 1h` (so only the webhook triggers a fetch). Each round commits a new value of a
//!    ConfigMap key, pushes it to the bare repository (the `git` CLI: only the fixture shells
//!    out to git, the agent uses git2), POSTs a signed GitHub push webhook and polls the cluster
//!    until the ConfigMap has the new value. Times from the POST and from the push.
//! 2. **No-op reconcile of 1,000 objects** (target: < 0.5 s and zero writes). The agent's first
//!    sync deploys 1,000 objects (ConfigMaps, Services, Deployments, as `benches/drift.rs`);
//!    then it runs with `--interval 200ms --heal-interval 200ms`: every reconcile is one git
//!    fetch and one drift check, and nothing differs. The mean drift check comes from the
//!    agent's own `gitship_agent_drift_check_duration_seconds_sum/_count`; a no-op git2 fetch
//!    of the same source is timed here (the code the agent runs); kubesim, running in this
//!    process, counts every write request during the no-op phase, the leader Lease's renewals
//!    (every `lease_duration / 3`, paths with `/leases/`) left out and counted apart. Side by
//!    side: the one-shot `gitship drift ENV` process over the same objects, and
//!    `kubectl get configmaps,services,deployments -o json` as the floor of reading them.
//! 3. **Agent RSS after 1,000 reconciles of 1,000 objects** (target: < 60 MB, no growth). The
//!    same agent goes on; its `VmRSS` is sampled after about 10, 100, 500 and 1,000 drift
//!    checks (`gitship_agent_drift_checks_total`), with the highest over the 5 checks after
//!    each (RSS saws from one check to the next). Growth is the last highest minus the one after
//!    100; up to 2 MiB counts as no growth (allocator noise).
//!
//! Run: `cargo bench --bench agent` (needs `git` on PATH; `kubectl` for the floor, skipped
//! without it). `GITSHIP_BENCH_OBJECTS` (1000), `GITSHIP_BENCH_RECONCILES` (1000),
//! `GITSHIP_BENCH_ROUNDS` (10, webhook rounds) and `GITSHIP_BENCH_NOOP_SECS` (10, the no-op
//! phase) override the defaults; `MALLOC_ARENA_MAX`, when set, is passed on to the agent.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{env_number, git, manifest, median};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "bench-webhook-secret";
const NAMESPACE: &str = "bench";
/// Up to this much RSS growth counts as none.
const GROWTH_TOLERANCE_KB: i64 = 2048;
/// At each RSS mark of phase 3, the highest RSS over this many more checks is kept too.
const PEAK_CHECKS: u64 = 5;

/// The ConfigMap phase 1 changes, with `value`.
fn site(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  value: \"{value}\"\n  title: bench\n"
    )
}

/// A fixture: a work repository with `config/bench.yaml` and `manifests`, and its bare clone.
struct Fixture {
    _dir: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
    bare: PathBuf,
    cache: PathBuf,
}

impl Fixture {
    fn new(manifests: &[(String, String)]) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let repo = dir.path().join("repo");
        let bare = dir.path().join("source.git");
        let cache = dir.path().join("cache");
        let kubernetes = repo.join("infrastructure/kubernetes");
        for path in [&home, &kubernetes, &repo.join("config")] {
            std::fs::create_dir_all(path).expect("mkdir");
        }
        for (file, text) in manifests {
            std::fs::write(kubernetes.join(file), text).expect("write manifest");
        }
        std::fs::write(
            repo.join("config/bench.yaml"),
            format!(
                "cluster:\n  context: kubesim\n  namespace: {NAMESPACE}\nagent:\n  terraform: off\n"
            ),
        )
        .expect("config");
        std::fs::write(repo.join(".gitignore"), ".gitship/\n").expect("gitignore");
        git(&repo, &home, &["init", "-q", "-b", "main"]);
        git(&repo, &home, &["add", "-A"]);
        git(&repo, &home, &["commit", "-qm", "bench"]);
        let parent = dir.path().to_path_buf();
        git(
            &parent,
            &home,
            &["clone", "-q", "--bare", "repo", "source.git"],
        );
        Fixture {
            _dir: dir,
            home,
            repo,
            bare,
            cache,
        }
    }

    fn gitship(&self, kubeconfig: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gitship"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .current_dir(&self.home)
            .arg("-C")
            .arg(&self.repo)
            .arg("--kubeconfig")
            .arg(kubeconfig);
        command
    }
}

/// A running agent (a child process), stopped with SIGTERM when dropped.
struct AgentProcess {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
}

impl AgentProcess {
    fn start(fixture: &Fixture, kubeconfig: &Path, interval: &str, heal: &str) -> AgentProcess {
        let address = free_address();
        let log = fixture.home.join(format!("agent-{}.log", address.port()));
        let file = std::fs::File::create(&log).expect("agent log");
        let child = fixture
            .gitship(kubeconfig)
            .env("GITSHIP_WEBHOOK_SECRET", SECRET)
            .envs(
                // A knob for RSS experiments (glibc's malloc arenas), passed on when set.
                std::env::var_os("MALLOC_ARENA_MAX").map(|value| ("MALLOC_ARENA_MAX", value)),
            )
            .args(["agent", "bench", "--source"])
            .arg(&fixture.bare)
            .args([
                "--branch",
                "main",
                "--interval",
                interval,
                "--heal-interval",
                heal,
            ])
            .arg("--listen")
            .arg(address.to_string())
            .arg("--cache")
            .arg(&fixture.cache)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("the agent starts");
        AgentProcess {
            child,
            address,
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panic with the agent's log.
    fn fail(&mut self, what: &str) -> ! {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("{what}; the agent's log ends:\n{}", tail.join("\n"));
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.fail(&format!("the agent exited ({status})"));
        }
    }

    fn metrics(&mut self) -> String {
        self.check_alive();
        let (status, body) = http(self.address, "GET", "/metrics", &[], b"");
        if status != 200 {
            self.fail(&format!("/metrics answered {status}"));
        }
        body
    }

    fn status(&mut self) -> serde_json::Value {
        self.check_alive();
        let (_, body) = http(self.address, "GET", "/status", &[], b"");
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    /// Wait until `done(metrics)` holds, polling every `every`.
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        every: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let started = Instant::now();
        loop {
            if let Some(text) = try_http(self.address, "GET", "/metrics", &[], b"")
                .filter(|(status, _)| *status == 200)
                .map(|(_, body)| body)
                && done(&text)
            {
                return text;
            }
            self.check_alive();
            if started.elapsed() > timeout {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            std::thread::sleep(every);
        }
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (bound, then released for the agent).
fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// One HTTP/1.1 request (`Connection: close`); `None` when the server does not answer.
fn try_http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Some((status, body))
}

fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    try_http(address, method, path, headers, body)
        .unwrap_or_else(|| panic!("{method} {path}: no answer from {address}"))
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

/// The value of the sample `series` (exact name and labels) in the metrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

fn syncs(text: &str) -> u64 {
    sample(
        text,
        r#"gitship_agent_syncs_total{environment="bench",result="synced"}"#,
    )
    .unwrap_or(0.0) as u64
}

fn drift_checks(text: &str) -> u64 {
    sample(
        text,
        r#"gitship_agent_drift_checks_total{environment="bench"}"#,
    )
    .unwrap_or(0.0) as u64
}

/// The signed GitHub push webhook; its status.
fn post_webhook(address: SocketAddr, sha: &str) -> u16 {
    let body = format!(
        r#"{{"ref":"refs/heads/main","after":"{sha}","repository":{{"full_name":"acme/bench"}}}}"#
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac key");
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let (status, _) = http(
        address,
        "POST",
        "/hooks/git",
        &[
            ("X-Hub-Signature-256", signature),
            ("X-GitHub-Event", "push".to_string()),
            ("Content-Type", "application/json".to_string()),
        ],
        body.as_bytes(),
    );
    status
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kb(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn mb(kb: i64) -> f64 {
    kb as f64 / 1024.0
}

fn secs(duration: Duration) -> String {
    format!("{:.3} s", duration.as_secs_f64())
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

struct WebhookFigures {
    from_post: Vec<Duration>,
    from_push: Vec<Duration>,
    to_synced: Vec<Duration>,
}

/// Phase 1: commit, push, webhook, applied.
fn webhook_phase(sim: &kubesim::KubeSim, rounds: usize) -> WebhookFigures {
    let kubeconfig = sim.kubeconfig_path().to_path_buf();
    let handle = sim.handle();
    let mut manifests = vec![("site.yaml".to_string(), site("initial"))];
    for index in 0..4 {
        manifests.push((format!("{index:04}.yaml"), manifest(index)));
    }
    let fixture = Fixture::new(&manifests);
    let mut agent = AgentProcess::start(&fixture, &kubeconfig, "1h", "1h");
    agent.wait_for(
        "the first sync",
        Duration::from_secs(120),
        Duration::from_millis(50),
        |m| syncs(m) >= 1,
    );
    let value = |handle: &kubesim::SimHandle| {
        handle
            .get("v1", "ConfigMap", NAMESPACE, "site")
            .and_then(|cm| cm["data"]["value"].as_str().map(str::to_string))
    };
    assert_eq!(value(&handle).as_deref(), Some("initial"));
    let mut figures = WebhookFigures {
        from_post: Vec::new(),
        from_push: Vec::new(),
        to_synced: Vec::new(),
    };
    for round in 0..rounds {
        let synced_before = syncs(&agent.metrics());
        let wanted = format!("round-{round}");
        std::fs::write(
            fixture.repo.join("infrastructure/kubernetes/site.yaml"),
            site(&wanted),
        )
        .expect("write");
        git(&fixture.repo, &fixture.home, &["commit", "-qam", &wanted]);
        let sha = String::from_utf8(
            Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(&fixture.repo)
                .output()
                .expect("git rev-parse")
                .stdout,
        )
        .expect("sha");
        let pushed = Instant::now();
        git(
            &fixture.repo,
            &fixture.home,
            &[
                "push",
                "-q",
                fixture.bare.to_str().expect("path"),
                "HEAD:main",
            ],
        );
        let posted = Instant::now();
        let status = post_webhook(agent.address, sha.trim());
        if status != 202 {
            agent.fail(&format!("the webhook answered {status}"));
        }
        loop {
            if value(&handle).as_deref() == Some(wanted.as_str()) {
                break;
            }
            if posted.elapsed() > Duration::from_secs(60) {
                agent.fail(&format!(
                    "round {round}: `{wanted}` not applied within 60 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let applied = Instant::now();
        // Let the sync finish (health, inventory, status) before the next round.
        agent.wait_for(
            "the sync to finish",
            Duration::from_secs(60),
            Duration::from_millis(10),
            |m| syncs(m) > synced_before,
        );
        let synced = Instant::now();
        eprintln!(
            "webhook round {round}: applied {} after the POST ({} after the push), sync done after {}",
            secs(applied - posted),
            secs(applied - pushed),
            secs(synced - posted),
        );
        figures.from_post.push(applied - posted);
        figures.from_push.push(applied - pushed);
        figures.to_synced.push(synced - posted);
    }
    agent.stop();
    figures
}

struct NoopFigures {
    objects: usize,
    first_sync: Duration,
    checks: u64,
    window: Duration,
    mean_check: Duration,
    fetch: Duration,
    writes: Vec<String>,
    lease_writes: usize,
    reads: usize,
    drift_cli: Duration,
    kubectl_get: Option<Duration>,
    /// Drift checks done, VmRSS then, and the highest VmRSS over the next checks (KiB).
    rss: Vec<(u64, i64, i64)>,
    reconciles: u64,
}

/// Phases 2 and 3: one agent over `count` objects.
fn noop_phase(
    sim: &kubesim::KubeSim,
    count: usize,
    reconciles: u64,
    noop_secs: u64,
    rounds: usize,
) -> NoopFigures {
    let kubeconfig = sim.kubeconfig_path().to_path_buf();
    let handle = sim.handle();
    let manifests: Vec<(String, String)> = (0..count)
        .map(|index| (format!("{index:04}.yaml"), manifest(index)))
        .collect();
    let fixture = Fixture::new(&manifests);
    let started = Instant::now();
    let mut agent = AgentProcess::start(&fixture, &kubeconfig, "200ms", "200ms");
    agent.wait_for(
        "the first sync",
        Duration::from_secs(900),
        Duration::from_millis(50),
        |m| syncs(m) >= 1,
    );
    let first_sync = started.elapsed();
    eprintln!("first sync of {count} objects: {}", secs(first_sync));
    // The first drift check after the sync: from here on, every reconcile is a no-op.
    let metrics = agent.wait_for(
        "the first drift check",
        Duration::from_secs(120),
        Duration::from_millis(20),
        |m| drift_checks(m) >= 1,
    );
    let state = agent.status();
    assert_eq!(state["state"], "synced", "the agent is synced: {state}");
    let objects = count;
    let check_count = |m: &str| {
        sample(
            m,
            r#"gitship_agent_drift_check_duration_seconds_count{environment="bench"}"#,
        )
    };
    let check_sum = |m: &str| {
        sample(
            m,
            r#"gitship_agent_drift_check_duration_seconds_sum{environment="bench"}"#,
        )
    };
    let (count0, sum0) = (
        check_count(&metrics).unwrap_or(0.0),
        check_sum(&metrics).unwrap_or(0.0),
    );
    handle.reset_requests();
    let window_start = Instant::now();
    // The RSS after about 10 drift checks is taken in this window (a /metrics GET every 250ms).
    let mut rss = Vec::new();
    while window_start.elapsed() < Duration::from_secs(noop_secs) {
        std::thread::sleep(Duration::from_millis(250));
        if rss.is_empty() && reconciles > 10 {
            let done = drift_checks(&agent.metrics());
            if done >= 10 {
                let kb = rss_kb(agent.pid());
                eprintln!("after {done} drift checks: VmRSS {:.1} MiB", mb(kb));
                rss.push((done, kb, kb));
            }
        }
    }
    let metrics = agent.metrics();
    let window = window_start.elapsed();
    let requests = handle.requests();
    let (count1, sum1) = (
        check_count(&metrics).unwrap_or(0.0),
        check_sum(&metrics).unwrap_or(0.0),
    );
    let checks = (count1 - count0) as u64;
    assert!(checks > 0, "no drift check in {window:?}");
    let mean_check = Duration::from_secs_f64((sum1 - sum0) / (count1 - count0));
    let heals = sample(
        &metrics,
        r#"gitship_agent_heals_total{environment="bench"}"#,
    )
    .unwrap_or(0.0);
    assert_eq!(heals, 0.0, "a no-op reconcile healed something");
    assert_eq!(syncs(&metrics), 1, "a no-op reconcile synced");
    let lease_writes = requests
        .iter()
        .filter(|r| r.is_write() && r.path.contains("/leases/"))
        .count();
    let writes: Vec<String> = requests
        .iter()
        .filter(|r| r.is_write() && !r.path.contains("/leases/"))
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    let reads = requests.iter().filter(|r| !r.is_write()).count();
    let mut by_path = std::collections::BTreeMap::<String, usize>::new();
    for request in &requests {
        let what = if request.is_write() { "write" } else { "read" };
        *by_path
            .entry(format!("{what} {} {}", request.method, request.path))
            .or_default() += 1;
    }
    for (path, times) in &by_path {
        eprintln!("  {times:>5} x {path}");
    }
    eprintln!(
        "no-op: {checks} drift checks in {}, mean {} (agent's metric); {} writes (+{lease_writes} Lease renewals); {reads} reads ({:.1} per check)",
        secs(window),
        secs(mean_check),
        writes.len(),
        reads as f64 / checks as f64
    );
    for write in &writes {
        eprintln!("  write: {write}");
    }

    // A no-op fetch, in process, with the agent's code (its own clone in another cache).
    let fetch = {
        let cache = fixture.home.join("fetch-cache");
        let source = gitship::facade::git::clone::GitSource::open(
            fixture.bare.to_str().expect("path"),
            Some("main"),
            &cache,
        )
        .expect("clone");
        let mut times = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            source.fetch().expect("fetch");
            times.push(started.elapsed());
        }
        median(&times)
    };
    eprintln!(
        "no-op git2 fetch of the source: {} (median of 20)",
        ms(fetch)
    );

    // Phase 3: RSS after about 10, 100, 500 and `reconciles` drift checks.
    let mut marks: Vec<u64> = [10, 100, 500]
        .into_iter()
        .filter(|&m| m < reconciles && (m != 10 || rss.is_empty()))
        .collect();
    marks.push(reconciles);
    let timeout = Duration::from_secs(reconciles.max(100) * 5);
    for mark in marks {
        let metrics = agent.wait_for("drift checks", timeout, Duration::from_millis(25), |m| {
            drift_checks(m) >= mark
        });
        let kb = rss_kb(agent.pid());
        let done = drift_checks(&metrics);
        // RSS saws from one check to the next: keep the highest over the next few checks too.
        let mut peak = kb;
        while drift_checks(&agent.metrics()) < done + PEAK_CHECKS {
            peak = peak.max(rss_kb(agent.pid()));
            std::thread::sleep(Duration::from_millis(25));
        }
        eprintln!(
            "after {done} drift checks: VmRSS {:.1} MiB (highest over the next {PEAK_CHECKS}: {:.1} MiB)",
            mb(kb),
            mb(peak)
        );
        rss.push((done, kb, peak));
        // kubesim keeps every request: forget them.
        handle.reset_requests();
    }
    let metrics = agent.metrics();
    assert_eq!(
        sample(
            &metrics,
            r#"gitship_agent_heals_total{environment="bench"}"#
        )
        .unwrap_or(0.0),
        0.0,
        "a no-op reconcile healed something"
    );
    agent.stop();

    // The peers, with the agent stopped: a fresh `gitship drift` process, and `kubectl get`.
    let mut drift_times = Vec::new();
    for round in 0..rounds {
        let started = Instant::now();
        let output = fixture
            .gitship(&kubeconfig)
            .args(["drift", "bench"])
            .output()
            .expect("gitship drift");
        let elapsed = started.elapsed();
        assert_eq!(
            output.status.code(),
            Some(0),
            "gitship drift: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("gitship drift round {round}: {}", secs(elapsed));
        drift_times.push(elapsed);
    }
    let kubectl_ok = Command::new("kubectl")
        .arg("help")
        .output()
        .is_ok_and(|o| o.status.success());
    let kubectl_get = kubectl_ok.then(|| {
        let mut times = Vec::new();
        for round in 0..rounds {
            let started = Instant::now();
            let output = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args([
                    "get",
                    "configmaps,services,deployments",
                    "-n",
                    NAMESPACE,
                    "-o",
                    "json",
                ])
                .env("HOME", &fixture.home)
                .output()
                .expect("kubectl get");
            let elapsed = started.elapsed();
            assert!(
                output.status.success(),
                "kubectl get: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            eprintln!("kubectl get round {round}: {}", secs(elapsed));
            times.push(elapsed);
        }
        median(&times)
    });
    if !kubectl_ok {
        eprintln!("kubectl is not on PATH: no `kubectl get` floor");
    }
    NoopFigures {
        objects,
        first_sync,
        checks,
        window,
        mean_check,
        fetch,
        writes,
        lease_writes,
        reads,
        drift_cli: median(&drift_times),
        kubectl_get,
        rss,
        reconciles,
    }
}

fn main() {
    let count = env_number("GITSHIP_BENCH_OBJECTS", 1000);
    let reconciles = env_number("GITSHIP_BENCH_RECONCILES", 1000) as u64;
    let rounds = env_number("GITSHIP_BENCH_ROUNDS", 10).max(1);
    let noop_secs = env_number("GITSHIP_BENCH_NOOP_SECS", 10).max(1) as u64;
    let git_ok = Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !git_ok {
        eprintln!("SKIPPED: `git` is not on PATH; the agent benchmark's fixture needs it");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // kubesim serves from the runtime's workers; the bench drives from this thread.
    let (webhook, noop) = runtime.block_on(async move {
        let sim = kubesim::KubeSim::start_with(kubesim::Options::default())
            .await
            .expect("kubesim starts");
        let webhook = webhook_phase(&sim, rounds);
        drop(sim);
        let sim = kubesim::KubeSim::start_with(kubesim::Options::default())
            .await
            .expect("kubesim starts");
        let noop = noop_phase(&sim, count, reconciles, noop_secs, 3);
        (webhook, noop)
    });

    let post = median(&webhook.from_post);
    let push = median(&webhook.from_push);
    let synced = median(&webhook.to_synced);
    let min = webhook.from_post.iter().min().copied().unwrap_or_default();
    let max = webhook.from_post.iter().max().copied().unwrap_or_default();
    println!();
    println!("1. commit to applied, webhook ({rounds} rounds, --interval 1h):");
    println!(
        "   from the POST: min {} / median {} / max {}",
        secs(min),
        secs(post),
        secs(max)
    );
    println!(
        "   from the push: min {} / median {} / max {}",
        secs(webhook.from_push.iter().min().copied().unwrap_or_default()),
        secs(push),
        secs(webhook.from_push.iter().max().copied().unwrap_or_default())
    );
    println!(
        "   from the POST to the sync done (health, inventory): median {}",
        secs(synced)
    );
    let noop_total = noop.mean_check + noop.fetch;
    // The loop sleeps one heal interval (200ms) after each check: the rest of its period is the
    // whole reconcile (fetch, checkout, session, check, status).
    let period = noop.window / noop.checks as u32;
    let work = period.saturating_sub(Duration::from_millis(200));
    println!(
        "2. no-op reconcile of {} objects (first sync took {}):",
        noop.objects,
        secs(noop.first_sync)
    );
    println!(
        "   drift check in the agent: mean {} over {} checks in {}",
        secs(noop.mean_check),
        noop.checks,
        secs(noop.window)
    );
    println!(
        "   git2 fetch (no-op): median {}; reconcile = fetch + check: {}",
        ms(noop.fetch),
        secs(noop_total)
    );
    println!(
        "   loop period at --heal-interval 200ms: {}, so at most {} of work per reconcile",
        secs(period),
        secs(work)
    );
    println!(
        "   writes during the no-op phase: {} (Lease renewals, left out: {}); reads: {} ({:.1} per check)",
        noop.writes.len(),
        noop.lease_writes,
        noop.reads,
        noop.reads as f64 / noop.checks as f64
    );
    println!(
        "   peer: one-shot `gitship drift bench` process: median {} ({:.1}x the agent's check)",
        secs(noop.drift_cli),
        noop.drift_cli.as_secs_f64() / noop.mean_check.as_secs_f64()
    );
    if let Some(get) = noop.kubectl_get {
        println!(
            "   floor: `kubectl get configmaps,services,deployments -o json`: median {} ({:.2}x the agent's check)",
            secs(get),
            get.as_secs_f64() / noop.mean_check.as_secs_f64()
        );
    }
    println!(
        "3. agent RSS ({} objects, {} reconciles at 200ms):",
        noop.objects, noop.reconciles
    );
    for (checks, kb, peak) in &noop.rss {
        println!(
            "   after {checks:>5} drift checks: {:.1} MiB (highest over the next {PEAK_CHECKS} checks: {:.1} MiB)",
            mb(*kb),
            mb(*peak)
        );
    }
    let last = noop.rss.last().map_or(0, |(_, _, peak)| *peak);
    let base = noop
        .rss
        .iter()
        .find(|(checks, _, _)| *checks >= 100)
        .or(noop.rss.first())
        .map_or(0, |(_, _, peak)| *peak);
    let growth = last - base;
    println!(
        "   growth (last - after 100, highest of each): {:+.1} MiB (up to {:.0} MiB counts as none)",
        mb(growth),
        mb(GROWTH_TOLERANCE_KB)
    );

    let peak = noop.rss.iter().map(|(_, _, peak)| *peak).max().unwrap_or(0);
    let rows = [
        (
            "commit to applied, webhook (median)".to_string(),
            format!("{} (push: {})", secs(post), secs(push)),
            "< 2 s".to_string(),
            post < Duration::from_secs(2),
        ),
        (
            format!("no-op reconcile, {} objects", noop.objects),
            format!(
                "{} ({} check + {} fetch; loop: <= {}), {} writes",
                secs(noop_total),
                secs(noop.mean_check),
                ms(noop.fetch),
                secs(work),
                noop.writes.len()
            ),
            "< 0.5 s, 0 writes".to_string(),
            noop_total.max(work) < Duration::from_millis(500) && noop.writes.is_empty(),
        ),
        (
            format!("agent RSS after {} reconciles", noop.reconciles),
            format!(
                "{:.1} MiB ({:.1} MB) peak, growth {:+.1} MiB",
                mb(peak),
                peak as f64 * 1024.0 / 1e6,
                mb(growth)
            ),
            "< 60 MB, no growth".to_string(),
            (peak as f64 * 1024.0) < 60e6 && growth <= GROWTH_TOLERANCE_KB,
        ),
    ];
    println!();
    println!("| target | measured | goal | |");
    println!("|---|---|---|---|");
    for (what, measured, goal, pass) in rows {
        println!("| {what} | {measured} | {goal} | {} |", verdict(pass));
    }
}
