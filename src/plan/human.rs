//! Human rendering of plans and drift reports: a summary line per layer, then the changes, with
//! unified diffs colored when color is on (and perfectly readable when it is not).

use std::fmt::Write;

use crate::git::short_sha;
use gitship_foundation::output::{paint, style};

use super::{
    Counts, DriftKind, DriftReport, FieldChange, GitInfo, ImageAction, KubernetesPart,
    ObjectAction, ObjectDrift, OutputAction, PinInfo, Plan, Report, ResourceAction, TerraformPart,
};

/// Render a plan for a terminal or a log.
pub fn render_plan(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    if plan.sandbox {
        write_simulation_banner(&mut out, color, "planned");
    }
    let dirty = if plan.git.dirty {
        ", uncommitted changes"
    } else {
        ""
    };
    write_header(
        &mut out,
        color,
        &format!(
            "Plan for environment {} (git {}{dirty})",
            plan.environment,
            short_sha(&plan.git.sha)
        ),
    );
    if let Some(pin) = &plan.pin {
        write_pin(
            &mut out,
            color,
            pin,
            &plan.environment,
            &plan.git,
            Report::Plan,
        );
    }
    if !plan.preflight.is_empty() {
        let _ = writeln!(out, "{}", preflight_line(&plan.preflight));
    }
    for unknown in &plan.known_after_apply {
        let _ = writeln!(out, "{}", unknown.line());
    }
    if !plan.images.is_empty() {
        write_images(&mut out, plan, color);
    } else if !plan.image_substitutions.is_empty() {
        // `diff` plans no images, but its render substitutes bare image names all the same.
        let _ = writeln!(out);
        write_image_substitutions(&mut out, plan);
    }
    if let Some(terraform) = &plan.terraform {
        write_terraform(&mut out, plan, terraform, color);
    }
    if let Some(kubernetes) = &plan.kubernetes {
        write_kubernetes(&mut out, plan, kubernetes, color);
    }

    let _ = writeln!(out);
    if plan.has_changes() {
        let _ = writeln!(out, "{}", summary_line(plan));
    } else {
        let _ = writeln!(
            out,
            "No changes. The environment matches {}.",
            super::matched(&plan.git, plan.pin.as_ref())
        );
    }
    out
}

/// `Preflight: cluster ok, namespace ok, terraform ok`.
pub fn preflight_line(checks: &[crate::plan::PreflightCheck]) -> String {
    let parts: Vec<String> = checks
        .iter()
        .map(|check| {
            let verdict = if check.ok { "ok" } else { "FAILED" };
            format!("{} {verdict}", check.check)
        })
        .collect();
    format!("Preflight: {}", parts.join(", "))
}

/// The warning that a plan or drift report was `verb` against the sandbox cluster.
fn write_simulation_banner(out: &mut String, color: bool, verb: &str) {
    let _ = writeln!(
        out,
        "{}",
        paint(
            color,
            style::WARN,
            &format!("SIMULATION: {verb} against the sandbox cluster, not a real one")
        )
    );
}

fn write_header(out: &mut String, color: bool, text: &str) {
    let _ = writeln!(out, "{}", paint(color, style::HEADER, text));
}

/// The pin line under a header ([`PinInfo::line`]).
fn write_pin(
    out: &mut String,
    color: bool,
    pin: &PinInfo,
    environment: &str,
    git: &GitInfo,
    report: Report,
) {
    let line = pin.line(environment, &git.sha, report);
    let _ = writeln!(out, "{}", paint(color, style::WARN, &format!("{line}.")));
}

/// The images layer: a count line, then one line per image.
fn write_images(out: &mut String, plan: &Plan, color: bool) {
    let counts = plan.image_counts();
    let _ = writeln!(
        out,
        "\nImages: {} to build, {} reused",
        counts.create, counts.unchanged
    );
    for image in &plan.images {
        let (label, label_style, note) = match image.action {
            ImageAction::Build => (
                "+ build",
                style::ADD,
                image.reason.as_deref().map(|r| format!(" ({r})")),
            ),
            ImageAction::Reuse => ("= reuse", style::DIM, None),
            ImageAction::Unchecked => (
                "? image",
                style::DIM,
                Some(" (sandbox: registry not checked)".to_string()),
            ),
            ImageAction::Unused => (
                "- unused",
                style::DIM,
                image.reason.as_deref().map(|r| format!(" ({r})")),
            ),
        };
        let _ = writeln!(
            out,
            "  {} {}  {}{}",
            paint(color, label_style, label),
            image.app,
            image.reference,
            note.unwrap_or_default()
        );
    }
    write_image_substitutions(out, plan);
}

