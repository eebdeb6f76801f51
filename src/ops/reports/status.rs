//! `gitship status`'s report: a short block of lines.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::CommandReport;
use crate::git::short_sha;
use crate::ops::history::DeployOutcome;
use crate::ops::status::StatusReport;

impl CommandReport for StatusReport {
    const KIND: &'static str = "status";

    fn human(&self, _color: bool) -> String {
        human(self)
    }
}

/// The report as a short block of lines.
fn human(report: &StatusReport) -> String {
    let mut out = String::new();
    let simulated = if report.sandbox {
        " (sandbox: simulated cluster)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "environment `{}`, namespace `{}`{simulated}",
        report.environment, report.namespace
    );
    deploys_human(&mut out, report);
    if let Some(pin) = &report.pin {
        let _ = writeln!(
            out,
            "  pinned at {} ({} by {}, {}), Git at {}: `gitship resume {}` follows Git again",
            short_sha(&pin.sha),
            pin.reason,
            pin.who,
            time(&pin.time),
            short_sha(&report.git),
            report.environment
        );
    }
    match &report.lock {
        None => out.push_str("  deploy lock: free\n"),
        Some(lock) => {
            let _ = writeln!(
                out,
                "  deploy lock: {} by `{}`{}",
                if lock.expired {
                    "expired, held"
                } else {
                    "held"
                },
                lock.holder,
                renewed(lock.renewed.as_ref())
            );
        }
    }
    agent_human(&mut out, report);
    out
}

/// The inventory and the last deploys.
fn deploys_human(out: &mut String, report: &StatusReport) {
    if !report.deployed {
        out.push_str("  never deployed\n");
    } else {
        let _ = writeln!(
            out,
            "  inventory: {} object{}",
            report.objects,
            if report.objects == 1 { "" } else { "s" }
        );
        if !report.history.is_empty() {
            out.push_str("  last deploys (newest first):\n");
        }
        for record in &report.history {
            let outcome = match record.outcome {
                DeployOutcome::Succeeded => "succeeded",
                DeployOutcome::Failed => "failed",
            };
            let _ = writeln!(
                out,
                "    {}  {}  {:<6}  {outcome:<9}  {}  {}",
                time(&record.time),
                record.sha.as_deref().map_or("-", short_sha),
                record.source.as_str(),
                record.who,
                record.summary
            );
        }
    }
}

/// The agent's leader and what it last published.
fn agent_human(out: &mut String, report: &StatusReport) {
    let Some(agent) = &report.agent else {
        out.push_str("  agent: none\n");
        return;
    };
    match &agent.leader {
        Some(leader) => {
            let _ = writeln!(
                out,
                "  agent: leader `{leader}`{}{}",
                renewed(agent.renewed.as_ref()),
                if agent.expired {
                    " (expired: no replica renews it)"
                } else {
                    ""
                }
            );
        }
        None => out.push_str("  agent: no leader\n"),
    }
    let Some(status) = &agent.status else {
        out.push_str("    no status published\n");
        return;
    };
    let _ = writeln!(
        out,
        "    state: {} (branch `{}` of {})",
        status.state.as_str(),
        status.branch,
        status.source
    );
    if let Some(revision) = &status.revision {
        let _ = writeln!(
            out,
            "    revision: {} {}",
            short_sha(&revision.sha),
            revision.subject
        );
    }
    if let Some(newest) = &status.git_revision
        && status.revision.as_ref() != Some(newest)
    {
        let _ = writeln!(
            out,
            "    newest commit: {} {}",
            short_sha(&newest.sha),
            newest.subject
        );
    }
    if let Some(suspended) = &status.suspended {
        let _ = writeln!(
            out,
            "    suspended {suspended}: `gitship resume` lets it sync again"
        );
    }
    if !status.waiting_for_images.is_empty() {
        let _ = writeln!(
            out,
            "    waiting for images: {}",
            status.waiting_for_images.join(", ")
        );
    }
    if let Some(error) = &status.last_error {
        let _ = writeln!(out, "    last error: {error}");
    }
    if let Some(heal) = &status.last_heal {
        let _ = writeln!(
            out,
            "    last heal: {}: {}",
            time(&heal.time),
            heal.healed.join(", ")
        );
    }
    if !status.drifted.is_empty() {
        let _ = writeln!(
            out,
            "    drifted, not put back: {}",
            status.drifted.join("; ")
        );
    }
    if !status.flapping.is_empty() {
        let _ = writeln!(out, "    flapping: {}", status.flapping.join("; "));
    }
}

