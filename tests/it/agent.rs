//! `gitship agent`: real processes. The kubesim binary is the cluster (the real control plane
//! with `GITSHIP_TEST_CLUSTER=real`, see [`Sim`]), a bare Git repository the source, and the
//! agent the built gitship binary; the tests push commits, change the cluster with the real
//! kubectl, and watch the agent put things right.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gitship::facade::ops::history::HistoryReport;
use gitship_kube::inventory::RecordSource;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::support::cluster::{Backend, Mark, TestCluster, backend};
use crate::support::registry::{TestRegistry, free_port, http_get, http_request};
use crate::support::repo::Repo;
use crate::support::{gitship, require_tool};

const SECRET: &str = "webhook-test-secret";

/// The kubesim binary (built by the workspace next to gitship; built here when missing).
fn kubesim_binary() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_gitship")).with_file_name("kubesim");
    if !binary.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "kubesim", "--bin", "kubesim"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build -p kubesim");
        assert!(status.success(), "cannot build the kubesim binary");
    }
    binary
}

/// The cluster of one agent test: the kubesim binary, or with `GITSHIP_TEST_CLUSTER=real` the
/// real control plane (in namespaces of the test's own). Killed, or its namespaces deleted,
/// when dropped.
pub(crate) struct Sim {
    server: Server,
    pub(crate) kubeconfig: PathBuf,
    /// The namespace the tests call `web`: `web` on kubesim, `web-<id>` on the real server.
    namespace: String,
}

enum Server {
    /// The kubesim binary, a process of its own as the agent's cluster is.
    Process {
        child: Child,
        _dir: tempfile::TempDir,
    },
    /// A [`TestCluster`]: the real server, or kubesim in this process where a test counts
    /// writes (its request record lives here). The runtime serves kubesim.
    Cluster {
        cluster: Box<TestCluster>,
        _runtime: tokio::runtime::Runtime,
    },
}

impl Sim {
    pub(crate) fn start() -> Sim {
        Sim::start_with_rollout(200)
    }

    /// A cluster whose workloads take `delay_ms` to become healthy on kubesim (on the real
    /// server a pod's `pod-ready.stage.kwok.x-k8s.io/delay` annotation says how long).
    fn start_with_rollout(delay_ms: u64) -> Sim {
        match backend() {
            Backend::Sim => Sim::process(delay_ms),
            Backend::Real => Sim::cluster(delay_ms),
        }
    }

    /// A cluster whose writes [`Sim::mark`] and [`Sim::writes_since`] count: kubesim in this
    /// process, or the real server.
    fn counting() -> Sim {
        Sim::cluster(200)
    }

    fn process(delay_ms: u64) -> Sim {
        let dir = tempfile::tempdir().expect("temp");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(kubesim_binary())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--rollout-delay-ms", &delay_ms.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubesim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("kubesim prints its URL");
        assert!(line.starts_with("http://"), "kubesim: {line}");
        Sim {
            server: Server::Process { child, _dir: dir },
            kubeconfig,
            namespace: "web".to_string(),
        }
    }

    fn cluster(delay_ms: u64) -> Sim {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let cluster = runtime.block_on(TestCluster::start_with(kubesim::Options {
            rollout_delay: Duration::from_millis(delay_ms),
            ..kubesim::Options::default()
        }));
        Sim {
            kubeconfig: cluster.kubeconfig_path().to_path_buf(),
            namespace: cluster.ns("web"),
            server: Server::Cluster {
                cluster: Box::new(cluster),
                _runtime: runtime,
            },
        }
    }

    /// The namespace the tests call `web`: an environment's `cluster.namespace` and every
    /// expected `web/NAME` take it from here.
    pub(crate) fn ns(&self) -> &str {
        &self.namespace
    }

    fn test_cluster(&self) -> &TestCluster {
        match &self.server {
            Server::Cluster { cluster, .. } => cluster,
            Server::Process { .. } => panic!("writes are counted on `Sim::counting()` only"),
        }
    }

    /// Where the record of writes stands now (a [`Sim::counting`] cluster).
    fn mark(&self) -> Mark {
        self.test_cluster().mark()
    }

    /// The writes since `mark`, as `METHOD /path` (a [`Sim::counting`] cluster).
    fn writes_since(&self, mark: Mark) -> Vec<String> {
        self.test_cluster().writes_since(mark)
    }

    /// The writes over three heal intervals (1 s each): whether the agent renewed its leader
    /// Lease, and every other write.
    fn writes_over_three_heals(&self) -> (bool, Vec<String>) {
        let mark = self.mark();
        std::thread::sleep(Duration::from_millis(3500));
        let lease = format!(
            "PUT /apis/coordination.k8s.io/v1/namespaces/{}/leases/gitship-staging.agent",
            self.ns()
        );
        let (renewals, others): (Vec<String>, Vec<String>) = self
            .writes_since(mark)
            .into_iter()
            .partition(|write| *write == lease);
        (!renewals.is_empty(), others)
    }

    /// The deploy history in the inventory ConfigMap of `staging`.
    fn history(&self) -> Vec<Value> {
        self.get(&[
            "get",
            "configmap",
            "gitship-staging",
            "-n",
            self.ns(),
            "-o",
            "jsonpath={.data.history\\.json}",
        ])
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
    }

