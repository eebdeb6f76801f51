//! A preview environment's config, derived in memory from a committed environment's (no file is
//! written): `gitship env new pr-123 --from staging --ephemeral [--set values.x=y]`.
//!
//! The preview is the base's config with:
//! - its own name, and the namespace `<base-namespace>-<name>` (a DNS label);
//! - its own Terraform workspace, named after the preview, in the base's backend (the base's
//!   `backend_config` is kept; a base's fixed `workspace` is replaced), so its state never
//!   touches the base's;
//! - the `values` overrides of `--set values.KEY=VALUE`: typed like YAML scalars, and, as with
//!   Helm's `--set`, a key the base does not have is added (its parents created as objects); a
//!   key below a value that is not an object is refused.
//!
//! Where the preview is recorded (its namespace, in the base's cluster) is the Kubernetes
//! stage's `kube::preview`; the operations put the two together (`ops::preview`).

use std::collections::BTreeMap;

use crate::repo::EnvConfig;
use crate::repo::config::is_dns_label;

/// Why a preview cannot be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    /// The preview's name is not a DNS label.
    #[error("invalid preview name `{name}`: names must be DNS labels")]
    InvalidName { name: String },
    /// `<base-namespace>-<name>` is not a DNS label (too long, most often).
    #[error(
        "the namespace `{namespace}` of preview `{name}` is not a DNS label ({length} characters, at most 63)"
    )]
    NamespaceTooLong {
        name: String,
        namespace: String,
        length: usize,
    },
    /// A `--set` that is not `values.KEY=VALUE`.
    #[error("invalid `--set {given}`: {why}")]
    InvalidSet { given: String, why: String },
    /// A `--set` below a value of the base that is not an object.
    #[error("invalid `--set {given}`: `values.{parent}` of `{base}` is not an object")]
    NotAnObject {
        given: String,
        parent: String,
        base: String,
    },
}

impl gitship_foundation::diagnostics::StageError for PreviewError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            PreviewError::InvalidName { .. } => {
                "lowercase letters, digits and `-`, at most 63 characters, e.g. `pr-123`".into()
            }
            PreviewError::NamespaceTooLong { .. } => {
                "choose a shorter preview name (e.g. `pr-123`)".into()
            }
            PreviewError::InvalidSet { .. } => {
                "write `--set values.KEY=VALUE` (dotted keys, e.g. `--set values.web.replicas=1`)"
                    .into()
            }
            PreviewError::NotAnObject { parent, .. } => {
                format!("set `values.{parent}` itself, or a key of an object")
            }
        })
    }
}

/// One `--set values.KEY=VALUE`: the dotted key below `values` and its typed value.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueOverride {
    pub key: String,
    pub value: serde_json::Value,
}

/// Parse `values.KEY=VALUE` (the value typed like a YAML scalar: `true`, `3`, `1.5`, `null`;
/// quote it, `'"3"'`, to keep a string).
pub fn parse_set(given: &str) -> Result<ValueOverride, PreviewError> {
    let invalid = |why: &str| PreviewError::InvalidSet {
        given: given.to_string(),
        why: why.to_string(),
    };
    let (path, value) = given.split_once('=').ok_or_else(|| invalid("no `=`"))?;
    let key = path
        .strip_prefix("values.")
        .ok_or_else(|| invalid("only `values.*` keys can be set for a preview"))?;
    if key.split('.').any(|segment| segment.trim().is_empty()) {
        return Err(invalid("a key has an empty segment"));
    }
    Ok(ValueOverride {
        key: key.to_string(),
        value: scalar(value),
    })
}

/// A YAML 1.2 core-schema scalar, as Helm's `--set` types it.
fn scalar(text: &str) -> serde_json::Value {
    use serde_json::Value;
    let quoted = |quote: char| text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote);
    if quoted('"') || quoted('\'') {
        return Value::String(text[1..text.len() - 1].to_string());
    }
    match text {
        "" | "null" | "Null" | "NULL" | "~" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(integer) = text.parse::<i64>() {
        return Value::from(integer);
    }
    let numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    if numeric
        && text.bytes().any(|b| b.is_ascii_digit())
        && let Some(number) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return Value::Number(number);
    }
    Value::String(text.to_string())
}

/// The namespace of preview `name` of `base`: `<base-namespace>-<name>`, checked.
pub fn namespace_of(base: &EnvConfig, name: &str) -> Result<String, PreviewError> {
    if !is_dns_label(name) {
        return Err(PreviewError::InvalidName {
            name: name.to_string(),
        });
    }
    let namespace = format!("{}-{name}", base.cluster.namespace);
    if !is_dns_label(&namespace) {
        return Err(PreviewError::NamespaceTooLong {
            name: name.to_string(),
            length: namespace.len(),
            namespace,
        });
    }
    Ok(namespace)
}

