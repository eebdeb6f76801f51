//! A Git repository in a temp dir for CLI tests: a copy of the example or files a test writes,
//! committed, and `gitship` run against it (with a kubeconfig when one is set).

use std::path::{Path, PathBuf};
use std::process::Command;

use gitship::facade::plan::{DriftReport, FORMAT_VERSION, Plan};

use super::{gitship, test_home};

/// One run of the CLI.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A Git repository in a temp dir (a copy of the example, or written by the test).
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub kubeconfig: Option<PathBuf>,
}

impl Repo {
    pub fn example() -> Repo {
        Repo::copy_of("examples/blog-infra", "example")
    }

    /// A fresh Git repository (one commit, `.gitship/` ignored) holding a copy of the directory
    /// `source` (relative to this crate), as a clone of it would be.
    pub fn copy_of(source: &str, message: &str) -> Repo {
        let name = Path::new(source)
            .file_name()
            .map(|n| format!("{}-", n.to_string_lossy()))
            .unwrap_or_default();
        let dir = tempfile::Builder::new()
            .prefix(&name)
            .tempdir()
            .expect("temp");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
        let status = Command::new("cp")
            .arg("-r")
            .arg(format!("{}/.", source.display()))
            .arg(dir.path())
            .status()
            .expect("cp");
        assert!(status.success());
        let _ = std::fs::remove_dir_all(dir.path().join(".gitship"));
        std::fs::write(dir.path().join(".gitignore"), ".gitship/\n").expect("gitignore");
        let repo = Repo {
            dir,
            kubeconfig: None,
        };
        repo.git(&["init", "-q"]);
        repo.commit(message);
        repo
    }

    /// One app `web` (`FROM scratch`, one file with `html`), a ConfigMap holding its image
    /// reference, and environment `staging` (namespace `web`, context `kubesim`) pushing to
    /// `<registry>/blog`; committed.
    pub fn web_app(kubeconfig: &Path, registry: &str, html: &str) -> Repo {
        Repo::web_app_in(kubeconfig, "web", registry, html)
    }

    /// [`Repo::web_app`] deploying to `namespace` (a test's own: `TestCluster::ns`).
    pub fn web_app_in(kubeconfig: &Path, namespace: &str, registry: &str, html: &str) -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().expect("temp"),
            kubeconfig: Some(kubeconfig.to_path_buf()),
        };
        repo.write(".gitignore", ".gitship/\nbin/\n");
        repo.write("apps/web/Dockerfile", "FROM scratch\nCOPY index.html /\n");
        repo.write("apps/web/index.html", html);
        repo.write(
            "infrastructure/kubernetes/web.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  image: ${images.web}\n",
        );
        repo.write(
            "config/staging.yaml",
            &format!(
                "cluster:\n  context: kubesim\n  namespace: {namespace}\nregistry: {registry}/blog\n"
            ),
        );
        repo.git(&["init", "-q"]);
        repo.commit("web");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    pub fn edit(&self, relative: &str, from: &str, to: &str) {
        let path = self.path().join(relative);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{relative} has no `{from}`");
        std::fs::write(path, text.replace(from, to)).expect("write");
    }

    pub fn git(&self, args: &[&str]) {
        let output = Command::new("git")
            .args([
                "-c",
                "user.email=test@example.com",
                "-c",
                "user.name=test",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(self.path())
            .env("HOME", test_home())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
    }

    pub fn gitship(&self, args: &[&str]) -> Run {
        let mut command = gitship();
        command.arg("-C").arg(self.path());
        if let Some(kubeconfig) = &self.kubeconfig {
            command.arg("--kubeconfig").arg(kubeconfig);
        }
        let output = command.args(args).output().expect("run gitship");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `gitship` started in the background, stdout and stderr piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        let mut command = gitship();
        command.arg("-C").arg(self.path());
        if let Some(kubeconfig) = &self.kubeconfig {
            command.arg("--kubeconfig").arg(kubeconfig);
        }
        command
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn gitship")
    }

    /// Wait for a child from [`Repo::spawn`].
    pub fn finish(child: std::process::Child) -> Run {
        let output = child.wait_with_output().expect("gitship");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.gitship(args);
        assert_eq!(run.code, 0, "gitship {args:?}:\n{}", run.all());
        run
    }

    pub fn plan_json(&self, args: &[&str]) -> (i32, Plan) {
        let mut all = vec!["-o", "json", "plan"];
        all.extend_from_slice(args);
        let run = self.gitship(&all);
        assert!(run.code == 0 || run.code == 2, "plan:\n{}", run.all());
        let plan: Plan = serde_json::from_str(&run.stdout).expect("plan JSON");
        assert_eq!(plan.format_version, FORMAT_VERSION);
        (run.code, plan)
    }

    pub fn drift_json(&self, args: &[&str]) -> (i32, DriftReport) {
        let mut all = vec!["-o", "json", "drift"];
        all.extend_from_slice(args);
        let run = self.gitship(&all);
        assert!(run.code == 0 || run.code == 2, "drift:\n{}", run.all());
        let report: DriftReport = serde_json::from_str(&run.stdout).expect("drift JSON");
        assert_eq!(report.format_version, FORMAT_VERSION);
        (run.code, report)
    }

    /// `plan --out` then `deploy --plan`: the fresh deploy every test starts from.
    pub fn deploy(&self, env: &str, extra: &[&str]) {
        let planfile = self.dir.path().join(".gitship").join("deploy-plan.json");
        std::fs::create_dir_all(planfile.parent().unwrap()).unwrap();
        let planfile = planfile.to_string_lossy().into_owned();
        let mut plan = vec!["plan", env, "--out", &planfile];
        plan.extend_from_slice(extra);
        self.ok(&plan);
        let mut deploy = vec!["deploy", env, "--plan", &planfile];
        deploy.extend_from_slice(extra);
        self.ok(&deploy);
    }
}
