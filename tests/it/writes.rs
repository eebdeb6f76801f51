//! The write-safety rule (ARCHITECTURE.md, Invariants): gitship writes only regular files it
//! created or owns, inside the repository's `.gitship/`, the agent's cache, or a path the user
//! named; never through a symlink, never over a device, FIFO, socket or directory, and never
//! changing the mode of a directory it did not create. Each writer is driven through the built
//! CLI against a symlink, a FIFO and a directory where it writes, and every directory that was
//! there before keeps its mode.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
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

/// `plan --out` and `plan --report` write a regular file or nothing: a FIFO (as `/dev/null` is a device), a
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
        // `--out` (the saved plan) and `--report` (its redacted report) alike.
        for flag in ["--out", "--report"] {
            let run = repo.gitship(&["plan", "staging", "--sandbox", flag, &out]);
            assert_refused(&run, target, &before);
            assert!(run.stdout.is_empty(), "nothing was planned: {}", run.stdout);
        }
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
    assert_refused_at(run, link, "a symlink");
    assert_eq!(describe(outside), before, "nothing written outside");
    assert!(
        std::fs::symlink_metadata(link)
            .expect("link")
            .file_type()
            .is_symlink(),
        "the link is left as it was"
    );
}

/// A failed run (exit 1) whose error says `path` (by its file name) is `found`, with a hint.
fn assert_refused_at(run: &Run, path: &Path, found: &str) {
    assert_eq!(run.code, 1, "{}: {}", path.display(), run.all());
    let shown = path.file_name().expect("name").to_string_lossy();
    assert!(
        run.stderr.contains(&*shown) && run.stderr.contains(&format!("is {found}, not a")),
        "the error says `{shown}` is {found}: {}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
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

/// `env new` refuses a link where the new config would go, or a config directory that is one
/// (to a directory inside the repository, which reading allows), the same way.
#[test]
fn env_new_refuses_to_write_through_a_symlink() {
    for to_directory in [false, true] {
        let repo = sandbox_repo();
        let elsewhere = repo.path().join("settings/environments");
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        let link = if to_directory {
            // The configs live in `settings/environments`, reached through the link `config`.
            let config = repo.path().join("config");
            std::fs::rename(config.join("staging.yaml"), elsewhere.join("staging.yaml"))
                .expect("move");
            std::fs::remove_dir(&config).expect("rmdir");
            symlink(Path::new("settings/environments"), &config);
            config
        } else {
            let link = repo.path().join("config/preview.yaml");
            symlink(&elsewhere.join("preview.yaml"), &link);
            link
        };
        let before = describe(&elsewhere);
        let run = repo.gitship(&["env", "new", "preview", "--from", "staging"]);
        assert_refused_in_repo(&run, &link, &elsewhere, &before);
    }
}

/// `gitship -C repo ARGS` with `env` set, run to its end, or killed after 60 s: a write (or a
/// read) that opens a FIFO blocks until a writer comes, which none does here.
fn run_within(repo: &Repo, env: &[(&str, &Path)], args: &[&str]) -> Run {
    let mut command = gitship();
    command.arg("-C").arg(repo.path());
    if let Some(kubeconfig) = &repo.kubeconfig {
        command.arg("--kubeconfig").arg(kubeconfig);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn gitship");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("gitship");
            panic!(
                "gitship {args:?} hung (blocked on a FIFO?): {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("gitship");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`sandbox_repo`] with a Terraform root module (one output; no provider to download).
fn terraform_repo() -> Repo {
    let repo = sandbox_repo();
    repo.write(
        "infrastructure/terraform/main.tf",
        "output \"greeting\" {\n  value = \"hello\"\n}\n",
    );
    repo.commit("terraform");
    repo
}

/// `plan --out FILE` also writes Terraform's plan to `FILE.tfplan`: a FIFO, a symlink or a
/// directory there is refused as `FILE` is, before anything runs.
#[test]
fn plan_out_refuses_anything_but_a_regular_file_for_terraforms_plan_beside_it() {
    if !crate::support::require_tool("terraform", "version") {
        return;
    }
    let repo = terraform_repo();
    let outside = open_dir();
    let out = outside.path().join("plan.json");
    let sidecar = outside.path().join("plan.json.tfplan");
    let elsewhere = outside.path().join("elsewhere");
    std::fs::write(&elsewhere, "keep me").expect("file");
    for plant in ["fifo", "symlink", "directory"] {
        match plant {
            "fifo" => mkfifo(&sidecar),
            "symlink" => symlink(&elsewhere, &sidecar),
            _ => std::fs::create_dir(&sidecar).expect("mkdir"),
        }
        let before = describe(outside.path());
        let run = run_within(
            &repo,
            &[],
            &[
                "plan",
                "staging",
                "--sandbox",
                "--out",
                &out.to_string_lossy(),
            ],
        );
        assert_refused(&run, &sidecar, &before);
        if plant == "directory" {
            std::fs::remove_dir(&sidecar).expect("rmdir");
        } else {
            std::fs::remove_file(&sidecar).expect("rm");
        }
    }
    // A regular file is replaced, privately; the directory keeps its mode.
    std::fs::write(&sidecar, "old").expect("old");
    repo.ok(&[
        "plan",
        "staging",
        "--sandbox",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert_eq!(mode(&sidecar), 0o600);
    assert_eq!(mode(outside.path()), 0o755);
}

/// Terraform's data directory (`.gitship/terraform/<env>`): gitship's var file, init fingerprint
/// and `.gitignore` there are never written through a symlink nor over a FIFO (the error names
/// the file, the environment and what to do), a data directory reached through a link is
/// refused, and the directories that were there keep their mode.
#[test]
fn terraform_files_are_never_written_through_a_symlink_nor_over_a_special_file() {
    if !crate::support::require_tool("terraform", "version") {
        return;
    }
    for file in ["gitship.tfvars.json", "gitship-init.sha256", ".gitignore"] {
        for plant in ["symlink", "fifo"] {
            let repo = terraform_repo();
            let outside = open_dir();
            let data_dir = repo.path().join(".gitship/terraform/staging");
            std::fs::create_dir_all(&data_dir).expect("mkdir");
            let path = data_dir.join(file);
            match plant {
                "symlink" => symlink(&outside.path().join("written"), &path),
                _ => mkfifo(&path),
            }
            let before = describe(outside.path());
            let run = run_within(&repo, &[], &["plan", "staging", "--sandbox"]);
            let found = if plant == "fifo" {
                "a FIFO"
            } else {
                "a symlink"
            };
            assert_refused_at(&run, &path, found);
            assert!(run.stderr.contains("staging"), "{}", run.stderr);
            assert_eq!(describe(outside.path()), before, "{file}: nothing outside");
            let still = std::fs::symlink_metadata(&path)
                .expect("planted")
                .file_type();
            assert!(
                still.is_symlink() || still.is_fifo(),
                "{file}: left as it was"
            );
        }
    }

    let repo = terraform_repo();
    let outside = open_dir();
    std::fs::create_dir(repo.path().join(".gitship")).expect("mkdir");
    symlink(outside.path(), &repo.path().join(".gitship/terraform"));
    let run = run_within(&repo, &[], &["plan", "staging", "--sandbox"]);
    assert_refused_at(&run, &repo.path().join(".gitship/terraform"), "a symlink");
    assert_eq!(describe(outside.path()), "directory 755 []");

    let repo = terraform_repo();
    for dir in [".gitship", ".gitship/terraform/staging", ".gitship/plans"] {
        let dir = repo.path().join(dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    repo.ok(&["plan", "staging", "--sandbox"]);
    repo.ok(&["drift", "staging", "--sandbox"]);
    for dir in [".gitship", ".gitship/terraform/staging", ".gitship/plans"] {
        assert_eq!(mode(&repo.path().join(dir)), 0o755, "{dir}: there before");
    }
    let fresh = terraform_repo();
    fresh.ok(&["plan", "staging", "--sandbox"]);
    for dir in [
        ".gitship/terraform",
        ".gitship/terraform/staging",
        ".gitship/plans",
    ] {
        assert_eq!(
            mode(&fresh.path().join(dir)),
            0o700,
            "{dir}: created by gitship"
        );
    }
}

/// The sandbox's state (`.gitship/sandbox/<env>.json`, and its `.gitignore`): a symlink or a
/// FIFO there, or a `.gitship/sandbox` that links elsewhere, is refused before the simulated
/// cluster starts; a `.gitship` that was there keeps its mode, the directory gitship creates is
/// private.
#[test]
fn the_sandbox_state_is_never_written_through_a_symlink_nor_over_a_special_file() {
    for (file, plant) in [
        ("staging.json", "symlink"),
        ("staging.json", "fifo"),
        (".gitignore", "symlink"),
        (".gitignore", "fifo"),
        ("", "symlink"),
    ] {
        let repo = sandbox_repo();
        let outside = open_dir();
        let sandbox = repo.path().join(".gitship/sandbox");
        let path = if file.is_empty() {
            sandbox.clone()
        } else {
            sandbox.join(file)
        };
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        match (file, plant) {
            ("", _) => symlink(outside.path(), &path),
            (_, "symlink") => {
                std::fs::write(outside.path().join("state"), "{}").expect("state");
                symlink(&outside.path().join("state"), &path);
            }
            _ => mkfifo(&path),
        }
        let before = describe(outside.path());
        let run = run_within(&repo, &[], &["deploy", "staging", "--sandbox"]);
        let found = if plant == "fifo" {
            "a FIFO"
        } else {
            "a symlink"
        };
        assert_refused_at(&run, &path, found);
        assert_eq!(describe(outside.path()), before, "{file} {plant}");
    }

    let repo = sandbox_repo();
    let gitship_dir = repo.path().join(".gitship");
    std::fs::create_dir(&gitship_dir).expect("mkdir");
    std::fs::set_permissions(&gitship_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    repo.ok(&["deploy", "staging", "--sandbox"]);
    assert_eq!(mode(&gitship_dir), 0o755, "there before");
    assert_eq!(
        mode(&gitship_dir.join("sandbox")),
        0o700,
        "created by gitship"
    );
    assert_eq!(mode(&gitship_dir.join("sandbox/staging.json")), 0o600);
}

/// `$GITHUB_STEP_SUMMARY` names a file the runner created: gitship appends to a regular file,
/// and only warns (never appends through a link, never blocks on a FIFO) otherwise.
#[test]
fn the_step_summary_is_appended_to_a_regular_file_only() {
    let repo = sandbox_repo();
    let outside = open_dir();
    let summary = outside.path().join("summary.md");
    std::fs::write(&summary, "# earlier step\n").expect("summary");
    let link = outside.path().join("link.md");
    symlink(&summary, &link);
    let fifo = outside.path().join("fifo");
    mkfifo(&fifo);
    for (target, found) in [(&link, "a symlink"), (&fifo, "a FIFO")] {
        let before = describe(outside.path());
        let run = run_within(
            &repo,
            &[("GITHUB_STEP_SUMMARY", target)],
            &["plan", "staging", "--sandbox"],
        );
        assert_eq!(run.code, 0, "a courtesy, not a failure: {}", run.all());
        assert!(
            run.stderr.contains("GITHUB_STEP_SUMMARY")
                && run.stderr.contains(&target.display().to_string())
                && run.stderr.contains(found),
            "{}",
            run.stderr
        );
        assert_eq!(describe(outside.path()), before, "nothing appended");
    }
    let run = run_within(
        &repo,
        &[("GITHUB_STEP_SUMMARY", &summary)],
        &["plan", "staging", "--sandbox"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let text = std::fs::read_to_string(&summary).expect("summary");
    assert!(
        text.starts_with("# earlier step\n") && text.len() > 20,
        "{text}"
    );
}

/// `init`, `ci init` and `env new` refuse a FIFO or a directory where a file goes (with
/// `--force` too), and the directories that were there keep their mode.
#[test]
fn repository_files_are_never_written_over_a_special_file() {
    // init
    for (at, plant) in [
        ("config/staging.yaml", "fifo"),
        ("gitship.yaml", "directory"),
    ] {
        let repo = repo_to_adopt();
        let path = repo.path().join(at);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        if plant == "fifo" {
            mkfifo(&path);
        } else {
            std::fs::create_dir(&path).expect("mkdir");
        }
        let run = run_within(&repo, &[], &["init", "--env", "staging", "--force"]);
        let found = if plant == "fifo" {
            "a FIFO"
        } else {
            "a directory"
        };
        assert_refused_at(&run, &path, found);
    }
    let repo = repo_to_adopt();
    std::fs::create_dir(repo.path().join("config")).expect("mkdir");
    std::fs::set_permissions(
        repo.path().join("config"),
        std::fs::Permissions::from_mode(0o750),
    )
    .expect("chmod");
    repo.ok(&["init", "--env", "staging"]);
    assert_eq!(mode(&repo.path().join("config")), 0o750);

    // ci init
    let repo = sandbox_repo();
    let fifo = repo.path().join(".gitlab-ci.yml");
    mkfifo(&fifo);
    let run = run_within(
        &repo,
        &[],
        &["ci", "init", "gitlab", "--deploy-env", "staging", "--force"],
    );
    assert_refused_at(&run, &fifo, "a FIFO");
    let workflows = repo.path().join(".github/workflows");
    std::fs::create_dir_all(&workflows).expect("mkdir");
    std::fs::set_permissions(&workflows, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    repo.ok(&["ci", "init", "github", "--deploy-env", "staging"]);
    assert_eq!(mode(&workflows), 0o750);

    // env new
    let repo = sandbox_repo();
    let fifo = repo.path().join("config/preview.yaml");
    mkfifo(&fifo);
    let run = run_within(&repo, &[], &["env", "new", "preview", "--from", "staging"]);
    assert_refused_at(&run, &fifo, "a FIFO");
    std::fs::remove_file(&fifo).expect("rm");
    std::fs::set_permissions(
        repo.path().join("config"),
        std::fs::Permissions::from_mode(0o750),
    )
    .expect("chmod");
    repo.ok(&["env", "new", "preview", "--from", "staging"]);
    assert_eq!(mode(&repo.path().join("config")), 0o750);
}

/// `agent --cache` names a directory: a FIFO there is refused, and so is a clone directory in
/// the cache that links elsewhere (the agent would check out and write through it).
#[test]
fn the_agent_cache_is_a_directory_and_its_clone_never_a_link() {
    let cluster = TestCluster::start_blocking();
    let mut repo = sandbox_repo();
    cluster.adopt(&mut repo, "staging", "web");
    let source = tempfile::tempdir().expect("temp");
    let source_path = source.path().to_string_lossy().into_owned();
    repo.git(&["clone", "-q", "--bare", ".", &source_path]);
    let agent = |cache: &Path| {
        run_within(
            &repo,
            &[],
            &[
                "agent",
                "staging",
                "--once",
                "--source",
                &source_path,
                "--cache",
                &cache.to_string_lossy(),
            ],
        )
    };
    let outside = open_dir();
    let fifo = outside.path().join("fifo");
    mkfifo(&fifo);
    assert_refused_at(&agent(&fifo), &fifo, "a FIFO");

    // The clone's directory, found by a first run, replaced by a link to a copy elsewhere.
    let cache = open_dir();
    assert_eq!(agent(cache.path()).code, 0);
    let clone = std::fs::read_dir(cache.path())
        .expect("read_dir")
        .next()
        .expect("a clone")
        .expect("entry")
        .path();
    let moved = outside.path().join("clone");
    std::fs::rename(&clone, &moved).expect("move the clone");
    symlink(&moved, &clone);
    let before = describe(&moved);
    assert_refused_at(&agent(cache.path()), &clone, "a symlink");
    assert_eq!(describe(&moved), before, "nothing written through the link");
}

/// The calls that write a file, create a directory or change a mode; only `src/private_file.rs`
/// makes them (a call through `private_file::` is the rule kept).
const WRITING_CALLS: &[&str] = &[
    "fs::write(",
    "File::create",
    "OpenOptions",
    "set_permissions(",
    "set_len(",
    "create_dir(",
    "create_dir_all(",
    "DirBuilder",
    "fs::rename(",
    "fs::copy(",
    "fs::hard_link(",
    "fs::symlink(",
    ".persist(",
    "NamedTempFile",
    ".tempfile(",
    ".tempfile_in(",
];

/// `text` without its test module (`#[cfg(test)] mod ...` to the end, where the code keeps
/// them) and without comments.
fn code_of(text: &str) -> Vec<(usize, &str)> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .enumerate()
        .position(|(index, line)| {
            line.trim() == "#[cfg(test)]"
                && lines
                    .get(index + 1)
                    .is_some_and(|next| next.trim_start().starts_with("mod "))
        })
        .unwrap_or(lines.len());
    lines[..end]
        .iter()
        .enumerate()
        .map(|(index, line)| (index + 1, *line))
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .collect()
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The rule by construction: no file of `src/` but `private_file.rs` writes a file, creates a
/// directory or changes a mode by itself; each goes through `private_file`, whose functions
/// the other tests here drive against symlinks, FIFOs and directories.
#[test]
fn every_write_goes_through_private_file() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "the source is there: {}", files.len());
    let mut found = Vec::new();
    for file in &files {
        if file.ends_with("src/private_file.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("source");
        for (number, line) in code_of(&text) {
            for call in WRITING_CALLS {
                let through_the_module = line
                    .match_indices(call)
                    .all(|(at, _)| line[..at].ends_with("private_file::"));
                if line.contains(call) && !through_the_module {
                    found.push(format!(
                        "{}:{number}: `{call}` in `{}`",
                        file.strip_prefix(&src).unwrap_or(file).display(),
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "write through `crate::private_file` (ARCHITECTURE.md, Invariants, write safety):\n{}",
        found.join("\n")
    );
    // The scan sees what it looks for.
    let sample = "fn f() {\n    std::fs::write(path, text)?;\n    crate::private_file::create_dir(dir)?;\n}\n#[cfg(test)]\nmod tests {\n    std::fs::write(a, b);\n}\n";
    let code = code_of(sample);
    assert_eq!(code.len(), 4, "{code:?}");
    assert!(code[1].1.contains("fs::write("));
}
