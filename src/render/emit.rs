//! YAML emission of rendered objects: block style, two-space indentation, sequences at their
//! key's indentation (as `kubectl` prints them). A string is written plain only when every YAML
//! 1.1 and 1.2 parser reads it back as that same string; otherwise it is double-quoted (JSON string
//! syntax, which is valid YAML) or, when it spans lines, a literal block. So no value can change
//! type or inject structure.

use std::fmt::Write;

use serde_json::Value;

use crate::repo::yaml::resolve_plain;

/// One object as a YAML document body (no `---`), ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::with_capacity(1024);
    write_document(&mut out, value);
    out
}

/// Append `value` as a YAML document body.
pub fn write_document(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) if !map.is_empty() => write_mapping(out, map, 0),
        Value::Array(items) if !items.is_empty() => write_sequence(out, items, 0),
        scalar => {
            write_scalar(out, scalar, 0);
            out.push('\n');
        }
    }
}

fn indent(out: &mut String, width: usize) {
    for _ in 0..width {
        out.push(' ');
    }
}

fn write_mapping(out: &mut String, map: &serde_json::Map<String, Value>, width: usize) {
    let mut first = true;
    for (key, value) in map {
        if !first {
            indent(out, width);
        }
        first = false;
        write_string(out, key, width, true);
        out.push(':');
        write_child(out, value, width);
    }
}

/// The value after `key:` or `- `: inline scalar, or a nested block.
fn write_child(out: &mut String, value: &Value, width: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            indent(out, width + 2);
            write_mapping(out, map, width + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            indent(out, width);
            write_sequence(out, items, width);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, width);
            out.push('\n');
        }
    }
}

fn write_sequence(out: &mut String, items: &[Value], width: usize) {
    let mut first = true;
    for item in items {
        if !first {
            indent(out, width);
        }
        first = false;
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                out.push(' ');
                write_mapping(out, map, width + 2);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push(' ');
                write_sequence(out, inner, width + 2);
            }
            scalar => {
                out.push(' ');
                write_scalar(out, scalar, width + 2);
                out.push('\n');
            }
        }
    }
}

fn write_scalar(out: &mut String, value: &Value, width: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s, width, false),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

fn write_string(out: &mut String, text: &str, width: usize, is_key: bool) {
    if is_plain_safe(text) {
        out.push_str(text);
    } else if !is_key && is_literal_block_safe(text) {
        out.push('|');
        let body = text.strip_suffix('\n');
        if body.is_none() {
            out.push('-');
        }
        for line in body.unwrap_or(text).split('\n') {
            out.push('\n');
            if !line.is_empty() {
                indent(out, width + 2);
                out.push_str(line);
            }
        }
    } else {
        // JSON string syntax is a valid YAML double-quoted scalar.
        out.push_str(&serde_json::Value::String(text.to_string()).to_string());
    }
}

/// Words that YAML 1.1 parsers (such as the one behind `kubectl`) read as booleans.
const YAML11_WORDS: &[&str] = &[
    "y", "Y", "n", "N", "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// Whether `text` can be written without quotes and reads back as the same string everywhere.
pub fn is_plain_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    // A leading digit is fine for quantities like `250m` or `1Gi`, but not for anything a YAML 1.1
    // parser reads as a number: sexagesimal `1:20`, `1_000`, `0b101`, `0o17`, `0x1f`, `0755`.
    let quantity_like = first.is_ascii_digit()
        && text.chars().any(|c| c.is_ascii_alphabetic())
        && !text.contains([':', '_'])
        && !text.starts_with("0");
    if !(first.is_ascii_alphabetic() || first == '/' || first == '_' || quantity_like) {
        return false;
    }
    if text.ends_with([' ', ':']) || text.contains(": ") || text.contains(" #") {
        return false;
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || " _-./:@=+~()%^$".contains(c);
    if !text.chars().all(allowed) {
        return false;
    }
    if YAML11_WORDS.contains(&text) {
        return false;
    }
    matches!(resolve_plain(text), Value::String(_))
}

/// Whether a multi-line string can be a literal block: printable text, no carriage returns or
/// tabs, no leading spaces on the first line (they would be taken as indentation), no trailing
/// spaces, at most one trailing newline.
fn is_literal_block_safe(text: &str) -> bool {
    text.contains('\n')
        && !text.starts_with([' ', '\n'])
        && !text.ends_with("\n\n")
        && !text.contains(" \n")
        && !text.ends_with(' ')
        && text
            .chars()
            .all(|c| c == '\n' || (!c.is_control() && c != '\u{feff}'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::yaml::parse_documents;
    use serde_json::json;

    fn round_trip(value: &Value) -> Value {
        let text = to_yaml(value);
        let docs = parse_documents(&text).unwrap_or_else(|e| panic!("{e:?} in\n{text}"));
        docs[0].root.as_ref().unwrap().to_json()
    }

    #[test]
    fn round_trips_tricky_values() {
        let value = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "x"}, "annotations": {}},
            "data": {
                "evil": "\n  evil: true",
                "yes": "yes",
                "number": "3",
                "float": "1.5",
                "null": "null",
                "empty": "",
                "colon": "a: b",
                "hash": "a #b",
                "quote": "it's \"quoted\"",
                "multi": "line one\nline two\n",
                "multi_no_newline": "a\nb",
                "indented": "  leading",
                "url": "postgres://blog@db:5432/blog",
                "octal": "0755",
                "dash": "-x",
                "quantity": "250m",
                "exponent": "1e3",
                "exponent_upper": "1E3",
                "hex": "0x1f",
                "binary": "0b101",
                "sexagesimal": "1:20",
                "unicode": "héllo",
                "tab": "a\tb\nc",
            },
            "list": [1, "two", {"a": 1, "b": [true, null]}, [], {}, [[1, 2], [3]]],
            "number": 3,
            "float": 1.5,
        });
        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn layout_is_kubectl_like() {
        let value =
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}});
        assert_eq!(
            to_yaml(&value),
            "spec:\n  containers:\n  - name: a\n    ports:\n    - containerPort: 80\n"
        );
    }

    #[test]
    fn injection_stays_a_string() {
        let text = to_yaml(&json!({"a": "x\n  evil: true"}));
        assert_eq!(text, "a: |-\n  x\n    evil: true\n");
    }
}