    /// What the heal records of the history list, one line each.
    fn healed(&self) -> String {
        self.history()
            .iter()
            .filter(|r| r["source"] == "heal")
            .flat_map(|r| r["healed"].as_array().cloned().unwrap_or_default())
            .filter_map(|h| h.as_str().map(str::to_string))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let output = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl");
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `kubectl get ... -o jsonpath=...`, or `None` when it fails (not found).
    pub(crate) fn get(&self, args: &[&str]) -> Option<String> {
        let output = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn title(&self) -> Option<String> {
        self.get(&[
            "get",
            "configmap",
            "site",
            "-n",
            self.ns(),
            "-o",
            "jsonpath={.data.title}",
        ])
    }

    /// `.spec.replicas` of Deployment `web`.
    fn replicas(&self) -> Option<String> {
        self.get(&[
            "get",
            "deployment",
            "web",
            "-n",
            self.ns(),
            "-o",
            "jsonpath={.spec.replicas}",
        ])
    }

    /// The Events of the test's namespace, as JSON text.
    fn events(&self) -> String {
        self.kubectl(&["get", "events", "-n", self.ns(), "-o", "json"])
    }

    /// The names of the Leases in the test's namespace, one `lease.coordination.k8s.io/NAME`
    /// a line.
    fn leases(&self) -> String {
        self.kubectl(&["get", "leases", "-n", self.ns(), "-o", "name"])
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Server::Process { child, .. } = &mut self.server {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A ConfigMap `site` (`title: one`) and a Deployment `web` (2 replicas, `LOG_LEVEL=info`) in
/// environment `staging` (namespace `web`, [`Sim::ns`]), on branch `main`, and a bare clone of it.
fn source_repo(sim: &Sim) -> (Repo, tempfile::TempDir) {
    source_repo_with(sim, "")
}

/// [`source_repo`] with `agent` (indented lines) added to the `agent:` section of its config.
fn source_repo_with(sim: &Sim, agent: &str) -> (Repo, tempfile::TempDir) {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: Some(sim.kubeconfig.clone()),
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "config/staging.yaml",
        &format!(
            "cluster:\n  context: kubesim\n  namespace: {}\nagent:\n  terraform: off\n{agent}",
            sim.ns()
        ),
    );
    repo.write(
        "infrastructure/kubernetes/site.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  title: one\n",
    );
    repo.write(
        "infrastructure/kubernetes/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: registry.local/web:1\n          env:\n            - name: LOG_LEVEL\n              value: info\n",
    );
    repo.git(&["init", "-q", "-b", "main"]);
    repo.commit("one");
    let bare = tempfile::tempdir().expect("temp");
    repo.git(&[
        "clone",
        "-q",
        "--bare",
        ".",
        bare.path().to_str().expect("utf-8"),
    ]);
    (repo, bare)
}

fn push(repo: &Repo, bare: &Path) {
    repo.git(&["push", "-q", bare.to_str().expect("utf-8"), "HEAD:main"]);
}

/// A running `gitship agent staging`; killed when dropped.
struct Agent {
    child: Child,
    address: String,
    log: PathBuf,
    _cache: tempfile::TempDir,
}

impl Agent {
    /// The agent with `--interval 1s --heal-interval 1s`.
    fn start(sim: &Sim, bare: &Path, extra: &[&str]) -> Agent {
        Agent::start_every(sim, bare, "1s", extra)
    }

    fn start_every(sim: &Sim, bare: &Path, interval: &str, extra: &[&str]) -> Agent {
        Agent::start_with_env(sim, bare, interval, extra, &[])
    }

    /// [`Agent::start_every`] with `env` set in the agent's environment.
    fn start_with_env(
        sim: &Sim,
        bare: &Path,
        interval: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let cache = tempfile::tempdir().expect("temp");
        let address = format!("127.0.0.1:{}", free_port());
        let log = cache.path().join("agent.log");
        let mut command = gitship();
        command
            .env(gitship::facade::agent::http::GITHUB_SECRET_VARIABLE, SECRET)
            .envs(env.iter().copied())
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .args(["agent", "staging", "--source"])
            .arg(format!("file://{}", bare.display()))
            .arg("--cache")
            .arg(cache.path().join("clones"))
            .args(["--listen", &address, "--lease-duration", "3s"])
            .args(["--interval", interval, "--heal-interval", "1s"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        let child = command.spawn().expect("start the agent");
        let agent = Agent {
            child,
            address,
            log,
            _cache: cache,
        };
        eventually("the agent serves /healthz", Duration::from_secs(10), || {
            http_get(&agent.address, "/healthz", None).is_ok_and(|r| r.status == 200)
        });
        agent
    }

    /// Waits until the agent has applied the source's first commit and reports `synced`.
    fn wait_first_sync(&self, sim: &Sim) {
        eventually(
            "the first commit is applied",
            Duration::from_secs(6),
            || sim.title().as_deref() == Some("one") && self.status()["state"] == "synced",
        );
    }

    fn status(&self) -> Value {
        let response = http_get(&self.address, "/status", None).expect("GET /status");
        assert_eq!(response.status, 200);
        serde_json::from_slice(&response.body).expect("status JSON")
    }

    /// This replica's own status (`/status` of a follower shows the leader's).
    fn own_status(&self) -> Value {
        let response = http_get(&self.address, "/status/self", None).expect("GET /status/self");
        assert_eq!(response.status, 200);
        serde_json::from_slice(&response.body).expect("status JSON")
    }

    fn metrics(&self) -> String {
        let response = http_get(&self.address, "/metrics", None).expect("GET /metrics");
        String::from_utf8_lossy(&response.body).into_owned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn hook(&self, signature: &str) -> u16 {
        let body = br#"{"ref":"refs/heads/main"}"#;
        http_request(
            &self.address,
            "POST",
            "/hooks/git",
            &[
                ("X-Hub-Signature-256", signature),
                ("X-GitHub-Event", "push"),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .expect("POST /hooks/git")
        .status
    }

    fn signed_hook(&self) -> u16 {
        self.signed_hook_answer().0
    }

    /// A signed push webhook: the status and the body of the answer.
    fn signed_hook_answer(&self) -> (u16, String) {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let response = http_request(
            &self.address,
            "POST",
            "/hooks/git",
            &[
                ("X-Hub-Signature-256", signature.as_str()),
                ("X-GitHub-Event", "push"),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .expect("POST /hooks/git");
        (
            response.status,
            String::from_utf8_lossy(&response.body).into_owned(),
        )
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal the agent");
    }

    /// Wait up to `timeout` for the agent to exit; its exit code.
    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_agent_syncs_commits_and_a_follower_takes_over_when_the_leader_dies() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::start();
    let (repo, bare) = source_repo(&sim);
    let mut leader = Agent::start(&sim, bare.path(), &[]);
    // interval (1s) + 5s.
    leader.wait_first_sync(&sim);
    let status = leader.status();
    assert_eq!(status["state"], "synced", "{status}");
    assert_eq!(status["leader"], true);

    let mut follower = Agent::start(&sim, bare.path(), &[]);
    eventually("the second agent follows", Duration::from_secs(8), || {
        let status = follower.own_status();
        status["state"] == "follower"
            && status["leader"] == false
            && status["leaderIdentity"] == leader.status()["identity"]
    });
    // The follower shows what the leader runs, not what it knew when it started.
    let own = follower.own_status();
    assert_eq!(own["revision"]["subject"], "one", "{own}");
    assert_eq!(own["gitRevision"]["subject"], "one", "{own}");

    leader.signal(nix::sys::signal::Signal::SIGKILL);
    assert_eq!(leader.wait_exit(Duration::from_secs(5)), None, "killed");
    repo.edit(
        "infrastructure/kubernetes/site.yaml",
        "title: one",
        "title: two",
    );
    repo.commit("two");
    push(&repo, bare.path());
    // The Lease expires (3s), the follower polls (1s), then syncs (1s): well within 12s.
    eventually(
        "the follower takes over and applies the next commit",
        Duration::from_secs(12),
        || sim.title().as_deref() == Some("two"),
    );
    // (Read until it settles: the status is updated right after the apply it reports.)
    eventually(
        "the follower leads and runs commit two",
        Duration::from_secs(3),
        || {
            let status = follower.status();
            status["leader"] == true && status["revision"]["subject"] == "two"
        },
    );
    assert!(
        follower
            .log()
            .contains("taking over the expired leadership"),
        "{}",
        follower.log()
    );
    let metrics = follower.metrics();
    assert!(
        metrics.contains(r#"gitship_agent_leader{environment="staging"} 1"#),
        "{metrics}"
    );

    // SIGTERM: exit 0 within 10s, the leader Lease given up.
    let started = Instant::now();
    follower.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        follower.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        follower.log()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let leases = sim.leases();
    assert!(!leases.contains("gitship-staging.agent"), "{leases}");
    assert!(!leases.contains("gitship-staging\n"), "{leases}");
}

#[test]
fn a_webhook_to_either_replica_syncs_within_2s_and_both_show_the_leaders_status() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::start();
    let (repo, bare) = source_repo(&sim);
    // A long interval: only webhooks make the agents fetch after the first sync.
    let leader = Agent::start_every(&sim, bare.path(), "1h", &[]);
    leader.wait_first_sync(&sim);
    let follower = Agent::start_every(&sim, bare.path(), "1h", &[]);
    let leader_identity = leader.status()["identity"].clone();
    eventually(
        "the follower knows the leader",
        Duration::from_secs(10),
        || {
            follower.own_status()["state"] == "follower"
                && follower.status()["identity"] == leader_identity
        },
    );
    // Both replicas are ready: behind one Service, either gets webhooks.
    for agent in [&leader, &follower] {
        let ready = http_get(&agent.address, "/readyz", None).expect("GET /readyz");
        assert_eq!(ready.status, 200);
    }
    // Through the follower: `/status` and `/` are the leader's.
    let status = follower.status();
    assert_eq!(status["leader"], true, "{status}");
    assert_eq!(status["state"], "synced", "{status}");
    let page = http_get(&follower.address, "/", None).expect("GET /");
    assert!(
        String::from_utf8_lossy(&page.body).contains(leader_identity.as_str().unwrap_or("?")),
        "the follower's page is the leader's"
    );

    for (round, agent) in [("two", &follower), ("three", &leader), ("four", &follower)] {
        let before = sim.title();
        repo.edit(
            "infrastructure/kubernetes/site.yaml",
            &format!("title: {}", before.as_deref().unwrap_or("?")),
            &format!("title: {round}"),
        );
        repo.commit(round);
        push(&repo, bare.path());
        let started = Instant::now();
        let (status, answer) = agent.signed_hook_answer();
        assert_eq!(status, 202, "{answer}\n{}", agent.log());
        if std::ptr::eq(agent, &follower) {
            assert!(answer.contains("forwarded to the leader"), "{answer}");
        }
        eventually(
            &format!("commit {round} is applied"),
            Duration::from_secs(2),
            || sim.title().as_deref() == Some(round),
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    // A hook forged as forwarded, with a wrong signature: refused, nothing happens.
    let forged = http_request(
        &leader.address,
        "POST",
        "/hooks/git",
        &[(
            gitship::facade::agent::http::FORWARD_SIGNATURE_HEADER,
            "sha256=00112233",
        )],
        b"{}",
    )
    .expect("POST /hooks/git");
    assert_eq!(forged.status, 401);
}

#[test]
fn the_agent_heals_scaled_edited_and_deleted_objects_and_records_each_heal() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::counting();
    let (_repo, bare) = source_repo(&sim);
    let agent = Agent::start(&sim, bare.path(), &[]);
    agent.wait_first_sync(&sim);
    let ns = sim.ns();
    // The last change last: a heal that records it saw the two before (healed then, or by an
    // earlier heal that recorded them).
    sim.kubectl(&["delete", "configmap", "site", "-n", ns]);
    sim.kubectl(&["scale", "deployment/web", "-n", ns, "--replicas=10"]);
    sim.kubectl(&["set", "env", "deployment/web", "-n", ns, "LOG_LEVEL=debug"]);
    let log_level = || {
        sim.get(&[
            "get",
            "deployment",
            "web",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[?(@.name==\"LOG_LEVEL\")].value}",
        ])
    };
    let history = || sim.history();
    let healed = || sim.healed();
    // heal-interval (1s) + 5s on kubesim. A heal records itself after its health wait, which on
    // the real server includes the new ReplicaSet's rollout of the changed env: wait for the
    // record of each change, not only for the objects to be back.
    // A heal's deploy puts back everything, also what changed after its drift check: each
    // object is then in the heal records by field and manager, or as `(put back)`.
    eventually("the drift is healed", Duration::from_secs(20), || {
        let healed = healed();
        sim.replicas().as_deref() == Some("2")
            && log_level().as_deref() == Some("info")
            && sim.title().as_deref() == Some("one")
            && agent.status()["lastHeal"].is_object()
            && healed.contains(&format!("ConfigMap {ns}/site"))
            && healed.contains(&format!("Deployment {ns}/web"))
    });

    // In the history, as an Event, in the metrics and the status.
    let healed = healed();
    assert!(
        healed.contains(&format!("ConfigMap {ns}/site (deleted")),
        "{healed}"
    );
    // The Deployment by field and manager where a check saw the change, or put back by a heal
    // whose check came first.
    let by_field = healed.contains("spec.replicas: 10 -> 2 (changed by kubectl)")
        || healed.contains("env[name=LOG_LEVEL].value: debug -> info (changed by kubectl-set)");
    assert!(
        by_field || healed.contains(&format!("Deployment {ns}/web (put back)")),
        "{healed}"
    );
    assert_eq!(history().last().expect("first record")["source"], "agent");
    let events: Value = serde_json::from_str(&sim.events()).expect("events");
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["involvedObject"]["name"] == "gitship-staging")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"Healed"), "{reasons:?}");
    assert!(reasons.contains(&"Deployed"), "{reasons:?}");
    let metrics = agent.metrics();
    let heals_total = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"gitship_agent_heals_total{environment="staging"} "#))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("gitship_agent_heals_total");
    assert!(heals_total >= 1.0, "{metrics}");
    let status = agent.status();
    assert!(status["lastHeal"]["healed"].is_array(), "{status}");

    // Healed, the loop's drift checks find nothing: it writes nothing but its leader Lease
    // (renewed every third of its 3s), once the status it published names the heal.
    eventually("the heal is published", Duration::from_secs(3), || {
        sim.get(&[
            "get",
            "configmap",
            "gitship-staging.agent",
            "-n",
            ns,
            "-o",
            "jsonpath={.data.status\\.json}",
        ])
        .is_some_and(|published| published.contains("lastHeal"))
    });
    let (renewed, others) = sim.writes_over_three_heals();
    assert!(renewed, "the Lease is renewed");
    assert!(others.is_empty(), "no-op heals wrote {others:#?}");
    assert_eq!(agent.status()["lastHeal"], status["lastHeal"]);
}

/// A mesh injector and a policy engine add a sidecar, an env var and a port to lists Git
/// declares, and change nothing gitship owns: `drift` exits 0 and the agent writes nothing but
/// its Lease. `kubectl scale` and an edited value gitship owns are still drift, by field and
/// manager, and healed.
#[test]
fn items_other_managers_add_are_not_drift_and_the_agent_writes_nothing() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::counting();
    let (repo, bare) = source_repo(&sim);
    let agent = Agent::start(&sim, bare.path(), &[]);
    agent.wait_first_sync(&sim);
    let ns = sim.ns();
    sim.kubectl(&[
        "patch", "deployment/web", "-n", ns, "--field-manager=istio-injector", "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"istio-proxy","image":"proxy:1"},{"name":"web","ports":[{"containerPort":15090}]}]}}}}"#,
    ]);
    sim.kubectl(&[
        "patch", "deployment/web", "-n", ns, "--field-manager=kyverno", "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"POLICY","value":"on"}]}]}}}}"#,
    ]);
    let drift = repo.gitship(&["drift", "staging"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
    let (_, others) = sim.writes_over_three_heals();
    assert!(others.is_empty(), "the agent wrote {others:#?}");

    // `kubectl scale` and an edited value gitship owns are drift, by field and manager. The
    // agent is stopped first: a heal's deploy puts back everything, also a change made after its
    // drift check, so with it running the report would race the heal.
    drop(agent);
    sim.kubectl(&["scale", "deployment/web", "-n", ns, "--replicas=5"]);
    sim.kubectl(&[
        "set",
        "env",
        "deployment/web",
        "-n",
        ns,
        "-c",
        "web",
        "LOG_LEVEL=debug",
    ]);
    let drift = repo.gitship(&["drift", "staging"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    for line in [
        "spec.replicas: 5 -> 2 (changed by kubectl",
        "spec.template.spec.containers[name=web].env[name=LOG_LEVEL].value: debug -> info (changed by kubectl-set)",
    ] {
        assert!(
            drift.stdout.contains(line),
            "no `{line}` in\n{}",
            drift.stdout
        );
    }
    assert!(!drift.stdout.contains("istio-proxy"), "{}", drift.stdout);
    repo.ok(&["deploy", "staging"]);
    let drift = repo.gitship(&["drift", "staging"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
    // The sidecar stays: it is not gitship's.
    let containers = sim.get(&[
        "get",
        "deployment",
        "web",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}",
    ]);
    assert!(
        containers
            .as_deref()
            .is_some_and(|c| c.contains("istio-proxy")),
        "{containers:?}"
    );
}

/// A commit the API server rejects (one object of it: a quantity that is no quantity) changes
/// nothing: the whole set is dry-run before the first write. So the cluster really stays at the
/// last good revision, and no heal ever flips an object back and forth.
#[test]
fn a_commit_the_server_rejects_changes_no_object() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::start();
    let (repo, bare) = source_repo(&sim);
    let agent = Agent::start(&sim, bare.path(), &[]);
    agent.wait_first_sync(&sim);
    repo.edit(
        "infrastructure/kubernetes/site.yaml",
        "title: one",
        "title: two",
    );
    repo.edit(
        "infrastructure/kubernetes/web.yaml",
        "          image: registry.local/web:1\n",
        "          image: registry.local/web:1\n          resources:\n            requests: {cpu: lots}\n",
    );
    repo.commit("two, and a quantity that is no quantity");
    push(&repo, bare.path());
    eventually("the sync fails", Duration::from_secs(10), || {
        let status = agent.status();
        status["state"] == "error"
            && status["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("web"))
    });
    // Three heal intervals: the ConfigMap of the rejected commit was never applied, so there
    // is nothing to heal back.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(sim.title().as_deref(), Some("one"), "the ConfigMap changed");
    let sources: Vec<String> = sim
        .history()
        .iter()
        .filter_map(|r| r["source"].as_str().map(str::to_string))
        .collect();
    assert!(
        !sources.iter().any(|s| s == "heal"),
        "heals flipped objects back: {sources:?}"
    );
}

/// A sync that fails after its first write (here: an object in a namespace that does not
/// exist, which no dry run can check) leaves the environment on the new commit, degraded:
/// heals follow the new commit, never back toward the older one.
#[test]
fn a_sync_that_failed_after_writing_is_never_healed_back() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::start();
    let (repo, bare) = source_repo(&sim);
    let agent = Agent::start(&sim, bare.path(), &[]);
    agent.wait_first_sync(&sim);
    repo.edit(
        "infrastructure/kubernetes/site.yaml",
        "title: one",
        "title: two",
    );
    repo.write(
        "infrastructure/kubernetes/elsewhere.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: elsewhere\n  namespace: gitship-test-never-created\ndata:\n  a: b\n",
    );
    repo.commit("two, and an object in a namespace that does not exist");
    push(&repo, bare.path());
    eventually("the sync fails, degraded", Duration::from_secs(10), || {
        let status = agent.status();
        status["state"] == "degraded"
            && status["revision"]["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("two"))
    });
    assert_eq!(sim.title().as_deref(), Some("two"));
    // Three heal intervals: nothing moves the ConfigMap back to the older revision.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(
        sim.title().as_deref(),
        Some("two"),
        "healed back to the older commit"
    );
}

/// The `error` state a lost Git remote leaves clears once the remote answers again and a heal
/// succeeds, without waiting for a new commit.
#[test]
fn the_error_state_of_a_lost_remote_clears_when_it_is_back() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::start();
    let (_repo, bare) = source_repo(&sim);
    let agent = Agent::start(&sim, bare.path(), &[]);
    agent.wait_first_sync(&sim);
    let moved = bare.path().with_extension("moved");
    std::fs::rename(bare.path(), &moved).expect("move the remote away");
    eventually(
        "the lost remote is an error",
        Duration::from_secs(10),
        || agent.status()["state"] == "error",
    );
    // Said as what happened, not as a protocol or credentials problem, and as an Event once.
    let error = agent.status()["lastError"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(error.contains("does not exist (any more)"), "{error}");
    assert!(!error.contains("unsupported URL protocol"), "{error}");
    assert!(!error.contains("GITSHIP_GIT_TOKEN"), "{error}");
    eventually("an Event says so", Duration::from_secs(5), || {
        sim.events().contains("GitFetchFailed")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sim.events()
            .matches("\"reason\": \"GitFetchFailed\"")
            .count(),
        1,
        "one Event per failure, not one per poll"
    );
    let failed_fetches = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"gitship_agent_git_fetch_failures_total{environment="staging"} "#)
            })
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    eventually(
        "the failed fetch is counted",
        Duration::from_secs(5),
        || failed_fetches(&agent.metrics()).is_some_and(|count| count >= 1.0),
    );
    std::fs::rename(&moved, bare.path()).expect("put the remote back");
    eventually("the error clears", Duration::from_secs(10), || {
        let status = agent.status();
        status["state"] == "synced" && status.get("lastError").is_none()
    });
}

/// A request the stand-in commit-status API received.
#[derive(Debug, Clone)]
struct StatusPost {
    /// `POST /repos/acme/blog/statuses/<sha>`.
    line: String,
    authorization: Option<String>,
    body: Value,
}

/// A stand-in for GitHub's commit-status API on loopback, in a thread: records each request and
/// answers 201, except a `failure` status, which it refuses with 422 and an answer that echoes
/// the request's `Authorization` (as a careless API might), so that the agent's warning about
/// it is seen to keep the token out.
struct StatusApi {
    url: String,
    posts: std::sync::Arc<std::sync::Mutex<Vec<StatusPost>>>,
}

impl StatusApi {
    fn start() -> StatusApi {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let posts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = posts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if let Some(post) = StatusApi::serve(stream) {
                    recorded.lock().expect("posts").push(post);
                }
            }
        });
        StatusApi { url, posts }
    }

    /// Read one request from `stream` and answer it.
    fn serve(mut stream: std::net::TcpStream) -> Option<StatusPost> {
        use std::io::{Read as _, Write as _};
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let (mut length, mut authorization) = (0, None);
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).ok()?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':')?;
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().ok()?,
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (status, answer) = if body["state"] == "failure" {
            let echo = authorization.clone().unwrap_or_default();
            (
                "422 Unprocessable Entity",
                format!("{{\"message\":\"no: {echo}\"}}"),
            )
        } else {
            ("201 Created", "{}".to_string())
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        stream.write_all(reply.as_bytes()).ok()?;
        Some(StatusPost {
            line: line.trim_end().to_string(),
            authorization,
            body,
        })
    }

    /// The posts for commit `sha`, in the order received.
    fn posts_for(&self, sha: &str) -> Vec<StatusPost> {
        self.posts
            .lock()
            .expect("posts")
            .iter()
            .filter(|post| post.line.contains(&format!("/statuses/{sha} ")))
            .cloned()
            .collect()
    }

    /// The states posted for commit `sha`, in order.
    fn states(&self, sha: &str) -> Vec<String> {
        self.posts_for(sha)
            .iter()
            .filter_map(|post| post.body["state"].as_str().map(str::to_string))
            .collect()
    }
}

/// With a token and `agent.notify` pointing at a stand-in API, each sync posts commit statuses:
/// pending then success for a good commit, pending then failure for one the server rejects;
/// the token goes in the `Authorization` header and nowhere in the agent's log.
#[test]
fn each_sync_posts_commit_statuses_and_the_token_stays_secret() {
    if !require_tool("kubectl", "help") {
        return;
    }
    const TOKEN: &str = "ghp_stand-in-token-0123456789";
    let api = StatusApi::start();
    let sim = Sim::start();
    let notify = format!(
        "  notify:\n    provider: github\n    repository: acme/blog\n    api_url: {}\n    status_url: https://agent.example/status\n",
        api.url
    );
    let (repo, bare) = source_repo_with(&sim, &notify);
    let agent = Agent::start_with_env(
        &sim,
        bare.path(),
        "1s",
        &[],
        &[(gitship::facade::agent::notify::GITHUB_TOKEN_VARIABLE, TOKEN)],
    );
    agent.wait_first_sync(&sim);
    let one = agent.status()["revision"]["sha"]
        .as_str()
        .expect("the running revision")
        .to_string();
    eventually("pending, then success", Duration::from_secs(10), || {
        api.states(&one) == ["pending", "success"]
    });
    for post in api.posts_for(&one) {
        assert_eq!(
            post.line,
            format!("POST /repos/acme/blog/statuses/{one} HTTP/1.1"),
            "{post:?}"
        );
        assert_eq!(
            post.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{post:?}"
        );
        assert_eq!(post.body["context"], "gitship/staging", "{post:?}");
        assert_eq!(
            post.body["target_url"], "https://agent.example/status",
            "{post:?}"
        );
    }

    repo.edit(
        "infrastructure/kubernetes/web.yaml",
        "          image: registry.local/web:1\n",
        "          image: registry.local/web:1\n          resources:\n            requests: {cpu: lots}\n",
    );
    repo.commit("two, and a quantity that is no quantity");
    push(&repo, bare.path());
    eventually("the sync fails", Duration::from_secs(10), || {
        agent.status()["state"] == "error"
    });
    let two = agent.status()["gitRevision"]["sha"]
        .as_str()
        .expect("the newest revision")
        .to_string();
    assert_ne!(one, two);
    eventually("pending, then failure", Duration::from_secs(10), || {
        api.states(&two)
            .starts_with(&["pending".to_string(), "failure".to_string()])
    });
    // The API refused the failure status, echoing the token: the agent says so, without it.
    eventually("the refusal is logged", Duration::from_secs(10), || {
        agent.log().contains("not posted: HTTP 422")
    });
    let log = agent.log();
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");
    assert!(log.contains(gitship_foundation::model::REDACTED), "{log}");
}

#[test]
fn a_deleted_branch_is_an_error_with_an_event_and_the_cluster_stays() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::start();
    let (_repo, bare) = source_repo(&sim);
    let agent = Agent::start(&sim, bare.path(), &[]);
    agent.wait_first_sync(&sim);
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .arg("-C")
            .arg(bare.path())
            .args(args)
            .output()
            .expect("git");
        assert!(output.status.success(), "git {args:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let sha = git(&["rev-parse", "refs/heads/main"]);
    git(&["update-ref", "-d", "refs/heads/main"]);
    eventually(
        "the deleted branch is an error",
        Duration::from_secs(10),
        || {
            let status = agent.status();
            status["state"] == "error"
                && status["lastError"]
                    .as_str()
                    .is_some_and(|e| e.contains("branch `main` does not exist"))
        },
    );
    eventually("an Event says so", Duration::from_secs(5), || {
        sim.events().contains("BranchNotFound")
    });
    assert_eq!(sim.title().as_deref(), Some("one"), "the cluster stays");
    git(&["update-ref", "refs/heads/main", &sha]);
    eventually("the error clears", Duration::from_secs(10), || {
        let status = agent.status();
        status["state"] == "synced" && status.get("lastError").is_none()
    });
}

#[test]
fn a_broken_commit_keeps_the_last_good_revision_and_the_webhook_syncs_at_once() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::start();
    let (repo, bare) = source_repo(&sim);
    // A long interval: only the webhook makes the agent fetch after its first sync.
    let agent = Agent::start_every(&sim, bare.path(), "1h", &[]);
    agent.wait_first_sync(&sim);

    repo.edit(
        "infrastructure/kubernetes/site.yaml",
        "title: one",
        "title: ${values.missing}",
    );
    repo.commit("broken");
    push(&repo, bare.path());
    assert_eq!(agent.signed_hook(), 202);
    eventually("the status shows the error", Duration::from_secs(5), || {
        let status = agent.status();
        status["state"] == "error"
            && status["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("infrastructure/kubernetes/site.yaml:6:"))
    });
    let status = agent.status();
    assert_eq!(status["revision"]["subject"], "one", "{status}");
    assert_eq!(status["gitRevision"]["subject"], "broken", "{status}");
    assert_eq!(
        sim.title().as_deref(),
        Some("one"),
        "the cluster stays at the last good revision"
    );

    // A wrong signature: 401, and nothing happens.
    repo.edit(
        "infrastructure/kubernetes/site.yaml",
        "title: ${values.missing}",
        "title: three",
    );
    repo.commit("three");
    push(&repo, bare.path());
    assert_eq!(agent.hook("sha256=0000"), 401);
    assert_eq!(agent.hook(""), 401);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sim.title().as_deref(), Some("one"));

    // The right one: applied in under 2 s.
    let started = Instant::now();
    assert_eq!(agent.signed_hook(), 202);
    eventually(
        "the fixed commit is applied",
        Duration::from_secs(2),
        || sim.title().as_deref() == Some("three"),
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    eventually("the status is synced", Duration::from_secs(2), || {
        let status = agent.status();
        status["state"] == "synced" && status.get("lastError").is_none()
    });
    let events = sim.events();
    assert!(events.contains("SyncFailed"), "{events}");
}

#[test]
fn the_agent_waits_for_images_ci_has_not_pushed_and_applies_once_they_are() {
    if !require_tool("kubectl", "help") || !require_tool("docker", "version") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let sim = Sim::start();
    let repo = Repo::web_app(&sim.kubeconfig, &registry.address, "<h1>agent</h1>\n");
    repo.edit(
        "config/staging.yaml",
        "namespace: web\n",
        &format!("namespace: {}\n", sim.ns()),
    );
    repo.commit("the test's namespace");
    repo.git(&["branch", "-M", "main"]);
    let bare = tempfile::tempdir().expect("temp");
    repo.git(&[
        "clone",
        "-q",
        "--bare",
        ".",
        bare.path().to_str().expect("utf-8"),
    ]);
    let agent = Agent::start(&sim, bare.path(), &[]);
    eventually(
        "the agent waits for the image",
        Duration::from_secs(8),
        || {
            let status = agent.status();
            status["state"] == "waiting-for-images"
                && status["waitingForImages"].to_string().contains("web")
        },
    );
    let image = || {
        sim.get(&[
            "get",
            "configmap",
            "web",
            "-n",
            sim.ns(),
            "-o",
            "jsonpath={.data.image}",
        ])
    };
    assert_eq!(
        image(),
        None,
        "nothing is applied while an image is missing"
    );
    assert!(registry.tags("blog/web").is_empty());

    // CI builds and pushes; the agent applies, pinned by digest, without building.
    repo.ok(&["build", "staging"]);
    // The object is there before the sync ends (its health wait and record): wait for both.
    eventually("the revision is applied", Duration::from_secs(8), || {
        image().is_some_and(|i| i.contains("@sha256:")) && agent.status()["state"] == "synced"
    });
    assert!(!agent.log().contains("building"), "{}", agent.log());
    // The agent's record names the image it applied, digest and all.
    let history = history(&repo);
    let record = &history.records[0];
    assert_eq!(record.source, RecordSource::Agent);
    let references: Vec<&str> = record.images.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(
        references,
        [image().expect("applied").as_str()],
        "{record:?}"
    );
}

fn history(repo: &Repo) -> HistoryReport {
    let run = repo.ok(&["-o", "json", "history", "staging"]);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("not a history report ({error}):\n{}", run.stdout))
}

/// The agent does not run Terraform with the local backend: the state would live in its own
/// checkout (where a sync once deleted it and the next created every resource again). It says
/// why and what to do, applies nothing, and runs as soon as Terraform is `off`.
#[test]
fn the_agent_refuses_terraform_with_a_local_backend() {
    if !require_tool("kubectl", "help") || !require_tool("terraform", "version") {
        return;
    }
    let sim = Sim::start();
    let (repo, _) = source_repo(&sim);
    repo.write(
        "infrastructure/terraform/main.tf",
        "resource \"terraform_data\" \"db\" {\n  input = \"x\"\n}\n",
    );
    repo.edit("config/staging.yaml", "terraform: off", "terraform: apply");
    repo.commit("terraform, local state");
    let bare = tempfile::tempdir().expect("temp");
    repo.git(&[
        "clone",
        "-q",
        "--bare",
        ".",
        bare.path().to_str().expect("utf-8"),
    ]);
    let cache = tempfile::tempdir().expect("temp");
    let once = || {
        gitship()
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .args(["agent", "staging", "--once", "--source"])
            .arg(bare.path())
            .arg("--cache")
            .arg(cache.path())
            .output()
            .expect("gitship agent --once")
    };
    let output = once();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("does not run Terraform with its local backend")
            && stderr.contains("agent.terraform: off")
            && stderr.contains("staging"),
        "{stderr}"
    );
    assert_eq!(sim.title(), None, "nothing was applied");
    let states = walkdir(cache.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("tfstate"))
        .collect::<Vec<_>>();
    assert!(states.is_empty(), "Terraform ran: {states:?}");

    repo.edit("config/staging.yaml", "terraform: apply", "terraform: off");
    repo.commit("no Terraform in the agent");
    repo.git(&[
        "push",
        "-q",
        bare.path().to_str().expect("utf-8"),
        "HEAD:main",
    ]);
    let output = once();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(sim.title().as_deref(), Some("one"));
}

/// Every file and directory below `dir`.
pub(crate) fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walkdir(&path));
        }
        found.push(path);
    }
    found
}

/// The agent's memory follows the manifests, not the repository: a 64 MiB file elsewhere in
/// the repository is neither written to its checkout nor read whole (a checkout used to read
/// each blob whole: the peak was the largest file, twice).
#[test]
fn a_large_file_in_the_repository_does_not_set_the_agents_memory() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::start();
    let (repo, _) = source_repo(&sim);
    repo.write("data/model.bin", &"\0".repeat(64 * 1024 * 1024));
    repo.commit("a large file");
    let bare = tempfile::tempdir().expect("temp");
    repo.git(&[
        "clone",
        "-q",
        "--bare",
        ".",
        bare.path().to_str().expect("utf-8"),
    ]);
    let cache = tempfile::tempdir().expect("temp");
    let mut child = gitship()
        .arg("--kubeconfig")
        .arg(&sim.kubeconfig)
        .args(["agent", "staging", "--once", "--source"])
        .arg(bare.path())
        .arg("--cache")
        .arg(cache.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gitship agent --once");
    // The high-water mark of its resident memory, read until it exits.
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().expect("wait").is_none() {
        if let Some(hwm) = std::fs::read_to_string(&status).ok().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak_kib = peak_kib.max(hwm);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(sim.title().as_deref(), Some("one"));
    assert!(
        peak_kib > 0 && peak_kib < 60 * 1024,
        "peak {peak_kib} KiB for a 64 MiB file"
    );
    let checked_out = walkdir(cache.path())
        .into_iter()
        .any(|path| path.ends_with("data/model.bin"));
    assert!(!checked_out, "the large file was written to the checkout");
}

/// `--once`: a sync, a no-op heal that writes nothing, a heal, and a bad commit's exit code.
#[test]
fn once_syncs_then_checks_for_drift_and_exits_with_deploys_codes() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::counting();
    let (repo, bare) = source_repo(&sim);
    let cache = tempfile::tempdir().expect("temp");
    let once = || {
        let output = gitship()
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .args(["agent", "staging", "--once", "--source"])
            .arg(bare.path())
            .arg("--cache")
            .arg(cache.path())
            .output()
            .expect("gitship agent --once");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = once();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sim.title().as_deref(), Some("one"));
    // Nothing drifted: a drift check, and not one write.
    let mark = sim.mark();
    let (code, stderr) = once();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("checking for drift"), "{stderr}");
    assert!(!stderr.contains("healing"), "{stderr}");
    let writes = sim.writes_since(mark);
    assert!(writes.is_empty(), "a no-op heal wrote {writes:#?}");
    sim.kubectl(&["scale", "deployment/web", "-n", sim.ns(), "--replicas=5"]);
    let (code, stderr) = once();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("checking for drift"), "{stderr}");
    assert!(stderr.contains("healing"), "{stderr}");
    assert!(
        !sim.writes_since(mark).is_empty(),
        "the heal is seen in the record of writes"
    );
    // The heal is recorded, with what it put back under its row.
    let report = history(&repo);
    let heal = &report.records[0];
    assert_eq!(heal.source, RecordSource::Heal);
    assert!(
        heal.healed.iter().any(|h| h.contains("spec.replicas")),
        "{heal:?}"
    );
    assert_eq!(report.records[1].source, RecordSource::Agent);
    let table = repo.ok(&["history", "staging"]).stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].contains(" heal "), "{table}");
    assert!(
        lines[2].starts_with("  healed ") && lines[2].contains("spec.replicas"),
        "{table}"
    );
    assert!(lines[3].contains(" agent "), "{table}");

    repo.write(
        "config/staging.yaml",
        &format!("cluster:\n  namespace: {}\n  bogus: 1\n", sim.ns()),
    );
    repo.commit("bad config");
    push(&repo, bare.path());
    let (code, stderr) = once();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("config/staging.yaml:3"), "{stderr}");
    assert_eq!(sim.title().as_deref(), Some("one"));
}

