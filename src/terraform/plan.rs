//! The typed, redacted model of a Terraform plan (`show -json <planfile>`) and of drift.
//!
//! Values are redacted while the JSON is read (Terraform's sensitivity masks, then every known
//! secret found in the document: sensitive variables, sensitive outputs, masked attributes), so
//! the human and JSON renderings of these types can never show a secret.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use crate::terraform::redact::{REDACTED, mask_has_sensitive, redact_with_mask};
use gitship_foundation::model::KnownSecrets;

/// What an unknown-until-apply value is shown as.
pub const KNOWN_AFTER_APPLY: &str = gitship_foundation::model::KNOWN_AFTER_APPLY;

/// Which kind of plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanMode {
    /// Converge the infrastructure to the configuration.
    Normal,
    /// Only update the state to match the real infrastructure (drift detection).
    RefreshOnly,
    /// Destroy every resource of the state (`plan -destroy`, for `gitship destroy`).
    Destroy,
}

/// The summarised action on one resource or output.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeAction {
    Create,
    Update,
    Replace,
    Delete,
    Read,
    Forget,
    NoOp,
}

impl ChangeAction {
    /// From Terraform's action list (`["delete", "create"]` is a replace).
    pub fn from_actions(actions: &[String]) -> ChangeAction {
        let has = |name: &str| actions.iter().any(|a| a == name);
        if has("create") && has("delete") {
            ChangeAction::Replace
        } else if has("create") {
            ChangeAction::Create
        } else if has("delete") {
            ChangeAction::Delete
        } else if has("update") {
            ChangeAction::Update
        } else if has("read") {
            ChangeAction::Read
        } else if has("forget") {
            ChangeAction::Forget
        } else {
            ChangeAction::NoOp
        }
    }

    /// The symbol Terraform uses in its own human output.
    pub fn symbol(self) -> &'static str {
        match self {
            ChangeAction::Create => "+",
            ChangeAction::Update => "~",
            ChangeAction::Replace => "-/+",
            ChangeAction::Delete => "-",
            ChangeAction::Read => "<=",
            ChangeAction::Forget => ".",
            ChangeAction::NoOp => " ",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
            ChangeAction::Replace => "replace",
            ChangeAction::Delete => "destroy",
            ChangeAction::Read => "read",
            ChangeAction::Forget => "forget",
            ChangeAction::NoOp => "no change",
        }
    }
}

/// One changed attribute of a resource, with redacted values.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttributeChange {
    pub name: String,
    /// `None` when absent before (create).
    pub before: Option<Value>,
    /// `None` when absent after (delete); [`KNOWN_AFTER_APPLY`] when unknown until apply.
    pub after: Option<Value>,
    /// Whether this attribute forces the replacement of the resource.
    pub forces_replacement: bool,
}

/// One resource that the plan changes (or that drifted).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResourceChange {
    pub address: String,
    /// `module.x` for resources of child modules.
    pub module_address: Option<String>,
    pub resource_type: String,
    pub name: String,
    /// `managed` or `data`.
    pub mode: String,
    pub action: ChangeAction,
    /// Terraform's raw action list.
    pub actions: Vec<String>,
    /// Why Terraform chose this action (`replace_because_cannot_update`, ...), when it says.
    pub action_reason: Option<String>,
    /// The attribute paths that force a replacement (`triggers_replace`, `tags["x"]` ...).
    pub replace_reasons: Vec<String>,
    /// Changed attributes, redacted.
    pub attributes: Vec<AttributeChange>,
}

/// One root-module output the plan changes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutputChange {
    pub name: String,
    pub action: ChangeAction,
    pub sensitive: bool,
    /// Redacted.
    pub before: Option<Value>,
    /// Redacted; [`KNOWN_AFTER_APPLY`] when unknown until apply.
    pub after: Option<Value>,
}

/// Resources counted by action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeCounts {
    pub add: usize,
    pub change: usize,
    pub replace: usize,
    pub destroy: usize,
}

/// A saved Terraform plan, read back from `show -json`, redacted.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlanSummary {
    pub environment: String,
    pub mode: PlanMode,
    /// Resources the plan changes (no-ops left out), in Terraform's order.
    pub changes: Vec<ResourceChange>,
    /// Changes Terraform noticed were made outside of it while refreshing (`resource_drift`).
    pub drift: Vec<ResourceChange>,
    /// Outputs the plan changes (no-ops left out).
    pub output_changes: Vec<OutputChange>,
    pub counts: ChangeCounts,
    /// Whether applying the plan would change anything (for a refresh-only plan: whether the
    /// state would change), decided from the JSON, not from the exit code alone.
    pub has_changes: bool,
    /// The saved plan to apply.
    pub planfile: PathBuf,
}

