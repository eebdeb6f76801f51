//! Integration tests: the CLI surface (help, usage errors, exit codes).

use crate::support::gitship;

#[test]
fn usage_error_exits_64() {
    let out = gitship().arg("no-such-verb").output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn help_exits_0_and_lists_verbs() {
    let out = gitship().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for verb in [
        "envs",
        "validate",
        "render",
        "env",
        "plan",
        "deploy",
        "diff",
        "drift",
        "build",
        "completions",
    ] {
        assert!(text.contains(verb), "help lacks {verb}: {text}");
    }
}

#[test]
fn bad_duration_is_a_usage_error() {
    let out = gitship()
        .args(["deploy", "x", "--timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: invalid duration `soon` for --timeout"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn completions_print_a_script() {
    let out = gitship().args(["completions", "bash"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("gitship"));
}
