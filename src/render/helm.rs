//! Helm: the charts an environment names in `kubernetes.helm` ([`crate::repo::helm`]) are
//! rendered with the real `helm template`, and their output joins the environment's other
//! objects (waves, server-side apply, prune and drift treat them alike).
//!
//! Before helm runs: every dependency of the chart must be vendored in its `charts/`
//! directory (gitship never lets helm reach a network: no `--dependency-update`, and helm's
//! cache, config and data directories are a private temporary directory); each values file is
//! templated with the environment's `${values.x}`, `${terraform.y}` and `${images.app}` and
//! written, 0600, into that private directory (a sensitive Terraform output is refused there: a
//! chart may put a value anywhere, and only a Secret's data may hold one). helm's output is then
//! parsed and normalised like kustomize's (namespace, gitship's labels, identity checks), without
//! a second templating pass; each object's source is the chart's template that helm names in its
//! `# Source:` comment, as a path of the repository.
//!
//! The program: `gitship.yaml` `helm.binary`, else `helm` on `PATH`. It runs through
//! [`gitship_foundation::process::Process`], never a shell.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::program::{on_path, run_blocking};
use super::template::Derived;
use super::{
    DocumentState, LeftLiteral, RenderError, RenderInputs, RenderOutput, Renderer, UnknownOutputs,
    emit,
};
use crate::repo::helm::{CHART_FILE, HelmRelease, MissingDependency};
use crate::repo::{Repository, yaml};
use gitship_foundation::diagnostics::Location;
use gitship_foundation::process::{Process, ProcessError};

/// Errors of rendering a Helm chart.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// No helm program to run.
    #[error("{what} needs helm, but {}", not_found(configured))]
    NotFound {
        /// What needed it: the chart, or a kustomization's `helmCharts`.
        what: String,
        /// `helm.binary` from `gitship.yaml`, when set.
        configured: Option<String>,
    },
    /// Dependencies of the chart are not vendored in its `charts/` directory.
    #[error("{}", missing_message(chart, missing))]
    MissingDependencies {
        /// The chart, relative to the repository root.
        chart: PathBuf,
        missing: Vec<MissingDependency>,
    },
    /// helm ran and failed; `message` is its stderr with the chart's paths as the repository's.
    #[error("{}helm could not render the chart `{}` (`{command}`): {message}", location_prefix(location), chart.display())]
    Failed {
        chart: PathBuf,
        command: String,
        /// The template helm names in its error, when it does.
        location: Option<Location>,
        message: String,
    },
    /// helm could not be run or was interrupted.
    #[error("cannot run helm for the chart `{}`", chart.display())]
    Run {
        chart: PathBuf,
        #[source]
        source: Box<ProcessError>,
    },
    /// The private directory (templated values files, helm's homes) could not be written.
    #[error("cannot write the values of the chart `{}` into a private directory", chart.display())]
    Private {
        chart: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn not_found(configured: &Option<String>) -> String {
    match configured {
        Some(program) => format!("`{program}` (`helm.binary` in `gitship.yaml`) was not found"),
        None => "`helm` was not found on `PATH`".into(),
    }
}

fn missing_message(chart: &Path, missing: &[MissingDependency]) -> String {
    let mut text = format!(
        "the chart `{}` needs dependencies that are not vendored in its `charts/` directory (gitship never downloads them):",
        chart.display()
    );
    for dependency in missing {
        text.push_str(&format!("\n`{}`", dependency.name));
        if let Some(version) = &dependency.version {
            text.push_str(&format!(" {version}"));
        }
        if let Some(repository) = &dependency.repository {
            text.push_str(&format!(" from `{repository}`"));
        }
        text.push_str(&format!(
            " (declared in `{}`)",
            dependency.chart.join(CHART_FILE).display()
        ));
    }
    text
}

fn location_prefix(location: &Option<Location>) -> String {
    location
        .as_ref()
        .map(|location| format!("{location}: "))
        .unwrap_or_default()
}

impl HelmError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            HelmError::NotFound { configured: Some(_), .. } => Some(
                "fix `helm.binary` in `gitship.yaml`, or remove it to use `helm` from `PATH`".into(),
            ),
            HelmError::NotFound { configured: None, .. } => Some(
                "install helm (https://helm.sh/docs/intro/install/) or name the program with `helm.binary` in `gitship.yaml`".into(),
            ),
            HelmError::MissingDependencies { chart, .. } => Some(format!(
                "vendor them: run `helm dependency build {}` once and commit `{}/charts/`",
                chart.display(),
                chart.display()
            )),
            HelmError::Failed { chart, .. } => Some(format!(
                "fix the chart or its values; `helm template {}` shows the same error (without gitship's values)",
                chart.display()
            )),
            HelmError::Run { .. } | HelmError::Private { .. } => None,
        }
    }
}

