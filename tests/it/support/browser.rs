//! A real headless Chromium for the tests of HTML pages: the DOM it built from a URL
//! (`--dump-dom`) and a screenshot (`--screenshot`). Each run has its own profile directory, its
//! own process group (Chromium starts helpers: all of them are killed), a time limit, and no
//! network beyond what the page asks for (the agent's page asks for nothing).

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The browser binary (Debian's `chromium`).
pub const CHROMIUM: &str = "chromium";

/// How long one run may take before it is killed.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Run Chromium headless on `url` with `args`; its stdout. Panics (with its stderr) when it
/// fails or takes longer than [`TIME_LIMIT`].
fn run(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("a profile directory");
    let output = tempfile::tempdir().expect("an output directory");
    let stdout_path = output.path().join("stdout");
    let stderr_path = output.path().join("stderr");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .env("HOME", profile.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break Some(status);
        }
        if started.elapsed() > TIME_LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Its helpers (zygote, GPU, renderer) are in its group: none outlives the run.
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => {
            std::fs::read_to_string(&stdout_path).expect("chromium's stdout")
        }
        Some(status) => panic!("chromium {args:?} {url}: {status}\n{stderr}"),
        None => panic!("chromium {args:?} {url}: killed after {TIME_LIMIT:?}\n{stderr}"),
    }
}

/// The DOM Chromium built from `url`, serialized.
pub fn dump_dom(url: &str) -> String {
    run(url, &["--dump-dom"])
}

/// A `width` x `height` PNG screenshot of `url` at `path`.
pub fn screenshot(url: &str, path: &Path, width: u32, height: u32) {
    run(
        url,
        &[
            &format!("--screenshot={}", path.display()),
            &format!("--window-size={width},{height}"),
        ],
    );
}
