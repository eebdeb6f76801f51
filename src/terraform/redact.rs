//! Redaction of sensitive Terraform values.
//!
//! Two layers: structured values are redacted by Terraform's own sensitivity masks
//! (`after_sensitive`, `before_sensitive`, output `sensitive`) when plans and outputs are turned
//! into gitship's types, so every rendering of those types is safe by construction; and, as a
//! safety net, every text gitship builds from Terraform's output (diagnostics, stderr tails) has
//! the known secret values (sensitive variables, sensitive outputs) replaced.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// What a sensitive value is shown as, everywhere (the cross-layer plan's marker).
pub const REDACTED: &str = crate::model::REDACTED;

/// Secrets shorter than this are not searched for in free text (they would mangle ordinary
/// words); structured redaction still hides them.
const MINIMUM_SECRET_LENGTH: usize = 4;

/// Replace the parts of `value` that `mask` marks sensitive. Terraform's masks are `true` (all
/// of it), `false`, or an object/array of masks mirroring the value's shape.
pub fn redact_with_mask(value: &Value, mask: &Value) -> Value {
    match (value, mask) {
        (_, Value::Bool(true)) => Value::String(REDACTED.to_string()),
        (Value::Object(fields), Value::Object(masks)) => Value::Object(
            fields
                .iter()
                .map(|(key, field)| {
                    let redacted = masks
                        .get(key)
                        .map_or_else(|| field.clone(), |m| redact_with_mask(field, m));
                    (key.clone(), redacted)
                })
                .collect(),
        ),
        (Value::Array(items), Value::Array(masks)) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    masks
                        .get(index)
                        .map_or_else(|| item.clone(), |m| redact_with_mask(item, m))
                })
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// Whether any part of `mask` is sensitive.
pub fn mask_has_sensitive(mask: &Value) -> bool {
    match mask {
        Value::Bool(flag) => *flag,
        Value::Object(fields) => fields.values().any(mask_has_sensitive),
        Value::Array(items) => items.iter().any(mask_has_sensitive),
        _ => false,
    }
}

/// Known secret strings, shared by the clones of one driver; scrubs them out of free text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<Mutex<Vec<String>>>,
}

impl Redactor {
    /// Remember every string (and number) inside `value` as a secret.
    pub fn add_value(&self, value: &Value) {
        let mut found = Vec::new();
        collect_leaves(value, &mut found);
        let Ok(mut secrets) = self.secrets.lock() else {
            return;
        };
        for secret in found {
            if secret.chars().count() >= MINIMUM_SECRET_LENGTH && !secrets.contains(&secret) {
                secrets.push(secret);
            }
        }
        // Longest first, so that a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// `text` with every known secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let Ok(secrets) = self.secrets.lock() else {
            return text.to_string();
        };
        let mut text = text.to_string();
        for secret in secrets.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        text
    }
}

fn collect_leaves(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            found.push(text.clone());
            // The JSON-escaped form too, in case the secret shows up inside a JSON document.
            if let Ok(escaped) = serde_json::to_string(text) {
                let inner = escaped.trim_matches('"').to_string();
                if &inner != text {
                    found.push(inner);
                }
            }
        }
        Value::Number(number) => found.push(number.to_string()),
        Value::Array(items) => items.iter().for_each(|item| collect_leaves(item, found)),
        Value::Object(fields) => fields
            .values()
            .for_each(|field| collect_leaves(field, found)),
        Value::Bool(_) | Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_redact_nested_values() {
        let value = json!({"input": "hunter2", "name": "web", "list": ["a", "b"]});
        let mask = json!({"input": true, "list": [false, true]});
        assert_eq!(
            redact_with_mask(&value, &mask),
            json!({"input": REDACTED, "name": "web", "list": ["a", REDACTED]})
        );
        assert_eq!(redact_with_mask(&value, &json!(true)), json!(REDACTED));
        assert!(mask_has_sensitive(&mask));
        assert!(!mask_has_sensitive(&json!({"a": false})));
    }

    #[test]
    fn known_secrets_are_scrubbed_from_text() {
        let redactor = Redactor::default();
        redactor.add_value(&json!({"password": "hunter2", "pin": "12"}));
        assert_eq!(
            redactor.redact("login with hunter2 or 12"),
            "login with <sensitive> or 12"
        );
        let clone = redactor.clone();
        clone.add_value(&json!("s3cr3t-token"));
        assert_eq!(redactor.redact("s3cr3t-token"), REDACTED);
    }
}