impl PlanSummary {
    /// Read `show -json` output. Secrets found in the document are added to `redactor` and
    /// redacted from every value kept.
    pub fn from_show_json(
        text: &str,
        environment: &str,
        mode: PlanMode,
        planfile: PathBuf,
        redactor: &KnownSecrets,
    ) -> Result<PlanSummary, String> {
        let document: Value =
            serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
        if !document.is_object() {
            return Err("not a JSON object".to_string());
        }
        collect_secrets(&document, redactor);
        let read_changes = |key: &str| -> Result<Vec<ResourceChange>, String> {
            let Some(list) = document.get(key) else {
                return Ok(Vec::new());
            };
            let list = list
                .as_array()
                .ok_or_else(|| format!("`{key}` is not a list"))?;
            let mut changes = Vec::new();
            for item in list {
                let change = read_resource_change(item, redactor)?;
                if change.action != ChangeAction::NoOp {
                    changes.push(change);
                }
            }
            Ok(changes)
        };
        let changes = read_changes("resource_changes")?;
        let drift = read_changes("resource_drift")?;
        let mut output_changes = Vec::new();
        if let Some(outputs) = document.get("output_changes").and_then(Value::as_object) {
            for (name, change) in outputs {
                let output = read_output_change(name, change, redactor);
                if output.action != ChangeAction::NoOp {
                    output_changes.push(output);
                }
            }
        }
        let mut counts = ChangeCounts::default();
        for change in &changes {
            match change.action {
                ChangeAction::Create => counts.add += 1,
                ChangeAction::Update => counts.change += 1,
                ChangeAction::Replace => counts.replace += 1,
                ChangeAction::Delete => counts.destroy += 1,
                _ => {}
            }
        }
        let has_changes = match mode {
            PlanMode::Normal | PlanMode::Destroy => {
                changes.iter().any(|c| c.action != ChangeAction::Read) || !output_changes.is_empty()
            }
            // A refresh-only plan changes only the state: it has changes when something drifted
            // (Terraform may exit 2 without any; the JSON decides).
            PlanMode::RefreshOnly => !drift.is_empty() || !output_changes.is_empty(),
        };
        Ok(PlanSummary {
            environment: environment.to_string(),
            mode,
            changes,
            drift,
            output_changes,
            counts,
            has_changes,
            planfile,
        })
    }

    /// The plan for people: one line per resource (replacements called out with their reason),
    /// then the outputs that change. Never contains a secret.
    pub fn render_human(&self) -> String {
        let mut text = String::new();
        let title = match self.mode {
            PlanMode::Normal => "Terraform",
            PlanMode::RefreshOnly => "Terraform (refresh-only)",
            PlanMode::Destroy => "Terraform destroy",
        };
        let _ = writeln!(text, "{title} plan for `{}`:", self.environment);
        if !self.has_changes {
            text.push_str("  no changes\n");
            return text;
        }
        if self.mode != PlanMode::RefreshOnly {
            let ChangeCounts {
                add,
                change,
                replace,
                destroy,
            } = self.counts;
            let _ = writeln!(
                text,
                "  {add} to add, {change} to change, {replace} to replace, {destroy} to destroy"
            );
        }
        render_resources(&mut text, &self.changes);
        if !self.drift.is_empty() {
            text.push_str("  changed outside of Terraform:\n");
            render_resources(&mut text, &self.drift);
        }
        render_outputs(&mut text, &self.output_changes);
        text
    }
}

/// Terraform drift of one environment: what runs differs from what Git declares.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DriftReport {
    pub environment: String,
    /// Resources changed outside of Terraform (the refresh-only plan, confirmed from its JSON).
    pub changed_outside: Vec<ResourceChange>,
    /// Changes a normal plan would make to bring the infrastructure back to Git's declaration.
    pub pending_changes: Vec<ResourceChange>,
    /// Outputs that differ.
    pub output_changes: Vec<OutputChange>,
    pub has_drift: bool,
}

