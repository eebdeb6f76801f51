//! Integration tests: bad input. Hostile or broken files and flags (billion laughs, deep nesting,
//! huge mappings, overflowing durations, paths leaving the repository, symlink loops, invalid and
//! reserved object names, stray config files) must give one clear error, in bounded time and
//! memory, never a crash.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::gitship;

/// The result of one CLI run.
struct Run {
    code: i32,
    stderr: String,
    stdout: String,
}

impl Run {
    /// Exit code and both streams, for assertion messages.
    fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// A clean failure: exit 1 (not a signal, not 134), with `needle` in stderr.
    fn assert_fails_with(&self, needle: &str) {
        assert_eq!(self.code, 1, "{}", self.transcript());
        assert!(self.stderr.contains(needle), "{}", self.transcript());
        assert!(!self.stderr.contains("panicked"), "{}", self.transcript());
    }
}

/// A throwaway Git repository with one environment, `staging` (namespace `shop-staging`).
struct Repo {
    dir: tempfile::TempDir,
    git: git2::Repository,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().expect("temp dir");
        let git = git2::Repository::init(dir.path()).expect("git init");
        let repo = Repo { dir, git };
        repo.write(
            "config/staging.yaml",
            "cluster:\n  namespace: shop-staging\nvalues:\n  replicas: 2\n",
        );
        repo.write(
            "infrastructure/kubernetes/base.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: base\ndata:\n  a: b\n",
        );
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, relative: &str, content: &str) -> &Self {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
        self
    }

    /// Commit everything and run `gitship ARGS` in the repository.
    fn gitship(&self, args: &[&str]) -> Run {
        crate::support::commit_all(&self.git, "test");
        self.run(gitship().current_dir(self.path()).args(args))
    }

    fn run(&self, command: &mut Command) -> Run {
        let output = command.output().expect("run gitship");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

#[test]
fn billion_laughs_is_refused() {
    let repo = Repo::new();
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..9 {
        let alias = format!("*a{}", level - 1);
        let aliases = [alias.as_str(); 9].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{aliases}]\n"));
    }
    assert!(text.len() < 600, "{}", text.len());
    repo.write("infrastructure/kubernetes/laughs.yaml", &text);
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with("infrastructure/kubernetes/laughs.yaml:");
    run.assert_fails_with("invalid YAML: aliases expand to more than 250000 nodes");
}

