//! Placeholders: parsing `${...}` out of a YAML scalar and resolving it against the render inputs.
//!
//! A scalar's text is split into literal text and placeholders; `$${` is a literal `${`. A
//! placeholder is a dotted path whose first segment names the source: `values`, `env`, `git`,
//! `images` or `terraform`.
//!
//! Manifests also carry other tools' `${...}`: shell scripts in a container's `command`, envsubst
//! templates. A placeholder that is a shell variable ([`foreign_variable`]: a bare identifier
//! such as `${FRONTEND_ADDR}`, or a parameter expansion such as `${HOME:-/root}` or `${#PATH}`,
//! whose name is not a gitship source) is left as written ([`Segment::Foreign`]). A dotted path is
//! always gitship's, so a misspelt source (`${value.x}`, `${terrafrom.db}`) stays an error.

use std::borrow::Cow;

use serde_json::Value;

use crate::render::{RenderInputs, UnknownOutputs};
use crate::repo::did_you_mean;

/// Text shown for a Terraform output whose value is not known until apply.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// One piece of a scalar's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'t> {
    Text(Cow<'t, str>),
    /// `expression` is the trimmed text between `${` and `}`; `offset` is the byte offset of
    /// `$` in the scalar's text.
    Placeholder {
        expression: &'t str,
        offset: usize,
        raw: &'t str,
    },
    /// Another tool's `${...}` (a shell or envsubst variable), left as written: `raw` is the
    /// whole `${...}`, `offset` the byte offset of its `$`.
    Foreign {
        offset: usize,
        raw: &'t str,
    },
}

/// A malformed placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

/// Split `text` into segments; `None` when it has no placeholder and no escape (the common case).
pub fn parse(text: &str) -> Result<Option<Vec<Segment<'_>>>, SyntaxError> {
    if !text.contains("${") {
        return Ok(None);
    }
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest_start = 0;
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'$' && text[index..].starts_with("$${") {
            literal.push_str(&text[rest_start..index]);
            literal.push_str("${");
            index += 3;
            rest_start = index;
            continue;
        }
        if bytes[index] == b'$' && text[index..].starts_with("${") {
            literal.push_str(&text[rest_start..index]);
            let Some(close) = text[index + 2..].find('}') else {
                return Err(SyntaxError {
                    offset: index,
                    message: "unterminated placeholder: `${` without a closing `}`".into(),
                });
            };
            let raw = &text[index..index + 2 + close + 1];
            let expression = text[index + 2..index + 2 + close].trim();
            if expression.is_empty() {
                return Err(SyntaxError {
                    offset: index,
                    message: "empty placeholder `${}`".into(),
                });
            }
            if foreign_variable(expression).is_some() {
                if !literal.is_empty() {
                    segments.push(Segment::Text(Cow::Owned(std::mem::take(&mut literal))));
                }
                segments.push(Segment::Foreign { offset: index, raw });
                index += raw.len();
                rest_start = index;
                continue;
            }
            let valid_segment = |segment: &str| {
                !segment.is_empty()
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            if !expression.split('.').all(valid_segment) {
                return Err(SyntaxError {
                    offset: index,
                    message: format!(
                        "invalid placeholder `{raw}`: expected a dotted path such as `${{values.backend.replicas}}` (write `$${{` for a literal `${{`)"
                    ),
                });
            }
            if !literal.is_empty() {
                segments.push(Segment::Text(Cow::Owned(std::mem::take(&mut literal))));
            }
            segments.push(Segment::Placeholder {
                expression,
                offset: index,
                raw,
            });
            index += raw.len();
            rest_start = index;
            continue;
        }
        index += 1;
    }
    literal.push_str(&text[rest_start..]);
    if !literal.is_empty() {
        segments.push(Segment::Text(Cow::Owned(literal)));
    }
    Ok(Some(segments))
}

