//! Known secret values scrubbed out of free text, shared by every layer that shows text built
//! from them (Terraform's diagnostics and plans, rendered objects in plans, diffs and drift), so
//! that all hide the same values the same way.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// What redacted values look like everywhere.
pub const REDACTED: &str = "<sensitive>";

/// Secrets shorter than this are not searched for in free text (they would mangle ordinary
/// words); structured redaction still hides them.
const MINIMUM_SECRET_LENGTH: usize = 4;

/// Known secret strings, shared by the clones of one owner (a Terraform driver, a plan's
/// redactor); scrubs them out of free text.
#[derive(Debug, Clone, Default)]
pub struct KnownSecrets {
    secrets: Arc<Mutex<Vec<String>>>,
}

impl KnownSecrets {
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
    fn known_secrets_are_scrubbed_from_text() {
        let secrets = KnownSecrets::default();
        secrets.add_value(&json!({"password": "hunter2", "pin": "12"}));
        assert_eq!(
            secrets.redact("login with hunter2 or 12"),
            "login with <sensitive> or 12"
        );
        let clone = secrets.clone();
        clone.add_value(&json!("s3cr3t-token"));
        assert_eq!(secrets.redact("s3cr3t-token"), REDACTED);
    }
}
