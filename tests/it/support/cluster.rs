//! The cluster a test runs against: kubesim by default, the real control plane of
//! `tests/real-cluster` when `GITSHIP_TEST_CLUSTER=real` (README "Testing on a real control
//! plane").
//!
//! On the real server every test works in namespaces of its own: [`TestCluster::ns`] gives
//! `blog` on kubesim (a fresh server per test) and `blog-<id>` on the real one, and the
//! namespaces are deleted when the cluster value drops. Writes are counted from kubesim's request
//! record, or from the real server's audit log (the requests of the test's own user, in its own
//! namespaces), so "a no-op makes no writes" is checked on both. Tests that need what only
//! kubesim has (fault injection, scripted rollouts, latency) end in `_sim_only` and return early
//! on the real server.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_openapi::api::core::v1 as k8s_namespace;
use kubesim::{KubeSim, Options};

/// Which server the cluster tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sim,
    Real,
}

/// `GITSHIP_TEST_CLUSTER`: `real` for the real control plane, anything else (or unset) kubesim.
pub fn backend() -> Backend {
    match std::env::var("GITSHIP_TEST_CLUSTER").as_deref() {
        Ok("real") => Backend::Real,
        _ => Backend::Sim,
    }
}

/// `true` on kubesim. On the real server it prints why the test does not run there and returns
/// `false`: the test needs something only kubesim can do (name it in `why`).
pub fn sim_only(why: &str) -> bool {
    if backend() == Backend::Sim {
        return true;
    }
    eprintln!("\n*** not run on the real control plane: {why} (kubesim only) ***\n");
    false
}

/// A cluster for one test.
pub struct TestCluster {
    sim: Option<KubeSim>,
    /// A private kubeconfig for the real server whose context is named `kubesim`, as the
    /// tests' environment configs expect.
    kubeconfig: PathBuf,
    audit_log: Option<PathBuf>,
    suffix: String,
    namespaces: Mutex<Vec<String>>,
    _dir: tempfile::TempDir,
    /// The runtime an in-process kubesim runs on, for a test that is not async itself
    /// ([`TestCluster::start_blocking`]); dropped after the simulator.
    _runtime: Option<tokio::runtime::Runtime>,
}

/// A point in the cluster's record of writes: [`TestCluster::writes_since`] lists what came after.
#[derive(Debug, Clone, Copy)]
pub struct Mark(usize);

impl TestCluster {
    /// kubesim with default options, or the real server.
    pub async fn start() -> TestCluster {
        TestCluster::start_with(Options::default()).await
    }

    /// kubesim started with `options`, or the real server (where `options` mean nothing: a test
    /// that depends on them is `_sim_only`).
    pub async fn start_with(options: Options) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp");
        match backend() {
            Backend::Sim => {
                let sim = KubeSim::start_with(options).await.expect("kubesim starts");
                let kubeconfig = sim.kubeconfig_path().to_path_buf();
                TestCluster {
                    sim: Some(sim),
                    kubeconfig,
                    audit_log: None,
                    suffix: String::new(),
                    namespaces: Mutex::new(Vec::new()),
                    _dir: dir,
                    _runtime: None,
                }
            }
            Backend::Real => {
                let source = real_kubeconfig();
                let kubeconfig = dir.path().join("kubeconfig");
                write_renamed_kubeconfig(&source, &kubeconfig);
                let audit_log = source.parent().map(|parent| parent.join("audit.log"));
                let suffix = format!("-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
                TestCluster {
                    sim: None,
                    kubeconfig,
                    audit_log,
                    suffix,
                    namespaces: Mutex::new(Vec::new()),
                    _dir: dir,
                    _runtime: None,
                }
            }
        }
    }