impl DriftReport {
    /// Combine the refresh-only plan and the normal plan.
    pub fn from_plans(refresh_only: &PlanSummary, normal: &PlanSummary) -> DriftReport {
        let mut changed_outside = refresh_only.drift.clone();
        for change in &normal.drift {
            if !changed_outside.iter().any(|c| c.address == change.address) {
                changed_outside.push(change.clone());
            }
        }
        let mut output_changes = normal.output_changes.clone();
        for change in &refresh_only.output_changes {
            if !output_changes.iter().any(|c| c.name == change.name) {
                output_changes.push(change.clone());
            }
        }
        let pending_changes = normal.changes.clone();
        let has_drift =
            !changed_outside.is_empty() || normal.has_changes || refresh_only.has_changes;
        DriftReport {
            environment: normal.environment.clone(),
            changed_outside,
            pending_changes,
            output_changes,
            has_drift,
        }
    }

    /// The drift for people. Never contains a secret.
    pub fn render_human(&self) -> String {
        let mut text = String::new();
        if !self.has_drift {
            let _ = writeln!(text, "Terraform: no drift in `{}`", self.environment);
            return text;
        }
        let _ = writeln!(text, "Terraform drift in `{}`:", self.environment);
        if !self.changed_outside.is_empty() {
            text.push_str("  changed outside of Terraform:\n");
            render_resources(&mut text, &self.changed_outside);
        }
        if !self.pending_changes.is_empty() {
            text.push_str("  differs from Git (a deploy would change):\n");
            render_resources(&mut text, &self.pending_changes);
        }
        render_outputs(&mut text, &self.output_changes);
        text
    }
}

fn render_resources(text: &mut String, changes: &[ResourceChange]) {
    for change in changes {
        let _ = write!(
            text,
            "  {:>3} {} ({})",
            change.action.symbol(),
            change.address,
            change.action.word()
        );
        if change.action == ChangeAction::Replace && !change.replace_reasons.is_empty() {
            let _ = write!(
                text,
                " REPLACE because of {}",
                change.replace_reasons.join(", ")
            );
        } else if change.action == ChangeAction::Replace {
            text.push_str(" REPLACE");
        }
        text.push('\n');
        for attribute in &change.attributes {
            let before = attribute.before.as_ref().map(render_value);
            let after = attribute.after.as_ref().map(render_value);
            let forces = if attribute.forces_replacement {
                "  # forces replacement"
            } else {
                ""
            };
            let _ = match (before, after) {
                (Some(before), Some(after)) => {
                    writeln!(
                        text,
                        "        {} = {before} -> {after}{forces}",
                        attribute.name
                    )
                }
                (None, Some(after)) => {
                    writeln!(text, "        {} = {after}{forces}", attribute.name)
                }
                (Some(before), None) => writeln!(
                    text,
                    "        {} = {before} -> null{forces}",
                    attribute.name
                ),
                (None, None) => Ok(()),
            };
        }
    }
}

fn render_outputs(text: &mut String, outputs: &[OutputChange]) {
    if outputs.is_empty() {
        return;
    }
    text.push_str("  outputs:\n");
    for output in outputs {
        let after = output
            .after
            .as_ref()
            .map_or_else(|| "null".to_string(), render_value);
        let _ = match (&output.before, output.action) {
            (Some(before), ChangeAction::Update) => writeln!(
                text,
                "  {:>3} {} = {} -> {after}",
                output.action.symbol(),
                output.name,
                render_value(before)
            ),
            _ => writeln!(
                text,
                "  {:>3} {} = {after}",
                output.action.symbol(),
                output.name
            ),
        };
    }
}

/// A value on one line; the redaction and unknown markers are shown bare.
/// A value as plans show it: JSON, except the redacted and the unknown markers, shown as is.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(text) if text == REDACTED || text == KNOWN_AFTER_APPLY => text.clone(),
        other => other.to_string(),
    }
}

