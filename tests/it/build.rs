//! Integration tests: the image stage with real builders (docker, podman, buildah: the same
//! suite for each) and a real registry (`docker-registry` on loopback).
//!
//! Builder invocations are counted with shims placed first on the builders' `PATH`: each logs
//! its arguments and execs the real tool.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gitship::build::{
    BuildAction, BuildError, BuildOptions, BuildRequest, BuildResult, PlannedAction,
    REVISION_LABEL, Registry, SOURCE_LABEL, build_images, plan_images,
};
use gitship::output::Printer;
use gitship::repo::App;
use gitship::settings::OutputFormat;

use crate::support::registry::{TestRegistry, counting_shims, free_port};

const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";
const SOURCE: &str = "https://git.example.com/acme/blog";
const BUILDERS: &[&str] = &["docker", "podman", "buildah"];

/// A scratch copy of the fixture apps plus builder shims that count calls.
struct Workspace {
    apps: tempfile::TempDir,
    shims: tempfile::TempDir,
    log: PathBuf,
    path: OsString,
}

impl Workspace {
    fn new() -> Workspace {
        let apps = tempfile::tempdir().expect("apps dir");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/build/apps");
        for entry in std::fs::read_dir(&fixtures).expect("fixture apps") {
            let entry = entry.expect("fixture entry");
            let target = apps.path().join(entry.file_name());
            std::fs::create_dir_all(&target).expect("app dir");
            for file in std::fs::read_dir(entry.path()).expect("fixture app") {
                let file = file.expect("fixture file");
                std::fs::copy(file.path(), target.join(file.file_name())).expect("copy fixture");
            }
        }
        let shims = tempfile::tempdir().expect("shim dir");
        let log = shims.path().join("calls.log");
        std::fs::write(&log, "").expect("calls log");
        let path = counting_shims(shims.path(), &log, BUILDERS);
        Workspace {
            apps,
            shims,
            log,
            path,
        }
    }

    /// Add a generated scratch app (`FROM scratch` + one file with distinct content).
    fn add_app(&self, name: &str) {
        let dir = self.apps.path().join(name);
        std::fs::create_dir_all(&dir).expect("app dir");
        std::fs::write(
            dir.join("Dockerfile"),
            "FROM scratch\nCOPY data.txt /data.txt\n",
        )
        .expect("Dockerfile");
        std::fs::write(dir.join("data.txt"), format!("{name}\n")).expect("data");
    }

    fn app(&self, name: &str) -> App {
        let context = self.apps.path().join(name);
        let (build_args, target) = if name == "api" {
            (
                BTreeMap::from([("GREETING".to_string(), "bonjour".to_string())]),
                Some("base".to_string()),
            )
        } else {
            (BTreeMap::new(), None)
        };
        App {
            name: name.to_string(),
            dockerfile: context.join("Dockerfile"),
            context,
            build_args,
            target,
        }
    }

    fn request(&self, registry: &str, name: &str, tag: &str) -> BuildRequest {
        BuildRequest {
            app: self.app(name),
            image_repository: format!("{registry}/{name}"),
            tag: tag.to_string(),
            revision: REVISION.to_string(),
            source: SOURCE.to_string(),
        }
    }

    fn options(&self, builder: &str) -> BuildOptions {
        BuildOptions {
            builder: Some(builder.to_string()),
            jobs: 2,
            force: false,
            environment: BTreeMap::from([(OsString::from("PATH"), self.path.clone())]),
        }
    }

