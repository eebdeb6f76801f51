//! The write-safety rule (ARCHITECTURE.md, Invariants): gitship writes only regular files it
//! created or owns, inside the repository's `.gitship/`, the agent's cache, or a path the user
//! named; never through a symlink, never over a device, FIFO, socket or directory, and never
//! changing the mode of a directory it did not create. Each writer is driven through the built
//! CLI against a symlink, a FIFO and a directory where it writes, and every directory that was
//! there before keeps its mode.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::support::cluster::TestCluster;
use crate::support::gitship;
use crate::support::repo::{Repo, Run};

/// A committed repository with one ConfigMap and environment `staging`, deployable with
/// `--sandbox` (no Terraform, no apps).
fn sandbox_repo() -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(".gitignore", ".gitship/\n");
    repo.write(
        "infrastructure/kubernetes/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    );
    repo.write("config/staging.yaml", "cluster:\n  namespace: web\n");
    repo.git(&["init", "-q"]);
    repo.commit("small");
    repo
}

/// A temporary directory with mode 0755 (as a shared directory or a home is).
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .mode()
        & 0o7777
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|error| panic!("symlink {}: {error}", link.display()));
}

/// What is at `path`, not following a symlink, with a regular file's content and a directory's
/// entries: two equal descriptions mean nothing was written there.
fn describe(path: &Path) -> String {
    match std::fs::symlink_metadata(path) {
        Err(_) => "missing".into(),
        Ok(metadata) => {
            let kind = metadata.file_type();
            let mode = metadata.mode() & 0o7777;
            if kind.is_symlink() {
                let target = std::fs::read_link(path).expect("readlink");
                format!("symlink -> {} ({})", target.display(), describe(&target))
            } else if kind.is_dir() {
                let mut entries: Vec<String> = std::fs::read_dir(path)
                    .expect("read_dir")
                    .map(|entry| {
                        let entry = entry.expect("entry");
                        format!(
                            "{}: {}",
                            entry.file_name().to_string_lossy(),
                            describe(&entry.path())
                        )
                    })
                    .collect();
                entries.sort();
                format!("directory {mode:o} [{}]", entries.join(", "))
            } else if kind.is_file() {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                format!("file {mode:o} {text:?}")
            } else {
                format!("special {mode:o}")
            }
        }
    }
}