impl From<HelmError> for RenderError {
    fn from(error: HelmError) -> RenderError {
        RenderError::Helm(Box::new(error))
    }
}

/// The helm program: `helm.binary` of `gitship.yaml` (a path is relative to the repository
/// root), else `helm` on `PATH`; `None` when there is none.
pub fn program(repo: &Repository) -> Option<PathBuf> {
    match &repo.layout.helm_binary {
        Some(configured) if configured.contains('/') => {
            Some(repo.root.join(configured)).filter(|path| path.is_file())
        }
        Some(configured) => on_path(configured),
        None => on_path("helm"),
    }
}

/// Point helm's cache, config and data directories into `home` (private, temporary): no
/// repository index, plugin or credential of the user's is read, and nothing is downloaded.
pub fn private_homes(process: Process, home: &Path) -> Process {
    process
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
}

/// Render the chart of `release` for the environment named `environment`.
pub(super) fn render(
    repo: &Repository,
    environment: &str,
    release: &HelmRelease,
    inputs: &RenderInputs,
    unknown_outputs: UnknownOutputs,
) -> Result<RenderOutput, RenderError> {
    let chart = repo.relative(&release.chart_dir);
    let missing = crate::repo::helm::missing_dependencies(&repo.root, &release.chart_dir)?;
    if !missing.is_empty() {
        return Err(HelmError::MissingDependencies { chart, missing }.into());
    }
    let private = |source| HelmError::Private {
        chart: chart.clone(),
        source,
    };
    let home = tempfile::Builder::new()
        .prefix("gitship-helm-")
        .tempdir()
        .map_err(private)?;
    let (values, left_literal) = template_values(
        repo,
        environment,
        release,
        inputs,
        unknown_outputs,
        home.path(),
    )?;
    let namespace = release.namespace.as_deref().unwrap_or(&inputs.namespace);
    let text = run(repo, release, namespace, &values, home.path())?;
    let mut release_inputs = inputs.clone();
    release_inputs.namespace = namespace.to_string();
    let mut output = objects(
        repo,
        environment,
        release,
        &text,
        &release_inputs,
        unknown_outputs,
    )?;
    output.notes.left_literal = left_literal;
    Ok(output)
}

/// Run `helm template` for `release` in `namespace` with the templated `values`, its homes in
/// `home`; its stdout.
fn run(
    repo: &Repository,
    release: &HelmRelease,
    namespace: &str,
    values: &[ValuesFile],
    home: &Path,
) -> Result<String, HelmError> {
    let chart = repo.relative(&release.chart_dir);
    let helm = program(repo).ok_or_else(|| HelmError::NotFound {
        what: format!("the chart `{}`", chart.display()),
        configured: repo.layout.helm_binary.clone(),
    })?;
    let (process, command) = command(&helm, release, &chart, namespace, values);
    let process = private_homes(process, home).cwd(home);
    let output = run_blocking(&process).map_err(|error| match error {
        ProcessError::Failed { output, .. } => failed(
            repo,
            release,
            chart.clone(),
            command,
            values,
            &output.stderr_text(),
        ),
        source => HelmError::Run {
            chart: chart.clone(),
            source: Box::new(source),
        },
    })?;
    Ok(output.stdout_text())
}

