//! What can go wrong driving Terraform, as typed errors.
//!
//! Errors come from three places: the static checks gitship runs before Terraform (variables,
//! syntax), Terraform's own diagnostics (read from its `-json` output, never scraped from English
//! text when JSON exists), and the process itself (missing binary, interrupt). Every message is
//! built from redacted text: no sensitive value reaches an error.

use std::fmt;
use std::path::PathBuf;

use crate::terraform::binary::{BinaryKind, MINIMUM_VERSION, Version};
use gitship_foundation::diagnostics::{ErrorClass, Location, StageError};

/// A Terraform driver failure.
#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    /// The configured binary (`terraform` or `tofu`) could not be started.
    #[error("cannot run `{binary}`: {reason}")]
    BinaryMissing { binary: String, reason: String },

    /// The binary is older than the oldest version gitship supports.
    #[error("`{binary}` is {kind} {found}, but gitship needs {kind} >= {MINIMUM_VERSION}")]
    BinaryTooOld {
        binary: String,
        kind: BinaryKind,
        found: Version,
    },

    /// `version -json` printed something gitship does not understand.
    #[error("cannot read the version of `{binary}` from `{binary} version -json`: {detail}")]
    UnknownVersion { binary: String, detail: String },

    /// The module does not fit the environment's config (checked before Terraform runs).
    #[error("{}", render_static(environment, problems))]
    Static {
        environment: String,
        problems: Vec<StaticProblem>,
    },

    /// Terraform reported error diagnostics.
    #[error(
        "`{command}` failed for environment `{environment}`:{}",
        render_diagnostics(diagnostics)
    )]
    Diagnostics {
        command: String,
        environment: String,
        diagnostics: Vec<Diagnostic>,
    },

    /// Another run holds the state lock.
    #[error(
        "the Terraform state of environment `{environment}` is locked by another run (lock ID `{}`, held by {} since {})",
        lock.id,
        lock.who.as_deref().unwrap_or("an unknown holder"),
        lock.created.as_deref().unwrap_or("an unknown time")
    )]
    StateLocked {
        environment: String,
        /// `terraform` or `tofu`, for the `force-unlock` hint.
        binary: String,
        lock: Box<LockInfo>,
    },

    /// The saved plan no longer matches the state: something changed the state after planning.
    #[error(
        "the saved plan `{}` of environment `{environment}` is stale: the state changed after it was made",
        planfile.display()
    )]
    StalePlan {
        environment: String,
        planfile: PathBuf,
    },

    /// gitship was interrupted; Terraform was asked to stop (SIGINT) and given time to release
    /// its lock.
    #[error("`{command}` was interrupted (environment `{environment}`)")]
    Interrupted {
        command: String,
        environment: String,
    },

    /// A Terraform command failed without a diagnostic gitship could read.
    #[error(
        "`{command}` failed for environment `{environment}` ({status}){}",
        tail_suffix(stderr_tail)
    )]
    Failed {
        command: String,
        environment: String,
        status: String,
        stderr_tail: String,
    },

    /// Terraform printed JSON that does not have the expected shape.
    #[error("cannot read the output of `{command}`: {detail}")]
    UnexpectedOutput { command: String, detail: String },

    /// A `terraform.backend_config` key that cannot be written to a backend configuration file
    /// (Terraform reads those keys as HCL identifiers).
    #[error(
        "`terraform.backend_config` key `{key}` of environment `{environment}` is not a valid backend setting name"
    )]
    InvalidBackendConfigKey { environment: String, key: String },

    /// A file or directory gitship manages could not be read or written.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file of the environment's Terraform data directory could not be written, or gitship
    /// refused to write it ([`gitship_foundation::private_file`]: a symlink or a special file is there).
    #[error("cannot write Terraform's files for `{environment}`")]
    Write {
        environment: String,
        #[source]
        source: gitship_foundation::private_file::WriteError,
    },
}

