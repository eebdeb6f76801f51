//! Integration tests: one deploy is one transaction. Preflight refuses an unreachable cluster
//! before any build, push or Terraform apply; the environment's lock spans Terraform and the
//! Kubernetes stages, so a second deploy waits or fails before its own Terraform runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::rollback::Background;
use crate::support::cluster::{Backend, TestCluster};
use crate::support::registry::{TestRegistry, free_port};
use crate::support::repo::Repo;
use crate::support::require_tool;

/// A kubeconfig whose contexts (`prod`, `staging`, `dev`) all point at `server`.
fn kubeconfig_for(dir: &Path, server: &str) -> PathBuf {
    let mut text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters:\n- name: c\n  cluster: {{ server: \"{server}\" }}\nusers:\n- name: deployer\n  user: {{ token: t0ken }}\ncontexts:\n"
    );
    for context in ["prod", "staging", "dev", "development", "kubesim"] {
        text.push_str(&format!(
            "- name: {context}\n  context: {{ cluster: c, user: deployer }}\n"
        ));
    }
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).expect("kubeconfig");
    path
}

/// Every Terraform state file below `root`, with its bytes.
fn terraform_states(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "tfstate") {
                found.push((path.clone(), std::fs::read(&path).expect("state")));
            }
        }
    }
    found.sort();
    found
}

/// `deploy` of the blog example against a cluster nobody answers: it exits 1 within 10 s,
/// Terraform's state is untouched, nothing is pushed, and stderr holds one readable error naming
/// the server, with a hint and no library log lines. `plan` says so in its preflight section.
#[test]
fn an_unreachable_cluster_stops_the_deploy_before_any_change() {
    if !require_tool("terraform", "version") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let repo = Repo::example();
    // Terraform state exists from a first (sandbox) deploy; then a change Terraform would apply.
    repo.ok(&["deploy", "production", "--sandbox"]);
    repo.edit(
        "config/production.yaml",
        "registry: ghcr.io/acme/blog",
        &format!("registry: {}/blog", registry.address),
    );
    repo.edit(
        "config/production.yaml",
        "backup_retention_days: 30",
        "backup_retention_days: 31",
    );
    repo.commit("retention");
    let before = terraform_states(repo.path());
    assert!(
        !before.is_empty(),
        "the sandbox deploy wrote Terraform state"
    );

    let server = format!("https://127.0.0.1:{}", free_port());
    let elsewhere = tempfile::tempdir().expect("temp");
    let kubeconfig = kubeconfig_for(elsewhere.path(), &server);
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let started = Instant::now();
    let run = repo.gitship(&["--kubeconfig", &kubeconfig, "deploy", "production"]);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}:\n{}",
        run.all()
    );
    assert_eq!(
        terraform_states(repo.path()),
        before,
        "Terraform state changed"
    );
    assert!(registry.catalog().is_empty(), "something was pushed");
    let stderr = &run.stderr;
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert!(stderr.contains(&server), "{stderr}");
    assert!(stderr.contains("context `prod`"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(stderr.contains("VPN"), "{stderr}");
    for noise in ["ERROR", "WARN", "client error (Connect)\n  caused by"] {
        assert!(
            !stderr.contains(noise),
            "library noise `{noise}`:\n{stderr}"
        );
    }

    let plan = repo.gitship(&["--kubeconfig", &kubeconfig, "plan", "production"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stderr.contains("Preflight:"), "{}", plan.all());
    assert!(plan.stderr.contains("FAILED cluster"), "{}", plan.all());
    assert!(plan.stderr.contains(&server), "{}", plan.all());
    assert_eq!(
        terraform_states(repo.path()),
        before,
        "plan changed the state"
    );
}

/// Shell for "sleep `seconds`" that a SIGINT to the script's process group stops at once: in
/// steps of 0.1 s. A SIGINT that reaches `sh` while it forks `sleep` is held until that `sleep`
/// ends (dash defers it, and the new `sleep` never got it), so one long `sleep` would outlast
/// the interrupt (gitship sends a child one SIGINT, then waits out its grace period).
fn interruptible_sleep(seconds: u32) -> String {
    format!(
        "i=0; while [ $i -lt {} ]; do sleep 0.1; i=$((i+1)); done",
        seconds * 10
    )
}

/// A fake `terraform` on PATH: the real one, logging `<gitship pid> <args>` before and
/// `<gitship pid> done <status> <args>` after, and sleeping `seconds` before an `apply`.
fn slow_terraform(dir: &Path, log: &Path, seconds: u32) -> std::ffi::OsString {
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v terraform"])
            .output()
            .expect("which terraform")
            .stdout,
    )
    .expect("utf-8");
    let script = format!(
        "#!/bin/sh\necho \"$PPID $*\" >> '{log}'\nfor arg in \"$@\"; do if [ \"$arg\" = apply ]; then {sleep}; fi; done\n'{real}' \"$@\"\nstatus=$?\necho \"$PPID done $status $*\" >> '{log}'\nexit $status\n",
        log = log.display(),
        real = real.trim(),
        sleep = interruptible_sleep(seconds)
    );
    let path = dir.join("terraform");
    std::fs::write(&path, script).expect("fake terraform");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut paths = vec![dir.to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH")
}

/// The Lease `gitship-staging` in `namespace`, read with `kubectl`.
fn lease(kubeconfig: &Path, namespace: &str) -> Option<serde_json::Value> {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "get",
            "lease",
            "gitship-staging",
            "-n",
            namespace,
            "-o",
            "json",
        ])
        .output()
        .expect("kubectl");
    output
        .status
        .success()
        .then(|| serde_json::from_slice(&output.stdout).expect("lease JSON"))
}

