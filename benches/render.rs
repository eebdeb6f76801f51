//! Benchmark: `gitship render` of 10,000 manifests.
//!
//! Generates a repository (in a temp dir, a real Git repository with one app) holding 10,000
//! Kubernetes objects in 100 files, each object using typed and interpolated placeholders, then
//! runs the built `gitship render` several times and reports the median wall time. Exits 1 when
//! the median misses the target (1 second), so it can gate CI.
//!
//! Run: `cargo bench --bench render`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OBJECTS: usize = 10_000;
const FILES: usize = 100;
const RUNS: usize = 7;
const TARGET: Duration = Duration::from_secs(1);

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path());
    let binary = env!("CARGO_BIN_EXE_gitship");

    let mut times = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let output = Command::new(binary)
            .args(["-q", "render", "bench"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run gitship");
        let elapsed = start.elapsed();
        if !output.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&output.stderr));
            std::process::exit(1);
        }
        let documents = output.stdout.windows(4).filter(|w| w == b"---\n").count();
        assert_eq!(documents, OBJECTS, "every object is rendered");
        bytes = output.stdout.len();
        times.push(elapsed);
    }
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "render: {OBJECTS} objects in {FILES} files, {:.1} MiB of YAML: median {:.0} ms over {RUNS} runs (min {:.0} ms, max {:.0} ms); target < {} ms",
        bytes as f64 / (1024.0 * 1024.0),
        median.as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[RUNS - 1].as_secs_f64() * 1000.0,
        TARGET.as_millis()
    );
    if median > TARGET {
        eprintln!("render benchmark missed its target");
        std::process::exit(1);
    }
}

/// Write the repository: one app, one environment, `FILES` manifest files.
fn generate(root: &Path) {
    let write = |relative: &str, text: &str| {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("apps/api/Dockerfile", "FROM scratch\nCOPY app.txt /\n");
    write("apps/api/app.txt", "bench\n");
    write(
        "config/bench.yaml",
        "cluster:\n  namespace: bench\nregistry: registry.example.com/bench\nvalues:\n  replicas: 3\n  domain: bench.example.com\n  resources:\n    requests: { cpu: 100m, memory: 128Mi }\n    limits: { memory: 256Mi }\n",
    );
    let per_file = OBJECTS / FILES;
    for file in 0..FILES {
        let mut text = String::new();
        for index in 0..per_file {
            let n = file * per_file + index;
            match n % 3 {
                0 => write!(
                    text,
                    "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{n}\n  labels:\n    app.kubernetes.io/name: app-{n}\nspec:\n  replicas: ${{values.replicas}}\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: app-{n}\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: app-{n}\n    spec:\n      containers:\n        - name: app\n          image: ${{images.api}}\n          env:\n            - name: ENVIRONMENT\n              value: ${{env.name}}\n            - name: URL\n              value: https://app-{n}.${{values.domain}}/\n          resources: ${{values.resources}}\n"
                ),
                1 => write!(
                    text,
                    "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app-{n}\nspec:\n  selector:\n    app.kubernetes.io/name: app-{n}\n  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n"
                ),
                _ => write!(
                    text,
                    "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{n}\ndata:\n  domain: ${{values.domain}}\n  namespace: ${{env.namespace}}\n  revision: ${{git.sha}}\n  literal: \"$${{not.a.placeholder}}\"\n"
                ),
            }
            .expect("format");
        }
        write(
            &format!("infrastructure/kubernetes/part-{file:03}.yaml"),
            &text,
        );
    }

    let repository = git2::Repository::init(root).expect("git init");
    let mut index = repository.index().expect("index");
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .expect("add");
    let tree = repository
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let signature = git2::Signature::now("bench", "bench@example.com").expect("signature");
    repository
        .commit(Some("HEAD"), &signature, &signature, "bench", &tree, &[])
        .expect("commit");
}