impl StageError for TerraformError {
    /// A short suggestion of what to do next, when there is one.
    fn hint(&self) -> Option<String> {
        match self {
            TerraformError::BinaryMissing { binary, .. } => Some(format!(
                "install `{binary}` >= {MINIMUM_VERSION} and put it on PATH, or set `terraform.binary` in `gitship.yaml`"
            )),
            TerraformError::BinaryTooOld { binary, .. } => {
                Some(format!("upgrade `{binary}` to {MINIMUM_VERSION} or newer"))
            }
            TerraformError::Static { .. } => Some(
                "make `terraform.vars` in the environment config match the module's `variable` blocks".to_string(),
            ),
            TerraformError::StateLocked { lock, binary, .. } => Some(format!(
                "wait for the other run to finish; if it is gone for good, release the lock with \
                 `{binary} force-unlock {}` (same TF_DATA_DIR and workspace)",
                lock.id
            )),
            TerraformError::StalePlan { .. } => Some("run `gitship plan` again, then deploy the new plan".to_string()),
            TerraformError::Diagnostics { diagnostics, .. }
                if diagnostics.iter().any(|d| d.summary.contains("state migration")) =>
            {
                Some(
                    "Terraform found local state (`terraform.tfstate` or `terraform.tfstate.d/` in the module directory) \
                     that it wants to migrate into this environment's backend; gitship never migrates state: move that \
                     state away, or migrate it by hand with `terraform init -migrate-state`"
                        .to_string(),
                )
            }
            TerraformError::Interrupted { .. } => None,
            TerraformError::Write { source, .. } => source.hint(),
            TerraformError::InvalidBackendConfigKey { .. } => Some(
                "backend setting names are letters, digits, `_` and `-`, starting with a letter or `_`".to_string(),
            ),
            _ => None,
        }
    }

    /// The exit-code class (interrupts exit 130, everything else 1).
    fn class(&self) -> ErrorClass {
        match self {
            TerraformError::Interrupted { .. } => ErrorClass::Interrupted,
            _ => ErrorClass::Failure,
        }
    }
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(":\n{tail}")
    }
}

/// One problem found by the static checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StaticProblem {
    /// A variable without a default that the environment does not set.
    MissingVariable {
        name: String,
        /// The `variable` block (.tf file and line).
        declared_at: Location,
        /// Where the environment's `terraform.vars` (or the file) is.
        env_location: Location,
    },
    /// The environment sets a variable that the module does not declare.
    UndeclaredVariable {
        name: String,
        /// Where the environment sets it.
        env_location: Location,
        /// The module directory searched.
        module_dir: PathBuf,
        suggestion: Option<String>,
    },
    /// A `.tf` file that does not parse.
    Syntax { at: Location, message: String },
    /// A `.tf` file or the module directory that cannot be read.
    Unreadable { path: PathBuf, message: String },
}

impl fmt::Display for StaticProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaticProblem::MissingVariable {
                name,
                declared_at,
                env_location,
            } => write!(
                f,
                "required variable `{name}` (declared at {declared_at}) has no value in `terraform.vars` of {}",
                env_location
            ),
            StaticProblem::UndeclaredVariable {
                name,
                env_location,
                module_dir,
                suggestion,
            } => {
                write!(
                    f,
                    "variable `{name}` set at {env_location} is not declared by the module: no `variable \"{name}\"` block in any .tf file of `{}`",
                    module_dir.display()
                )?;
                if let Some(suggestion) = suggestion {
                    write!(f, " (did you mean `{suggestion}`?)")?;
                }
                Ok(())
            }
            StaticProblem::Syntax { at, message } => write!(f, "syntax error at {at}: {message}"),
            StaticProblem::Unreadable { path, message } => {
                write!(f, "cannot read `{}`: {message}", path.display())
            }
        }
    }
}

fn render_static(environment: &str, problems: &[StaticProblem]) -> String {
    let mut text = format!("the Terraform module does not fit environment `{environment}`");
    for problem in problems {
        text.push_str("\n  - ");
        text.push_str(&problem.to_string());
    }
    text
}