/// The lock is held (and renewed) through a Terraform apply that outlasts the Lease: a second
/// deploy of the environment fails naming the holder, before its own Terraform plans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_spans_terraform_and_a_second_deploy_waits_for_it() {
    if !require_tool("terraform", "version") || !require_tool("kubectl", "help") {
        return;
    }
    let SlowTerraform {
        cluster: _cluster,
        kubeconfig,
        ns,
        repo,
        bin: _,
        log,
        path,
    } = SlowTerraform::start(5).await;

    // A: holds the lock through a 5 s apply with a 2 s Lease (renewed every ~0.7 s).
    let first = spawn_deploy(&repo, &kubeconfig, &path);
    let kubeconfig_for_poll = kubeconfig.clone();
    let ns_for_poll = ns.clone();
    let log_for_poll = log.clone();
    let (renewed_at_start, renewed_later) = tokio::task::spawn_blocking(move || {
        // Wait until A is inside `terraform apply`, holding the Lease.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&log_for_poll)
            .unwrap_or_default()
            .lines()
            .any(|line| line.contains(" apply"))
        {
            assert!(Instant::now() < deadline, "the first deploy never applied");
            std::thread::sleep(Duration::from_millis(50));
        }
        let start =
            lease(&kubeconfig_for_poll, &ns_for_poll).expect("the Lease is held during apply");
        std::thread::sleep(Duration::from_millis(2500));
        let later = lease(&kubeconfig_for_poll, &ns_for_poll).expect("the Lease is still held");
        (start, later)
    })
    .await
    .expect("poll");
    let holder = renewed_later["spec"]["holderIdentity"]
        .as_str()
        .expect("holder")
        .to_string();
    assert_eq!(
        renewed_at_start["spec"]["holderIdentity"], renewed_later["spec"]["holderIdentity"],
        "the Lease changed hands during the apply"
    );
    assert_ne!(
        renewed_at_start["spec"]["renewTime"], renewed_later["spec"]["renewTime"],
        "the Lease was not renewed during a 2.5 s wait with a 2 s lease"
    );

    // B: while A applies, it fails naming A, and its Terraform never plans or applies.
    let second = repo.gitship(&["deploy", "staging", "--lock-timeout", "1s"]);
    let second_pid_lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(second.stderr.contains("is locked by"), "{}", second.all());
    let who = holder.split(' ').next().unwrap_or_default();
    assert!(second.stderr.contains(who), "{}", second.all());

    let output = tokio::task::spawn_blocking(move || first.wait_with_output())
        .await
        .expect("join")
        .expect("first deploy");
    assert!(
        output.status.success(),
        "the first deploy failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let first_pid = second_pid_lines
        .iter()
        .find(|line| line.contains(" apply"))
        .and_then(|line| line.split(' ').next())
        .expect("the first deploy's apply")
        .to_string();
    for line in &second_pid_lines {
        if !line.starts_with(&format!("{first_pid} ")) {
            assert!(
                !line.contains(" plan") && !line.contains(" apply"),
                "the second deploy ran Terraform: {line}"
            );
        }
    }
    assert!(
        lease(&kubeconfig, &ns).is_none(),
        "the Lease is released at the end"
    );
}

