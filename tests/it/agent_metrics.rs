//! The agent's `/metrics` text read by a real parser: the Python Prometheus client's parsers
//! (`prometheus_client.parser` for the classic text format 0.0.4, its strict
//! `prometheus_client.openmetrics.parser` for OpenMetrics 1.0), on the encodings of one set of
//! metrics. No cluster: [`Metrics`] is encoded directly (the HTTP negotiation is `agent::http`'s
//! unit tests' and the agent tests').

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use gitship::facade::agent::metrics::{Format, Metrics, SyncResult};
use gitship::facade::ops::agent_status::{Revision, Status, SyncState};
use serde_json::{Value, json};

use crate::support::tools_required;

/// Reads the text on stdin with the parser `argv[1]` names; prints every family as JSON.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families as classic
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
parse = openmetrics if sys.argv[1] == "openmetrics" else classic
families = []
for family in parse(sys.stdin.read()):
    families.append({
        "name": family.name,
        "type": family.type,
        "unit": getattr(family, "unit", ""),
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    })
print(json.dumps(families))
"#;

/// Whether `python3` with `prometheus_client` runs: skips loudly when not, fails under
/// `GITSHIP_REQUIRE_TOOLS=1` (`.ci/run` installs it).
fn require_python_client() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .output()
        .is_ok_and(|output| output.status.success());
    if ok {
        return true;
    }
    if tools_required() {
        panic!(
            "`python3` with `prometheus_client` is missing (GITSHIP_REQUIRE_TOOLS=1): pip install prometheus_client"
        );
    }
    eprintln!(
        "\n*** SKIPPED: `python3` with `prometheus_client` is not available; `pip install prometheus_client` to run this test ***\n"
    );
    false
}

/// The families Python's parser `parser` reads in `text`; panics (with the text) when it
/// refuses it.
fn parse(parser: &str, text: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args(["-c", PARSE, parser])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the metrics");
    let output = child.wait_with_output().expect("python3 ends");
    assert!(
        output.status.success(),
        "the {parser} parser refuses the text:\n{}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the families as JSON")
}

fn family<'a>(families: &'a [Value], name: &str) -> &'a Value {
    families
        .iter()
        .find(|family| family["name"] == name)
        .unwrap_or_else(|| panic!("no family `{name}` in {families:#?}"))
}

/// The value of the sample `name` with exactly `labels` in `family`.
fn value(family: &Value, name: &str, labels: Value) -> Option<f64> {
    family["samples"]
        .as_array()?
        .iter()
        .find(|sample| sample[0] == name && sample[1] == labels)
        .and_then(|sample| sample[2].as_f64())
}

fn revision(sha: &str) -> Revision {
    Revision {
        sha: sha.to_string(),
        subject: "one".to_string(),
        author: "Ada <ada@example.com>".to_string(),
    }
}

