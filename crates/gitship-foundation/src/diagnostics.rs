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
        let text = match cause.downcast_ref::<kube::Error>() {
            Some(error) => kube_error_text(error),
            None => cause.to_string(),
        };
        // A cause already said (alone, or inside an outer message) is not said again; nor is
        // an API status whose message was said, with its reason after it (`...: Invalid`).
        let said = text.trim();
        let message = said
            .rsplit_once(": ")
            .filter(|(_, reason)| {
                reason.chars().next().is_some_and(char::is_uppercase)
                    && reason.chars().all(char::is_alphanumeric)
            })
            .map_or(said, |(message, _)| message);
        if seen.iter().any(|s| s.contains(said) || s.contains(message)) {
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

/// An error and its sources on one line, each source said once (HTTP clients such as reqwest
/// keep the useful part, "connection refused", in a source).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A Kubernetes client error in words: the server's message and code for an API error (the
/// client's own text of one appends its Rust debug form, `Status { status: Some(Failure), ...`,
/// which no one should read in a log, an Event or `/status`), the error itself otherwise.
pub fn kube_error_text(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} ({})", status.message, status.code)
        }
        kube::Error::Api(status) => format!("{} ({})", status.reason, status.code),
        other => other.to_string(),
    }
}

fn indent_continuation(text: &str, indent: &str) -> String {
    text.trim_end().replace('\n', &format!("\n{indent}"))
}

/// GitHub Actions annotations: when enabled (by `commands` under `GITHUB_ACTIONS=true`, for the
/// commands whose errors point into the repository), every error is also printed as
/// `::error file=...,line=...,col=...::message` workflow commands, one per located problem, so
/// that it shows on the pull request's diff. The value is the `-C` directory the errors' paths
/// are relative to (`None`: the current directory).
static GITHUB_ANNOTATIONS: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// Turn GitHub annotations on for this process; `repo` is the `-C` directory, if any.
pub fn enable_github_annotations(repo: Option<&Path>) {
    let _ = GITHUB_ANNOTATIONS.set(repo.map(Path::to_path_buf));
}

/// Whether GitHub annotations are on, and the directory the errors' paths are relative to.
pub fn github_annotations_base() -> Option<Option<&'static Path>> {
    GITHUB_ANNOTATIONS.get().map(|base| base.as_deref())
}

/// One problem with a place, found in an error's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedProblem {
    /// The file as the error names it (relative to the repository root, usually).
    pub file: String,
    pub line: usize,
    pub column: Option<usize>,
    pub message: String,
}

/// The problems of a rendered error (or any text) that start with a place: every line of the
/// form `FILE:LINE:COLUMN: message` or `FILE:LINE: message`, after an optional `error: ` or
/// `caused by: ` prefix. Every stage writes its [`Location`]s this way.
pub fn located_problems(text: &str) -> Vec<LocatedProblem> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line
                .strip_prefix("error: ")
                .or_else(|| line.strip_prefix("caused by: "))
                .unwrap_or(line);
            parse_located(line)
        })
        .collect()
}

/// The first `(FILE:LINE[:COLUMN])` in `text` (the error, or one of its causes): where the
/// object an error is about is declared.
fn object_location(text: &str) -> Option<LocatedProblem> {
    text.lines().find_map(|line| {
        let mut search = 0;
        while let Some(open) = line[search..].find('(') {
            let start = search + open + 1;
            let close = start + line[start..].find(')')?;
            if let Some(place) = parse_located(&format!("{}: -", &line[start..close])) {
                return Some(place);
            }
            search = start;
        }
        None
    })
}

fn parse_located(line: &str) -> Option<LocatedProblem> {
    let digits = |text: &str| text.bytes().take_while(u8::is_ascii_digit).count();
    let mut search = 0;
    while let Some(offset) = line[search..].find(':') {
        let colon = search + offset;
        let file = &line[..colon];
        let after = &line[colon + 1..];
        let line_digits = digits(after);
        if line_digits > 0
            && !file.is_empty()
            && !file.contains(char::is_whitespace)
            && !file.contains('`')
            && let Some(rest) = after[line_digits..].strip_prefix(':')
            && let Ok(line_number) = after[..line_digits].parse::<usize>()
        {
            let column_digits = digits(rest);
            let (column, message) = match rest[column_digits..].strip_prefix(':') {
                Some(message) if column_digits > 0 => {
                    (rest[..column_digits].parse::<usize>().ok(), message)
                }
                _ => (None, rest),
            };
            return Some(LocatedProblem {
                file: file.to_string(),
                line: line_number,
                column,
                message: message.trim().to_string(),
            });
        }
        search = colon + 1;
    }
    None
}

