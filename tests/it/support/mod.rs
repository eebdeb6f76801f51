//! Shared test helpers.
//!
//! - [`gitship`]: the built CLI with a scrubbed environment (temp HOME, no KUBECONFIG, no TF_*,
//!   `NO_COLOR`), so tests never touch the developer's real config.
//! - [`require_tool`]: a test that needs an external tool skips loudly when it is missing, and
//!   fails when `GITSHIP_REQUIRE_TOOLS=1` (CI), so CI can never pass by skipping.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// A scratch HOME shared by the tests of this process.
pub fn test_home() -> PathBuf {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().expect("temp home"))
        .path()
        .to_path_buf()
}

/// The built `gitship` binary with a scrubbed environment.
pub fn gitship() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitship"));
    command.env_clear();
    for key in [
        "PATH",
        "LANG",
        "TMPDIR",
        "GITSHIP_REQUIRE_TOOLS",
        "DOCKER_HOST",
        "XDG_RUNTIME_DIR",
    ] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command
        .env("HOME", test_home())
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    command
}

/// Whether CI demands every external tool (`GITSHIP_REQUIRE_TOOLS=1`).
pub fn tools_required() -> bool {
    std::env::var("GITSHIP_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// `true` when `tool` runs (`tool <version_arg>` exits 0). When it does not: panics under
/// `GITSHIP_REQUIRE_TOOLS=1`, otherwise prints a loud SKIP line and returns `false`.
pub fn require_tool(tool: &str, version_arg: &str) -> bool {
    let ok = Command::new(tool)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    if tools_required() {
        panic!("required tool `{tool}` is missing or broken (GITSHIP_REQUIRE_TOOLS=1)");
    }
    eprintln!(
        "\n*** SKIPPED: `{tool}` is not available on this machine; install it to run this test ***\n"
    );
    false
}
pub mod browser;
pub mod cluster;
pub mod registry;
pub mod repo;

/// Stage everything in `repo`'s work tree (respecting `.gitignore`) and commit it on HEAD.
pub fn commit_all(repo: &git2::Repository, message: &str) {
    let mut index = repo.index().expect("index");
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .expect("add");
    index.update_all(["*"], None).expect("update");
    index.write().expect("write index");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("find tree");
    let signature = git2::Signature::now("test", "test@example.com").expect("signature");
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        message,
        &tree,
        &parents,
    )
    .expect("commit");
}
