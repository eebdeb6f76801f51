//! `gitship history`'s reports: a table of the deploys (or a Markdown table), and `--diff`'s
//! objects that differ between two records.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::CommandReport;
use crate::ops::history::{DeployOutcome, DeployRecord};
use crate::ops::history::{HistoryReport, RevisionDiff, RevisionRef};
use crate::plan::ObjectAction;

impl CommandReport for HistoryReport {
    const KIND: &'static str = "history";

    fn human(&self, _color: bool) -> String {
        human(self)
    }

    fn markdown(&self) -> String {
        markdown(self)
    }
}

impl CommandReport for RevisionDiff {
    const KIND: &'static str = "history --diff";

    fn human(&self, _color: bool) -> String {
        diff_human(self)
    }
}

/// The widest a REVISION cell gets (short SHA and subject).
const REVISION_WIDTH: usize = 40;

const HEADERS: [&str; 9] = [
    "#", "REVISION", "AUTHOR", "WHO", "SOURCE", "STARTED", "DURATION", "OUTCOME", "CHANGES",
];

/// `history --diff` for people: the two records, then each object that differs (`+` added,
/// `-` removed, `~` changed, with its fields), then the counts.
fn diff_human(diff: &RevisionDiff) -> String {
    let side = |side: &RevisionRef| {
        let sha = side.sha.as_deref().map_or("-", crate::git::short_sha);
        format!("#{} ({sha}, {} objects)", side.number, side.objects)
    };
    let mut out = format!(
        "`{}`: what {} applied -> what {} applied
",
        diff.environment,
        side(&diff.from),
        side(&diff.to)
    );
    if diff.objects.is_empty() {
        out.push_str(
            "no differences
",
        );
        return out;
    }
    let mut counts = [0usize; 3];
    for object in &diff.objects {
        let (symbol, count) = match object.action {
            ObjectAction::Create => ("+", &mut counts[0]),
            ObjectAction::Prune => ("-", &mut counts[1]),
            _ => ("~", &mut counts[2]),
        };
        *count += 1;
        let _ = writeln!(out, "{symbol} {}", object.object);
        for field in &object.fields {
            let _ = writeln!(out, "    {} {}", field.symbol(), field.line());
        }
    }
    let _ = writeln!(
        out,
        "{} added, {} removed, {} changed",
        counts[0], counts[1], counts[2]
    );
    out
}

/// The cells of one record's row, in [`HEADERS`] order.
fn cells(record: &DeployRecord) -> [String; 9] {
    [
        format!("#{}", record.number),
        revision(record),
        record.author.clone().unwrap_or_else(|| "-".into()),
        record.who.clone(),
        match &record.rev {
            Some(_) => format!("{} --rev", record.source.as_str()),
            None => record.source.as_str().to_string(),
        },
        time(&record.started.unwrap_or(record.time)),
        record.duration_ms.map_or_else(|| "-".into(), duration),
        match record.outcome {
            DeployOutcome::Succeeded => "succeeded",
            DeployOutcome::Failed => "failed",
        }
        .to_string(),
        changes(record),
    ]
}

/// A failed record's reason: `health: <message>` or `apply Deployment blog/web: <message>`.
fn failure(record: &DeployRecord) -> Option<String> {
    let error = record.error.as_ref()?;
    let object = error
        .object
        .as_ref()
        .map_or(String::new(), |object| format!(" {object}"));
    Some(format!("{}{object}: {}", error.stage, error.message))
}

/// An aligned table, each heal's lines under its row.
fn human(report: &HistoryReport) -> String {
    if !report.deployed {
        return format!("environment `{}`: never deployed\n", report.environment);
    }
    let rows: Vec<[String; 9]> = report.records.iter().map(cells).collect();
    let mut widths = HEADERS.map(|header| header.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        let mut text = String::new();
        for (cell, width) in row.iter().zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&mut out, &HEADERS.map(String::from));
    for (row, record) in rows.iter().zip(&report.records) {
        line(&mut out, row);
        if let Some(failure) = failure(record) {
            for (index, text) in failure.lines().enumerate() {
                let lead = if index == 0 { "failed at" } else { "         " };
                let _ = writeln!(out, "  {lead} {text}");
            }
        }
        for healed in &record.healed {
            let _ = writeln!(out, "  healed {healed}");
        }
        if let Some(from) = reapplied(record) {
            let _ = writeln!(out, "  re-applied the manifests of #{from}");
        }
    }
    out
}

/// A rollback that re-applied an earlier record's stored manifests: that record's number.
fn reapplied(record: &DeployRecord) -> Option<u64> {
    (record.source == crate::ops::history::RecordSource::Rollback)
        .then_some(record.manifests)
        .flatten()
        .filter(|from| *from != record.number)
}