/// The bare image names the render gave the apps' images, one line each (nothing without any).
fn write_image_substitutions(out: &mut String, plan: &Plan) {
    if plan.image_substitutions.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "  bare image names (Skaffold style) given the apps' images:"
    );
    for substitution in &plan.image_substitutions {
        let _ = writeln!(out, "    {}", substitution_line(substitution));
    }
}

/// `image: adservice -> <ref>  in Deployment shop/ad, spec...containers[server] (file:line)`.
pub fn substitution_line(substitution: &super::ImageSubstitution) -> String {
    format!(
        "image: {} -> {}  in {}, {} ({})",
        substitution.image,
        substitution.reference,
        substitution.object,
        substitution.container,
        substitution.source
    )
}

/// The Terraform layer: a count line, the resources with their changed attributes, then the
/// outputs.
fn write_terraform(out: &mut String, plan: &Plan, terraform: &TerraformPart, color: bool) {
    let counts = plan.terraform_counts();
    let _ = writeln!(
        out,
        "\nTerraform: {} to create, {} to update, {} to replace, {} to destroy",
        counts.create, counts.update, counts.replace, counts.delete
    );
    for resource in &terraform.resources {
        let (symbol, s) = resource_symbol(resource.action);
        let reasons = if resource.replace_reasons.is_empty() {
            String::new()
        } else {
            format!(" (replace because {})", resource.replace_reasons.join(", "))
        };
        let _ = writeln!(
            out,
            "  {} {}{reasons}",
            paint(color, s, symbol),
            resource.address
        );
        write_attributes(out, &resource.attributes, color);
    }
    if !terraform.outputs.is_empty() {
        let _ = writeln!(out, "  Outputs:");
        for output in &terraform.outputs {
            let (symbol, s) = match output.action {
                OutputAction::Create => ("+", style::ADD),
                OutputAction::Update => ("~", style::CHANGE),
                OutputAction::Delete => ("-", style::REMOVE),
            };
            let value = output
                .after
                .as_deref()
                .or(output.before.as_deref())
                .unwrap_or("");
            let _ = writeln!(
                out,
                "    {} {} = {value}",
                paint(color, s, symbol),
                output.name
            );
        }
    }
}

/// Changed fields, one [`FieldChange::line`] each, marked `+`, `-` or `~`: the same lines for a
/// plan, a diff, a drift report and Terraform's attributes.
fn write_attributes(out: &mut String, attributes: &[FieldChange], color: bool) {
    for field in attributes {
        let symbol = field.symbol();
        let s = match symbol {
            "+" => style::ADD,
            "-" => style::REMOVE,
            _ => style::CHANGE,
        };
        let _ = writeln!(out, "      {} {}", paint(color, s, symbol), field.line());
    }
}

/// The Kubernetes layer: a count line, then every object that changes, with its diff.
fn write_kubernetes(out: &mut String, plan: &Plan, kubernetes: &KubernetesPart, color: bool) {
    let counts = plan.kubernetes_counts();
    let _ = writeln!(
        out,
        "\nKubernetes: {} to create, {} to update, {} to replace, {} to prune, {} unchanged",
        counts.create, counts.update, counts.replace, counts.delete, counts.unchanged
    );
    for object in kubernetes
        .objects
        .iter()
        .filter(|o| o.action != ObjectAction::Unchanged)
    {
        let (symbol, s) = object_symbol(object.action);
        let source = object
            .source
            .as_deref()
            .map(|s| format!("  ({s})"))
            .unwrap_or_default();
        let label = match object.action {
            ObjectAction::Prune => " (prune)",
            ObjectAction::Replace => " (delete and recreate)",
            _ => "",
        };
        let _ = writeln!(
            out,
            "  {} {}{label}{source}",
            paint(color, s, symbol),
            object.object
        );
        if !object.fields.is_empty() {
            write_attributes(out, &object.fields, color);
        } else if let Some(diff) = &object.diff {
            out.push_str(&indent(&color_diff(diff, color), "      "));
        }
    }
    if !kubernetes.hooks.is_empty() {
        let _ = writeln!(out, "\n{HOOKS_TITLE}");
        for hook in &kubernetes.hooks {
            let _ = writeln!(out, "  {}", hook.line());
        }
    }
}

