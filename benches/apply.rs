//! Benchmark: gitship's apply vs `kubectl apply --server-side -f <dir>` on the same 1,000
//! generated objects (ConfigMaps, Services, Deployments), against the same in-process kubesim,
//! side by side in one run. Each round applies both to fresh namespaces; the medians and their
//! ratio are printed. gitship's timing covers reading the files and the whole
//! `deploy_objects` (namespace, lock, inventory and record included) without the health wait,
//! since `kubectl apply` does not wait either.
//!
//! Run: `cargo bench --bench apply` (needs `kubectl` on PATH). `GITSHIP_BENCH_OBJECTS` and
//! `GITSHIP_BENCH_ROUNDS` override the object count (1000) and rounds (3).

use std::path::Path;
use std::time::{Duration, Instant};

use gitship_foundation::diagnostics::Location;
use gitship_foundation::model::{Environment, Manifest};
use gitship_foundation::output::OutputFormat;
use gitship_foundation::output::Printer;
use gitship_kube::deploy::{DeployOptions, ObjectAction};
use gitship_kube::deploy_objects;
use serde_json::{Value, json};

fn object(index: usize) -> Value {
    let name = format!("bench-{index:04}");
    match index % 3 {
        0 => json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"index": index.to_string(), "payload": "x".repeat(64)}}),
        1 => json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        _ => {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": format!("registry.local/app:{index}"),
                        "ports": [{"containerPort": 8080}]}]}}}})
        }
    }
}

fn read_objects(directory: &Path) -> Vec<Manifest> {
    let mut paths: Vec<_> = std::fs::read_dir(directory)
        .expect("bench dir")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read object");
            Manifest {
                source: Location::new(path, 1, 1),
                object: serde_json::from_str(&text).expect("json object"),
            }
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let count: usize = std::env::var("GITSHIP_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rounds: usize = std::env::var("GITSHIP_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let kubectl_ok = std::process::Command::new("kubectl")
        .arg("help")
        .output()
        .is_ok_and(|o| o.status.success());
    if !kubectl_ok {
        eprintln!("SKIPPED: `kubectl` is not on PATH; the apply benchmark needs it");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let sim = kubesim::KubeSim::start().await.expect("kubesim starts");
        let client = gitship_kube::client::client_from(sim.kube_config()).expect("client");
        let kubeconfig = sim.kubeconfig_path();
        let directory = tempfile::tempdir().expect("tempdir");
        for index in 0..count {
            let path = directory.path().join(format!("{index:04}.json"));
            std::fs::write(&path, serde_json::to_string_pretty(&object(index)).expect("json")).expect("write object");
        }
        let printer = Printer { quiet: true, ..Printer::plain(OutputFormat::Human) };
        let options = DeployOptions { wait: false, who: "bench".into(), ..DeployOptions::default() };
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
        let mut gitship_times = Vec::new();
        let mut kubectl_times = Vec::new();
        for round in 0..rounds {
            let environment = Environment { name: format!("bench-{round}"), namespace: format!("gitship-{round}") };
            let started = Instant::now();
            let desired = read_objects(directory.path());
            let report = deploy_objects(&client, &environment, desired, &options, &printer).await.expect("gitship deploy");
            let elapsed = started.elapsed();
            assert_eq!(report.count(ObjectAction::Created), count);
            gitship_times.push(elapsed);

            let namespace = format!("kubectl-{round}");
            let body: k8s_openapi::api::core::v1::Namespace =
                serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace");
            namespaces.create(&Default::default(), &body).await.expect("namespace created");
            let started = Instant::now();
            let output = tokio::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["apply", "--server-side", "-n", &namespace, "-f"])
                .arg(directory.path())
                .output()
                .await
                .expect("kubectl runs");
            let kubectl_elapsed = started.elapsed();
            assert!(output.status.success(), "kubectl apply failed: {}", String::from_utf8_lossy(&output.stderr));
            kubectl_times.push(kubectl_elapsed);
            eprintln!("round {round}: gitship {elapsed:?}, kubectl {kubectl_elapsed:?}");
        }
        let gitship = median(gitship_times);
        let kubectl = median(kubectl_times);
        println!("apply {count} objects (median of {rounds}): gitship {gitship:?}, kubectl apply --server-side {kubectl:?}");
        println!("ratio kubectl/gitship: {:.1}x", kubectl.as_secs_f64() / gitship.as_secs_f64());
    });
}