#[test]
fn a_flapping_field_is_shown_healed_after_a_back_off_and_healed_at_once_after_git_changes_it() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::start();
    let (repo, bare) = source_repo(&sim);
    let agent = Agent::start(&sim, bare.path(), &[]);
    agent.wait_first_sync(&sim);
    // An autoscaler-like manager sets the replicas back after every heal.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scaler = {
        let (stop, kubeconfig, ns) = (stop.clone(), sim.kubeconfig.clone(), sim.ns().to_string());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["scale", "deployment/web", "-n", &ns, "--replicas=7"])
                    .output();
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let replicas = format!("Deployment {}/web spec.replicas", sim.ns());
    eventually(
        "the replicas are reported as flapping",
        Duration::from_secs(20),
        || agent.status()["flapping"].to_string().contains(&replicas),
    );
    // Shown as drifted and flapping, not as in sync.
    eventually(
        "the flapping field is shown as drifted",
        Duration::from_secs(5),
        || {
            let status = agent.status();
            status["drifted"].to_string().contains(&replicas)
                && agent.metrics().lines().any(|line| {
                    line.starts_with("gitship_agent_drifted_objects") && !line.ends_with(" 0")
                })
        },
    );
    let status = agent.status();
    assert!(
        status["flapping"].to_string().contains("next heal in"),
        "{status}"
    );
    // Healed again after its back-off (2s, then 4s, ... on a 1s heal interval): never given up.
    let flagged = agent.status()["lastHeal"]["time"].clone();
    eventually(
        "the flapping field is healed again after its back-off",
        Duration::from_secs(15),
        || agent.status()["lastHeal"]["time"] != flagged,
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = scaler.join();
    let log = agent.log();
    assert_eq!(
        log.matches("is changed back after every heal").count(),
        1,
        "reported once: {log}"
    );
    assert!(log.contains("drift.ignore"), "{log}");
    let events = sim.events();
    assert!(events.contains("FlappingField"), "{events}");

    // Git changes the field: the sync applies it, and it is no longer flapping: one more
    // `kubectl scale` is put back at the next heal.
    repo.edit(
        "infrastructure/kubernetes/web.yaml",
        "replicas: 2",
        "replicas: 3",
    );
    repo.commit("three replicas");
    push(&repo, bare.path());
    eventually("the commit is applied", Duration::from_secs(10), || {
        sim.replicas().as_deref() == Some("3")
            && agent.status()["revision"]["subject"] == "three replicas"
    });
    sim.kubectl(&["scale", "deployment/web", "-n", sim.ns(), "--replicas=9"]);
    eventually(
        "the scale is healed at once",
        Duration::from_secs(4),
        || sim.replicas().as_deref() == Some("3"),
    );
    eventually("no field flaps", Duration::from_secs(4), || {
        let status = agent.status();
        status.get("flapping").is_none() && status.get("drifted").is_none()
    });
    assert!(
        agent.log().contains("is no longer flapping"),
        "{}",
        agent.log()
    );
}