/// Above the hooks of a plan: when they run, and what they are not.
pub const HOOKS_TITLE: &str = "Hooks (run in their phase when the deploy changes something; not in the inventory, never pruned or drift-checked):";

fn summary_line(plan: &Plan) -> String {
    let layer = |name: &str, c: Counts| {
        format!(
            "{name} {} to add, {} to change, {} to destroy",
            c.create,
            c.update + c.replace,
            c.delete
        )
    };
    let mut parts = Vec::new();
    if !plan.images.is_empty() {
        parts.push(format!("images {} to build", plan.image_counts().create));
    }
    if plan.terraform.is_some() {
        parts.push(layer("terraform", plan.terraform_counts()));
    }
    if plan.kubernetes.is_some() {
        parts.push(layer("kubernetes", plan.kubernetes_counts()));
    }
    format!("Plan: {}.", parts.join("; "))
}

/// Render a drift report.
pub fn render_drift(report: &DriftReport, color: bool) -> String {
    let mut out = String::new();
    if report.sandbox {
        write_simulation_banner(&mut out, color, "checked");
    }
    write_header(
        &mut out,
        color,
        &format!(
            "Drift in environment {} (git {})",
            report.environment,
            short_sha(&report.git.sha)
        ),
    );
    if let Some(pin) = &report.pin {
        write_pin(
            &mut out,
            color,
            pin,
            &report.environment,
            &report.git,
            Report::Drift,
        );
    }
    for object in &report.kubernetes {
        write_object_drift(&mut out, object, color);
    }
    for resource in &report.terraform {
        let (symbol, s) = resource_symbol(resource.action);
        let _ = writeln!(
            out,
            "  {} terraform: {}",
            paint(color, s, symbol),
            resource.address
        );
        write_attributes(&mut out, &resource.attributes, color);
    }
    let ignored = if report.ignored > 0 {
        format!(" ({} difference(s) ignored by rules)", report.ignored)
    } else {
        String::new()
    };
    if report.drifted() {
        let _ = writeln!(
            out,
            "\nDrift: {} Kubernetes object(s), {} Terraform resource(s){ignored}.",
            report.kubernetes.len(),
            report.terraform.len()
        );
    } else {
        let _ = writeln!(
            out,
            "\nNo drift. The environment matches {}{ignored}.",
            super::matched(&report.git, report.pin.as_ref())
        );
    }
    out
}

/// A drifted Kubernetes object: deleted, or modified with its live and Git values per field.
fn write_object_drift(out: &mut String, object: &ObjectDrift, color: bool) {
    match object.kind {
        DriftKind::Deleted => {
            for drifted in object.drifted() {
                let _ = writeln!(
                    out,
                    "  {} {}",
                    paint(color, style::REMOVE, "-"),
                    drifted.line()
                );
            }
        }
        DriftKind::Modified => {
            let _ = writeln!(
                out,
                "  {} {}",
                paint(color, style::CHANGE, "~"),
                object.object
            );
            write_attributes(out, &object.fields, color);
        }
    }
}

fn resource_symbol(action: ResourceAction) -> (&'static str, anstyle::Style) {
    match action {
        ResourceAction::Create => ("+", style::ADD),
        ResourceAction::Update => ("~", style::CHANGE),
        ResourceAction::Replace => ("-/+", style::REMOVE),
        ResourceAction::Destroy => ("-", style::REMOVE),
        ResourceAction::Read => ("<=", style::DIM),
    }
}