/// A small repository: Terraform with one resource, a ConfigMap of its output, environment
/// `staging` in `namespace` on the kubeconfig context `kubesim`.
pub(crate) fn terraform_and_configmap(
    repo_dir: tempfile::TempDir,
    kubeconfig: Option<PathBuf>,
    namespace: &str,
) -> Repo {
    let repo = Repo {
        dir: repo_dir,
        kubeconfig,
    };
    repo.write(".gitignore", ".gitship/\nbin/\n");
    repo.write(
        "infrastructure/terraform/main.tf",
        "variable \"size\" { type = number }\nresource \"terraform_data\" \"db\" { input = var.size }\noutput \"size\" { value = var.size }\n",
    );
    repo.write(
        "infrastructure/kubernetes/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  size: \"${terraform.size}\"\n",
    );
    repo.write(
        "config/staging.yaml",
        &format!(
            "cluster:\n  context: kubesim\n  namespace: {namespace}\nterraform:\n  vars:\n    size: 1\n"
        ),
    );
    repo.git(&["init", "-q"]);
    repo.commit("small");
    repo
}

/// Expired or wrong credentials (a token the server refuses): `deploy` stops in preflight,
/// saying "unauthorized" for the user on the server, within 10 s and before Terraform applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_unauthorized_before_any_change() {
    if !require_tool("terraform", "version") {
        return;
    }
    // kubesim checks tokens when it is given one; the real server always does.
    let cluster = TestCluster::start_with(kubesim::Options {
        token: Some("the-right-token".into()),
        ..kubesim::Options::default()
    })
    .await;
    let repo = terraform_and_configmap(
        tempfile::tempdir().expect("temp"),
        Some(cluster.kubeconfig_path().to_path_buf()),
        &cluster.ns("web"),
    );
    let elsewhere = tempfile::tempdir().expect("temp");
    let wrong = elsewhere.path().join("kubeconfig");
    let (user, server) = with_token(cluster.kubeconfig_path(), &wrong, "an-expired-token");
    let mut repo = tokio::task::spawn_blocking(move || {
        repo.ok(&["deploy", "staging"]);
        repo.edit("config/staging.yaml", "size: 1", "size: 2");
        repo.commit("bigger");
        repo
    })
    .await
    .expect("first deploy");
    let before = terraform_states(repo.path());
    repo.kubeconfig = Some(wrong);
    let mark = cluster.mark();
    let (run, took, repo) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let run = repo.gitship(&["deploy", "staging"]);
        (run, started.elapsed(), repo)
    })
    .await
    .expect("refused deploy");
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(
        terraform_states(repo.path()),
        before,
        "Terraform state changed"
    );
    let writes = cluster.writes_since(mark);
    assert!(writes.is_empty(), "the refused deploy wrote: {writes:?}");
    assert!(
        run.stderr
            .contains(&format!("unauthorized for user `{user}` on `{server}`")),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.matches("error:").count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

/// Copy the kubeconfig `source` to `target` with every user's token replaced by `token`: the
/// name of its first user and its first cluster's server.
fn with_token(source: &Path, target: &Path, token: &str) -> (String, String) {
    let kubeconfig = kube::config::Kubeconfig::read_from(source).expect("kubeconfig");
    let mut kubeconfig = serde_json::to_value(kubeconfig).expect("kubeconfig as JSON");
    let users = kubeconfig["users"].as_array_mut().expect("users");
    for user in users.iter_mut() {
        user["user"]["token"] = serde_json::Value::from(token);
    }
    let user = users[0]["name"].as_str().expect("a user").to_string();
    let server = kubeconfig["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("a server")
        .to_string();
    std::fs::write(target, kubeconfig.to_string()).expect("kubeconfig");
    (user, server)
}

/// Change `terraform.vars.size` of `config/staging.yaml` (so that Terraform has something to
/// apply) and commit it.
fn bump_size(repo: &Repo) {
    let path = repo.path().join("config/staging.yaml");
    let text = std::fs::read_to_string(&path).expect("config");
    let size: u64 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("size: "))
        .and_then(|n| n.parse().ok())
        .expect("a size");
    repo.edit(
        "config/staging.yaml",
        &format!("size: {size}"),
        &format!("size: {}", size + 1),
    );
    repo.commit("size");
}

/// Wait until `check` holds (polling), or fail naming `what`.
fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A cluster, [`terraform_and_configmap`] on it (in the test's namespace `web`, `ns`), and a
/// [`slow_terraform`] (in `bin`, logging to `log`) that sleeps `seconds` before an apply; `path`
/// is the PATH that finds it first.
struct SlowTerraform {
    cluster: TestCluster,
    kubeconfig: PathBuf,
    ns: String,
    repo: Repo,
    bin: PathBuf,
    log: PathBuf,
    path: std::ffi::OsString,
}

impl SlowTerraform {
    async fn start(seconds: u32) -> SlowTerraform {
        let cluster = TestCluster::start().await;
        let kubeconfig = cluster.kubeconfig_path().to_path_buf();
        let ns = cluster.ns("web");
        let repo = terraform_and_configmap(
            tempfile::tempdir().expect("temp"),
            Some(kubeconfig.clone()),
            &ns,
        );
        let bin = repo.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        let log = repo.path().join("terraform.log");
        let path = slow_terraform(&bin, &log, seconds);
        SlowTerraform {
            cluster,
            kubeconfig,
            ns,
            repo,
            bin,
            log,
            path,
        }
    }
}

/// `gitship deploy staging` in the background with `path` as PATH, against `kubeconfig`.
fn spawn_deploy(repo: &Repo, kubeconfig: &Path, path: &std::ffi::OsStr) -> std::process::Child {
    crate::support::gitship()
        .arg("-C")
        .arg(repo.path())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["deploy", "staging", "--lock-lease", "2s", "--timeout", "2m"])
        .env("PATH", path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("deploy")
}

fn signal(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, signal).expect("signal");
}

fn log_has(log: &Path, needle: &str) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .any(|line| line.contains(needle))
}

