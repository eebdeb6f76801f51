//! User-facing errors: what went wrong, where (file:line:column, environment) and a hint.
//!
//! Errors render as `error: ...`, then one `  caused by: ...` per underlying cause, then
//! `hint: ...` (lowercase, no trailing period, literals in backticks). Every stage's error is a
//! thiserror enum that implements [`StageError`] (its hint and exit-code class), and
//! [`user_error`] is the one way from a stage error to the `anyhow` chain the user sees. A
//! [`UserError`] anywhere in the chain contributes its hint and its exit-code class.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location {
            file: file.into(),
            line,
            column,
        }
    }

    /// The location with its file shown relative to `base` when it lies below it.
    pub fn relative_to(&self, base: &Path) -> Location {
        let file = self
            .file
            .strip_prefix(base)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| self.file.clone());
        Location {
            file,
            line: self.line,
            column: self.column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// How an error maps to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input or a failed stage: exit 1.
    Failure,
    /// The command line itself was wrong: exit 64.
    Usage,
    /// Interrupted by SIGINT/SIGTERM: exit 130.
    Interrupted,
}

/// An error meant for a person: a message, an optional hint, and its exit-code class.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
    pub class: ErrorClass,
}

impl UserError {
    /// Bad input (exit 1) with a hint.
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: Some(hint.into()),
            class: ErrorClass::Failure,
        }
    }

    /// Bad input (exit 1) without a hint.
    pub fn bare(message: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: None,
            class: ErrorClass::Failure,
        }
    }

    /// A usage error (exit 64) with a hint.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: Some(hint.into()),
            class: ErrorClass::Usage,
        }
    }

    /// The run was interrupted (exit 130).
    pub fn interrupted() -> Self {
        UserError {
            message: "interrupted".into(),
            hint: None,
            class: ErrorClass::Interrupted,
        }
    }
}

/// The error type of a stage (`repo`, `render`, `image`, `terraform`, `kube`): what the user can
/// do about it, and how it maps to an exit code.
pub trait StageError: std::error::Error + Send + Sync + Sized + 'static {
    /// What the user can do about it, when there is something useful to say.
    fn hint(&self) -> Option<String>;

    /// Its exit-code class; most stage errors are failures (exit 1).
    fn class(&self) -> ErrorClass {
        ErrorClass::Failure
    }
}

/// The one way from a stage error to the user's error chain: the error's own message on top,
/// carrying its hint and class, its sources below as `caused by` lines. An interruption becomes
/// the plain `interrupted` error (exit 130).
pub fn user_error<E: StageError>(error: E) -> anyhow::Error {
    let class = error.class();
    if class == ErrorClass::Interrupted {
        return UserError::interrupted().into();
    }
    let message = error.to_string();
    let hint = error.hint();
    anyhow::Error::from(error).context(UserError {
        message,
        hint,
        class,
    })
}

/// The exit-code class of an error chain: the first [`UserError`] found decides.
pub fn class_of(err: &anyhow::Error) -> ErrorClass {
    find_user_error(err)
        .map(|u| u.class)
        .unwrap_or(ErrorClass::Failure)
}

/// The outermost [`UserError`] of a chain, whether it was the error itself, a `.context(...)`
/// layer (which `chain()` items do not expose), or a wrapped source.
fn find_user_error(err: &anyhow::Error) -> Option<&UserError> {
    err.downcast_ref::<UserError>()
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<UserError>()))
}

/// Render an error chain as `error: ...` / `  caused by: ...` / `hint: ...` lines.
pub fn render(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut seen: Vec<String> = Vec::new();
    let hint = find_user_error(err).and_then(|u| u.hint.clone());
    for (index, cause) in err.chain().enumerate() {
        let text = cause.to_string();
        // A cause already said (alone, or inside an outer message) is not said again.
        if seen.iter().any(|s| s.contains(text.trim())) {
            continue;
        }
        if index == 0 {
            out.push_str("error: ");
            out.push_str(&indent_continuation(&text, "  "));
        } else {
            out.push_str("\n  caused by: ");
            out.push_str(&indent_continuation(&text, "    "));
        }
        seen.push(text);
    }
    if let Some(hint) = hint {
        out.push_str("\nhint: ");
        out.push_str(&indent_continuation(&hint, "  "));
    }
    out
}

fn indent_continuation(text: &str, indent: &str) -> String {
    text.trim_end().replace('\n', &format!("\n{indent}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_chain_and_hint() {
        let err = anyhow::Error::from(std::io::Error::other("disk on fire")).context(
            UserError::new("cannot read `config/prod.yaml`", "check the file exists"),
        );
        assert_eq!(
            render(&err),
            "error: cannot read `config/prod.yaml`\n  caused by: disk on fire\nhint: check the file exists"
        );
        assert_eq!(class_of(&err), ErrorClass::Failure);
    }

    #[test]
    fn causes_already_said_are_not_repeated() {
        let err = anyhow::Error::from(std::io::Error::other("client error (Connect)"))
            .context("discovery failed: client error (Connect)")
            .context(UserError::new(
                "cannot reach the cluster: client error (Connect)",
                "check the kubeconfig",
            ));
        assert_eq!(
            render(&err),
            "error: cannot reach the cluster: client error (Connect)\n  caused by: discovery failed: client error (Connect)\nhint: check the kubeconfig"
        );
    }

    #[test]
    fn usage_class_is_found_anywhere() {
        let err = anyhow::Error::from(UserError::usage("bad flag", "see --help")).context("outer");
        assert_eq!(class_of(&err), ErrorClass::Usage);
    }
}