/// The shell variable `expression` (the text between `${` and `}`, trimmed) refers to, when it is
/// another tool's placeholder rather than gitship's: a shell identifier (letters, digits and `_`,
/// not starting with a digit; or a positional parameter such as `1`), optionally preceded by `#`
/// or `!` and followed by a parameter-expansion operator (`:-`, `-`, `=`, `?`, `+`, `%`, `#`, `/`,
/// `^`, `,`, `[`, `@`), which is not exactly one of gitship's [`SOURCES`]. `values`, `Values.x` and
/// `terrafrom.db` are gitship's (a dotted path is never a shell variable); `FRONTEND_ADDR`,
/// `HOME:-/root` and `#PATH` are not.
pub fn foreign_variable(expression: &str) -> Option<&str> {
    // The shell's special parameters: `${@}`, `${#}`, `${?}`, ...
    if matches!(expression, "@" | "*" | "#" | "?" | "$" | "!" | "-") {
        return Some(expression);
    }
    let body = expression.strip_prefix(['#', '!']).unwrap_or(expression);
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let name = &body[..end];
    let identifier = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let positional = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
    if !(identifier || positional) || SOURCES.contains(&name) {
        return None;
    }
    match body[end..].chars().next() {
        None => Some(name),
        Some(':' | '-' | '=' | '?' | '+' | '%' | '#' | '/' | '^' | ',' | '[' | '@') => Some(name),
        Some(_) => None,
    }
}

/// Why a placeholder did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub message: String,
    /// The problem is that no Terraform outputs were provided at all.
    pub no_terraform_outputs: bool,
}

impl Unresolved {
    fn new(message: String) -> Self {
        Unresolved {
            message,
            no_terraform_outputs: false,
        }
    }
}

/// A resolved placeholder: its value and, for a sensitive Terraform output, the output's name.
#[derive(Debug)]
pub struct Resolved<'i> {
    pub value: Cow<'i, Value>,
    pub sensitive_output: Option<&'i str>,
}

fn suggest_path(prefix: &str, wrong: &str, candidates: impl IntoIterator<Item = String>) -> String {
    let candidates: Vec<String> = candidates.into_iter().collect();
    match did_you_mean(wrong, candidates.iter().map(String::as_str)) {
        Some(suggestion) => format!(" (did you mean `{prefix}{suggestion}`?)"),
        None => String::new(),
    }
}

/// Walk `path` below `value`; the error names the first segment that is missing.
fn walk<'v>(value: &'v Value, source: &str, path: &[&str]) -> Result<&'v Value, Unresolved> {
    let mut current = value;
    let mut walked = source.to_string();
    for segment in path {
        let next = match current {
            Value::Object(map) => map.get(*segment).ok_or_else(|| {
                Unresolved::new(format!(
                    "`{walked}.{segment}` is not defined{}",
                    suggest_path(&format!("{walked}."), segment, map.keys().cloned())
                ))
            })?,
            Value::Array(items) => segment
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .ok_or_else(|| {
                    Unresolved::new(format!(
                        "`{walked}` is a list of {} items; `{segment}` is not an index in it",
                        items.len()
                    ))
                })?,
            other => {
                return Err(Unresolved::new(format!(
                    "`{walked}` is {}, it has no `{segment}`",
                    type_name(other)
                )));
            }
        };
        walked.push('.');
        walked.push_str(segment);
        current = next;
    }
    Ok(current)
}

/// A short name of a JSON value's type.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The first segments of gitship's placeholders.
pub const SOURCES: &[&str] = &["values", "env", "git", "images", "terraform"];