/// One diagnostic from Terraform's `-json` output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    /// `error` or `warning`.
    pub severity: String,
    pub summary: String,
    pub detail: String,
    /// The resource address the diagnostic is about, when Terraform says.
    pub address: Option<String>,
    /// Where in the module (file:line:column, file relative to the module directory's parent
    /// when possible).
    pub range: Option<Location>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary)?;
        if let Some(range) = &self.range {
            write!(f, "\n  at {range}")?;
        }
        if let Some(address) = &self.address {
            write!(f, "\n  resource {address}")?;
        }
        let detail = self.detail.trim();
        if !detail.is_empty() {
            for line in detail.lines() {
                f.write_str("\n  ")?;
                f.write_str(line)?;
            }
        }
        Ok(())
    }
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let mut text = String::new();
    for diagnostic in diagnostics {
        text.push_str("\n- ");
        text.push_str(&diagnostic.to_string().replace('\n', "\n  "));
    }
    text
}

/// Who holds a state lock, from the lock diagnostic.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockInfo {
    pub id: String,
    pub path: Option<String>,
    pub operation: Option<String>,
    pub who: Option<String>,
    pub version: Option<String>,
    pub created: Option<String>,
}

impl LockInfo {
    /// Read the `Lock Info:` block Terraform puts in the detail of its lock diagnostic (the JSON
    /// diagnostic carries it only as text). `None` when there is no lock ID in it.
    pub fn from_diagnostic_detail(detail: &str) -> Option<LockInfo> {
        let mut info = LockInfo::default();
        let mut in_block = false;
        for line in detail.lines() {
            if line.trim() == "Lock Info:" {
                in_block = true;
                continue;
            }
            if !in_block {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                if line.trim().is_empty() {
                    break;
                }
                continue;
            };
            let value = value.trim();
            let value = (!value.is_empty()).then(|| value.to_string());
            match key.trim() {
                "ID" => info.id = value.unwrap_or_default(),
                "Path" => info.path = value,
                "Operation" => info.operation = value,
                "Who" => info.who = value,
                "Version" => info.version = value,
                "Created" => info.created = value,
                _ => {}
            }
        }
        (!info.id.is_empty()).then_some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_info_is_read_from_the_diagnostic_detail() {
        let detail = "Error message: resource temporarily unavailable\nLock Info:\n  ID:        51ce4257-9ba4-32a3-e593-68f0aea3a3ec\n  Path:      terraform.tfstate.d/stag/terraform.tfstate\n  Operation: OperationTypeApply\n  Who:       root@vm\n  Version:   1.11.4\n  Created:   2026-11-26 13:16:52.967894621 +0000 UTC\n  Info:      \n\n\nTerraform acquires a state lock";
        let info = LockInfo::from_diagnostic_detail(detail).expect("lock info");
        assert_eq!(info.id, "51ce4257-9ba4-32a3-e593-68f0aea3a3ec");
        assert_eq!(info.who.as_deref(), Some("root@vm"));
        assert_eq!(info.operation.as_deref(), Some("OperationTypeApply"));
        assert_eq!(
            info.created.as_deref(),
            Some("2026-11-26 13:16:52.967894621 +0000 UTC")
        );
        assert!(LockInfo::from_diagnostic_detail("no lock here").is_none());
    }

    #[test]
    fn locked_error_names_id_holder_and_hint() {
        let error = TerraformError::StateLocked {
            environment: "staging".into(),
            binary: "terraform".into(),
            lock: Box::new(LockInfo {
                id: "abc".into(),
                who: Some("ci@runner".into()),
                ..LockInfo::default()
            }),
        };
        let text = error.to_string();
        assert!(
            text.contains("`abc`") && text.contains("ci@runner"),
            "{text}"
        );
        assert!(
            error
                .hint()
                .is_some_and(|hint| hint.contains("terraform force-unlock abc"))
        );
    }
}