fn read_resource_change(item: &Value, redactor: &KnownSecrets) -> Result<ResourceChange, String> {
    let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_string);
    let address = text("address").ok_or("a resource change without `address`")?;
    let change = item
        .get("change")
        .ok_or_else(|| format!("resource change `{address}` without `change`"))?;
    let actions = change_actions(change);
    let action = ChangeAction::from_actions(&actions);
    let replace_paths: Vec<Vec<Value>> = change
        .get("replace_paths")
        .and_then(Value::as_array)
        .map(|paths| paths.iter().filter_map(|p| p.as_array().cloned()).collect())
        .unwrap_or_default();
    let replace_reasons: Vec<String> = replace_paths.iter().map(|path| render_path(path)).collect();
    let attributes = attribute_changes(change, &replace_paths, redactor);
    Ok(ResourceChange {
        module_address: text("module_address"),
        resource_type: text("type").unwrap_or_default(),
        name: text("name").unwrap_or_default(),
        mode: text("mode").unwrap_or_else(|| "managed".to_string()),
        action,
        actions,
        action_reason: text("action_reason"),
        replace_reasons,
        attributes,
        address,
    })
}

/// `["tags", "Name"]` -> `tags["Name"]`, `["rule", 0, "port"]` -> `rule[0].port`.
fn render_path(path: &[Value]) -> String {
    let mut text = String::new();
    for (index, step) in path.iter().enumerate() {
        match step {
            Value::String(key) if index == 0 => text.push_str(key),
            Value::String(key)
                if key
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-') =>
            {
                text.push('.');
                text.push_str(key);
            }
            Value::String(key) => {
                let _ = write!(text, "[{}]", Value::String(key.clone()));
            }
            other => {
                let _ = write!(text, "[{other}]");
            }
        }
    }
    text
}

/// The top-level attributes whose value differs between before and after, redacted.
fn attribute_changes(
    change: &Value,
    replace_paths: &[Vec<Value>],
    redactor: &KnownSecrets,
) -> Vec<AttributeChange> {
    let empty = serde_json::Map::new();
    let before = change
        .get("before")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let after = change
        .get("after")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let after_unknown = change
        .get("after_unknown")
        .cloned()
        .unwrap_or(Value::Bool(false));
    let before_mask = change
        .get("before_sensitive")
        .cloned()
        .unwrap_or(Value::Bool(false));
    let after_mask = change
        .get("after_sensitive")
        .cloned()
        .unwrap_or(Value::Bool(false));
    let mask_of = |mask: &Value, key: &str| match mask {
        Value::Object(fields) => fields.get(key).cloned().unwrap_or(Value::Bool(false)),
        other => other.clone(),
    };
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    if let Value::Object(unknown) = &after_unknown {
        names.extend(unknown.keys());
    }
    names.sort();
    names.dedup();
    let mut attributes = Vec::new();
    for name in names {
        let unknown = match &after_unknown {
            Value::Bool(all) => *all,
            Value::Object(fields) => fields
                .get(name)
                .is_some_and(|u| u == &Value::Bool(true) || u.is_object()),
            _ => false,
        };
        let old = before.get(name).filter(|v| !v.is_null());
        let new = after.get(name).filter(|v| !v.is_null());
        if !unknown && old == new {
            continue;
        }
        let before_value = old.map(|v| redact_value(v, &mask_of(&before_mask, name), redactor));
        let after_value = if unknown && new.is_none() {
            Some(Value::String(KNOWN_AFTER_APPLY.to_string()))
        } else {
            new.map(|v| redact_value(v, &mask_of(&after_mask, name), redactor))
        };
        let forces_replacement = replace_paths
            .iter()
            .any(|path| path.first().and_then(Value::as_str) == Some(name));
        attributes.push(AttributeChange {
            name: name.clone(),
            before: before_value,
            after: after_value,
            forces_replacement,
        });
    }
    attributes
}

fn redact_value(value: &Value, mask: &Value, redactor: &KnownSecrets) -> Value {
    scrub_strings(&redact_with_mask(value, mask), redactor)
}