#[test]
fn a_pinned_environment_is_healed_but_not_synced_until_resumed() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::start();
    let (repo, bare) = source_repo(&sim);
    let agent = Agent::start(&sim, bare.path(), &[]);
    agent.wait_first_sync(&sim);
    let pinned = repo.ok(&["pin", "staging", "--rev", "HEAD"]);
    assert!(
        pinned.stdout.contains("pinned `staging` at"),
        "{}",
        pinned.all()
    );

    repo.edit(
        "infrastructure/kubernetes/site.yaml",
        "title: one",
        "title: two",
    );
    repo.commit("two");
    push(&repo, bare.path());
    eventually(
        "the agent says it is pinned",
        Duration::from_secs(5),
        || {
            let status = agent.status();
            status["state"] == "pinned" && status["gitRevision"]["subject"] == "two"
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sim.title().as_deref(), Some("one"), "no sync while pinned");
    // It still heals, back to the pinned revision.
    sim.kubectl(&["scale", "deployment/web", "-n", sim.ns(), "--replicas=4"]);
    eventually(
        "the pinned revision is healed",
        Duration::from_secs(6),
        || sim.replicas().as_deref() == Some("2"),
    );
    // `deploy` of HEAD refuses while pinned; status shows it.
    let refused = repo.gitship(&["deploy", "staging"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains("is pinned at"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    let status = repo.ok(&["status", "staging"]);
    assert!(status.stdout.contains("pinned at"), "{}", status.stdout);
    let events = sim.events();
    assert!(events.contains("\"Pinned\""), "{events}");

    let resumed = repo.ok(&["resume", "staging"]);
    assert!(
        resumed.stdout.contains("follows Git again"),
        "{}",
        resumed.all()
    );
    eventually("the agent syncs Git again", Duration::from_secs(6), || {
        sim.title().as_deref() == Some("two")
    });
    let events = sim.events();
    assert!(events.contains("\"Resumed\""), "{events}");
}

#[test]
fn sync_suspend_resume_and_status_wait_act_through_the_cluster_at_once() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let sim = Sim::start();
    let (repo, bare) = source_repo(&sim);
    // An hour between polls: only the requests make the agent act.
    let agent = Agent::start_every(&sim, bare.path(), "1h", &[]);
    agent.wait_first_sync(&sim);

    // `sync` asks the leader and waits for its answer.
    repo.edit(
        "infrastructure/kubernetes/site.yaml",
        "title: one",
        "title: two",
    );
    repo.commit("two");
    push(&repo, bare.path());
    let synced = repo.ok(&["sync", "staging", "--timeout", "30s"]);
    assert!(
        synced.stdout.contains("`staging`: synced at"),
        "{}",
        synced.all()
    );
    assert_eq!(sim.title().as_deref(), Some("two"));
    // The Ready condition: HEAD runs, synced.
    let ready = repo.ok(&["status", "staging", "--wait", "--timeout", "30s"]);
    assert!(ready.stderr.contains("is ready"), "{}", ready.all());

    // Suspended: neither a webhook's sync nor a heal.
    let suspended = repo.ok(&["suspend", "staging", "--reason", "incident 42"]);
    assert!(
        suspended.stdout.contains("suspended `staging`"),
        "{}",
        suspended.all()
    );
    eventually("the agent is suspended", Duration::from_secs(10), || {
        let status = agent.status();
        status["state"] == "suspended"
            && status["suspended"]
                .as_str()
                .is_some_and(|s| s.contains("incident 42"))
    });
    repo.edit(
        "infrastructure/kubernetes/site.yaml",
        "title: two",
        "title: three",
    );
    repo.commit("three");
    push(&repo, bare.path());
    assert_eq!(agent.signed_hook(), 202);
    sim.kubectl(&["scale", "deployment/web", "-n", sim.ns(), "--replicas=5"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        sim.title().as_deref(),
        Some("two"),
        "no sync while suspended"
    );
    assert_eq!(
        sim.replicas().as_deref(),
        Some("5"),
        "no heal while suspended"
    );
    let waited = repo.gitship(&["status", "staging", "--wait", "--timeout", "2s"]);
    assert_eq!(waited.code, 1, "{}", waited.all());
    assert!(waited.stderr.contains("is not ready"), "{}", waited.stderr);
    assert!(waited.stderr.contains("suspended"), "{}", waited.stderr);

    // `resume` asks for a sync: applied and healed now, not at the next poll an hour away.
    let resumed = repo.ok(&["resume", "staging"]);
    assert!(
        resumed.stdout.contains("was suspended by"),
        "{}",
        resumed.all()
    );
    eventually(
        "resume syncs and heals at once",
        Duration::from_secs(10),
        || sim.title().as_deref() == Some("three") && sim.replicas().as_deref() == Some("2"),
    );
    repo.ok(&["status", "staging", "--wait", "--timeout", "30s"]);
    let events = sim.events();
    assert!(events.contains("\"Suspended\""), "{events}");
    assert!(events.contains("\"Resumed\""), "{events}");

    // A restarted agent knows when the last sync was, from the history.
    let last_sync = agent.status()["lastSync"].clone();
    assert!(last_sync.is_string(), "{}", agent.status());
    drop(agent);
    let restarted = Agent::start_every(&sim, bare.path(), "1h", &[]);
    eventually("the restarted agent leads", Duration::from_secs(10), || {
        restarted.status()["revision"]["subject"] == "three"
    });
    assert!(
        restarted.status()["lastSync"].is_string(),
        "{}",
        restarted.status()
    );
}

#[test]
fn sigterm_in_the_middle_of_a_sync_releases_both_leases_and_exits_0() {
    if !require_tool("kubectl", "help") {
        return;
    }
    // Workloads take 20s to become healthy (kubesim's rollout delay, kwok's readiness delay on
    // the real server): the sync is waiting for health when SIGTERM comes.
    let sim = Sim::start_with_rollout(20_000);
    let (repo, bare) = source_repo(&sim);
    repo.edit(
        "infrastructure/kubernetes/web.yaml",
        "      labels: {app: web}\n",
        "      labels: {app: web}\n      annotations: {pod-ready.stage.kwok.x-k8s.io/delay: 20s}\n",
    );
    repo.commit("slow pods");
    push(&repo, bare.path());
    let mut agent = Agent::start(&sim, bare.path(), &[]);
    eventually("the sync waits for health", Duration::from_secs(10), || {
        agent.log().contains("waiting for health")
    });
    let leases = sim.leases();
    assert!(
        leases.contains("gitship-staging\n"),
        "the deploy lock is held: {leases}"
    );
    let started = Instant::now();
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        agent.log()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let leases = sim.leases();
    assert!(
        !leases.contains("gitship-staging"),
        "both Leases are gone: {leases}"
    );
}

/// An sshd on loopback serving this machine's Git repositories to one client key, with a host
/// key of its own; killed when dropped.
struct SshServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SshServer {
    /// `None` (skipped loudly, or failed under `GITSHIP_REQUIRE_TOOLS=1`) without `sshd` (or
    /// `kubectl`, which the tests read the cluster with).
    fn start() -> Option<SshServer> {
        // openssh-server brings ssh-keygen (openssh-client) with it.
        if !require_tool("kubectl", "help") || !require_tool("sshd", "-V") {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp");
        let keygen = |name: &str| {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
                .arg(dir.path().join(name))
                .status()
                .expect("ssh-keygen");
            assert!(status.success());
        };
        keygen("host");
        keygen("client");
        std::fs::copy(
            dir.path().join("client.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("authorized_keys");
        // sshd re-executes itself: it must be started by its absolute path.
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sshd's absolute path");
        // Its privilege separation directory, when it runs as root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        let option = |text: String| ["-o".to_string(), text];
        let mut args: Vec<String> = vec!["-D".into(), "-e".into(), "-f".into(), "/dev/null".into()];
        for setting in [
            format!("Port={port}"),
            "ListenAddress=127.0.0.1".into(),
            format!("HostKey={}", dir.path().join("host").display()),
            format!(
                "AuthorizedKeysFile={}",
                dir.path().join("authorized_keys").display()
            ),
            "PasswordAuthentication=no".into(),
            "KbdInteractiveAuthentication=no".into(),
            "PermitRootLogin=prohibit-password".into(),
            "StrictModes=no".into(),
            "UsePAM=no".into(),
            "PidFile=none".into(),
        ] {
            args.extend(option(setting));
        }
        let child = Command::new(sshd)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("sshd.log")).expect("log"),
            ))
            .spawn()
            .expect("sshd starts");
        let server = SshServer { child, port, dir };
        eventually("sshd listens", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(server)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A `known_hosts` line for this server with the public key in `file`.
    fn known_host(&self, file: &str) -> String {
        let public = std::fs::read_to_string(self.path(file)).expect("public key");
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().expect("type"), fields.next().expect("key"));
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent fetches over SSH only from a host whose key `GITSHIP_GIT_KNOWN_HOSTS` lists: an
/// unknown host and a changed key are refused with the key's fingerprint, never its material,
/// and the listed key syncs.
#[test]
fn the_agent_checks_ssh_host_keys_against_known_hosts() {
    let Some(server) = SshServer::start() else {
        return;
    };
    let sim = Sim::start();
    let (_repo, bare) = source_repo(&sim);
    let user = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    let source = format!(
        "ssh://{user}@127.0.0.1:{}{}",
        server.port,
        bare.path().display()
    );
    let known_hosts = server.path("known_hosts");
    let once = |known: &str| {
        std::fs::write(&known_hosts, known).expect("known_hosts");
        let cache = tempfile::tempdir().expect("temp");
        let output = gitship()
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .args(["agent", "staging", "--once", "--source", &source, "--cache"])
            .arg(cache.path())
            .env("GITSHIP_GIT_SSH_KEY", server.path("client"))
            .env("GITSHIP_GIT_KNOWN_HOSTS", &known_hosts)
            .output()
            .expect("gitship agent --once");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let host_key = server.known_host("host.pub");
    let secret = std::fs::read_to_string(server.path("client")).expect("private key");
    let material: Vec<&str> = host_key
        .split_whitespace()
        .skip(2)
        .chain(secret.lines().filter(|l| !l.starts_with("-----")))
        .collect();

    let (code, stderr) = once(&server.known_host("client.pub"));
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("does not match") && stderr.contains("SHA256:"),
        "{stderr}"
    );
    let (code, unknown) = once(
        "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
    );
    assert_ne!(code, Some(0), "{unknown}");
    assert!(unknown.contains("is not in"), "{unknown}");
    for text in [&stderr, &unknown] {
        for line in &material {
            assert!(!text.contains(line), "key material in:\n{text}");
        }
    }
    assert_eq!(sim.title(), None, "nothing was applied");

    let (code, stderr) = once(&host_key);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sim.title().as_deref(), Some("one"), "{stderr}");
}

/// The Deployment `api` (1 replica) the status page test adds to [`source_repo`]'s.
const API: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n        - name: api\n          image: registry.local/api:1\n";

/// What the real controllers make of Deployment `api` (one ReplicaSet owning one Pod, the
/// revision annotations), made by hand on kubesim, which has no such controllers.
fn fake_controllers(sim: &Sim) {
    let ns = sim.ns();
    let uid = sim
        .get(&[
            "get",
            "deployment",
            "api",
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .expect("Deployment api");
    sim.kubectl(&[
        "annotate",
        "deployment",
        "api",
        "-n",
        ns,
        "deployment.kubernetes.io/revision=1",
    ]);
    let owner = |kind: &str, name: &str, uid: &str| {
        format!(
            "  ownerReferences:\n  - {{apiVersion: apps/v1, kind: {kind}, name: {name}, uid: \"{uid}\", controller: true}}\n"
        )
    };
    let replica_set = format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: api-5d8f7c\n  namespace: {ns}\n  annotations: {{deployment.kubernetes.io/revision: \"1\"}}\n{}spec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: api}}\n  template:\n    metadata:\n      labels: {{app: api}}\n    spec:\n      containers:\n        - name: api\n          image: registry.local/api:1\n",
        owner("Deployment", "api", &uid)
    );
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), replica_set).expect("write");
    sim.kubectl(&["apply", "-f", file.path().to_str().expect("utf-8")]);
    let set_uid = sim
        .get(&[
            "get",
            "replicaset",
            "api-5d8f7c",
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .expect("ReplicaSet api-5d8f7c");
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: api-5d8f7c-x2x9q\n  namespace: {ns}\n  labels: {{app: api}}\n{}spec:\n  containers:\n    - name: api\n      image: registry.local/api:1\n",
        owner("ReplicaSet", "api-5d8f7c", &set_uid)
    );
    std::fs::write(file.path(), pod).expect("write");
    sim.kubectl(&["apply", "-f", file.path().to_str().expect("utf-8")]);
}

/// The `<tr class="object">` row of the DOM naming `name` (`ns/name`).
fn object_row<'a>(dom: &'a str, name: &str) -> &'a str {
    dom.split("<tr class=\"object\">")
        .skip(1)
        .map(|row| row.split("</tr>").next().unwrap_or(row))
        .find(|row| row.contains(&format!("<code>{name}</code>")))
        .unwrap_or_else(|| panic!("no row for {name} in\n{dom}"))
}

/// The status page, in a real headless Chromium: each object's health and sync state (a
/// healthy ConfigMap and Deployment, the Deployment's ReplicaSet and Pod as children; an
/// unhealthy, drifted Deployment with its drift line), and the deploy history. A screenshot is
/// saved with the test's output.
#[test]
fn the_status_page_shows_each_objects_health_children_and_history_in_a_browser() {
    if !require_tool("kubectl", "help")
        || !require_tool(crate::support::browser::CHROMIUM, "--version")
    {
        return;
    }
    let sim = Sim::counting();
    let (repo, bare) = source_repo(&sim);
    // Drift stays (reported, not healed), so that the page can show it.
    repo.write(
        "config/staging.yaml",
        &format!(
            "cluster:\n  context: kubesim\n  namespace: {}\nagent:\n  terraform: off\n  self_heal: false\n",
            sim.ns()
        ),
    );
    repo.write("infrastructure/kubernetes/api.yaml", API);
    repo.commit("Add the API");
    push(&repo, bare.path());
    let agent = Agent::start(&sim, bare.path(), &[]);
    agent.wait_first_sync(&sim);
    let ns = sim.ns().to_string();
    if let Some(kubesim) = sim.test_cluster().sim() {
        fake_controllers(&sim);
        kubesim
            .handle()
            .script_rollout(&ns, "web", kubesim::Rollout::Fail);
    } else {
        // Pods kwok never makes Ready, and a deadline the controller soon says is exceeded:
        // fields gitship does not set, so not drift.
        sim.kubectl(&[
            "patch",
            "deployment",
            "web",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"progressDeadlineSeconds":3,"template":{"metadata":{"labels":{"sim.gitship.dev/unready":"true"}}}}}"#,
        ]);
    }
    // A value gitship sets, changed: drift, and a new rollout that never becomes healthy.
    sim.kubectl(&["set", "env", "deployment/web", "-n", &ns, "LOG_LEVEL=debug"]);
    let objects = || {
        let response = http_get(&agent.address, "/status/objects", None).expect("GET");
        assert_eq!(response.status, 200);
        serde_json::from_slice::<Value>(&response.body).expect("JSON")
    };
    let find = |view: &Value, name: &str| {
        view["objects"]
            .as_array()
            .and_then(|objects| objects.iter().find(|o| o["name"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    eventually(
        "the view shows the healthy, the degraded and the drifted",
        Duration::from_secs(60),
        || {
            let view = objects();
            let api = find(&view, "api");
            let web = find(&view, "web");
            api["health"] == "Healthy"
                && api["replicaSets"][0]["current"] == true
                && api["replicaSets"][0]["pods"][0]["name"].is_string()
                && web["health"] == "Degraded"
                && web["sync"] == "OutOfSync"
                && web["drift"]
                    .to_string()
                    .contains("LOG_LEVEL].value: debug -> info")
        },
    );
    let view = objects();
    assert_eq!(find(&view, "site")["health"], "Healthy", "{view}");
    assert_eq!(find(&view, "site")["sync"], "Synced", "{view}");
    let url = format!("http://{}/", agent.address);
    let dom = crate::support::browser::dump_dom(&url);
    assert!(dom.contains("<h1>gitship agent: staging</h1>"), "{dom}");
    let site = object_row(&dom, &format!("{ns}/site"));
    assert!(site.contains(">ConfigMap<"), "{site}");
    assert!(
        site.contains(">Healthy<") && site.contains(">Synced<"),
        "{site}"
    );
    let api = object_row(&dom, &format!("{ns}/api"));
    assert!(
        api.contains(">Deployment<") && api.contains(">Healthy<"),
        "{api}"
    );
    assert!(api.contains("ReplicaSet <code>"), "{api}");
    assert!(api.contains(">current<"), "{api}");
    assert!(api.contains("Pod <code>"), "{api}");
    let web = object_row(&dom, &format!("{ns}/web"));
    assert!(
        web.contains(">Degraded<") && web.contains(">OutOfSync<"),
        "{web}"
    );
    assert!(web.contains("ProgressDeadlineExceeded"), "{web}");
    assert!(web.contains("<details open=\"\">"), "{web}");
    assert!(
        web.contains("env[name=LOG_LEVEL].value: debug -&gt; info (changed by kubectl-set)"),
        "{web}"
    );
    // The history: the agent's deploy of the second commit, with its subject and an age.
    let record = dom
        .split("<tr class=\"record\">")
        .nth(1)
        .and_then(|row| row.split("</tr>").next())
        .unwrap_or_else(|| panic!("no history row in\n{dom}"));
    assert!(record.contains("Add the API"), "{record}");
    assert!(
        record.contains(">succeeded<") && record.contains(">agent<"),
        "{record}"
    );
    assert!(
        record.contains(" ago</time>") || record.contains("just now</time>"),
        "{record}"
    );
    // A screenshot with the test's output.
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("agent-status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    crate::support::browser::screenshot(&url, &screenshot, 1280, 2000);
    eprintln!("screenshot: {}", screenshot.display());
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "a {} byte screenshot", png.len());
}
