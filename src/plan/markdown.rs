//! Markdown rendering for pull-request comments: a summary table, then one collapsed `<details>`
//! block per layer with `diff` code blocks. GitHub rejects comments over 65,536 characters, so
//! the output is kept under [`LIMIT`]: whole entries are dropped from the end of each layer, and
//! a line says how many were cut and how to see everything. Fences and `<details>` are always
//! balanced, whatever is cut.

use std::fmt::Write;

use super::{
    Counts, DriftKind, DriftReport, FieldChange, ImageAction, KubernetesPart, ObjectAction,
    ObjectDrift, OutputAction, Plan, Report, ResourceAction, ResourceChange, TerraformPart,
};

/// Render a plan as Markdown under `limit` characters.
pub fn render_plan(plan: &Plan, limit: usize) -> String {
    let mut sections = Vec::new();
    // `diff` plans no images, but its render substitutes bare image names all the same.
    if !plan.images.is_empty() || !plan.image_substitutions.is_empty() {
        sections.push(images_section(plan));
    }
    if let Some(terraform) = &plan.terraform {
        sections.push(terraform_section(plan, terraform));
    }
    if let Some(kubernetes) = &plan.kubernetes {
        sections.push(kubernetes_section(plan, kubernetes));
    }
    assemble(
        plan_head(plan),
        sections,
        limit,
        &format!("gitship plan {}", plan.environment),
    )
}

/// The title, the revision and the table of counts per layer.
fn plan_head(plan: &Plan) -> String {
    let mut head = title("plan", &plan.environment, plan.sandbox);
    let dirty = if plan.git.dirty {
        " with uncommitted changes"
    } else {
        ""
    };
    let _ = writeln!(head, "Git `{}`{dirty}.\n", plan.git.sha);
    if let Some(pin) = &plan.pin {
        let line = pin.line(&plan.environment, &plan.git.sha, Report::Plan);
        let _ = writeln!(head, "**Pinned:** {line}.\n");
    }
    for unknown in &plan.known_after_apply {
        let _ = writeln!(head, "**{}**\n", unknown.line());
    }
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
    if !plan.preflight.is_empty() {
        head.push_str(&format!(
            "{}\n\n",
            crate::plan::human::preflight_line(&plan.preflight)
        ));
    }
    if !plan.has_changes() {
        let matched = super::matched(&plan.git, plan.pin.as_ref());
        let _ = writeln!(head, "**No changes.** The environment matches {matched}.");
    }
    head
}

/// One entry per image: built or reused, and why.
fn images_section(plan: &Plan) -> Section {
    let entries = plan
        .images
        .iter()
        .map(|image| {
            let action = match image.action {
                ImageAction::Build => "build",
                ImageAction::Reuse => "reuse",
                ImageAction::Unchecked => "unchecked",
                ImageAction::Unused => "unused",
            };
            let reason = image
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            format!("{action} {} {}{reason}\n", image.app, image.reference)
        })
        .chain(plan.image_substitutions.iter().map(|substitution| {
            format!("{}\n", crate::plan::human::substitution_line(substitution))
        }))
        .collect();
    let c = plan.image_counts();
    let title = if plan.images.is_empty() {
        format!(
            "Images: {} bare image names given the apps' images",
            plan.image_substitutions.len()
        )
    } else {
        format!("Images: {} to build, {} reused", c.create, c.unchanged)
    };
    Section { title, entries }
}

/// One entry per resource with its changed attributes, then one per output.
fn terraform_section(plan: &Plan, terraform: &TerraformPart) -> Section {
    let mut entries: Vec<String> = terraform.resources.iter().map(resource_entry).collect();
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
    Section {
        title: format!(
            "Terraform: {} to create, {} to update, {} to replace, {} to destroy",
            c.create, c.update, c.replace, c.delete
        ),
        entries,
    }
}

/// A planned resource change: its action, why it is replaced, and its attributes' old and new
/// values (each only when there is one).
fn resource_entry(resource: &ResourceChange) -> String {
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
    entry
}

/// One entry per object that changes, with its diff.
fn kubernetes_section(plan: &Plan, kubernetes: &KubernetesPart) -> Section {
    let entries = kubernetes
        .objects
        .iter()
        .filter(|o| o.action != ObjectAction::Unchanged)
        .map(|object| {
            let (symbol, label) = match object.action {
                ObjectAction::Create => ("+", ""),
                ObjectAction::Update => ("~", ""),
                ObjectAction::Replace => ("-/+", " (delete and recreate)"),
                ObjectAction::Prune => ("-", " (prune)"),
                ObjectAction::Unchanged => ("=", ""),
            };
            let mut entry = format!("{symbol} {}{label}\n", object.object);
            if !object.fields.is_empty() {
                push_fields(&mut entry, &object.fields);
            } else if let Some(diff) = &object.diff {
                entry.push_str(diff);
                if !diff.ends_with('\n') {
                    entry.push('\n');
                }
            }
            entry
        })
        .chain(
            kubernetes
                .hooks
                .iter()
                .map(|hook| format!("hook {}\n", hook.line())),
        )
        .collect();
    let c = plan.kubernetes_counts();
    Section {
        title: format!(
            "Kubernetes: {} to create, {} to update, {} to replace, {} to prune, {} unchanged",
            c.create, c.update, c.replace, c.delete, c.unchanged
        ),
        entries,
    }
}