    /// Every builder invocation so far, one line each (`<tool> <args>`).
    fn calls(&self) -> Vec<String> {
        let _ = &self.shims;
        std::fs::read_to_string(&self.log)
            .expect("calls log")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

async fn run(
    requests: &[BuildRequest],
    options: &BuildOptions,
) -> Result<Vec<BuildResult>, BuildError> {
    build_images(
        requests,
        options,
        &Registry::with_credential_files(Vec::new()),
        &Printer::plain(OutputFormat::Human),
    )
    .await
}

/// Removes the images a test built from the builder's local store when dropped (keeps developer
/// machines from filling up with test images).
struct LocalImages {
    builder: String,
    references: Vec<String>,
}

impl LocalImages {
    fn new(builder: &str, requests: &[BuildRequest]) -> LocalImages {
        LocalImages {
            builder: builder.to_string(),
            references: Vec::new(),
        }
        .with(requests)
    }

    fn with(mut self, requests: &[BuildRequest]) -> LocalImages {
        self.references
            .extend(requests.iter().map(BuildRequest::tagged_reference));
        self
    }
}

impl Drop for LocalImages {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.builder)
            .args(["rmi", "-f"])
            .args(&self.references)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// An error with its causes, as the CLI shows them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str("\ncaused by: ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn assert_matches_registry(registry: &TestRegistry, results: &[BuildResult], tag: &str) {
    for result in results {
        let tags = registry.tags(&result.app);
        assert!(
            tags.contains(&tag.to_string()),
            "{}: tags {tags:?}",
            result.app
        );
        let (digest, _) = registry
            .manifest(&result.app, tag)
            .expect("manifest exists");
        assert_eq!(result.digest, digest, "{}", result.app);
        assert_eq!(
            result.repository,
            format!("{}/{}", registry.address, result.app)
        );
        assert_eq!(result.tag, tag);
        assert_eq!(
            result.reference,
            format!("{}/{}:{tag}@{digest}", registry.address, result.app)
        );
    }
}

/// Ten apps built and pushed; the registry agrees; a second run reuses all without a builder.
async fn builds_pushes_then_reuses(builder: &str) {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let workspace = Workspace::new();
    let mut names = vec!["web".to_string(), "api".to_string()];
    for index in 2..10 {
        let name = format!("app-{index:02}");
        workspace.add_app(&name);
        names.push(name);
    }
    let requests: Vec<BuildRequest> = names
        .iter()
        .map(|name| workspace.request(&registry.address, name, "c0ffee"))
        .collect();
    let options = workspace.options(builder);
    let _cleanup = LocalImages::new(builder, &requests);

    let first = run(&requests, &options).await.expect("first build");
    assert_eq!(
        first.iter().map(|r| r.app.clone()).collect::<Vec<_>>(),
        names,
        "results in request order"
    );
    assert!(
        first.iter().all(|r| r.action == BuildAction::Built),
        "{first:#?}"
    );
    let builds = workspace
        .calls()
        .iter()
        .filter(|c| c.starts_with(&format!("{builder} build ")))
        .count();
    assert_eq!(builds, 10, "{:#?}", workspace.calls());
    assert_matches_registry(&registry, &first, "c0ffee");
    let mut catalog = registry.catalog();
    catalog.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(catalog, expected);

    let labels = registry.labels("web", "c0ffee");
    assert_eq!(
        labels.get(REVISION_LABEL).map(String::as_str),
        Some(REVISION),
        "{labels:?}"
    );
    assert_eq!(
        labels.get(SOURCE_LABEL).map(String::as_str),
        Some(SOURCE),
        "{labels:?}"
    );
    // `api` is built with `--target base` (one layer, not the two of the last stage) and the build
    // argument reaches its label.
    let api_labels = registry.labels("api", "c0ffee");
    assert_eq!(
        api_labels.get("greeting").map(String::as_str),
        Some("bonjour"),
        "{api_labels:?}"
    );
    let (_, api_manifest) = registry.manifest("api", "c0ffee").expect("api manifest");
    assert_eq!(
        api_manifest["layers"].as_array().map(Vec::len),
        Some(1),
        "{api_manifest}"
    );

    let calls_before = workspace.calls();
    let started = Instant::now();
    let second = run(&requests, &options).await.expect("second build");
    let elapsed = started.elapsed();
    eprintln!("{builder}: 10 unchanged apps checked and reused in {elapsed:?}");
    assert_eq!(
        workspace.calls(),
        calls_before,
        "no builder invocation when nothing changed"
    );
    assert!(
        second.iter().all(|r| r.action == BuildAction::Reused),
        "{second:#?}"
    );
    let digests =
        |results: &[BuildResult]| results.iter().map(|r| r.digest.clone()).collect::<Vec<_>>();
    assert_eq!(digests(&second), digests(&first));
    assert_eq!(
        second
            .iter()
            .map(|r| r.reference.clone())
            .collect::<Vec<_>>(),
        first
            .iter()
            .map(|r| r.reference.clone())
            .collect::<Vec<_>>()
    );
    assert!(
        elapsed < Duration::from_secs(1),
        "10 reused apps took {elapsed:?}"
    );
}

/// A changed app gets a new tag: only it is rebuilt; `plan` says so first; `force` rebuilds all.
async fn rebuilds_only_what_changed(builder: &str) {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let workspace = Workspace::new();
    let options = workspace.options(builder);
    let first_requests = vec![
        workspace.request(&registry.address, "web", "t1"),
        workspace.request(&registry.address, "api", "t1"),
    ];
    let first = run(&first_requests, &options).await.expect("first build");
    let cleanup = LocalImages::new(builder, &first_requests);

    std::fs::write(
        workspace.apps.path().join("web/index.html"),
        "<h1>web, changed</h1>\n",
    )
    .expect("change web");
    let second_requests = vec![
        workspace.request(&registry.address, "web", "t2"),
        workspace.request(&registry.address, "api", "t1"),
    ];
    let client = Registry::with_credential_files(Vec::new());
    let plan = plan_images(&second_requests, &client).await.expect("plan");
    assert_eq!(
        plan[0].action,
        PlannedAction::Build {
            reason: format!("tag `t2` missing in `{}`", registry.address)
        }
    );
    assert_eq!(
        plan[1].action,
        PlannedAction::Reuse {
            digest: first[1].digest.clone()
        }
    );

    let _cleanup = cleanup.with(&second_requests[..1]);
    let calls_before = workspace.calls().len();
    let second = run(&second_requests, &options).await.expect("second build");
    let new_calls = workspace.calls()[calls_before..].to_vec();
    let builds: Vec<&String> = new_calls
        .iter()
        .filter(|c| c.starts_with(&format!("{builder} build ")))
        .collect();
    assert_eq!(builds.len(), 1, "{new_calls:#?}");
    assert!(
        builds[0].contains(&format!("{}/web:t2", registry.address)),
        "{builds:?}"
    );
    assert_eq!(
        (second[0].action, second[1].action),
        (BuildAction::Built, BuildAction::Reused)
    );
    assert_ne!(
        second[0].digest, first[0].digest,
        "changed content, new image"
    );
    assert_eq!(second[1].digest, first[1].digest);
    assert_eq!(registry.tags("web"), ["t1", "t2"]);
    assert_eq!(registry.tags("api"), ["t1"]);
    assert_matches_registry(&registry, &second[..1], "t2");
    assert_matches_registry(&registry, &second[1..], "t1");

    let forced = run(
        &second_requests,
        &BuildOptions {
            force: true,
            ..options.clone()
        },
    )
    .await
    .expect("forced");
    assert!(
        forced
            .iter()
            .all(|r| r.action == BuildAction::Built && r.reason == "forced rebuild"),
        "{forced:#?}"
    );
    assert_matches_registry(&registry, &forced[..1], "t2");
}

/// A broken Dockerfile: the error names the app and shows the builder's lines; nothing is pushed.
async fn dockerfile_error_fails_and_pushes_nothing(builder: &str) {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let workspace = Workspace::new();
    let requests = vec![
        workspace.request(&registry.address, "broken", "t1"),
        workspace.request(&registry.address, "web", "t1"),
    ];
    let options = BuildOptions {
        jobs: 1,
        ..workspace.options(builder)
    };
    let error = run(&requests, &options)
        .await
        .expect_err("broken Dockerfile must fail");
    let text = chain(&error);
    assert!(matches!(error, BuildError::BuildFailed { .. }), "{text}");
    assert!(text.contains("app `broken`"), "{text}");
    assert!(text.contains(builder), "{text}");
    assert!(
        text.contains("missing-file.txt"),
        "the builder's own lines: {text}"
    );
    assert!(registry.tags("broken").is_empty());
    assert!(
        registry.tags("web").is_empty(),
        "no build starts after a failure with --jobs 1"
    );
    assert!(
        !workspace.calls().iter().any(|c| c.contains(" push ")),
        "{:#?}",
        workspace.calls()
    );
}

macro_rules! builder_suite {
    ($module:ident, $builder:literal) => {
        mod $module {
            use super::*;

            fn available() -> bool {
                crate::support::require_tool($builder, "version")
            }

            #[tokio::test]
            async fn builds_pushes_then_reuses_without_the_builder() {
                if available() {
                    builds_pushes_then_reuses($builder).await;
                }
            }

            #[tokio::test]
            async fn rebuilds_only_the_changed_app() {
                if available() {
                    rebuilds_only_what_changed($builder).await;
                }
            }

            #[tokio::test]
            async fn dockerfile_error_names_the_app_and_pushes_nothing() {
                if available() {
                    dockerfile_error_fails_and_pushes_nothing($builder).await;
                }
            }
        }
    };
}

builder_suite!(docker, "docker");
builder_suite!(podman, "podman");
builder_suite!(buildah, "buildah");

#[tokio::test]
async fn unreachable_registry_is_a_clear_error_and_runs_no_builder() {
    let workspace = Workspace::new();
    let address = format!("127.0.0.1:{}", free_port());
    let requests = vec![workspace.request(&address, "web", "t1")];
    let error = run(&requests, &workspace.options("docker"))
        .await
        .expect_err("unreachable registry");
    let text = chain(&error);
    assert!(matches!(error, BuildError::Registry { .. }), "{text}");
    assert!(text.contains(&format!("registry `{address}`")), "{text}");
    assert!(text.contains("app `web`"), "{text}");
    assert!(text.contains("unreachable"), "{text}");
    assert!(workspace.calls().is_empty(), "{:#?}", workspace.calls());
}

#[tokio::test]
async fn unknown_builder_is_rejected_before_anything_runs() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let workspace = Workspace::new();
    let requests = vec![workspace.request(&registry.address, "web", "t1")];
    let options = BuildOptions {
        builder: Some("kaniko".to_string()),
        ..workspace.options("docker")
    };
    let error = run(&requests, &options).await.expect_err("unknown builder");
    assert!(
        error.to_string().contains("unknown image builder `kaniko`"),
        "{error}"
    );
    assert!(workspace.calls().is_empty());
}