fn object_symbol(action: ObjectAction) -> (&'static str, anstyle::Style) {
    match action {
        ObjectAction::Create => ("+", style::ADD),
        ObjectAction::Update => ("~", style::CHANGE),
        ObjectAction::Replace => ("-/+", style::REMOVE),
        ObjectAction::Prune => ("-", style::REMOVE),
        ObjectAction::Unchanged => ("=", style::DIM),
    }
}

/// Color `+`/`-` lines of a unified diff.
pub fn color_diff(diff: &str, color: bool) -> String {
    if !color {
        return diff.to_string();
    }
    let mut out = String::with_capacity(diff.len() + 64);
    for line in diff.lines() {
        let s = if line.starts_with("+++") || line.starts_with("---") {
            style::HEADER
        } else if line.starts_with('+') {
            style::ADD
        } else if line.starts_with('-') {
            style::REMOVE
        } else if line.starts_with("@@") {
            style::DIM
        } else {
            anstyle::Style::new()
        };
        out.push_str(&paint(true, s, line));
        out.push('\n');
    }
    out
}

fn indent(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::sample;

    #[test]
    fn plain_plan_reads_well() {
        let text = render_plan(&sample(), false);
        assert!(
            text.contains("Plan for environment production (git abc123)"),
            "{text}"
        );
        assert!(text.contains("+ build backend"), "{text}");
        assert!(text.contains("~ terraform_data.database"), "{text}");
        assert!(text.contains("~ Deployment blog/blog-backend"), "{text}");
        assert!(text.contains("~ spec.replicas: 10 -> 3"), "{text}");
        assert!(text.contains("Plan: images 1 to build; terraform 0 to add, 1 to change, 0 to destroy; kubernetes 0 to add, 1 to change, 0 to destroy."), "{text}");
        assert!(!text.contains('\u{1b}'), "no escapes without color");
        assert!(render_plan(&sample(), true).contains('\u{1b}'));
    }

    /// A pinned environment's plan and drift report say the pin under their header, and a
    /// clean one matches the pinned revision, not Git.
    #[test]
    fn pinned_reports_say_the_pin_under_the_header() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let mut plan = crate::plan::Plan::new(
            "production",
            GitInfo {
                sha: a.clone(),
                dirty: false,
            },
            false,
        );
        plan.pin = Some(crate::plan::tests::sample_pin(&a, &b));
        let text = render_plan(&plan, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Plan for environment production (git aaaaaaaaaaaa)"
        );
        assert!(
            lines[1].starts_with("`production` is pinned at aaaaaaaaaaaa (rollback by ann@laptop, 2023-11-14 22:13:20Z), Git at bbbbbbbbbbbb: planned the pinned revision (a deploy of Git is refused while pinned;"),
            "{text}"
        );
        assert!(
            text.contains("No changes. The environment matches the pinned revision aaaaaaaaaaaa."),
            "{text}"
        );
        let mut report = DriftReport::new("production", plan.git.clone(), false);
        report.pin = plan.pin.clone();
        let text = render_drift(&report, false);
        assert!(
            text.lines().nth(1).is_some_and(|line| line.contains(
                "Git at bbbbbbbbbbbb: compared with the pinned revision (`gitship resume production` follows Git again"
            )),
            "{text}"
        );
        assert!(
            text.contains("No drift. The environment matches the pinned revision aaaaaaaaaaaa."),
            "{text}"
        );
        assert!(
            !render_drift(&DriftReport::new("production", plan.git, false), false)
                .contains("inned")
        );
    }

    /// `diff`'s plan has no images, only the Kubernetes part: the bare image names its render
    /// substituted are shown as `plan` shows them.
    #[test]
    fn a_plan_without_images_shows_its_image_substitutions() {
        let mut plan = sample();
        plan.images.clear();
        plan.terraform = None;
        plan.image_substitutions = vec![crate::plan::tests::sample_substitution()];
        let text = render_plan(&plan, false);
        assert!(!text.contains("Images:"), "{text}");
        assert!(
            text.contains(
                "\n  bare image names (Skaffold style) given the apps' images:\n    image: adservice -> registry.local/adservice@sha256:abc  in Deployment shop/adservice, spec.template.spec.containers[server] (kubernetes-manifests/adservice.yaml:12)\n"
            ),
            "{text}"
        );
    }
}