    /// [`TestCluster::start`] for a test that is not async: kubesim runs on a runtime of its own.
    pub fn start_blocking() -> TestCluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut cluster = runtime.block_on(TestCluster::start());
        cluster._runtime = Some(runtime);
        cluster
    }

    /// Point environment `env` of `repo` at this cluster: its config's `namespace: BASE` becomes
    /// the context `kubesim` and the test's namespace [`TestCluster::ns`]`(BASE)`, committed.
    pub fn adopt(&self, repo: &mut super::repo::Repo, env: &str, base: &str) -> String {
        let ns = self.ns(base);
        repo.edit(
            &format!("config/{env}.yaml"),
            &format!("  namespace: {base}\n"),
            &format!("  context: kubesim\n  namespace: {ns}\n"),
        );
        repo.commit(&format!("{env} on the test cluster"));
        repo.kubeconfig = Some(self.kubeconfig.clone());
        ns
    }

    /// kubesim, `None` on the real server.
    pub fn sim(&self) -> Option<&KubeSim> {
        self.sim.as_ref()
    }

    /// The backend this cluster is.
    pub fn backend(&self) -> Backend {
        match self.sim {
            Some(_) => Backend::Sim,
            None => Backend::Real,
        }
    }

    /// A kubeconfig file (mode 0600) whose context `kubesim` reaches this cluster.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The client configuration of the kubeconfig's context.
    pub async fn kube_config(&self) -> kube::Config {
        match &self.sim {
            Some(sim) => sim.kube_config(),
            None => {
                let kubeconfig =
                    kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .expect("kube config")
            }
        }
    }

    /// A client of this cluster.
    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.kube_config().await).expect("client")
    }

    /// Create namespace `name` (from [`TestCluster::ns`]) as another tool would.
    pub async fn create_namespace(&self, name: &str) {
        let namespaces: kube::Api<k8s_namespace::Namespace> = kube::Api::all(self.client().await);
        let namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .expect("namespace");
        namespaces
            .create(&kube::api::PostParams::default(), &namespace)
            .await
            .expect("create namespace");
    }

    /// The namespace a test calls `base`: `base` itself on kubesim, `base-<id>` on the real
    /// server, deleted when the cluster drops.
    pub fn ns(&self, base: &str) -> String {
        let name = format!("{base}{}", self.suffix);
        if self.sim.is_none() {
            let mut namespaces = self.namespaces.lock().expect("namespaces");
            if !namespaces.contains(&name) {
                namespaces.push(name.clone());
            }
        }
        name
    }

    /// Delete namespace `name` too when the cluster drops (on the real server): one a test's
    /// environment makes from a namespace of [`TestCluster::ns`] (a preview's).
    pub fn track(&self, name: &str) {
        if self.sim.is_none() {
            let mut namespaces = self.namespaces.lock().expect("namespaces");
            if !namespaces.iter().any(|known| known == name) {
                namespaces.push(name.to_string());
            }
        }
    }

    /// Rewrite `namespace: BASE` (and `-n BASE`, `BASE/`) in `text` to the test's namespaces:
    /// for config files and expected outputs written with the kubesim names.
    pub fn localize(&self, text: &str, bases: &[&str]) -> String {
        let mut text = text.to_string();
        if self.suffix.is_empty() {
            return text;
        }
        for base in bases {
            let real = self.ns(base);
            for (from, to) in [
                (
                    format!("namespace: {base}\n"),
                    format!("namespace: {real}\n"),
                ),
                (
                    format!("namespace: {base}\""),
                    format!("namespace: {real}\""),
                ),
                (format!(" {base}/"), format!(" {real}/")),
            ] {
                text = text.replace(&from, &to);
            }
        }
        text
    }

    /// Where the record of writes stands now.
    pub fn mark(&self) -> Mark {
        match (&self.sim, &self.audit_log) {
            (Some(sim), _) => Mark(sim.handle().request_count()),
            (None, Some(log)) => Mark(std::fs::metadata(log).map_or(0, |m| m.len() as usize)),
            (None, None) => Mark(0),
        }
    }

    /// Writes (not dry runs) since `mark`, as `METHOD /path` (no query): kubesim's record, or on
    /// the real server the audit log's requests of the test's user in the test's namespaces
    /// (controllers' writes, and other tests', are not the test's).
    pub fn writes_since(&self, mark: Mark) -> Vec<String> {
        self.requests_since(mark, false)
    }

    /// Dry-run writes since `mark`, as `METHOD /path`: what [`TestCluster::writes_since`] leaves
    /// out, from the same record.
    pub fn dry_runs_since(&self, mark: Mark) -> Vec<String> {
        self.requests_since(mark, true)
    }

    /// The writes since `mark` that are dry runs (`dry_run`) or not.
    fn requests_since(&self, mark: Mark, dry_run: bool) -> Vec<String> {
        let method = |verb: &str| match verb {
            "create" | "POST" => Some("POST"),
            "update" | "PUT" => Some("PUT"),
            "patch" | "PATCH" => Some("PATCH"),
            "delete" | "deletecollection" | "DELETE" => Some("DELETE"),
            _ => None,
        };
        if let Some(sim) = &self.sim {
            return sim
                .handle()
                .requests()
                .into_iter()
                .skip(mark.0)
                .filter(|r| r.dry_run == dry_run)
                .filter_map(|r| Some(format!("{} {}", method(&r.method)?, r.path)))
                .collect();
        }
        let Some(log) = &self.audit_log else {
            return Vec::new();
        };
        let bytes = std::fs::read(log).expect("read the audit log");
        let namespaces = self.namespaces.lock().expect("namespaces").clone();
        let ours = |event: &serde_json::Value| {
            if event["user"]["username"] != "admin" || event["stage"] != "ResponseComplete" {
                return false;
            }
            match event["objectRef"]["namespace"].as_str() {
                Some(namespace) => namespaces.iter().any(|n| n == namespace),
                // A cluster-scoped object: the test's own when its name carries its suffix.
                None => {
                    !self.suffix.is_empty()
                        && event["objectRef"]["name"]
                            .as_str()
                            .is_some_and(|name| name.contains(&self.suffix))
                }
            }
        };
        bytes
            .get(mark.0..)
            .unwrap_or_default()
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
            .filter(ours)
            .filter_map(|event| {
                let uri = event["requestURI"].as_str()?;
                let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
                let is_dry_run = query.split('&').any(|p| p == "dryRun=All");
                let method = method(event["verb"].as_str()?)?;
                (is_dry_run == dry_run).then(|| format!("{method} {path}"))
            })
            .collect()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let namespaces = self
            .namespaces
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        if self.sim.is_some() || namespaces.is_empty() {
            return;
        }
        // Deleting is the controllers' work from here; the test does not wait for it.
        let _ = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["delete", "namespace", "--wait=false", "--ignore-not-found"])
            .args(&namespaces)
            .output();
    }
}

/// `GITSHIP_TEST_KUBECONFIG`: the kubeconfig `tests/real-cluster/real-cluster up DIR` wrote.
fn real_kubeconfig() -> PathBuf {
    match std::env::var_os("GITSHIP_TEST_KUBECONFIG") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "GITSHIP_TEST_CLUSTER=real needs GITSHIP_TEST_KUBECONFIG: run \
             `tests/real-cluster/real-cluster up DIR` and set it to DIR/kubeconfig"
        ),
    }
}

/// Copy the real server's kubeconfig with its one context renamed `kubesim` (JSON is YAML).
fn write_renamed_kubeconfig(source: &Path, target: &Path) {
    let mut kubeconfig = kube::config::Kubeconfig::read_from(source).expect("real kubeconfig");
    for context in &mut kubeconfig.contexts {
        context.name = "kubesim".to_string();
    }
    kubeconfig.current_context = Some("kubesim".to_string());
    let text = serde_json::to_string_pretty(&kubeconfig).expect("kubeconfig as JSON");
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .expect("write kubeconfig");
    file.write_all(text.as_bytes()).expect("write kubeconfig");
}
