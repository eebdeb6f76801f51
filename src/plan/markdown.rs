//! Markdown rendering for pull-request comments: a summary table, then one collapsed `<details>`
//! block per layer with `diff` code blocks. GitHub rejects comments over 65,536 characters, so
//! the output is kept under [`LIMIT`]: whole entries are dropped from the end of each layer, and
//! a line says how many were cut and how to see everything. Fences and `<details>` are always
//! balanced, whatever is cut.

use std::fmt::Write;

use super::{
    Counts, DriftKind, DriftReport, ImageAction, ObjectAction, OutputAction, Plan, ResourceAction,
};

/// The default size budget, in characters.
pub const LIMIT: usize = 65_000;

/// Render a plan as Markdown under `limit` characters.
pub fn render_plan(plan: &Plan, limit: usize) -> String {
    let mut head = String::new();
    let simulation = if plan.sandbox {
        " (simulation: sandbox cluster)"
    } else {
        ""
    };
    let _ = writeln!(
        head,
        "### gitship plan for `{}`{simulation}\n",
        plan.environment
    );
    let dirty = if plan.git.dirty {
        " with uncommitted changes"
    } else {
        ""
    };
    let _ = writeln!(head, "Git `{}`{dirty}.\n", plan.git.sha);
    let _ = writeln!(
        head,
        "| layer | create | update | replace | delete | unchanged |"
    );
    let _ = writeln!(head, "| --- | ---: | ---: | ---: | ---: | ---: |");
    let row = |head: &mut String, name: &str, c: Counts| {
        let _ = writeln!(
            head,
            "| {name} | {} | {} | {} | {} | {} |",
            c.create, c.update, c.replace, c.delete, c.unchanged
        );
    };
    if !plan.images.is_empty() {
        row(&mut head, "images", plan.image_counts());
    }
    if plan.terraform.is_some() {
        row(&mut head, "terraform", plan.terraform_counts());
    }
    if plan.kubernetes.is_some() {
        row(&mut head, "kubernetes", plan.kubernetes_counts());
    }
    head.push('\n');
    if !plan.has_changes() {
        head.push_str("**No changes.** The environment matches Git.\n");
    }

    let mut sections = Vec::new();
    if !plan.images.is_empty() {
        let mut entries = Vec::new();
        for image in &plan.images {
            let action = match image.action {
                ImageAction::Build => "build",
                ImageAction::Reuse => "reuse",
                ImageAction::Unchecked => "unchecked",
            };
            let reason = image
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            entries.push(format!(
                "{action} {} {}{reason}\n",
                image.app, image.reference
            ));
        }
        let c = plan.image_counts();
        sections.push(Section {
            title: format!("Images: {} to build, {} reused", c.create, c.unchanged),
            entries,
        });
    }
    if let Some(terraform) = &plan.terraform {
        let mut entries = Vec::new();
        for resource in &terraform.resources {
            let symbol = match resource.action {
                ResourceAction::Create => "+",
                ResourceAction::Update => "~",
                ResourceAction::Replace => "-/+",
                ResourceAction::Destroy => "-",
                ResourceAction::Read => "<=",
            };
            let mut entry = format!("{symbol} {}", resource.address);
            if !resource.replace_reasons.is_empty() {
                let _ = write!(
                    entry,
                    " (replace because {})",
                    resource.replace_reasons.join(", ")
                );
            }
            entry.push('\n');
            for field in &resource.attributes {
                if let Some(before) = &field.before {
                    let _ = writeln!(entry, "-   {} = {before}", field.path);
                }
                if let Some(after) = &field.after {
                    let _ = writeln!(entry, "+   {} = {after}", field.path);
                }
            }
            entries.push(entry);
        }
        for output in &terraform.outputs {
            let symbol = match output.action {
                OutputAction::Create => "+",
                OutputAction::Update => "~",
                OutputAction::Delete => "-",
            };
            let value = output
                .after
                .as_deref()
                .or(output.before.as_deref())
                .unwrap_or("");
            entries.push(format!("{symbol} output.{} = {value}\n", output.name));
        }
        let c = plan.terraform_counts();
        sections.push(Section {
            title: format!(
                "Terraform: {} to create, {} to update, {} to replace, {} to destroy",
                c.create, c.update, c.replace, c.delete
            ),
            entries,
        });
    }
    if let Some(kubernetes) = &plan.kubernetes {
        let mut entries = Vec::new();
        for object in kubernetes
            .objects
            .iter()
            .filter(|o| o.action != ObjectAction::Unchanged)
        {
            let (symbol, label) = match object.action {
                ObjectAction::Create => ("+", ""),
                ObjectAction::Update => ("~", ""),
                ObjectAction::Replace => ("-/+", " (delete and recreate)"),
                ObjectAction::Prune => ("-", " (prune)"),
                ObjectAction::Unchanged => ("=", ""),
            };
            let mut entry = format!("{symbol} {}{label}\n", object.object);
            if let Some(diff) = &object.diff {
                entry.push_str(diff);
                if !diff.ends_with('\n') {
                    entry.push('\n');
                }
            }
            entries.push(entry);
        }
        let c = plan.kubernetes_counts();
        sections.push(Section {
            title: format!(
                "Kubernetes: {} to create, {} to update, {} to replace, {} to prune, {} unchanged",
                c.create, c.update, c.replace, c.delete, c.unchanged
            ),
            entries,
        });
    }
    assemble(
        head,
        sections,
        limit,
        &format!("gitship plan {}", plan.environment),
    )
}

