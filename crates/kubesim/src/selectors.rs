//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!` not-exists) and field selectors
//! (`metadata.name`, `metadata.namespace`, with `=`, `==`, `!=`), as in LIST and WATCH queries.

use serde_json::Value;

/// One parsed requirement.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label or field selector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// A selector that cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for character in text.chars() {
        match character {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(character);
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|part| part.trim().to_string())
        .filter(|part| !part.is_empty())
        .collect()
}

fn parse_values(text: &str) -> Result<Vec<String>, SelectorError> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| SelectorError(text.to_string()))?;
    Ok(inner
        .split(',')
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
        .collect())
}

impl Selector {
    /// Parses a label selector.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let requirement = if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = part.split_once("==") {
                Requirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = part.split_once('=') {
                Requirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some((key, values)) = part.split_once(" notin ") {
                Requirement::NotIn(key.trim().into(), parse_values(values)?)
            } else if let Some((key, values)) = part.split_once(" in ") {
                Requirement::In(key.trim().into(), parse_values(values)?)
            } else if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().into())
            } else if part.contains(' ') || part.contains('(') {
                return Err(SelectorError(part));
            } else {
                Requirement::Exists(part.trim().into())
            };
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    /// Parses a field selector (only `metadata.name` and `metadata.namespace` are supported, as
    /// for most resources of a real API server).
    pub fn parse_fields(text: &str) -> Result<Selector, SelectorError> {
        let selector = Selector::parse(text)?;
        for requirement in &selector.requirements {
            let key = match requirement {
                Requirement::Equals(key, _) | Requirement::NotEquals(key, _) => key,
                _ => return Err(SelectorError(text.to_string())),
            };
            if !FIELD_LABELS.contains(&key.as_str()) {
                return Err(SelectorError(format!("field label not supported: {key}")));
            }
        }
        Ok(selector)
    }

    fn matches_with(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::Equals(key, value) => lookup(key).as_deref() == Some(value.as_str()),
                Requirement::NotEquals(key, value) => {
                    lookup(key).as_deref() != Some(value.as_str())
                }
                Requirement::In(key, values) => {
                    lookup(key).is_some_and(|actual| values.contains(&actual))
                }
                Requirement::NotIn(key, values) => {
                    !lookup(key).is_some_and(|actual| values.contains(&actual))
                }
                Requirement::Exists(key) => lookup(key).is_some(),
                Requirement::NotExists(key) => lookup(key).is_none(),
            })
    }

    /// Whether an object's labels match.
    pub fn matches_labels(&self, object: &Value) -> bool {
        let labels = object["metadata"]["labels"].as_object();
        self.matches_with(|key| labels?.get(key)?.as_str().map(str::to_string))
    }

    /// Whether an object's fields match.
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.matches_with(|key| match key {
            "metadata.name" => object["metadata"]["name"].as_str().map(str::to_string),
            "metadata.namespace" => Some(
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            ),
            _ => {
                let mut value = object;
                for segment in key.split('.') {
                    value = value.get(segment)?;
                }
                value.as_str().map(str::to_string)
            }
        })
    }
}

/// The field labels a `fieldSelector` may use: the object's name and namespace everywhere, and
/// the involved object, reason and type (as the apiserver serves them for Events).
const FIELD_LABELS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.fieldPath",
    "reason",
    "type",
    "source",
    "reportingComponent",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_operators() {
        let object = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, api)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing,app=web", true),
            ("missing!=x", true),
            ("app in (api),tier", false),
        ];
        for (text, expected) in cases {
            let selector = Selector::parse(text).unwrap_or_default();
            assert_eq!(selector.matches_labels(&object), expected, "{text}");
        }
        assert!(Selector::parse("app in web").is_err());
        assert!(Selector::parse_fields("spec.x=1").is_err());
    }
}