/// The config of preview `name` of `base` with the `values` overrides (dotted key -> value).
pub fn derive(
    base: &EnvConfig,
    name: &str,
    overrides: &BTreeMap<String, serde_json::Value>,
) -> Result<EnvConfig, PreviewError> {
    let mut config = base.clone();
    config.cluster.namespace = namespace_of(base, name)?;
    config.name = name.to_string();
    config.terraform.workspace = Some(name.to_string());
    // A preview is made to be destroyed (by `gc`, when its pull request closes).
    config.protected = false;
    // A preview is never the production environment whose tree must be clean by default; it
    // keeps what its base says (`deploy.require_clean_tree` as parsed for the base).
    for (key, value) in overrides {
        set_value(&mut config.values, key, value.clone()).map_err(|parent| {
            PreviewError::NotAnObject {
                given: format!("values.{key}"),
                parent,
                base: base.name.clone(),
            }
        })?;
    }
    Ok(config)
}

/// Set the dotted `key` of `values` to `value`, creating missing objects; the dotted prefix that
/// is not an object when one is in the way.
fn set_value(
    values: &mut serde_json::Value,
    key: &str,
    value: serde_json::Value,
) -> Result<(), String> {
    if values.is_null() {
        *values = serde_json::Value::Object(serde_json::Map::new());
    }
    let segments: Vec<&str> = key.split('.').collect();
    let mut node = values;
    for (index, segment) in segments.iter().enumerate() {
        let parent = segments[..index].join(".");
        let serde_json::Value::Object(map) = node else {
            return Err(if parent.is_empty() {
                String::from("")
            } else {
                parent
            });
        };
        if index + 1 == segments.len() {
            map.insert((*segment).to_string(), value);
            return Ok(());
        }
        node = map
            .entry((*segment).to_string())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !node.is_object() {
            return Err(segments[..=index].join("."));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn base(terraform: &str) -> EnvConfig {
        EnvConfig::parse(
            "staging",
            Path::new("/repo/config/staging.yaml"),
            Path::new("config/staging.yaml"),
            &format!("cluster: {{namespace: blog}}\nterraform: {terraform}\nvalues: {{host: staging.example, web: {{replicas: 2}}}}\n"),
        )
        .unwrap()
    }

    fn staging() -> EnvConfig {
        base("{workspace: staging}")
    }

    #[test]
    fn sets_are_typed_like_yaml_scalars() {
        let cases = [
            ("values.a=3", json!(3)),
            ("values.a=1.5", json!(1.5)),
            ("values.a=true", json!(true)),
            ("values.a=null", json!(null)),
            ("values.a=pr-1.example", json!("pr-1.example")),
            ("values.a='3'", json!("3")),
            ("values.a=\"x=y\"", json!("x=y")),
            ("values.a=1e3", json!(1000.0)),
            ("values.a=1.2.3", json!("1.2.3")),
        ];
        for (given, expected) in cases {
            assert_eq!(parse_set(given).unwrap().value, expected, "{given}");
        }
        assert_eq!(
            parse_set("values.web.replicas=1").unwrap().key,
            "web.replicas"
        );
        for bad in [
            "values.a",
            "cluster.namespace=x",
            "values..a=1",
            "values.=1",
        ] {
            assert!(parse_set(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_preview_is_its_base_with_its_name_namespace_workspace_and_values() {
        let overrides = BTreeMap::from([
            ("host".to_string(), json!("pr-7.example")),
            ("web.replicas".to_string(), json!(1)),
            ("new.key".to_string(), json!(true)),
        ]);
        let preview = derive(&staging(), "pr-7", &overrides).unwrap();
        assert_eq!(preview.name, "pr-7");
        assert_eq!(preview.cluster.namespace, "blog-pr-7");
        assert_eq!(preview.terraform.workspace.as_deref(), Some("pr-7"));
        // A base whose backend is its own keeps it; the preview is a workspace there.
        let own_backend = derive(
            &base("{backend_config: {key: s.tfstate}}"),
            "pr-7",
            &overrides,
        )
        .unwrap();
        assert_eq!(own_backend.terraform.workspace.as_deref(), Some("pr-7"));
        assert_eq!(own_backend.terraform.backend_config["key"], "s.tfstate");
        assert_eq!(
            preview.values,
            json!({"host": "pr-7.example", "web": {"replicas": 1}, "new": {"key": true}})
        );
    }

    #[test]
    fn bad_names_long_namespaces_and_keys_below_scalars_are_refused() {
        let none = BTreeMap::new();
        assert!(matches!(
            derive(&staging(), "PR_7", &none),
            Err(PreviewError::InvalidName { .. })
        ));
        let long = "p".repeat(60);
        assert!(matches!(
            derive(&staging(), &long, &none),
            Err(PreviewError::NamespaceTooLong { length: 65, .. })
        ));
        let below = BTreeMap::from([("host.name".to_string(), json!("x"))]);
        let error = derive(&staging(), "pr-7", &below).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid `--set values.host.name`: `values.host` of `staging` is not an object"
        );
    }
}