/// Metrics after a few of every kind of update, and a status out of sync.
fn scrape(format: Format) -> String {
    let metrics = Metrics::new("staging");
    metrics.sync_finished(SyncResult::Synced, Duration::from_millis(1500));
    metrics.sync_finished(SyncResult::Degraded, Duration::from_secs(40));
    metrics.healed(3);
    metrics.heal_failed();
    metrics.fetch_failed();
    metrics.set_drifted(2);
    metrics.drift_checked(Duration::from_millis(300));
    metrics.set_revision("aaaa1111");
    metrics.set_leader(true);
    metrics.set_last_sync(chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time"));
    let mut status = Status::new("staging", "https://git.example/blog.git", "main", "agent-0");
    status.state = SyncState::Degraded;
    status.revision = Some(revision("aaaa1111"));
    status.git_revision = Some(revision("bbbb2222"));
    metrics.encode(&status, format)
}

/// What both parsers must read the same.
fn check_common(families: &[Value], format: &str) {
    let env = |more: Value| {
        let mut labels = json!({"environment": "staging"});
        if let (Some(labels), Some(more)) = (labels.as_object_mut(), more.as_object()) {
            labels.extend(more.clone());
        }
        labels
    };
    let syncs = family(families, "gitship_agent_syncs");
    assert_eq!(syncs["type"], "counter", "{format}: {syncs}");
    let synced = env(json!({"result": "synced"}));
    assert_eq!(
        value(syncs, "gitship_agent_syncs_total", synced),
        Some(1.0),
        "{format}"
    );
    let failures = family(families, "gitship_agent_git_fetch_failures");
    assert_eq!(failures["type"], "counter", "{format}: {failures}");
    assert_eq!(
        value(
            failures,
            "gitship_agent_git_fetch_failures_total",
            env(json!({}))
        ),
        Some(1.0),
        "{format}"
    );
    let heal_failures = family(families, "gitship_agent_heal_failures");
    assert_eq!(heal_failures["type"], "counter", "{format}");
    let duration = family(families, "gitship_agent_sync_duration_seconds");
    assert_eq!(duration["type"], "histogram", "{format}: {duration}");
    assert_eq!(
        value(
            duration,
            "gitship_agent_sync_duration_seconds_count",
            env(json!({}))
        ),
        Some(2.0),
        "{format}"
    );
    let state = family(families, "gitship_agent_state");
    assert_eq!(state["type"], "gauge", "{format}");
    for (name, expected) in [("degraded", 1.0), ("synced", 0.0), ("pinned", 0.0)] {
        let labels = env(json!({"state": name}));
        assert_eq!(
            value(state, "gitship_agent_state", labels),
            Some(expected),
            "{format}: {name}"
        );
    }
    let out_of_sync = family(families, "gitship_agent_out_of_sync");
    assert_eq!(out_of_sync["type"], "gauge", "{format}");
    assert_eq!(
        value(out_of_sync, "gitship_agent_out_of_sync", env(json!({}))),
        Some(1.0),
        "{format}"
    );
    for family in families {
        for sample in family["samples"].as_array().into_iter().flatten() {
            assert_eq!(
                sample[1]["environment"], "staging",
                "{format}: a series without the environment: {sample}"
            );
        }
    }
}

#[test]
fn the_classic_text_format_reads_as_typed_families_with_a_real_parser() {
    if !require_python_client() {
        return;
    }
    let text = scrape(Format::Text);
    let families = parse("text", &text);
    check_common(&families, "text");
    let build = family(&families, "gitship_build_info");
    assert_eq!(build["type"], "gauge", "{build}");
    assert_eq!(
        build["samples"][0][1]["version"],
        env!("CARGO_PKG_VERSION"),
        "{build}"
    );
    // Nothing the classic format lacks (the classic parser would skip it as a comment).
    for line in text.lines().filter(|line| line.starts_with('#')) {
        assert!(
            line.starts_with("# HELP ") || line.starts_with("# TYPE "),
            "{line}"
        );
    }
}

#[test]
fn the_openmetrics_format_passes_the_strict_parser() {
    if !require_python_client() {
        return;
    }
    let text = scrape(Format::OpenMetrics);
    let families = parse("openmetrics", &text);
    check_common(&families, "openmetrics");
    let duration = family(&families, "gitship_agent_sync_duration_seconds");
    assert_eq!(duration["unit"], "seconds", "{duration}");
    let build = family(&families, "gitship_build");
    assert_eq!(build["type"], "info", "{build}");
    assert_eq!(
        build["samples"][0][1]["version"],
        env!("CARGO_PKG_VERSION"),
        "{build}"
    );
    // The classic text is no OpenMetrics (no `# EOF`): the strict parser says so, so these
    // tests do tell the two apart.
    let classic = scrape(Format::Text);
    let refused = Command::new("python3")
        .args(["-c", PARSE, "openmetrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(classic.as_bytes())?;
            child.wait()
        })
        .expect("run python3");
    assert!(
        !refused.success(),
        "the OpenMetrics parser took the classic text"
    );
}