/// `helm template RELEASE CHART --namespace NS --include-crds --skip-tests -f VALUES...`.
fn command(
    helm: &Path,
    release: &HelmRelease,
    chart: &Path,
    namespace: &str,
    values: &[ValuesFile],
) -> (Process, String) {
    let mut process = Process::new(helm.to_string_lossy())
        .args(["template", release.release.as_str()])
        .arg(&release.chart_dir)
        .args(["--namespace", namespace, "--include-crds", "--skip-tests"])
        .inherit_env(|key| matches!(key, "PATH" | "TMPDIR"));
    let mut shown = format!(
        "helm template {} {} --namespace {namespace} --include-crds --skip-tests",
        release.release,
        chart.display()
    );
    for (written, original) in values {
        process = process.arg("-f").arg(written);
        shown.push_str(&format!(" -f {}", original.display()));
    }
    (process, shown)
}

/// A values file templated into the private directory: (the file written, the repository's
/// file it was templated from).
type ValuesFile = (PathBuf, PathBuf);

/// Each values file of `release` templated into `home` (0600), as (written file, the file as
/// the repository names it); and the other tools' `${...}` left as written.
fn template_values(
    repo: &Repository,
    environment: &str,
    release: &HelmRelease,
    inputs: &RenderInputs,
    unknown_outputs: UnknownOutputs,
    home: &Path,
) -> Result<(Vec<ValuesFile>, Vec<LeftLiteral>), RenderError> {
    let derived = Derived::new(inputs);
    let mut renderer = Renderer::new(inputs, &derived, unknown_outputs, false);
    let mut written = Vec::with_capacity(release.values_files.len());
    for (index, file) in release.values_files.iter().enumerate() {
        let shown = repo.relative(file);
        let text = crate::repo::files::read_text(&repo.root, file)?;
        let templated = template_values_file(&mut renderer, &shown, &text);
        let target = home.join(format!("values-{index}.yaml"));
        gitship_foundation::private_file::create_new(&target, 0o600)
            .map_err(std::io::Error::other)
            .and_then(|mut out| out.write_all(templated.as_bytes()))
            .map_err(|source| HelmError::Private {
                chart: repo.relative(&release.chart_dir),
                source,
            })?;
        written.push((target, shown));
    }
    if !renderer.problems.is_empty() {
        let mut problems = renderer.problems;
        problems.sort_by(|a, b| a.location.cmp(&b.location));
        return Err(RenderError::Problems {
            environment: environment.to_string(),
            problems,
        });
    }
    Ok((written, renderer.left_literal))
}

/// A values file with its placeholders resolved, as YAML; problems go to the renderer.
fn template_values_file(renderer: &mut Renderer, file: &Path, text: &str) -> String {
    let root = match yaml::parse_single(text) {
        Ok(Some(root)) if !root.is_null() => root,
        Ok(_) => return String::new(),
        Err(err) => {
            let at = Location::new(file, err.line, err.column);
            renderer.problem(at, format!("invalid YAML: {}", err.message), false);
            return String::new();
        }
    };
    let mut state = DocumentState::new(file, text);
    let values = renderer.node(&root, &mut state);
    for (output, at, _) in std::mem::take(&mut state.sensitive_uses) {
        renderer.problem(
            at,
            format!("the sensitive Terraform output `{output}` cannot be given to a Helm chart, which may put it anywhere; declare a Secret manifest with it and let the chart refer to that Secret"),
            false,
        );
    }
    let mut out = String::with_capacity(text.len());
    emit::write_document(&mut out, &values);
    out
}

