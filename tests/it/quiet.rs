//! Integration tests: gitship stays quiet against a server that rewrites what Git says (kubesim,
//! or the real kube-apiserver with `GITSHIP_TEST_CLUSTER=real`). kubesim
//! canonicalises quantities and fills in defaults as kube-apiserver does (README, "kubesim"), so
//! manifests written the way people write them (`cpu: 0.5`, `memory: 1024Mi`, `"1000m"`, `1e3`,
//! no `protocol`, no `imagePullPolicy`, `targetPort` as a number and as a name) must plan, diff
//! and drift clean right after a deploy, while a real change is still reported.

use std::path::Path;

use crate::support::cluster::TestCluster;
use crate::support::{commit_all, gitship};

fn namespace(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
}

/// Manifests as people write them: nothing canonical, no defaults.
fn workloads(web_cpu: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: registry.example.com/web:1.4.2
          ports:
            - name: http
              containerPort: 8080
          resources:
            requests: {{cpu: {web_cpu}, memory: 1024Mi, ephemeral-storage: 1e3}}
            limits: {{cpu: \"1000m\", memory: 1.5Gi, ephemeral-storage: \"2e3\"}}
      initContainers:
        - name: wait
          image: busybox
          resources:
            requests: {{cpu: 0.1}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports:
    - name: http
      port: 80
      targetPort: http
    - name: metrics
      port: 9090
      targetPort: 9090
    - name: admin
      port: 8081
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  selector:
    matchLabels: {{app: db}}
  template:
    metadata:
      labels: {{app: db}}
    spec:
      containers:
        - name: db
          image: postgres:17
          ports:
            - containerPort: 5432
          resources:
            requests: {{cpu: \"0.25\", memory: 2048Mi}}
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: [ReadWriteOnce]
        resources:
          requests: {{storage: 1024Mi}}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: registry.example.com/migrate:7
          resources:
            limits: {{cpu: 0.5, memory: 256Mi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: cache
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {{storage: 1.5Gi}}
"
    )
}

struct Repo {
    dir: tempfile::TempDir,
    git: git2::Repository,
    kubeconfig: std::path::PathBuf,
}

impl Repo {
    fn new(web_cpu: &str, cluster: &TestCluster) -> Repo {
        let dir = tempfile::tempdir().expect("temp dir");
        let git = git2::Repository::init(dir.path()).expect("git init");
        let kubeconfig = cluster.kubeconfig_path().to_path_buf();
        let repo = Repo {
            dir,
            git,
            kubeconfig,
        };
        let ns = cluster.ns("quiet");
        repo.write(".gitignore", ".gitship/\n");
        repo.write(
            "config/quiet.yaml",
            &format!(
                "cluster:\n  context: kubesim\n  namespace: {ns}\nregistry: registry.example.com/quiet\n"
            ),
        );
        repo.write("infrastructure/kubernetes/namespace.yaml", &namespace(&ns));
        repo.write("infrastructure/kubernetes/app.yaml", &workloads(web_cpu));
        commit_all(&repo.git, "as people write manifests");
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// Runs gitship here; (exit code, stdout + stderr).
    fn gitship(&self, args: &[&str]) -> (i32, String) {
        let output = gitship()
            .arg("-C")
            .arg(self.path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("run gitship");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_canonical_manifests_plan_diff_and_drift_clean_after_a_deploy() {
    let cluster = TestCluster::start().await;
    let repo = Repo::new("0.5", &cluster);
    let (code, output) = repo.gitship(&["deploy", "quiet"]);
    assert_eq!(code, 0, "deploy:\n{output}");

    for command in [
        vec!["plan", "quiet", "--exit-code"],
        vec!["diff", "quiet"],
        vec!["drift", "quiet"],
    ] {
        let (code, output) = repo.gitship(&command);
        assert_eq!(
            code, 0,
            "{command:?} reports a change nobody made:\n{output}"
        );
    }

    // A real change is still one: 500m -> 600m.
    repo.write("infrastructure/kubernetes/app.yaml", &workloads("600m"));
    commit_all(&repo.git, "more cpu");
    let (code, output) = repo.gitship(&["plan", "quiet", "--exit-code"]);
    assert_eq!(code, 2, "plan:\n{output}");
    assert!(
        output.contains("cpu") && output.contains("600m"),
        "the plan names the change:\n{output}"
    );
    let (code, output) = repo.gitship(&["diff", "quiet"]);
    assert_eq!(code, 2, "diff:\n{output}");
    assert!(output.contains("600m"), "{output}");
}
