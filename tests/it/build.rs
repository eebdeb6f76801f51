//! Integration tests: the image stage with real builders (docker, podman, buildah: the same
//! suite for each) and a real registry (`docker-registry` on loopback).
//!
//! Builder invocations are counted with shims placed first on the builders' `PATH`: each logs
//! its arguments and execs the real tool.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gitship::facade::image::{
    BuildAction, BuildError, BuildOptions, BuildRequest, BuildResult, PlannedAction,
    REVISION_LABEL, Registry, SOURCE_LABEL, build_images, plan_images,
};
use gitship::facade::repo::App;
use gitship_foundation::output::OutputFormat;
use gitship_foundation::output::Printer;

use crate::support::registry::{TestRegistry, counting_shims, free_port};

const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";
const SOURCE: &str = "https://git.example.com/acme/blog";
const BUILDERS: &[&str] = &["docker", "podman", "buildah"];

/// A scratch copy of the fixture apps, builder shims that count calls, and a containers storage
/// of its own for podman and buildah (tests run in parallel: a shared storage would let one
/// test's cleanup race another's layer cache).
struct Workspace {
    apps: tempfile::TempDir,
    shims: tempfile::TempDir,
    log: PathBuf,
    path: OsString,
    _storage: tempfile::TempDir,
    storage_conf: PathBuf,
    /// Loopback registries are plain HTTP. Docker's engine allows that for 127.0.0.0/8 by
    /// itself; a docker-compatible CLI on podman (podman-docker, what CI has) is told so here,
    /// as its user would in `registries.conf`.
    registries_conf: PathBuf,
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
        let storage = tempfile::tempdir().expect("containers storage dir");
        let storage_conf = storage.path().join("storage.conf");
        std::fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                storage.path().join("run").display(),
                storage.path().join("graph").display()
            ),
        )
        .expect("storage.conf");
        let registries_conf = storage.path().join("registries.conf");
        std::fs::write(
            &registries_conf,
            "unqualified-search-registries = []\n[[registry]]\nlocation = \"127.0.0.1\"\ninsecure = true\n",
        )
        .expect("registries.conf");
        Workspace {
            apps,
            shims,
            log,
            path,
            _storage: storage,
            storage_conf,
            registries_conf,
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
            environment: BTreeMap::from([
                (OsString::from("PATH"), self.path.clone()),
                (
                    OsString::from("CONTAINERS_STORAGE_CONF"),
                    self.storage_conf.clone().into_os_string(),
                ),
                (
                    OsString::from("CONTAINERS_REGISTRIES_CONF"),
                    self.registries_conf.clone().into_os_string(),
                ),
            ]),
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

/// Removes the images a test built with docker from the engine's store when dropped (keeps
/// developer machines from filling up with test images).
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
        // podman and buildah build into the workspace's own storage, removed with it.
        if self.builder != "docker" {
            return;
        }
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

/// `gitship build ENV` end to end: a Git repository with the fixture apps, a real registry.
mod command {
    use super::*;
    use crate::support::gitship;

    struct Repo {
        dir: tempfile::TempDir,
    }

    impl Repo {
        fn new(registry: &str, builder: &str) -> Repo {
            let dir = tempfile::tempdir().expect("repo dir");
            let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/build/apps");
            for app in ["web", "api"] {
                let target = dir.path().join("apps").join(app);
                std::fs::create_dir_all(&target).expect("app dir");
                for file in std::fs::read_dir(fixtures.join(app)).expect("fixture app") {
                    let file = file.expect("fixture file");
                    std::fs::copy(file.path(), target.join(file.file_name())).expect("copy");
                }
            }
            std::fs::create_dir_all(dir.path().join("config")).expect("config dir");
            for env in ["staging", "production"] {
                std::fs::write(
                    dir.path().join(format!("config/{env}.yaml")),
                    format!("cluster:\n  namespace: blog\nregistry: {registry}/blog\n"),
                )
                .expect("env config");
            }
            std::fs::write(
                dir.path().join("gitship.yaml"),
                format!("build:\n  builder: {builder}\n"),
            )
            .expect("gitship.yaml");
            let repo = Repo { dir };
            repo.git(&["init", "-q", "-b", "main"]);
            repo.commit("initial");
            repo
        }

        fn git(&self, args: &[&str]) {
            let status = std::process::Command::new("git")
                .args(args)
                .current_dir(self.dir.path())
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("HOME", crate::support::test_home())
                .status()
                .expect("git");
            assert!(status.success(), "git {args:?}");
        }

        fn commit(&self, message: &str) {
            self.git(&["add", "-A"]);
            self.git(&["commit", "-q", "-m", message]);
        }

        fn build(&self, env: &str, workspace: &Workspace, extra: &[&str]) -> std::process::Output {
            gitship()
                .arg("-C")
                .arg(self.dir.path())
                .args(["--output", "json", "build", env])
                .args(extra)
                .env("PATH", &workspace.path)
                .env("CONTAINERS_STORAGE_CONF", &workspace.storage_conf)
                .env("CONTAINERS_REGISTRIES_CONF", &workspace.registries_conf)
                .output()
                .expect("run gitship")
        }
    }

    fn results(output: &std::process::Output) -> Vec<BuildResult> {
        assert!(
            output.status.success(),
            "exit {:?}\nstderr:\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("build --output json");
        assert_eq!(report["format_version"], 1, "{report}");
        serde_json::from_value(report["images"].clone()).expect("build's images")
    }

    #[test]
    fn build_builds_changed_apps_and_reuses_the_rest() {
        if !crate::support::require_tool("buildah", "version") {
            return;
        }
        let Some(registry) = TestRegistry::start() else {
            return;
        };
        let workspace = Workspace::new();
        let repo = Repo::new(&registry.address, "buildah");
        let first = results(&repo.build("staging", &workspace, &[]));
        assert_eq!(
            first.iter().map(|r| r.app.as_str()).collect::<Vec<_>>(),
            ["api", "web"]
        );
        assert!(
            first.iter().all(|r| r.action == BuildAction::Built),
            "{first:#?}"
        );
        for result in &first {
            let repository = format!("blog/{}", result.app);
            assert_eq!(
                registry.tags(&repository),
                std::slice::from_ref(&result.tag)
            );
            assert_eq!(
                registry
                    .manifest(&repository, &result.tag)
                    .expect("manifest")
                    .0,
                result.digest
            );
            let labels = registry.labels(&repository, &result.tag);
            assert_eq!(
                labels.get(REVISION_LABEL).map(String::len),
                Some(40),
                "{labels:?}"
            );
        }

        let calls = workspace.calls().len();
        let started = Instant::now();
        let second = results(&repo.build("staging", &workspace, &[]));
        let elapsed = started.elapsed();
        assert_eq!(
            workspace.calls().len(),
            calls,
            "no builder invocation: {:#?}",
            workspace.calls()
        );
        assert!(
            second.iter().all(|r| r.action == BuildAction::Reused),
            "{second:#?}"
        );
        let references = |results: &[BuildResult]| {
            results
                .iter()
                .map(|r| (r.app.clone(), r.reference.clone(), r.digest.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(references(&second), references(&first));
        assert!(
            elapsed < Duration::from_secs(1),
            "no-op build took {elapsed:?}"
        );

        std::fs::write(
            repo.dir.path().join("apps/web/index.html"),
            "<h1>changed</h1>\n",
        )
        .expect("edit");
        repo.commit("change web");
        let third = results(&repo.build("staging", &workspace, &[]));
        let builds: Vec<String> = workspace.calls()[calls..]
            .iter()
            .filter(|c| c.starts_with("buildah build "))
            .cloned()
            .collect();
        assert_eq!(builds.len(), 1, "{builds:#?}");
        assert!(builds[0].contains("/blog/web:"), "{builds:?}");
        assert_eq!(
            (third[0].action, third[1].action),
            (BuildAction::Reused, BuildAction::Built)
        );
        assert_eq!(third[0].tag, first[0].tag, "api keeps its tag");
        assert_ne!(third[1].tag, first[1].tag, "web gets a new tag");
        assert_eq!(registry.tags("blog/web").len(), 2);
    }

    #[test]
    fn production_refuses_a_dirty_tree_unless_allowed() {
        let Some(registry) = TestRegistry::start() else {
            return;
        };
        let workspace = Workspace::new();
        let repo = Repo::new(&registry.address, "buildah");
        std::fs::write(
            repo.dir.path().join("apps/web/index.html"),
            "<h1>uncommitted</h1>\n",
        )
        .expect("edit");
        let output = repo.build("production", &workspace, &[]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("uncommitted changes (`apps/web/index.html`)")
                && stderr.contains("--allow-dirty"),
            "the error names the changed file: {stderr}"
        );
        assert!(workspace.calls().is_empty());
        assert!(registry.catalog().is_empty());

        if !crate::support::require_tool("buildah", "version") {
            return;
        }
        let allowed = results(&repo.build("production", &workspace, &["--allow-dirty"]));
        let web = allowed.iter().find(|r| r.app == "web").expect("web result");
        assert!(
            web.tag.contains("-dirty-"),
            "uncommitted changes mark the tag: {}",
            web.tag
        );
        assert_eq!(registry.tags("blog/web"), std::slice::from_ref(&web.tag));
    }

    #[test]
    fn dockerfile_error_and_unreachable_registry_exit_1() {
        if !crate::support::require_tool("buildah", "version") {
            return;
        }
        let Some(registry) = TestRegistry::start() else {
            return;
        };
        let workspace = Workspace::new();
        let repo = Repo::new(&registry.address, "buildah");
        std::fs::write(
            repo.dir.path().join("apps/web/Dockerfile"),
            "FROM scratch\nCOPY nope.txt /\n",
        )
        .expect("edit");
        repo.commit("break web");
        let output = repo.build("staging", &workspace, &["--jobs", "1"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("app `web`") && stderr.contains("nope.txt"),
            "{stderr}"
        );
        assert!(registry.tags("blog/web").is_empty());

        let unreachable = format!("127.0.0.1:{}", free_port());
        let other = Repo::new(&unreachable, "buildah");
        let output = other.build("staging", &workspace, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("registry `{unreachable}`")) && stderr.contains("app `"),
            "{stderr}"
        );
    }
}
