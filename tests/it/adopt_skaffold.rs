//! Adopting a Skaffold monorepo as it is (issue 31, finding 4): `tests/fixtures/adopt/skaffold`
//! has two configs in `skaffold.yaml`, a `requires:` file with a profile the `dev` profile
//! activates, profiles `dev` and `production`, manifests in three directories beside files no
//! config lists, and an app no manifest uses. From a fresh clone: `init dev`, then `validate`
//! sees exactly the objects `skaffold run -p dev` would deploy, `plan` says the unused app is
//! not built, `deploy` builds and pushes every other app to a real registry, and `drift` is 0;
//! on kubesim and on the real control plane.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::kustomize::objects;
use crate::support::cluster::TestCluster;
use crate::support::registry::TestRegistry;
use crate::support::repo::Repo;

/// A fresh clone of the fixture: its files copied into a new Git repository, committed.
fn fixture_repo() -> Repo {
    let dir = tempfile::tempdir().expect("temp");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adopt/skaffold");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", source.display()))
        .arg(dir.path())
        .status()
        .expect("cp");
    assert!(status.success());
    let repo = Repo {
        dir,
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.git(&["init", "-q"]);
    repo.commit("shop");
    repo
}

/// The objects `skaffold run -p dev` deploys: `web` with its `dev` profile, `backend` with
/// `local` (activated by `dev`), `tools`; not `production`'s ConfigMap, not the test data.
const DEV_OBJECTS: &[&str] = &[
    "ConfigMap frontend-dev",
    "Deployment api",
    "Deployment cart",
    "Deployment frontend",
    "Deployment loadgen",
    "Deployment redis",
    "Service api",
    "Service cart",
    "Service frontend",
];

fn identities(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// `init dev`: every config read, the profiles applied, `gitship.yaml` holding only what differs.
fn init(repo: &Repo, registry: &str) {
    let init = repo.ok(&["init", "--env", "dev", "--registry", registry]);
    let report = init.all();
    for said in [
        "`skaffold.yaml` config `web` (profile `dev`)",
        "`services/backend/skaffold.yaml` config `backend` (profile `local`)",
        "`skaffold.yaml` config `tools`",
        "excluded: testdata/**, web/hpa.yaml",
    ] {
        assert!(report.contains(said), "init says {said}:\n{report}");
    }
    let settings = std::fs::read_to_string(repo.path().join("gitship.yaml")).expect("gitship.yaml");
    // Each app by its context alone: the Dockerfile is `<context>/Dockerfile` everywhere.
    assert!(!settings.contains("dockerfile:"), "{settings}");
    for context in [
        "context: src/frontend",
        "context: src/cart/src",
        "context: services/backend",
        "context: tools/admin",
    ] {
        assert!(settings.contains(context), "{settings}");
    }
    assert!(settings.contains("kubernetes: deploy"), "{settings}");
    // The `dev` profile's patch.
    assert!(
        settings.contains("build_args: { MODE: \"dev\" }"),
        "{settings}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skaffold_monorepo_deploys_every_config_and_builds_only_what_it_uses() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if crate::plan::working_builder().is_none() {
        return;
    }
    let cluster = TestCluster::start().await;
    let mut repo = fixture_repo();
    let prefix = format!("{}/shop", registry.address);
    init(&repo, &prefix);
    let config = std::fs::read_to_string(repo.path().join("config/dev.yaml")).expect("config");
    let base = config
        .lines()
        .find_map(|line| line.strip_prefix("  namespace: "))
        .expect("the namespace init chose")
        .to_string();
    cluster.adopt(&mut repo, "dev", &base);

    let repo = tokio::task::spawn_blocking(move || {
        let validate = repo.ok(&["validate", "dev"]);
        assert!(validate.stdout.contains("9 objects"), "{}", validate.all());
        let rendered = objects(&repo.ok(&["render", "dev"]).stdout);
        let expected: BTreeSet<String> = DEV_OBJECTS.iter().map(|s| s.to_string()).collect();
        assert_eq!(identities(&rendered), expected);

        // `admin` is built by Skaffold, but no manifest of `dev` uses it.
        let (_, plan) = repo.plan_json(&["dev"]);
        let admin = plan
            .images
            .iter()
            .find(|i| i.app == "admin")
            .expect("admin");
        assert_eq!(
            admin.action,
            gitship::facade::plan::ImageAction::Unused,
            "{plan:#?}"
        );
        let human = repo.ok(&["plan", "dev"]).all();
        assert!(human.contains("not used by dev: not built"), "{human}");

        repo.ok(&["deploy", "dev"]);
        let drift = repo.gitship(&["drift", "dev"]);
        assert_eq!(drift.code, 0, "no drift after the deploy: {}", drift.all());
        repo
    })
    .await
    .expect("validate, plan, deploy, drift");

    for app in ["frontend", "cart", "api", "loadgen"] {
        assert_eq!(
            registry.tags(&format!("shop/{app}")).len(),
            1,
            "{app} pushed"
        );
    }
    assert!(
        registry.tags("shop/admin").is_empty(),
        "an app no manifest uses is neither built nor pushed"
    );
    drop(repo);
}