/// A Markdown table; a heal's lines in its CHANGES cell.
fn markdown(report: &HistoryReport) -> String {
    if !report.deployed {
        return format!("Environment `{}`: never deployed.\n", report.environment);
    }
    let mut out = format!("### Deploys of `{}`\n\n", report.environment);
    let _ = writeln!(out, "| {} |", HEADERS.map(str::to_lowercase).join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(HEADERS.len()));
    for record in &report.records {
        let mut row = cells(record);
        if !record.healed.is_empty() {
            let _ = write!(row[8], "; healed {}", record.healed.join(", "));
        }
        if let Some(failure) = failure(record) {
            let _ = write!(row[8], "; failed at {}", failure.replace('\n', " "));
        }
        let row: Vec<String> = row.iter().map(|cell| cell.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

/// `0123abcd subject`, cut to [`REVISION_WIDTH`] characters.
fn revision(record: &DeployRecord) -> String {
    let sha = record
        .sha
        .as_deref()
        .map_or("-", |sha| sha.get(..8).unwrap_or(sha));
    let text = match &record.subject {
        Some(subject) if !subject.is_empty() => format!("{sha} {subject}"),
        _ => sha.to_string(),
    };
    truncate(&text, REVISION_WIDTH)
}

/// `2 created, 1 configured, 0 pruned; tf +1 ~0 -0` (a record written before the counts
/// existed shows its summary line).
fn changes(record: &DeployRecord) -> String {
    let counts = &record.counts;
    let mut text = if counts.is_zero() && record.started.is_none() {
        record.summary.clone()
    } else {
        format!(
            "{} created, {} configured, {} pruned",
            counts.created, counts.configured, counts.pruned
        )
    };
    if record.repeats > 1 {
        let _ = write!(
            text,
            " (x{}, the same revision, nothing changed)",
            record.repeats
        );
    }
    if let Some(terraform) = &record.terraform {
        let _ = write!(
            text,
            "; tf +{} ~{} -{}",
            terraform.add, terraform.change, terraform.destroy
        );
        if terraform.replace > 0 {
            let _ = write!(text, " ±{}", terraform.replace);
        }
    }
    text
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn time(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// `850ms`, `12.3s`, `2m03s`, `1h02m`.
fn duration(millis: u64) -> String {
    let seconds = millis / 1000;
    match seconds {
        0 => format!("{millis}ms"),
        1..60 => format!("{seconds}.{}s", (millis % 1000) / 100),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::history::RecordSource;
    use gitship_kube::inventory::{RecordCounts, TerraformCounts};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn record() -> DeployRecord {
        DeployRecord {
            number: 0,
            error: None,
            repeats: 1,
            manifests: None,
            hooks: Vec::new(),
            rev: None,
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            time: at("2026-01-02T03:00:12Z"),
            who: "ci".into(),
            outcome: DeployOutcome::Succeeded,
            summary: "2 created, 1 configured".into(),
            source: RecordSource::Deploy,
            healed: Vec::new(),
            subject: Some("backend: more replicas for the launch of the new blog".into()),
            author: Some("Ann".into()),
            started: Some(at("2026-01-02T03:00:00Z")),
            duration_ms: Some(12_345),
            counts: RecordCounts {
                created: 2,
                configured: 1,
                unchanged: 6,
                pruned: 0,
            },
            terraform: Some(TerraformCounts {
                add: 1,
                ..TerraformCounts::default()
            }),
            images: Vec::new(),
            ci_url: None,
        }
    }

    fn report() -> HistoryReport {
        let heal = DeployRecord {
            source: RecordSource::Heal,
            healed: vec!["Deployment/web spec.replicas (kubectl)".into()],
            who: "gitship-agent".into(),
            terraform: None,
            counts: RecordCounts {
                configured: 1,
                ..RecordCounts::default()
            },
            duration_ms: Some(850),
            outcome: DeployOutcome::Failed,
            number: 3,
            error: Some(gitship_kube::inventory::RecordError {
                stage: "health".into(),
                object: None,
                message: "1 object(s) did not become healthy:\nDeployment blog/web: 0/3 ready"
                    .into(),
            }),
            ..record()
        };
        let old = DeployRecord {
            sha: Some("fedcba9876543210".into()),
            subject: None,
            author: None,
            started: None,
            duration_ms: None,
            counts: RecordCounts::default(),
            terraform: None,
            summary: "9 created".into(),
            number: 1,
            repeats: 4,
            manifests: None,
            ..record()
        };
        HistoryReport {
            format_version: crate::ops::history::FORMAT_VERSION,
            environment: "staging".into(),
            deployed: true,
            records: vec![
                heal,
                DeployRecord {
                    number: 2,
                    ..record()
                },
                old,
            ],
        }
    }

    #[test]
    fn human_output_is_a_table_with_heals_under_their_row() {
        assert_eq!(
            human(&report()),
            "\
#   REVISION                                  AUTHOR  WHO            SOURCE  STARTED               DURATION  OUTCOME    CHANGES
#3  01234567 backend: more replicas for the…  Ann     gitship-agent  heal    2026-01-02 03:00:00Z  850ms     failed     0 created, 1 configured, 0 pruned
  failed at health: 1 object(s) did not become healthy:
            Deployment blog/web: 0/3 ready
  healed Deployment/web spec.replicas (kubectl)
#2  01234567 backend: more replicas for the…  Ann     ci             deploy  2026-01-02 03:00:00Z  12.3s     succeeded  2 created, 1 configured, 0 pruned; tf +1 ~0 -0
#1  fedcba98                                  -       ci             deploy  2026-01-02 03:00:12Z  -         succeeded  9 created (x4, the same revision, nothing changed)
"
        );
        let never = HistoryReport {
            format_version: 2,
            environment: "staging".into(),
            deployed: false,
            records: Vec::new(),
        };
        assert_eq!(human(&never), "environment `staging`: never deployed\n");
    }

    #[test]
    fn markdown_output_is_a_table() {
        let text = markdown(&report());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "### Deploys of `staging`");
        assert_eq!(
            lines[2],
            "| # | revision | author | who | source | started | duration | outcome | changes |"
        );
        assert_eq!(
            lines[3],
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        assert!(
            lines[4].ends_with("| 0 created, 1 configured, 0 pruned; healed Deployment/web spec.replicas (kubectl); failed at health: 1 object(s) did not become healthy: Deployment blog/web: 0/3 ready |"),
            "{}",
            lines[4]
        );
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(123_000), "2m03s");
        assert_eq!(duration(3_720_000), "1h02m");
    }
}
