//! Reading gitship's YAML configs (`config/<env>.yaml`, `gitship.yaml`, a release of
//! `kubernetes.helm`): typed access to the nodes, with errors that name the file, line and key.

use std::path::Path;
use std::time::Duration;

use crate::repo::RepoError;
use crate::repo::yaml::{Node, NodeKind, YamlError};
use gitship_foundation::diagnostics::Location;

/// Whether `name` is a DNS label (RFC 1123): lowercase alphanumerics and `-`, 1 to 63 characters,
/// starting and ending alphanumeric.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The value of `key` in a mapping's entries.
pub(crate) fn find<'n>(entries: &'n [(Node, Node)], key: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|(k, _)| k.as_scalar() == Some(key))
        .map(|(_, v)| v)
}

/// Typed access to config nodes with errors that name the file, line and key.
pub(crate) struct Reader<'a> {
    pub file: &'a Path,
}

impl Reader<'_> {
    pub(crate) fn location(&self, node: &Node) -> Location {
        Location::new(self.file, node.line, node.column)
    }

    pub fn syntax(&self, err: YamlError) -> RepoError {
        RepoError::Syntax {
            location: Location::new(self.file, err.line, err.column),
            message: err.message,
        }
    }

    pub fn invalid(&self, node: &Node, key: &str, message: String) -> RepoError {
        RepoError::InvalidValue {
            location: self.location(node),
            key: key.to_string(),
            message,
        }
    }

    /// The entries of a mapping node (`null` counts as empty).
    pub fn mapping<'n>(&self, node: &'n Node, path: &str) -> Result<&'n [(Node, Node)], RepoError> {
        match &node.kind {
            NodeKind::Mapping(entries) => Ok(entries),
            _ if node.is_null() => Ok(&[]),
            _ => Err(self.invalid(
                node,
                if path.is_empty() { "(top level)" } else { path },
                format!("expected a mapping, found {}", node.type_name()),
            )),
        }
    }

    /// Reject keys outside `allowed`, with a did-you-mean hint.
    pub fn check_keys(
        &self,
        entries: &[(Node, Node)],
        path: &str,
        allowed: &[&str],
    ) -> Result<(), RepoError> {
        for (key, _) in entries {
            let name = key.as_scalar().unwrap_or_default();
            if !allowed.contains(&name) {
                return Err(RepoError::UnknownKey {
                    location: self.location(key),
                    key: if path.is_empty() {
                        name.to_string()
                    } else {
                        format!("{path}.{name}")
                    },
                    suggestion: super::did_you_mean(name, allowed.iter().copied()).map(|s| {
                        if path.is_empty() {
                            s
                        } else {
                            format!("{path}.{s}")
                        }
                    }),
                    allowed: allowed.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
        Ok(())
    }

    pub fn string(&self, node: &Node, path: &str) -> Result<String, RepoError> {
        match node.to_json() {
            serde_json::Value::String(text) => Ok(text),
            serde_json::Value::Number(number) if matches!(node.kind, NodeKind::Scalar { .. }) => {
                Ok(number.to_string())
            }
            _ => Err(self.invalid(
                node,
                path,
                format!("expected a string, found {}", node.type_name()),
            )),
        }
    }

    pub fn boolean(&self, node: &Node, path: &str) -> Result<bool, RepoError> {
        node.to_json().as_bool().ok_or_else(|| {
            self.invalid(
                node,
                path,
                format!("expected `true` or `false`, found {}", node.type_name()),
            )
        })
    }

    /// [`Reader::duration`] for a duration that must not be zero (a timeout, an interval).
    pub fn positive_duration(&self, node: &Node, path: &str) -> Result<Duration, RepoError> {
        let duration = self.duration(node, path)?;
        if duration.is_zero() {
            return Err(self.invalid(
                node,
                path,
                "the duration is zero: give at least `1s` (e.g. `90s`, `5m`)".to_string(),
            ));
        }
        Ok(duration)
    }

    pub fn duration(&self, node: &Node, path: &str) -> Result<Duration, RepoError> {
        let text = self.string(node, path)?;
        gitship_foundation::duration::parse(&text).map_err(|err| {
            self.invalid(
                node,
                path,
                match err {
                    gitship_foundation::duration::DurationError::Invalid => format!(
                        "invalid duration `{text}`: use a number with a unit, e.g. `90s`, `5m`, `1h30m`"
                    ),
                    gitship_foundation::duration::DurationError::TooLong => {
                        format!("the duration `{text}` is {err}")
                    }
                },
            )
        })
    }
}