/// Render a drift report as Markdown under `limit` characters.
pub fn render_drift(report: &DriftReport, limit: usize) -> String {
    let mut head = String::new();
    let simulation = if report.sandbox {
        " (simulation: sandbox cluster)"
    } else {
        ""
    };
    let _ = writeln!(
        head,
        "### gitship drift for `{}`{simulation}\n",
        report.environment
    );
    let _ = writeln!(head, "Git `{}`.\n", report.git.sha);
    if report.drifted() {
        let _ = writeln!(
            head,
            "**Drifted:** {} Kubernetes object(s), {} Terraform resource(s); {} difference(s) ignored by rules.\n",
            report.kubernetes.len(),
            report.terraform.len(),
            report.ignored
        );
    } else {
        let _ = writeln!(
            head,
            "**No drift.** The environment matches Git ({} difference(s) ignored by rules).\n",
            report.ignored
        );
    }
    let mut sections = Vec::new();
    if !report.kubernetes.is_empty() {
        let entries = report
            .kubernetes
            .iter()
            .map(|object| match object.kind {
                DriftKind::Deleted => format!(
                    "- {} (in the inventory, missing from the cluster)\n",
                    object.object
                ),
                DriftKind::Modified => {
                    let mut entry = format!("~ {}\n", object.object);
                    for field in &object.fields {
                        let manager = field
                            .manager
                            .as_deref()
                            .map(|m| format!("  # changed by {m}"))
                            .unwrap_or_default();
                        let _ = writeln!(
                            entry,
                            "-   {}: {}{manager}",
                            field.path,
                            field.live.as_deref().unwrap_or("(absent)")
                        );
                        let _ = writeln!(
                            entry,
                            "+   {}: {}",
                            field.path,
                            field.git.as_deref().unwrap_or("(absent)")
                        );
                    }
                    entry
                }
            })
            .collect();
        sections.push(Section {
            title: format!("Kubernetes: {} drifted", report.kubernetes.len()),
            entries,
        });
    }
    if !report.terraform.is_empty() {
        let entries = report
            .terraform
            .iter()
            .map(|r| {
                let mut entry = format!("~ {}\n", r.address);
                for field in &r.attributes {
                    let _ = writeln!(
                        entry,
                        "-   {} = {}",
                        field.path,
                        field.before.as_deref().unwrap_or("(none)")
                    );
                    let _ = writeln!(
                        entry,
                        "+   {} = {}",
                        field.path,
                        field.after.as_deref().unwrap_or("(none)")
                    );
                }
                entry
            })
            .collect();
        sections.push(Section {
            title: format!("Terraform: {} drifted", report.terraform.len()),
            entries,
        });
    }
    assemble(
        head,
        sections,
        limit,
        &format!("gitship drift {}", report.environment),
    )
}

