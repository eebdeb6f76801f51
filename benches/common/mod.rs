//! What the benchmarks share: the generated objects, the fixture repository's Git, the knobs
//! read from the environment, medians, and the binaries run as a user runs them.
//!
//! Each bench is its own crate (`mod common;`), and not every one uses every helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Object `index` of the generated set, as YAML: a ConfigMap, a Service or a Deployment in turn.
pub fn manifest(index: usize) -> String {
    let name = format!("bench-{index:04}");
    match index % 3 {
        0 => format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  index: \"{index}\"\n  payload: {}\n",
            "x".repeat(64)
        ),
        1 => format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {name}\n  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n"
        ),
        _ => format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n        - name: app\n          image: registry.local/app:{index}\n          ports:\n            - containerPort: 8080\n"
        ),
    }
}

/// A number from the environment variable `key`, or `default`.
pub fn env_number(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median (the upper one of an even count).
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// `git ARGS` in `repo` (the fixture's Git; gitship itself uses git2).
pub fn git(repo: &Path, home: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args([
            "-c",
            "user.email=bench@example.com",
            "-c",
            "user.name=bench",
        ])
        .args(args)
        .current_dir(repo)
        .env("HOME", home)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether `kubectl` runs; prints the loud SKIPPED line for `bench` when it does not.
pub fn kubectl_available(bench: &str) -> bool {
    let ok = Command::new("kubectl")
        .arg("help")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: `kubectl` is not on PATH; the {bench} benchmark needs it");
    }
    ok
}

/// The built `gitship` binary, run in `repo` with a scrubbed environment and `home` as HOME.
pub fn gitship(repo: &Path, kubeconfig: &Path, home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitship"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .current_dir(home)
        .arg("-C")
        .arg(repo)
        .arg("--kubeconfig")
        .arg(kubeconfig);
    command
}

/// The kubesim binary next to `gitship` (the same profile), built when missing.
pub fn kubesim_binary() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_gitship")).with_file_name("kubesim");
    if !binary.exists() {
        let release = binary
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|name| name == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "kubesim", "--bin", "kubesim"]);
        if release {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build -p kubesim");
        assert!(status.success(), "cannot build the kubesim binary");
    }
    binary
}

/// A kubesim process of its own (the binary, as a user runs it); killed when dropped.
pub struct SimProcess {
    child: Child,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl SimProcess {
    /// `kubesim --latency-ms LATENCY --rollout-delay-ms ROLLOUT` on a free port.
    pub fn start(latency_ms: u64, rollout_delay_ms: u64) -> SimProcess {
        let dir = tempfile::tempdir().expect("temp");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(kubesim_binary())
            .env_remove("KUBESIM_TOKEN")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--latency-ms", &latency_ms.to_string()])
            .args(["--rollout-delay-ms", &rollout_delay_ms.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubesim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("kubesim prints its URL");
        assert!(line.starts_with("http://"), "kubesim: {line}");
        SimProcess {
            child,
            kubeconfig,
            _dir: dir,
        }
    }

    /// `kubectl --kubeconfig <this> ARGS`.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new("kubectl");
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