/// Render a drift report as Markdown under `limit` characters.
pub fn render_drift(report: &DriftReport, limit: usize) -> String {
    let mut sections = Vec::new();
    if !report.kubernetes.is_empty() {
        sections.push(Section {
            title: format!("Kubernetes: {} drifted", report.kubernetes.len()),
            entries: report.kubernetes.iter().map(object_drift_entry).collect(),
        });
    }
    if !report.terraform.is_empty() {
        sections.push(Section {
            title: format!("Terraform: {} drifted", report.terraform.len()),
            entries: report.terraform.iter().map(resource_drift_entry).collect(),
        });
    }
    assemble(
        drift_head(report),
        sections,
        limit,
        &format!("gitship drift {}", report.environment),
    )
}

/// The title, the revision and what drifted.
fn drift_head(report: &DriftReport) -> String {
    let mut head = title("drift", &report.environment, report.sandbox);
    let _ = writeln!(head, "Git `{}`.\n", report.git.sha);
    if let Some(pin) = &report.pin {
        let line = pin.line(&report.environment, &report.git.sha, Report::Drift);
        let _ = writeln!(head, "**Pinned:** {line}.\n");
    }
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
            "**No drift.** The environment matches {} ({} difference(s) ignored by rules).\n",
            super::matched(&report.git, report.pin.as_ref()),
            report.ignored
        );
    }
    head
}

/// The heading of a `gitship <command>` comment, marking a sandbox simulation.
fn title(command: &str, environment: &str, sandbox: bool) -> String {
    let simulation = if sandbox {
        " (simulation: sandbox cluster)"
    } else {
        ""
    };
    format!("### gitship {command} for `{environment}`{simulation}\n\n")
}

/// A drifted object: deleted, or modified with each field's live value (`-`) and Git's (`+`).
fn object_drift_entry(object: &ObjectDrift) -> String {
    match object.kind {
        DriftKind::Deleted => object
            .drifted()
            .iter()
            .map(|drifted| format!("- {}\n", drifted.line()))
            .collect(),
        DriftKind::Modified => {
            let mut entry = format!("~ {}\n", object.object);
            push_fields(&mut entry, &object.fields);
            entry
        }
    }
}

/// A drifted resource with each attribute's state value and configured value.
fn resource_drift_entry(resource: &ResourceChange) -> String {
    let mut entry = format!("~ {}\n", resource.address);
    push_fields(&mut entry, &resource.attributes);
    entry
}

/// Changed fields inside a `diff` block, one `<symbol>   <line>` each ([`FieldChange::line`],
/// the line the terminal shows too).
fn push_fields(entry: &mut String, fields: &[FieldChange]) {
    for field in fields {
        let _ = writeln!(entry, "{}   {}", field.symbol(), field.line());
    }
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
    use crate::plan::report::MARKDOWN_LIMIT as LIMIT;
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
        assert!(text.contains("~   spec.replicas: 10 -> 3"), "{text}");
    }

    #[test]
    fn pinned_reports_say_the_pin_in_their_head() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let mut plan = Plan::new(
            "production",
            crate::plan::GitInfo {
                sha: a.clone(),
                dirty: false,
            },
            false,
        );
        plan.pin = Some(crate::plan::tests::sample_pin(&a, &b));
        let text = render_plan(&plan, LIMIT);
        assert!(
            text.contains(&format!("Git `{a}`.\n\n**Pinned:** `production` is pinned at aaaaaaaaaaaa (rollback by ann@laptop, 2023-11-14 22:13:20Z), Git at bbbbbbbbbbbb: planned the pinned revision")),
            "{text}"
        );
        assert!(
            text.contains(
                "**No changes.** The environment matches the pinned revision aaaaaaaaaaaa."
            ),
            "{text}"
        );
        let mut report = DriftReport::new("production", plan.git.clone(), false);
        report.pin = plan.pin.clone();
        let text = render_drift(&report, LIMIT);
        assert!(
            text.contains("Git at bbbbbbbbbbbb: compared with the pinned revision"),
            "{text}"
        );
        assert!(
            text.contains(
                "**No drift.** The environment matches the pinned revision aaaaaaaaaaaa ("
            ),
            "{text}"
        );
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
        plan.kubernetes = Some(KubernetesPart {
            objects,
            hooks: Vec::new(),
        });
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

    /// `diff`'s plan has no images: the bare image names its render substituted still get a
    /// section, as in the human output.
    #[test]
    fn a_plan_without_images_lists_its_image_substitutions() {
        let mut plan = sample();
        plan.images.clear();
        plan.image_substitutions = vec![crate::plan::tests::sample_substitution()];
        let text = render_plan(&plan, LIMIT);
        assert!(
            text.contains("Images: 1 bare image names given the apps' images"),
            "{text}"
        );
        assert!(
            text.contains("image: adservice -> registry.local/adservice@sha256:abc"),
            "{text}"
        );
        assert!(!text.contains("| images |"), "{text}");
        plan.image_substitutions.clear();
        assert!(!render_plan(&plan, LIMIT).contains("Images:"));
    }
}