struct Section {
    title: String,
    entries: Vec<String>,
}

/// Put the head and sections together, dropping whole entries from the end of each section until
/// the result fits `limit`; every dropped entry is counted in a note inside its section.
fn assemble(head: String, sections: Vec<Section>, limit: usize, command: &str) -> String {
    // Fixed cost per section: the wrappers and a possible truncation note.
    let wrappers: Vec<(String, String)> = sections
        .iter()
        .map(|s| {
            let fence = fence_for(&s.entries);
            (
                format!(
                    "<details><summary>{}</summary>\n\n{fence}diff\n",
                    escape_html(&s.title)
                ),
                format!("{fence}\n\n</details>\n\n"),
            )
        })
        .collect();
    let note_reserve = 200;
    let fixed: usize = head.len()
        + wrappers
            .iter()
            .map(|(open, close)| open.len() + close.len() + note_reserve)
            .sum::<usize>();
    let mut budget = limit.saturating_sub(fixed);

    let mut out = head;
    for (section, (open, close)) in sections.iter().zip(&wrappers) {
        out.push_str(open);
        let mut shown = 0;
        for entry in &section.entries {
            if entry.len() > budget {
                break;
            }
            budget -= entry.len();
            out.push_str(entry);
            shown += 1;
        }
        out.push_str(close);
        let cut = section.entries.len() - shown;
        if cut > 0 {
            let chars: usize = section.entries[shown..].iter().map(String::len).sum();
            let _ = writeln!(
                out,
                "> **Truncated:** {cut} of {} entries not shown ({chars} characters) to stay under the comment size limit; run `{command}` for the full output.\n",
                section.entries.len()
            );
        }
    }
    out
}

/// A backtick fence longer than any backtick run inside the entries.
fn fence_for(entries: &[String]) -> String {
    let longest = entries
        .iter()
        .flat_map(|e| e.split(|c| c != '`').map(str::len))
        .max()
        .unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::sample;
    use crate::plan::{KubernetesPart, ObjectChange, ObjectRef, unified_diff};

    #[test]
    fn renders_table_and_details() {
        let text = render_plan(&sample(), LIMIT);
        assert!(
            text.contains("| kubernetes | 0 | 1 | 0 | 0 | 0 |"),
            "{text}"
        );
        assert_eq!(
            text.matches("<details>").count(),
            text.matches("</details>").count()
        );
        assert_eq!(text.matches("```").count() % 2, 0);
        assert!(text.contains("-  replicas: 10"), "{text}");
    }

    #[test]
    fn truncates_large_plans_under_the_limit() {
        let mut plan = sample();
        let objects = (0..2000)
            .map(|i| ObjectChange {
                object: ObjectRef {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    namespace: Some("blog".into()),
                    name: format!("config-{i}"),
                },
                action: ObjectAction::Update,
                source: None,
                fields: vec![],
                diff: Some(unified_diff(
                    &format!("data:\n  key: old-{i}\n"),
                    &format!("data:\n  key: new-{i}\n"),
                    "live",
                    "git",
                )),
            })
            .collect();
        plan.kubernetes = Some(KubernetesPart { objects });
        let text = render_plan(&plan, LIMIT);
        assert!(text.len() < LIMIT, "{}", text.len());
        assert!(text.contains("**Truncated:**"), "says what was cut");
        assert_eq!(
            text.matches("<details>").count(),
            text.matches("</details>").count()
        );
        assert_eq!(text.matches("```").count() % 2, 0);
    }

    #[test]
    fn fence_outgrows_backticks_in_content() {
        assert_eq!(fence_for(&["a ``` b".to_string()]), "````");
        assert_eq!(fence_for(&["plain".to_string()]), "```");
    }
}
