//! Redaction of sensitive Terraform values.
//!
//! Two layers: structured values are redacted by Terraform's own sensitivity masks
//! (`after_sensitive`, `before_sensitive`, output `sensitive`) when plans and outputs are turned
//! into gitship's types, so every rendering of those types is safe by construction; and, as a
//! safety net, every text gitship builds from Terraform's output (diagnostics, stderr tails) has
//! the known secret values (sensitive variables, sensitive outputs) replaced
//! ([`gitship_foundation::model::KnownSecrets`], which `render` shares).

use serde_json::Value;

/// What a sensitive value is shown as, everywhere (the cross-layer plan's marker).
pub const REDACTED: &str = gitship_foundation::model::REDACTED;

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
}