/// SIGINT during `terraform apply` and SIGTERM during the health wait: exit 130, the Lease is
/// released, Terraform leaves no state lock, and the next deploy converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_at_each_stage_exits_130_and_leaves_nothing_locked() {
    if !require_tool("terraform", "version") || !require_tool("kubectl", "help") {
        return;
    }
    let SlowTerraform {
        cluster,
        kubeconfig,
        ns,
        repo,
        bin,
        log,
        path,
    } = SlowTerraform::start(30).await;
    // A rollout that takes 8 s: long enough to interrupt the health wait, short enough for the
    // final deploy to wait out: kubesim's script, kwok's readiness delay on the real server.
    let delay = match cluster.backend() {
        Backend::Sim => "",
        Backend::Real => "      annotations: { pod-ready.stage.kwok.x-k8s.io/delay: 8s }\n",
    };
    repo.write(
        "infrastructure/kubernetes/web.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{ app: web }}\n  template:\n    metadata:\n      labels: {{ app: web }}\n{delay}    spec:\n      containers:\n        - name: web\n          image: registry.local/web:1\n"
        ),
    );
    repo.commit("web");
    if let Some(sim) = cluster.sim() {
        sim.handle()
            .script_rollout(&ns, "web", kubesim::Rollout::Slow(Duration::from_secs(8)));
    }
    let repo = tokio::task::spawn_blocking(move || {
        use nix::sys::signal::Signal;
        let fast_bin = bin.join("fast");
        std::fs::create_dir_all(&fast_bin).expect("bin");
        let fast = slow_terraform(&fast_bin, &log.with_extension("fast"), 0);
        for (stage, signal_sent) in [
            ("terraform apply", Signal::SIGINT),
            ("terraform apply", Signal::SIGTERM),
            ("health wait", Signal::SIGINT),
            ("health wait", Signal::SIGTERM),
        ] {
            let _ = std::fs::remove_file(&log);
            let child = if stage == "terraform apply" {
                // A new value, so that Terraform has something to apply.
                bump_size(&repo);
                let child = Background::watch(spawn_deploy(&repo, &kubeconfig, &path));
                eventually("terraform apply", Duration::from_secs(60), || {
                    log_has(&log, " apply")
                });
                child
            } else {
                let child = Background::watch(spawn_deploy(&repo, &kubeconfig, &fast));
                eventually("the health wait", Duration::from_secs(60), || {
                    child.stderr().contains("waiting for health")
                });
                child
            };
            let signalled = Instant::now();
            signal(child.child(), signal_sent);
            let run = child.finish();
            let stderr = &run.stderr;
            assert!(
                signalled.elapsed() < Duration::from_secs(5),
                "{signal_sent} during the {stage} took {:?}: {stderr}",
                signalled.elapsed()
            );
            assert_eq!(run.code, 130, "{signal_sent}, {stage}: {stderr}");
            assert!(
                lease(&kubeconfig, &ns).is_none(),
                "{signal_sent}, {stage}: the Lease is released: {stderr}"
            );
        }

        // 3. The next deploy converges: no Terraform state lock, no Lease left behind.
        let run = repo.gitship(&["deploy", "staging", "--lock-timeout", "5s"]);
        assert_eq!(run.code, 0, "{}", run.all());
        let (code, plan) = repo.plan_json(&["staging", "--exit-code"]);
        assert_eq!(code, 0, "converged: {plan:#?}");
        repo
    })
    .await
    .expect("interrupts");
    drop(repo);
}