/// helm's error, its paths shown as the repository's (the chart's name in helm's paths is the
/// chart's directory; a written values file is the file it was templated from).
fn failed(
    repo: &Repository,
    release: &HelmRelease,
    chart: PathBuf,
    command: String,
    values: &[ValuesFile],
    stderr: &str,
) -> HelmError {
    let mut message = stderr
        .lines()
        .map(|line| line.strip_prefix("Error: ").unwrap_or(line))
        .filter(|line| !line.starts_with("Use --debug flag"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string();
    for (written, original) in values {
        message = message.replace(
            written.to_string_lossy().as_ref(),
            original.to_string_lossy().as_ref(),
        );
    }
    let name = chart_name(repo, release);
    let message = repository_paths(&message, &name, &chart);
    let location = first_location(&message, &chart);
    HelmError::Failed {
        chart,
        command,
        location,
        message,
    }
}

/// The chart's `name` from its `Chart.yaml` (helm's paths start with it); the directory's name
/// when it cannot be read.
fn chart_name(repo: &Repository, release: &HelmRelease) -> String {
    let fallback = || {
        release
            .chart_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let Ok(text) = crate::repo::files::read_text(&repo.root, &release.chart_dir.join(CHART_FILE))
    else {
        return fallback();
    };
    match yaml::parse_single(&text) {
        Ok(Some(node)) => node
            .to_json()
            .get("name")
            .and_then(serde_json::Value::as_str)
            .map(String::from)
            .unwrap_or_else(fallback),
        _ => fallback(),
    }
}

/// `text` with each path helm gives as `NAME/...` (after a space, quote, parenthesis or at a
/// line's start) shown as `CHART_DIR/...`.
fn repository_paths(text: &str, name: &str, chart: &Path) -> String {
    let from = format!("{name}/");
    let to = format!("{}/", chart.display());
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&from) {
        let boundary = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| matches!(c, ' ' | '"' | '(' | '\n' | '\'' | '`'));
        out.push_str(&rest[..at]);
        out.push_str(if boundary { &to } else { &from });
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

/// The first `CHART_DIR/...:LINE[:COLUMN]` in `message`.
fn first_location(message: &str, chart: &Path) -> Option<Location> {
    let prefix = format!("{}/", chart.display());
    let start = message.find(&prefix)?;
    let rest = &message[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | ','))
        .unwrap_or(rest.len());
    let mut parts = rest[..end].trim_end_matches(':').split(':');
    let file = parts.next()?;
    let line = parts.next()?.parse().ok()?;
    let column = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
    Some(Location::new(file, line, column))
}

/// helm's output as objects: each document parsed under the template it came from (`# Source:
/// NAME/templates/x.yaml` as `CHART_DIR/templates/x.yaml (helm output)`), normalised without
/// templating, each object's source its template in the repository.
fn objects(
    repo: &Repository,
    environment: &str,
    release: &HelmRelease,
    text: &str,
    inputs: &RenderInputs,
    unknown_outputs: UnknownOutputs,
) -> Result<RenderOutput, RenderError> {
    let chart = repo.relative(&release.chart_dir);
    let name = chart_name(repo, release);
    let mut sources = Vec::new();
    let mut templates = Vec::new();
    for document in split_documents(text) {
        let template = document
            .lines()
            .find_map(|line| line.strip_prefix("# Source: "))
            .map(|source| PathBuf::from(repository_paths(source.trim(), &name, &chart)))
            .unwrap_or_else(|| chart.clone());
        let display = PathBuf::from(format!("{} (helm output)", template.display()));
        sources.push((display, document.to_string()));
        templates.push(template);
    }
    let mut output =
        super::render_sources_with(environment, &sources, inputs, unknown_outputs, true)?;
    for manifest in &mut output.manifests {
        let shown = manifest.source.file.to_string_lossy();
        if let Some(template) = shown.strip_suffix(" (helm output)") {
            manifest.source = Location::new(template, 1, 1);
        }
    }
    Ok(output)
}

/// The documents of helm's output: split at each `---` line.
fn split_documents(text: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            documents.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    documents.push(&text[start..]);
    documents
        .into_iter()
        .filter(|document| {
            document
                .lines()
                .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_paths_become_the_repository_paths() {
        let chart = Path::new("charts/web");
        let message = "webapp/charts/common/templates/cm.yaml:7:15\n  executing \"webapp/charts/common/templates/cm.yaml\" at <.Values.x>: nil pointer";
        let shown = repository_paths(message, "webapp", chart);
        assert_eq!(
            shown,
            "charts/web/charts/common/templates/cm.yaml:7:15\n  executing \"charts/web/charts/common/templates/cm.yaml\" at <.Values.x>: nil pointer"
        );
        assert_eq!(
            first_location(&shown, chart).map(|l| l.to_string()),
            Some("charts/web/charts/common/templates/cm.yaml:7:15".into())
        );
        let parse = repository_paths(
            "parse error at (webapp/templates/bad.yaml:1): missing value for if",
            "webapp",
            chart,
        );
        assert_eq!(
            first_location(&parse, chart).map(|l| l.to_string()),
            Some("charts/web/templates/bad.yaml:1:1".into())
        );
        let yaml = repository_paths(
            "YAML parse error on webapp/templates/bad.yaml: error converting YAML to JSON",
            "webapp",
            chart,
        );
        assert!(yaml.contains("on charts/web/templates/bad.yaml:"), "{yaml}");
        assert_eq!(first_location(&yaml, chart), None);
        // Not a path of the chart: left alone.
        assert_eq!(
            repository_paths("mywebapp/x", "webapp", chart),
            "mywebapp/x"
        );
    }

    #[test]
    fn values_files_are_templated_and_sensitive_outputs_refused() {
        let inputs = crate::render::tests::inputs();
        let derived = Derived::new(&inputs);
        let mut renderer = Renderer::new(&inputs, &derived, UnknownOutputs::Error, false);
        let text = "replicas: ${values.replicas}\nurl: ${terraform.url}\nimage: ${images.backend}\nevil: ${values.evil}\n";
        let file = Path::new("charts/web/values-dev.yaml");
        let written = template_values_file(&mut renderer, file, text);
        assert!(renderer.problems.is_empty(), "{:?}", renderer.problems);
        let values = yaml::parse_single(&written).unwrap().unwrap().to_json();
        assert_eq!(values["replicas"], 2);
        assert_eq!(values["url"], "postgres://db");
        assert_eq!(
            values["evil"], "\n  evil: true",
            "no YAML injected: {written}"
        );
        assert!(
            values["image"]
                .as_str()
                .is_some_and(|image| image.starts_with("r.example/backend:abc")),
            "{values}"
        );

        template_values_file(
            &mut renderer,
            file,
            "db:\n  password: ${terraform.password}\n",
        );
        assert_eq!(renderer.problems.len(), 1, "{:?}", renderer.problems);
        let problem = &renderer.problems[0];
        assert_eq!(
            problem.location.to_string(),
            "charts/web/values-dev.yaml:2:13"
        );
        assert!(
            problem.message.contains(
                "the sensitive Terraform output `password` cannot be given to a Helm chart"
            ),
            "{}",
            problem.message
        );
        assert!(!problem.message.contains("hunter2"));
    }

    #[test]
    fn documents_are_split_and_empty_ones_dropped() {
        let text = "---\n# Source: web/templates/a.yaml\nkind: A\n---\n# Source: web/templates/empty.yaml\n---\n# Source: web/templates/b.yaml\nkind: B\n";
        let documents = split_documents(text);
        assert_eq!(documents.len(), 2, "{documents:?}");
        assert!(documents[0].contains("kind: A"));
        assert!(documents[1].contains("kind: B"));
    }
}