/// The `::error` workflow commands for a rendered error: one per located problem (its file made
/// relative to `GITHUB_WORKSPACE`, or else the current directory, through `base`, the `-C`
/// directory), or one for the whole text when none has a place.
pub fn github_annotations(text: &str, base: Option<&Path>) -> Vec<String> {
    let mut problems = located_problems(text);
    if problems.is_empty() {
        let message = text.trim().strip_prefix("error: ").unwrap_or(text.trim());
        // An object's error names where it is declared: `Service web/svc (FILE:LINE:COL): ...`.
        match object_location(message) {
            Some(place) => problems.push(LocatedProblem {
                message: message.to_string(),
                ..place
            }),
            None => return vec![format!("::error::{}", escape_data(message))],
        }
    }
    problems
        .iter()
        .map(|problem| {
            let mut properties = format!(
                "file={},line={}",
                escape_property(&workspace_relative(&problem.file, base)),
                problem.line
            );
            if let Some(column) = problem.column {
                properties.push_str(&format!(",col={column}"));
            }
            format!("::error {properties}::{}", escape_data(&problem.message))
        })
        .collect()
}

/// `file` (as an error names it, relative to `base`, the `-C` directory, when relative) as CI
/// systems want it: relative to `GITHUB_WORKSPACE` when set, else to the current directory (the
/// checkout, in CI), when it lies below; else as it is.
pub fn workspace_relative(file: &str, base: Option<&Path>) -> String {
    let path = Path::new(file);
    let joined = match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_path_buf(),
    };
    let mut roots: Vec<PathBuf> = crate::ci::workspace().into_iter().collect();
    roots.extend(std::env::current_dir().ok());
    let absolute = std::path::absolute(&joined).unwrap_or_else(|_| joined.clone());
    let canonical = absolute.canonicalize().ok();
    for root in &roots {
        let canonical_root = root.canonicalize().ok();
        let candidates = [
            absolute.strip_prefix(root).ok(),
            canonical
                .as_deref()
                .zip(canonical_root.as_deref())
                .and_then(|(file, root)| file.strip_prefix(root).ok()),
        ];
        if let Some(relative) = candidates.into_iter().flatten().next() {
            return relative.display().to_string();
        }
    }
    joined.display().to_string()
}

/// A workflow command's message, escaped as GitHub documents (`%`, `\r`, `\n`).
pub(crate) fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: [`escape_data`] plus `:` and `,`.
pub(crate) fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_located_problems() {
        let text = "error: 2 problems in the manifests of environment `staging`:\n  infrastructure/kubernetes/app.yaml:6:13: `${values.nope}`: `values.nope` is not defined\n  main.tf:4: bad block\nhint: see localhost:5000/x and https://example.com:443/a";
        assert_eq!(
            located_problems(text),
            vec![
                LocatedProblem {
                    file: "infrastructure/kubernetes/app.yaml".into(),
                    line: 6,
                    column: Some(13),
                    message: "`${values.nope}`: `values.nope` is not defined".into(),
                },
                LocatedProblem {
                    file: "main.tf".into(),
                    line: 4,
                    column: None,
                    message: "bad block".into(),
                },
            ]
        );
        assert_eq!(
            located_problems("error: config/staging.yaml:3:1: unknown key `registy`")[0].file,
            "config/staging.yaml"
        );
    }

    #[test]
    fn an_objects_error_is_annotated_at_its_declaration() {
        let lines = github_annotations(
            "error: Service web/svc (k8s/svc.yaml:3:1): Service \"svc\" is invalid: port 99999 (422)",
            None,
        );
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("::error file=k8s/svc.yaml,line=3,col=1::Service web/svc"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn annotations_are_escaped() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
        let lines =
            github_annotations("error: dir,x/a.yaml:2:3: bad: 100%", Some(Path::new("sub")));
        assert_eq!(
            lines,
            vec!["::error file=sub/dir%2Cx/a.yaml,line=2,col=3::bad: 100%25"]
        );
        let lines = github_annotations("error: cannot reach the cluster\nhint: check it", None);
        assert_eq!(
            lines,
            vec!["::error::cannot reach the cluster%0Ahint: check it"]
        );
    }

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

    #[test]
    fn kubernetes_api_errors_read_as_the_servers_message() {
        let status = kube::core::Status::failure("configmaps \"x\" is forbidden", "Forbidden")
            .with_code(403);
        let error = anyhow::Error::new(kube::Error::Api(Box::new(status)))
            .context("cannot publish the agent's status");
        let text = render(&error);
        assert!(
            text.contains("configmaps \"x\" is forbidden (403)"),
            "{text}"
        );
        assert!(
            !text.contains("Status {") && !text.contains("Some("),
            "{text}"
        );
    }
}