/// A resource quantity the API server refuses (`cpu: 100x`) fails `validate` at its line, not
/// `plan` at the cluster.
#[test]
fn an_invalid_quantity_fails_validate_at_its_line() {
    let repo = Repo::new();
    repo.write(
        "infrastructure/kubernetes/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: nginx\n          resources:\n            limits:\n              cpu: 100x\n              memory: 1Gi\n",
    );
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with("infrastructure/kubernetes/web.yaml:17:20:");
    run.assert_fails_with(
        "`spec.template.spec.containers[0].resources.limits.cpu` is `100x`, not a Kubernetes quantity",
    );
    repo.write(
        "infrastructure/kubernetes/web.yaml",
        &std::fs::read_to_string(repo.path().join("infrastructure/kubernetes/web.yaml"))
            .expect("read")
            .replace("100x", "500m"),
    );
    let run = repo.gitship(&["validate"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
}

#[test]
fn deep_block_nesting_is_refused() {
    let repo = Repo::new();
    // 20,000 nested block sequences in 40 KB: `- - - ... - x`.
    let text = "- ".repeat(20_000) + "x\n";
    repo.write("infrastructure/kubernetes/deep.yaml", &text);
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with(
        "infrastructure/kubernetes/deep.yaml:1:201: invalid YAML: the YAML nests deeper than 100 levels",
    );
}

#[test]
fn a_configmap_with_100k_keys_validates_quickly() {
    let repo = Repo::new();
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n");
    for index in 0..100_000 {
        text.push_str(&format!("  key-{index}: value\n"));
    }
    repo.write("infrastructure/kubernetes/big.yaml", &text);
    let started = Instant::now();
    let run = repo.gitship(&["validate"]);
    let elapsed = started.elapsed();
    assert_eq!(run.code, 0, "{}", run.transcript());
    // It took 84 s with a list scan per key; a few seconds is plenty for a debug build.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[test]
fn overflowing_durations_are_errors() {
    let repo = Repo::new();
    // On the command line: a usage error before anything runs.
    let run = repo.gitship(&["deploy", "staging", "--timeout", "18446744073709551615"]);
    assert_eq!(run.code, 64, "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "error: duration `18446744073709551615` for --timeout is longer than the maximum of `168h` (7 days)"
        ),
        "{}",
        run.transcript()
    );
    // In a config file: `validate` names the file and line.
    for (value, shown) in [
        ("18446744073709551615s1s", "18446744073709551615s1s"),
        ("5124095576030432h", "5124095576030432h"),
    ] {
        repo.write(
            "config/staging.yaml",
            &format!("cluster:\n  namespace: shop-staging\ndeploy:\n  timeout: {value}\n"),
        );
        let run = repo.gitship(&["validate"]);
        run.assert_fails_with(&format!(
            "config/staging.yaml:4:12: invalid `deploy.timeout`: the duration `{shown}` is longer than the maximum of `168h` (7 days)"
        ));
    }
}

#[test]
fn reserved_names_are_refused() {
    let repo = Repo::new();
    repo.write(
        "infrastructure/kubernetes/reserved.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gitship-staging\n---\napiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: gitship-staging\n  namespace: shop-staging\n",
    );
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with("infrastructure/kubernetes/reserved.yaml:4:9: `ConfigMap shop-staging/gitship-staging` is reserved: gitship keeps its own objects of environment `staging` under `gitship-staging` and `gitship-staging.*`");
    run.assert_fails_with("infrastructure/kubernetes/reserved.yaml:9:9: `Lease shop-staging/gitship-staging` is reserved");
    // The agent's Lease (a committed one with a holder far in the future would make the agent a
    // follower for good) and its status ConfigMap.
    repo.write(
        "infrastructure/kubernetes/reserved.yaml",
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: gitship-staging.agent\nspec:\n  holderIdentity: evil\n  renewTime: \"2099-01-01T00:00:00.000000Z\"\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gitship-staging.agent\n",
    );
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with("infrastructure/kubernetes/reserved.yaml:4:9: `Lease shop-staging/gitship-staging.agent` is reserved");
    run.assert_fails_with("infrastructure/kubernetes/reserved.yaml:12:9: `ConfigMap shop-staging/gitship-staging.agent` is reserved");
}

#[test]
fn invalid_object_names_are_refused() {
    let repo = Repo::new();
    repo.write(
        "infrastructure/kubernetes/names.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Invalid_Name!!\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: ../../api/v1/namespaces/kube-system/secrets/x\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: system:gitship:Reader\n",
    );
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with("2 problems in the manifests of environment `staging`");
    run.assert_fails_with(
        "infrastructure/kubernetes/names.yaml:4:9: `ConfigMap`: the name `Invalid_Name!!` is not valid",
    );
    run.assert_fails_with("infrastructure/kubernetes/names.yaml:9:9: `Secret`: the name `../../api/v1/namespaces/kube-system/secrets/x` is not valid");
}

#[test]
fn configured_paths_must_stay_in_the_repository() {
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        outside.path().join("stolen.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\n",
    )
    .expect("write");
    let outside_path = outside.path().canonicalize().expect("canonical");
    let outside_text = outside_path.display().to_string();
    for (value, needle) in [
        (
            "../outside",
            "gitship.yaml:2:15: `../outside` is outside the repository",
        ),
        (
            outside_text.as_str(),
            &*format!("gitship.yaml:2:15: `{outside_text}` is outside the repository"),
        ),
    ] {
        let repo = Repo::new();
        repo.write("gitship.yaml", &format!("paths:\n  kubernetes: {value}\n"));
        let run = repo.gitship(&["validate"]);
        run.assert_fails_with(needle);
        run.assert_fails_with("hint: paths in `gitship.yaml` are relative to the repository root");
    }

    // A symlinked directory and a symlinked file pointing outside.
    let repo = Repo::new();
    std::os::unix::fs::symlink(&outside_path, repo.path().join("k8s")).expect("symlink");
    repo.write("gitship.yaml", "paths:\n  kubernetes: k8s\n");
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with(&format!(
        "gitship.yaml:2:15: `k8s` is outside the repository: it resolves to `{outside_text}`"
    ));

    let repo = Repo::new();
    std::os::unix::fs::symlink(
        outside_path.join("stolen.yaml"),
        repo.path().join("infrastructure/kubernetes/stolen.yaml"),
    )
    .expect("symlink");
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with(&format!(
        "`infrastructure/kubernetes/stolen.yaml` is outside the repository: it resolves to `{outside_text}/stolen.yaml`"
    ));

    // A discovered app's Dockerfile linked out of the repository.
    let repo = Repo::new();
    std::fs::create_dir_all(repo.path().join("apps/x")).expect("mkdir");
    std::os::unix::fs::symlink(
        outside_path.join("stolen.yaml"),
        repo.path().join("apps/x/Dockerfile"),
    )
    .expect("symlink");
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: shop-staging\nregistry: ghcr.io/acme/shop\n",
    );
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with(&format!(
        "`apps/x/Dockerfile` is outside the repository: it resolves to `{outside_text}/stolen.yaml`"
    ));
}

#[test]
fn a_symlink_loop_is_one_error() {
    let repo = Repo::new();
    std::os::unix::fs::symlink(".", repo.path().join("infrastructure/kubernetes/loop"))
        .expect("symlink");
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with(
        "error: `infrastructure/kubernetes/loop` is a symlink loop: it leads back to `infrastructure/kubernetes`",
    );
    assert!(!run.stderr.contains("duplicate"), "{}", run.transcript());
    assert_eq!(
        run.stderr.matches("error:").count(),
        1,
        "{}",
        run.transcript()
    );
}

#[test]
fn oversized_files_are_refused_unread() {
    let repo = Repo::new();
    let file = std::fs::File::create(repo.path().join("infrastructure/kubernetes/huge.yaml"))
        .expect("create");
    file.set_len(40 * 1024 * 1024).expect("sparse file");
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with("`infrastructure/kubernetes/huge.yaml` is 40 MiB, larger than the 16 MiB gitship reads from one file");
    run.assert_fails_with("hint: split the file into several smaller ones");
}

#[test]
fn a_stray_config_file_is_skipped_with_a_warning() {
    let repo = Repo::new();
    repo.write("config/Notes_old.yaml", "just: notes\n");
    let warning = "skipping `config/Notes_old.yaml`: `Notes_old` is not a valid environment name";

    let run = repo.gitship(&["validate"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains("ok      staging"),
        "{}",
        run.transcript()
    );
    assert!(run.stderr.contains(warning), "{}", run.transcript());

    let run = repo.gitship(&["envs"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("shop-staging"), "{}", run.transcript());
    assert!(run.stderr.contains(warning), "{}", run.transcript());

    let run = repo.gitship(&["validate", "Notes_old"]);
    run.assert_fails_with(
        "error: invalid environment name `Notes_old` (`config/Notes_old.yaml`): environment names must be DNS labels",
    );
}

#[test]
fn an_object_over_one_mebibyte_is_a_warning() {
    let repo = Repo::new();
    let big = "x".repeat(1024 * 1024 + 1);
    repo.write(
        "infrastructure/kubernetes/large.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: large\ndata:\n  blob: {big}\n"
        ),
    );
    let run = repo.gitship(&["validate"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr.contains("infrastructure/kubernetes/large.yaml:1:1: `ConfigMap shop-staging/large` is 1048777 bytes as JSON, over the 1 MiB (1048576 bytes) Kubernetes stores for one object"),
        "{}",
        run.transcript()
    );
}

/// A registry that is no image repository prefix (here, a shell injection aimed at the generated
/// GitLab pipeline) is refused by `validate`, naming the file and line, and `ci init` writes
/// nothing.
#[test]
fn a_registry_must_be_an_image_repository_prefix() {
    let repo = Repo::new();
    repo.write("apps/web/Dockerfile", "FROM scratch\n");
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: shop-staging\nregistry: ghcr.io'$(touch${IFS}PWNED)'/blog\n",
    );
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with("config/staging.yaml:3:11");
    run.assert_fails_with("is not an image repository prefix like `ghcr.io/acme/blog`");
    let run = repo.gitship(&["ci", "init", "gitlab", "--deploy-env", "staging"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(!repo.path().join(".gitlab-ci.yml").exists());
    assert!(!repo.path().join("PWNED").exists());
}

/// A FIFO among the manifests (or named as a config) is refused at once, never read: reading it
/// would block `validate` for good.
#[test]
fn a_fifo_among_the_manifests_is_refused_not_read() {
    let repo = Repo::new();
    crate::support::commit_all(&repo.git, "test");
    let fifo = repo.path().join("infrastructure/kubernetes/pipe.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let mut child = gitship()
        .current_dir(repo.path())
        .args(["validate"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gitship");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("validate hangs on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("infrastructure/kubernetes/pipe.yaml")
            && stderr.contains("not a regular file"),
        "{stderr}"
    );
}

/// A zero timeout could only fail a deploy after it changed things: refused up front, on the
/// command line and in the config.
#[test]
fn zero_timeouts_and_intervals_are_refused() {
    let repo = Repo::new();
    let run = repo.gitship(&["deploy", "staging", "--timeout", "0s"]);
    assert_eq!(run.code, 64, "{}", run.stderr);
    assert!(
        run.stderr.contains("duration `0s` for --timeout is zero"),
        "{}",
        run.stderr
    );
    let run = repo.gitship(&["agent", "staging", "--interval", "0"]);
    assert_eq!(run.code, 64, "{}", run.stderr);
    repo.write(
        "config/staging.yaml",
        "cluster:\n  namespace: shop-staging\ndeploy:\n  timeout: 0s\n",
    );
    let run = repo.gitship(&["validate"]);
    run.assert_fails_with("config/staging.yaml:4:12");
    run.assert_fails_with("the duration is zero");
}