/// Resolve one placeholder expression (`values.backend.replicas`).
pub fn resolve<'i>(
    expression: &str,
    inputs: &'i RenderInputs,
    derived: &'i Derived,
    unknown_outputs: UnknownOutputs,
) -> Result<Resolved<'i>, Unresolved> {
    let mut parts = expression.split('.');
    let source = parts.next().unwrap_or_default();
    let path: Vec<&str> = parts.collect();
    match source {
        "values" => plain(walk(&inputs.values, "values", &path)?),
        "env" => field_of(
            expression,
            "env",
            &path,
            &[
                ("name", &derived.env_name),
                ("namespace", &derived.env_namespace),
            ],
        ),
        "git" => field_of(
            expression,
            "git",
            &path,
            &[
                ("sha", &derived.git_sha),
                ("short_sha", &derived.git_short_sha),
            ],
        ),
        "images" => image_field(expression, &path, derived),
        "terraform" => terraform_output(&path, inputs, unknown_outputs),
        _ => Err(Unresolved::new(format!(
            "unknown source `{source}`{}; placeholders start with one of {} (write `$${{` for a literal `${{`)",
            suggest_path("", source, SOURCES.iter().map(|s| s.to_string())),
            SOURCES
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A value that is not a Terraform output.
fn plain(value: &Value) -> Result<Resolved<'_>, Unresolved> {
    Ok(Resolved {
        value: Cow::Borrowed(value),
        sensitive_output: None,
    })
}

/// One of the named `fields` of `source` (`env.name`, `git.sha`).
fn field_of<'i>(
    expression: &str,
    source: &str,
    path: &[&str],
    fields: &[(&str, &'i Value)],
) -> Result<Resolved<'i>, Unresolved> {
    if let [name] = path
        && let Some((_, value)) = fields.iter().find(|(field, _)| field == name)
    {
        return plain(value);
    }
    let names: Vec<String> = fields
        .iter()
        .map(|(name, _)| format!("{source}.{name}"))
        .collect();
    if path.is_empty() {
        return Err(Unresolved::new(format!(
            "`{source}` needs a field: {}",
            names
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    Err(Unresolved::new(format!(
        "`{expression}` is not defined{}",
        suggest_path(
            &format!("{source}."),
            &path.join("."),
            fields.iter().map(|(name, _)| name.to_string())
        )
    )))
}

/// `images.<app>[.reference|.repository|.tag|.digest]`.
fn image_field<'i>(
    expression: &str,
    path: &[&str],
    derived: &'i Derived,
) -> Result<Resolved<'i>, Unresolved> {
    let Some((app, field)) = path.split_first() else {
        return Err(Unresolved::new(
            "`images` needs an app name, e.g. `images.backend`".into(),
        ));
    };
    let Some(image) = derived.images.get(*app) else {
        let known: Vec<String> = derived.images.keys().cloned().collect();
        let listing = if known.is_empty() {
            " (the repository has no apps)".to_string()
        } else {
            suggest_path("images.", app, known)
        };
        return Err(Unresolved::new(format!(
            "`images.{app}` is not an app{listing}"
        )));
    };
    match field {
        [] | ["reference"] => plain(&image.reference),
        ["repository"] => plain(&image.repository),
        ["tag"] => plain(&image.tag),
        ["digest"] => plain(&image.digest),
        _ => Err(Unresolved::new(format!(
            "`{expression}` is not defined (an image has `reference`, `repository`, `tag` and `digest`)"
        ))),
    }
}

/// `terraform.<output>[.path]`: the output's value, marked when it is sensitive; an output not
/// known until apply is a placeholder or an error, as `unknown_outputs` says.
fn terraform_output<'i>(
    path: &[&str],
    inputs: &'i RenderInputs,
    unknown_outputs: UnknownOutputs,
) -> Result<Resolved<'i>, Unresolved> {
    let Some((name, rest)) = path.split_first() else {
        return Err(Unresolved::new(
            "`terraform` needs an output name, e.g. `terraform.database_url`".into(),
        ));
    };
    let Some((key, output)) = inputs.terraform.get_key_value(*name) else {
        if inputs.terraform.is_empty() {
            return Err(Unresolved {
                message: format!(
                    "`terraform.{name}` needs Terraform outputs, and none are available"
                ),
                no_terraform_outputs: true,
            });
        }
        return Err(Unresolved::new(format!(
            "Terraform has no output `{name}`{}",
            suggest_path("terraform.", name, inputs.terraform.keys().cloned())
        )));
    };
    let sensitive_output = output.sensitive.then_some(key.as_str());
    match &output.value {
        Some(value) => Ok(Resolved {
            value: Cow::Borrowed(walk(value, &format!("terraform.{name}"), rest)?),
            sensitive_output,
        }),
        None => match unknown_outputs {
            UnknownOutputs::Placeholder => Ok(Resolved {
                value: Cow::Owned(Value::String(KNOWN_AFTER_APPLY.into())),
                sensitive_output,
            }),
            UnknownOutputs::Error => Err(Unresolved::new(format!(
                "Terraform output `{name}` is not known until apply"
            ))),
        },
    }
}

/// Inputs turned into JSON values once per render, so that resolution can borrow them.
#[derive(Debug)]
pub struct Derived {
    pub env_name: Value,
    pub env_namespace: Value,
    pub git_sha: Value,
    pub git_short_sha: Value,
    pub images: std::collections::BTreeMap<String, DerivedImage>,
}

#[derive(Debug)]
pub struct DerivedImage {
    pub reference: Value,
    pub repository: Value,
    pub tag: Value,
    pub digest: Value,
}

impl Derived {
    pub fn new(inputs: &RenderInputs) -> Derived {
        Derived {
            env_name: Value::String(inputs.environment.clone()),
            env_namespace: Value::String(inputs.namespace.clone()),
            git_sha: Value::String(inputs.git_sha.clone()),
            git_short_sha: Value::String(crate::git::short_sha(&inputs.git_sha).to_string()),
            images: inputs
                .images
                .iter()
                .map(|(app, image)| {
                    (
                        app.clone(),
                        DerivedImage {
                            reference: Value::String(image.reference()),
                            repository: Value::String(image.repository.clone()),
                            tag: Value::String(image.tag.clone()),
                            digest: image
                                .digest
                                .clone()
                                .map(Value::String)
                                .unwrap_or(Value::Null),
                        },
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_segments_and_escapes() {
        assert_eq!(parse("plain").unwrap(), None);
        let segments = parse("a-${values.x}-$${literal}").unwrap().unwrap();
        assert_eq!(
            segments,
            vec![
                Segment::Text("a-".into()),
                Segment::Placeholder {
                    expression: "values.x",
                    offset: 2,
                    raw: "${values.x}"
                },
                Segment::Text("-${literal}".into()),
            ]
        );
        assert_eq!(
            parse("$${x}").unwrap().unwrap(),
            vec![Segment::Text("${x}".into())]
        );
        assert!(
            parse("${values.x")
                .unwrap_err()
                .message
                .contains("unterminated")
        );
        assert!(parse("${}").unwrap_err().message.contains("empty"));
        assert!(
            parse("${a b}")
                .unwrap_err()
                .message
                .contains("invalid placeholder")
        );
    }

    #[test]
    fn shell_variables_are_foreign_and_gitship_paths_are_not() {
        for (expression, name) in [
            ("FRONTEND_ADDR", "FRONTEND_ADDR"),
            ("HOME", "HOME"),
            ("statuscode", "statuscode"),
            ("Values", "Values"),
            ("value", "value"),
            ("_x1", "_x1"),
            ("1", "1"),
            ("@", "@"),
            ("HOME:-/root", "HOME"),
            ("NAME:?required", "NAME"),
            ("#PATH", "PATH"),
            ("!REF", "REF"),
            ("FILE%.yaml", "FILE"),
            ("LIST[@]", "LIST"),
            ("my-app", "my"),
        ] {
            assert_eq!(foreign_variable(expression), Some(name), "{expression}");
        }
        for expression in [
            "values",
            "env",
            "git",
            "images",
            "terraform",
            "values.x",
            "Values.x",
            "value.x",
            "image.api",
            "imagse.api",
            "terrafrom.db",
            "HOME.dir",
            "values:-x",
            "9lives",
            "a b",
            "",
        ] {
            assert_eq!(foreign_variable(expression), None, "{expression}");
        }
    }

    #[test]
    fn foreign_placeholders_are_kept_as_written() {
        let segments = parse("echo ${FRONTEND_ADDR} $(date) ${values.x} ${HOME:-/}")
            .unwrap()
            .unwrap();
        assert_eq!(
            segments,
            vec![
                Segment::Text("echo ".into()),
                Segment::Foreign {
                    offset: 5,
                    raw: "${FRONTEND_ADDR}"
                },
                Segment::Text(" $(date) ".into()),
                Segment::Placeholder {
                    expression: "values.x",
                    offset: 30,
                    raw: "${values.x}"
                },
                Segment::Text(" ".into()),
                Segment::Foreign {
                    offset: 42,
                    raw: "${HOME:-/}"
                },
            ]
        );
        // `$(...)` is never a placeholder.
        assert_eq!(parse("STATUS=$(wget -q -O- x)").unwrap(), None);
    }
}