/// SIGKILL of gitship during `terraform apply`: Terraform finishes on its own (its output goes
/// to files, not to gitship's pipes), and the next deploy takes over the expired Lease and
/// converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_apply_loses_nothing_and_the_next_deploy_converges() {
    if !require_tool("terraform", "version") || !require_tool("kubectl", "help") {
        return;
    }
    let SlowTerraform {
        cluster: _cluster,
        kubeconfig,
        ns: _,
        repo,
        bin: _,
        log,
        path,
    } = SlowTerraform::start(2).await;
    tokio::task::spawn_blocking(move || {
        let mut child = spawn_deploy(&repo, &kubeconfig, &path);
        eventually("terraform apply", Duration::from_secs(60), || {
            log_has(&log, " apply")
        });
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        // The orphaned Terraform completes its apply.
        eventually(
            "the orphaned apply to finish",
            Duration::from_secs(60),
            || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .any(|line| line.contains(" done 0 ") && line.contains(" apply"))
            },
        );
        let run = repo.gitship(&["deploy", "staging", "--lock-timeout", "30s"]);
        assert_eq!(run.code, 0, "{}", run.all());
        let (code, plan) = repo.plan_json(&["staging", "--exit-code"]);
        assert_eq!(code, 0, "converged: {plan:#?}");
    })
    .await
    .expect("sigkill");
}

/// SIGINT during an image build (a fake `docker` on PATH that builds slowly): exit 130 within
/// seconds, the builder's process group is gone, the Lease is released and nothing is pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_during_the_build_exits_130_and_pushes_nothing() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let cluster = TestCluster::start().await;
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let ns = cluster.ns("web");
    let repo = Repo::web_app(&kubeconfig, &registry.address, "<h1>slow</h1>\n");
    let config = std::fs::read_to_string(repo.path().join("config/staging.yaml")).expect("config");
    repo.write("config/staging.yaml", &cluster.localize(&config, &["web"]));
    repo.write("gitship.yaml", "build:\n  builder: docker\n");
    repo.commit("builder");
    let bin = repo.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let log = repo.path().join("docker.log");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nif [ \"$1\" = version ]; then echo 27.0.0; exit 0; fi\nif [ \"$1\" = build ]; then {}; fi\nexit 0\n",
        log.display(),
        interruptible_sleep(60)
    );
    std::fs::write(bin.join("docker"), script).expect("fake docker");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("docker"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let mut paths = vec![bin.clone()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(paths).expect("PATH");
    tokio::task::spawn_blocking(move || {
        let child = spawn_deploy(&repo, &kubeconfig, &path);
        eventually("the build", Duration::from_secs(60), || {
            log_has(&log, "build ")
        });
        let signalled = Instant::now();
        signal(&child, nix::sys::signal::Signal::SIGINT);
        let output = child.wait_with_output().expect("deploy");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "took {:?}: {stderr}",
            signalled.elapsed()
        );
        assert_eq!(output.status.code(), Some(130), "{stderr}");
        assert!(
            lease(&kubeconfig, &ns).is_none(),
            "the Lease is released: {stderr}"
        );
        assert!(!log_has(&log, "push"), "nothing is pushed: {stderr}");
    })
    .await
    .expect("interrupted build");
    assert!(registry.catalog().is_empty(), "nothing is pushed");
}