/// Replace every string leaf that contains a known secret.
fn scrub_strings(value: &Value, redactor: &KnownSecrets) -> Value {
    match value {
        Value::String(text) => {
            let redacted = redactor.redact(text);
            if redacted != *text {
                Value::String(REDACTED.to_string())
            } else {
                value.clone()
            }
        }
        Value::Number(number) => {
            let text = number.to_string();
            if redactor.redact(&text) != text {
                Value::String(REDACTED.to_string())
            } else {
                value.clone()
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| scrub_strings(item, redactor))
                .collect(),
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, field)| (key.clone(), scrub_strings(field, redactor)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The `actions` list of a change in `terraform show -json` (`["no-op"]`, `["delete", "create"]`...).
fn change_actions(change: &Value) -> Vec<String> {
    change
        .get("actions")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn read_output_change(name: &str, change: &Value, redactor: &KnownSecrets) -> OutputChange {
    let actions = change_actions(change);
    let before_mask = change
        .get("before_sensitive")
        .cloned()
        .unwrap_or(Value::Bool(false));
    let after_mask = change
        .get("after_sensitive")
        .cloned()
        .unwrap_or(Value::Bool(false));
    let sensitive = mask_has_sensitive(&before_mask) || mask_has_sensitive(&after_mask);
    let unknown = change
        .get("after_unknown")
        .is_some_and(|u| u == &Value::Bool(true));
    let before = change
        .get("before")
        .filter(|v| !v.is_null())
        .map(|v| redact_value(v, &before_mask, redactor));
    let after = if unknown {
        Some(Value::String(
            if after_mask == Value::Bool(true) {
                REDACTED
            } else {
                KNOWN_AFTER_APPLY
            }
            .to_string(),
        ))
    } else {
        change
            .get("after")
            .filter(|v| !v.is_null())
            .map(|v| redact_value(v, &after_mask, redactor))
    };
    OutputChange {
        name: name.to_string(),
        action: ChangeAction::from_actions(&actions),
        sensitive,
        before,
        after,
    }
}

/// Every secret the plan document reveals: values of sensitive variables, sensitive outputs
/// (prior state and planned), and masked resource attributes.
fn collect_secrets(document: &Value, redactor: &KnownSecrets) {
    let declared: BTreeMap<String, bool> = document
        .pointer("/configuration/root_module/variables")
        .and_then(Value::as_object)
        .map(|variables| {
            variables
                .iter()
                .map(|(name, v)| {
                    (
                        name.clone(),
                        v.get("sensitive").and_then(Value::as_bool).unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(variables) = document.get("variables").and_then(Value::as_object) {
        for (name, variable) in variables {
            if declared.get(name).copied().unwrap_or(false)
                && let Some(value) = variable.get("value")
            {
                redactor.add_value(value);
            }
        }
    }
    for pointer in ["/prior_state/values/outputs", "/planned_values/outputs"] {
        if let Some(outputs) = document.pointer(pointer).and_then(Value::as_object) {
            for output in outputs.values() {
                if output
                    .get("sensitive")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    && let Some(value) = output.get("value")
                {
                    redactor.add_value(value);
                }
            }
        }
    }
    for key in ["resource_changes", "resource_drift"] {
        for item in document
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(change) = item.get("change") else {
                continue;
            };
            for (value_key, mask_key) in
                [("before", "before_sensitive"), ("after", "after_sensitive")]
            {
                if let (Some(value), Some(mask)) = (change.get(value_key), change.get(mask_key)) {
                    add_masked(value, mask, redactor);
                }
            }
        }
    }
    for pointer in [
        "/prior_state/values/root_module",
        "/planned_values/root_module",
    ] {
        if let Some(module) = document.pointer(pointer) {
            add_module_secrets(module, redactor);
        }
    }
}

fn add_module_secrets(module: &Value, redactor: &KnownSecrets) {
    for resource in module
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(values), Some(mask)) =
            (resource.get("values"), resource.get("sensitive_values"))
        {
            add_masked(values, mask, redactor);
        }
    }
    for child in module
        .get("child_modules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add_module_secrets(child, redactor);
    }
}

/// Add the parts of `value` that `mask` marks sensitive.
fn add_masked(value: &Value, mask: &Value, redactor: &KnownSecrets) {
    match (value, mask) {
        (_, Value::Bool(true)) => redactor.add_value(value),
        (Value::Object(fields), Value::Object(masks)) => {
            for (key, m) in masks {
                if let Some(field) = fields.get(key) {
                    add_masked(field, m, redactor);
                }
            }
        }
        (Value::Array(items), Value::Array(masks)) => {
            for (item, m) in items.iter().zip(masks) {
                add_masked(item, m, redactor);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A plan that replaces one resource and updates a sensitive output (also the fixture of
    /// `plan::terraform`'s tests).
    pub(crate) fn replace_plan() -> Value {
        json!({
            "format_version": "1.2",
            "variables": {"pw": {"value": "secretpw2"}, "token": {"value": "b"}},
            "configuration": {"root_module": {"variables": {"pw": {"sensitive": true}, "token": {}}}},
            "prior_state": {"values": {"outputs": {"o": {"sensitive": true, "value": "secretpw"}}}},
            "resource_changes": [{
                "address": "terraform_data.slow", "mode": "managed", "type": "terraform_data", "name": "slow",
                "change": {
                    "actions": ["delete", "create"],
                    "before": {"id": "859f", "input": "secretpw", "output": "secretpw", "triggers_replace": "a"},
                    "after": {"input": "secretpw2", "triggers_replace": "b"},
                    "after_unknown": {"id": true, "output": true},
                    "before_sensitive": {"input": true},
                    "after_sensitive": {"input": true},
                    "replace_paths": [["triggers_replace"]]
                },
                "action_reason": "replace_because_cannot_update"
            }],
            "output_changes": {
                "o": {"actions": ["update"], "before": "secretpw", "after_unknown": true,
                      "before_sensitive": true, "after_sensitive": true},
                "same": {"actions": ["no-op"], "before": "x", "after": "x"}
            }
        })
    }

    #[test]
    fn replace_is_read_with_reasons_and_redacted() {
        let redactor = KnownSecrets::default();
        let plan = PlanSummary::from_show_json(
            &replace_plan().to_string(),
            "staging",
            PlanMode::Normal,
            PathBuf::from("plan.tfplan"),
            &redactor,
        )
        .unwrap();
        assert!(plan.has_changes);
        assert_eq!(plan.counts.replace, 1);
        let change = &plan.changes[0];
        assert_eq!(change.action, ChangeAction::Replace);
        assert_eq!(change.replace_reasons, vec!["triggers_replace".to_string()]);
        assert_eq!(plan.output_changes.len(), 1, "no-op outputs are left out");
        let json = serde_json::to_string(&plan).unwrap();
        let human = plan.render_human();
        for text in [&json, &human] {
            assert!(!text.contains("secretpw"), "secret leaked: {text}");
        }
        assert!(
            human.contains("REPLACE because of triggers_replace"),
            "{human}"
        );
        assert!(
            human.contains("triggers_replace = \"a\" -> \"b\""),
            "{human}"
        );
        // Round trip through the public types.
        let back: PlanSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn refresh_only_changes_come_from_the_json_not_the_exit_code() {
        let document = json!({"format_version": "1.2", "output_changes": {"a": {"actions": ["no-op"], "before": 1, "after": 1}}});
        let plan = PlanSummary::from_show_json(
            &document.to_string(),
            "prod",
            PlanMode::RefreshOnly,
            PathBuf::from("p"),
            &KnownSecrets::default(),
        )
        .unwrap();
        assert!(!plan.has_changes);
        assert!(plan.render_human().contains("no changes"));
    }

    #[test]
    fn a_destroy_plan_counts_what_goes_and_hides_sensitive_values() {
        let document = json!({"format_version": "1.2", "resource_changes": [{
            "address": "terraform_data.db", "mode": "managed", "type": "terraform_data",
            "name": "db", "change": {
                "actions": ["delete"],
                "before": {"id": "1", "input": "hunter2secret"},
                "after": null,
                "before_sensitive": {"input": true}
            }
        }]});
        let plan = PlanSummary::from_show_json(
            &document.to_string(),
            "prod",
            PlanMode::Destroy,
            PathBuf::from("p"),
            &KnownSecrets::default(),
        )
        .unwrap();
        assert!(plan.has_changes);
        assert_eq!(plan.counts.destroy, 1);
        let human = plan.render_human();
        assert!(
            human.starts_with("Terraform destroy plan for `prod`:"),
            "{human}"
        );
        assert!(
            human.contains("0 to add, 0 to change, 0 to replace, 1 to destroy"),
            "{human}"
        );
        assert!(human.contains("terraform_data.db"), "{human}");
        let json = serde_json::to_string(&plan).unwrap();
        for text in [&json, &human] {
            assert!(!text.contains("hunter2secret"), "secret leaked: {text}");
        }
        assert!(json.contains("\"mode\":\"destroy\""), "{json}");
    }

    #[test]
    fn paths_render_like_terraform() {
        assert_eq!(render_path(&[json!("tags"), json!("Name")]), "tags.Name");
        assert_eq!(
            render_path(&[json!("rule"), json!(0), json!("port")]),
            "rule[0].port"
        );
        assert_eq!(
            render_path(&[json!("labels"), json!("app.kubernetes.io/name")]),
            "labels[\"app.kubernetes.io/name\"]"
        );
    }
}