/// The refusal of a write to `path`: bad input (exit 64), the path named, a hint, and nothing
/// written at `path` nor beside it (`before` is [`describe`] of its directory before the run).
fn assert_refused(run: &Run, path: &Path, before: &str) {
    assert_eq!(run.code, 64, "{}: {}", path.display(), run.all());
    assert!(
        run.stderr.contains(&path.display().to_string()),
        "the error names `{}`: {}",
        path.display(),
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    let dir = path.parent().expect("parent");
    assert_eq!(
        describe(dir),
        before,
        "nothing changed in {}",
        dir.display()
    );
}

/// `plan --out` writes a regular file or nothing: a FIFO (as `/dev/null` is a device), a
/// symlink (to a FIFO, a file, nowhere) and a directory are refused before anything runs, and
/// the directory holding them keeps its mode.
#[test]
fn plan_out_refuses_anything_but_a_regular_file() {
    let repo = sandbox_repo();
    let outside = open_dir();
    let fifo = outside.path().join("fifo");
    mkfifo(&fifo);
    let file = outside.path().join("file");
    std::fs::write(&file, "keep me").expect("file");
    let directory = outside.path().join("directory");
    std::fs::create_dir(&directory).expect("mkdir");
    let link_to_fifo = outside.path().join("link-to-fifo");
    symlink(&fifo, &link_to_fifo);
    let link_to_file = outside.path().join("link-to-file");
    symlink(&file, &link_to_file);
    let dangling = outside.path().join("dangling");
    symlink(&outside.path().join("nowhere"), &dangling);
    let before = describe(outside.path());
    for target in [&fifo, &directory, &link_to_fifo, &link_to_file, &dangling] {
        let out = target.to_string_lossy().into_owned();
        let run = repo.gitship(&["plan", "staging", "--sandbox", "--out", &out]);
        assert_refused(&run, target, &before);
        assert!(run.stdout.is_empty(), "nothing was planned: {}", run.stdout);
    }
    assert!(
        !repo.path().join(".gitship").exists(),
        "the refusal comes before the sandbox starts"
    );
}

/// `plan --out` into an existing directory (named, or the working directory) leaves its mode as
/// it was; the directories it creates for the file are private.
#[test]
fn plan_out_leaves_the_modes_of_existing_directories_alone() {
    let repo = sandbox_repo();
    let outside = open_dir();
    let named = outside.path().join("plan.json");
    repo.ok(&[
        "plan",
        "staging",
        "--sandbox",
        "--out",
        &named.to_string_lossy(),
    ]);
    assert_eq!(mode(outside.path()), 0o755, "the named file's directory");
    assert_eq!(mode(&named), 0o600, "the saved plan");

    let working = open_dir();
    let output = gitship()
        .current_dir(working.path())
        .arg("-C")
        .arg(repo.path())
        .args(["plan", "staging", "--sandbox", "--out", "plan.json"])
        .output()
        .expect("gitship");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(mode(working.path()), 0o755, "the working directory");
    assert_eq!(mode(&working.path().join("plan.json")), 0o600);

    let nested: PathBuf = outside.path().join("new/deeper/plan.json");
    repo.ok(&[
        "plan",
        "staging",
        "--sandbox",
        "--out",
        &nested.to_string_lossy(),
    ]);
    assert_eq!(
        mode(&outside.path().join("new")),
        0o700,
        "created by gitship"
    );
    assert_eq!(mode(&outside.path().join("new/deeper")), 0o700);
    assert_eq!(mode(outside.path()), 0o755);
}

/// `agent --cache DIR` keeps DIR's mode; the clone gitship makes in it is private.
#[test]
fn the_agent_leaves_its_cache_directory_mode_alone() {
    let cluster = TestCluster::start_blocking();
    let mut repo = sandbox_repo();
    cluster.adopt(&mut repo, "staging", "web");
    let source = tempfile::tempdir().expect("temp");
    let source_path = source.path().to_string_lossy().into_owned();
    repo.git(&["clone", "-q", "--bare", ".", &source_path]);
    let cache = open_dir();
    let run = repo.gitship(&[
        "agent",
        "staging",
        "--once",
        "--source",
        &source_path,
        "--cache",
        &cache.path().to_string_lossy(),
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(mode(cache.path()), 0o755, "the cache the user named");
    let clones: Vec<PathBuf> = std::fs::read_dir(cache.path())
        .expect("read_dir")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(clones.len(), 1, "{clones:?}");
    assert_eq!(mode(&clones[0]), 0o700, "the clone gitship created");
}

/// A repository for `init`: manifests in `k8s/` (not the convention, so `init` writes
/// `gitship.yaml` too) and nothing else.
fn repo_to_adopt() -> Repo {
    let repo = Repo {
        dir: tempfile::tempdir().expect("temp"),
        kubeconfig: None,
    };
    repo.write(
        "k8s/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    );
    repo
}

/// A refusal of a file of the repository: exit 1, the link named with a hint, and neither the
/// link nor anything outside the repository changed.
fn assert_refused_in_repo(run: &Run, link: &Path, outside: &Path, before: &str) {
    assert_eq!(run.code, 1, "{}: {}", link.display(), run.all());
    let shown = link.file_name().expect("name").to_string_lossy();
    assert!(
        run.stderr.contains(&*shown) && run.stderr.contains("symlink"),
        "the error names the link `{shown}`: {}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    assert_eq!(describe(outside), before, "nothing written outside");
    assert!(
        std::fs::symlink_metadata(link)
            .expect("link")
            .file_type()
            .is_symlink(),
        "the link is left as it was"
    );
}

/// `init` never writes through a symlink: a dangling link at `config/<env>.yaml` or
/// `gitship.yaml`, or a `config` directory that links elsewhere, is refused (with `--force`
/// too) before anything is written, and nothing lands outside the repository.
#[test]
fn init_refuses_to_write_through_a_symlink() {
    for (at, force) in [
        ("config/staging.yaml", false),
        ("config/staging.yaml", true),
        ("gitship.yaml", false),
        ("gitship.yaml", true),
        ("config", false),
    ] {
        let repo = repo_to_adopt();
        let outside = open_dir();
        let link = repo.path().join(at);
        std::fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
        if at == "config" {
            symlink(outside.path(), &link);
        } else {
            symlink(&outside.path().join("written"), &link);
        }
        let before = describe(outside.path());
        let mut args = vec!["init", "--env", "staging"];
        if force {
            args.push("--force");
        }
        let run = repo.gitship(&args);
        assert_refused_in_repo(&run, &link, outside.path(), &before);
        for file in ["gitship.yaml", "config/staging.yaml"] {
            let path = repo.path().join(file);
            assert!(
                path == link || std::fs::symlink_metadata(&path).is_err(),
                "{at}: nothing written, `{file}` included"
            );
        }
    }
}

/// `ci init` never writes through a symlink: a dangling `.gitlab-ci.yml`, a
/// `.github/workflows` directory linking elsewhere (or to nothing), a dangling
/// `.github/workflows/gitship.yml` under `--force`: refused, nothing written outside.
#[test]
fn ci_init_refuses_to_write_through_a_symlink() {
    for (platform, at, to_directory, force) in [
        ("gitlab", ".gitlab-ci.yml", false, false),
        ("gitlab", ".gitlab-ci.yml", false, true),
        ("github", ".github/workflows", true, false),
        ("github", ".github/workflows", false, false),
        ("github", ".github", true, false),
        ("github", ".github/workflows/gitship.yml", false, true),
    ] {
        let repo = sandbox_repo();
        let outside = open_dir();
        let link = repo.path().join(at);
        std::fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
        if to_directory {
            symlink(outside.path(), &link);
        } else {
            symlink(&outside.path().join("written"), &link);
        }
        let before = describe(outside.path());
        let mut args = vec!["ci", "init", platform, "--deploy-env", "staging"];
        if force {
            args.push("--force");
        }
        let run = repo.gitship(&args);
        assert_refused_in_repo(&run, &link, outside.path(), &before);
    }
}

/// `env new` refuses a link where the new config would go, or a config directory that is one,
/// the same way.
#[test]
fn env_new_refuses_to_write_through_a_symlink() {
    for (at, to_directory) in [("config/preview.yaml", false), ("config", true)] {
        let repo = sandbox_repo();
        let outside = open_dir();
        let link = repo.path().join(at);
        if to_directory {
            // The configs live elsewhere, reached through the link.
            std::fs::copy(
                repo.path().join("config/staging.yaml"),
                outside.path().join("staging.yaml"),
            )
            .expect("copy");
            std::fs::remove_dir_all(&link).expect("rm config");
            symlink(outside.path(), &link);
        } else {
            symlink(&outside.path().join("written"), &link);
        }
        let before = describe(outside.path());
        let run = repo.gitship(&["env", "new", "preview", "--from", "staging"]);
        assert_refused_in_repo(&run, &link, outside.path(), &before);
    }
}