fn time(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn renewed(time: Option<&DateTime<Utc>>) -> String {
    time.map(|time| format!(", renewed {}", self::time(time)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::agent_status::{Heal, Revision, Status, SyncState};
    use crate::ops::history::DeployRecord;
    use crate::ops::status::{AgentStatus, LockStatus};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn human_output_shows_deploys_lock_and_agent() {
        let mut status = Status::new("staging", "https://git.example/blog.git", "main", "pod-a");
        status.state = SyncState::Degraded;
        status.revision = Some(Revision {
            sha: "0123456789abcdef0123".into(),
            subject: "more replicas".into(),
            author: "ann".into(),
        });
        status.git_revision = Some(Revision {
            sha: "fedcba9876543210fedc".into(),
            subject: "a new page".into(),
            author: "bob".into(),
        });
        status.waiting_for_images = vec!["ghcr.io/acme/blog/web:fedcba987654".into()];
        status.last_error = Some("Deployment blog/web did not become ready".into());
        status.last_heal = Some(Heal {
            time: at("2026-01-02T03:04:05Z"),
            healed: vec!["Deployment/web spec.replicas (kubectl)".into()],
        });
        status.flapping = vec!["Deployment/web spec.replicas (hpa)".into()];
        status.drifted = vec!["Deployment/web spec.replicas: 3 -> 5 (changed by hpa)".into()];
        status.suspended = Some("by ann@laptop at 2026-01-02 03:04:05Z: incident 42".into());
        let report = StatusReport {
            format_version: crate::ops::status::FORMAT_VERSION,
            environment: "staging".into(),
            namespace: "blog".into(),
            sandbox: false,
            deployed: true,
            objects: 9,
            history: vec![DeployRecord {
                number: 0,
                error: None,
                repeats: 1,
                manifests: None,
                hooks: Vec::new(),
                rev: None,
                sha: Some("0123456789abcdef0123".into()),
                time: at("2026-01-02T03:00:00Z"),
                who: "ann@laptop".into(),
                outcome: DeployOutcome::Succeeded,
                summary: "9 created".into(),
                source: crate::ops::history::RecordSource::Agent,
                healed: Vec::new(),
                subject: None,
                author: None,
                started: None,
                duration_ms: None,
                counts: Default::default(),
                terraform: None,
                images: Vec::new(),
                ci_url: None,
            }],
            lock: Some(LockStatus {
                holder: "ci 42".into(),
                renewed: Some(at("2026-01-02T03:04:00Z")),
                expired: false,
            }),
            agent: Some(AgentStatus {
                leader: Some("pod-a".into()),
                renewed: Some(at("2026-01-02T03:04:01Z")),
                expired: true,
                status: Some(status),
            }),
            pin: Some(crate::ops::pin::Pin {
                sha: "0123456789abcdef0123".into(),
                who: "ann@laptop".into(),
                time: at("2026-01-02T03:05:00Z"),
                reason: "rollback".into(),
            }),
            git: "fedcba9876543210".into(),
        };
        assert_eq!(
            human(&report),
            "environment `staging`, namespace `blog`
  inventory: 9 objects
  last deploys (newest first):
    2026-01-02 03:00:00Z  0123456789ab  agent   succeeded  ann@laptop  9 created
  pinned at 0123456789ab (rollback by ann@laptop, 2026-01-02 03:05:00Z), Git at fedcba987654: `gitship resume staging` follows Git again
  deploy lock: held by `ci 42`, renewed 2026-01-02 03:04:00Z
  agent: leader `pod-a`, renewed 2026-01-02 03:04:01Z (expired: no replica renews it)
    state: degraded (branch `main` of https://git.example/blog.git)
    revision: 0123456789ab more replicas
    newest commit: fedcba987654 a new page
    suspended by ann@laptop at 2026-01-02 03:04:05Z: incident 42: `gitship resume` lets it sync again
    waiting for images: ghcr.io/acme/blog/web:fedcba987654
    last error: Deployment blog/web did not become ready
    last heal: 2026-01-02 03:04:05Z: Deployment/web spec.replicas (kubectl)
    drifted, not put back: Deployment/web spec.replicas: 3 -> 5 (changed by hpa)
    flapping: Deployment/web spec.replicas (hpa)
"
        );
    }
}
