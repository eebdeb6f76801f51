//! kustomize: an environment's manifests directory holding a kustomization file
//! ([`KUSTOMIZATION_FILES`]) is built with the real kustomize.
//!
//! Templates still apply, to the sources: every YAML file of the tree kustomize may read (the
//! top-level directory of the repository that holds the manifests directory, without hidden
//! files and the apps, Terraform and config directories) is templated with
//! the same engine as plain manifests, so every problem keeps its `file:line:column`, and
//! written into a private temporary copy of that tree (other files copied as they are, files
//! matching `paths.exclude` too). kustomize builds the copy of the manifests directory; its
//! output is parsed and normalised like plain manifests (namespace, gitship's labels, identity
//! checks), without a second templating pass. kustomize's `originAnnotations` tell each object's
//! source file; gitship removes that annotation again unless the kustomization asked for it.
//!
//! The program: `gitship.yaml` `kustomize.binary`, else `kustomize` on `PATH` (`kustomize build
//! DIR`), else `kubectl kustomize DIR`. It runs through [`gitship_foundation::process::Process`], never a
//! shell. When helm is found ([`super::helm::program`]), kustomize gets `--enable-helm
//! --helm-command HELM` for `helmCharts:`; a chart directory in the tree is copied untemplated.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::program::{on_path, run_blocking};
use super::template::Derived;
use super::{
    DocumentState, RenderError, RenderInputs, RenderOutput, Renderer, UnknownOutputs, emit,
};
use crate::repo::files::KUSTOMIZATION_FILES;
use crate::repo::{Repository, files, yaml};
use gitship_foundation::diagnostics::Location;
use gitship_foundation::model::ObjectId;
use gitship_foundation::process::{Process, ProcessError, ProcessOutput};

/// The annotation kustomize writes with `buildMetadata: [originAnnotations]`.
const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";

/// How deep the copied tree may nest (a bound against symlink loops).
const MAX_TREE_DEPTH: usize = 64;

/// Errors of building a kustomization.
#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    /// No program to run kustomize with.
    #[error("`{}` holds a kustomization, but {}", directory.display(), not_found(configured))]
    NotFound {
        /// The manifests directory, relative to the repository root.
        directory: PathBuf,
        /// `kustomize.binary` from `gitship.yaml`, when set.
        configured: Option<String>,
    },
    /// kustomize ran and failed; `message` is its stderr.
    #[error("kustomize could not build `{}` (`{command}`): {message}", directory.display())]
    Failed {
        directory: PathBuf,
        command: String,
        message: String,
    },
    /// kustomize could not be run or was interrupted.
    #[error("cannot run kustomize for `{}`", directory.display())]
    Run {
        directory: PathBuf,
        #[source]
        source: Box<ProcessError>,
    },
    /// The private copy of the tree could not be written.
    #[error("cannot copy `{}` for kustomize", path.display())]
    Copy {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn not_found(configured: &Option<String>) -> String {
    match configured {
        Some(program) => {
            format!("`{program}` (`kustomize.binary` in `gitship.yaml`) was not found")
        }
        None => {
            "neither `kustomize` nor `kubectl` (which bundles kustomize) was found on `PATH`".into()
        }
    }
}

impl KustomizeError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            KustomizeError::NotFound { configured: Some(_), .. } => Some(
                "fix `kustomize.binary` in `gitship.yaml`, or remove it to use `kustomize` or `kubectl kustomize` from `PATH`".into(),
            ),
            KustomizeError::NotFound { configured: None, .. } => Some(
                "install `kubectl` (it bundles kustomize) or `kustomize`, or name the program with `kustomize.binary` in `gitship.yaml`".into(),
            ),
            KustomizeError::Failed { message, .. } if message.contains("version -c --short") => Some(
                "this kustomize (before 5.8) cannot run helm v4 for `helmCharts`: use kustomize 5.8 or later (`kustomize.binary` in `gitship.yaml`, or a kubectl that bundles it), or helm v3 (`helm.binary`)".into(),
            ),
            KustomizeError::Failed { directory, .. } => Some(format!(
                "fix the kustomization in `{}`; `kubectl kustomize {}` shows the same error (without gitship's templating)",
                directory.display(),
                directory.display()
            )),
            KustomizeError::Run { .. } | KustomizeError::Copy { .. } => None,
        }
    }
}

/// The kustomization file of `dir`, if it has one.
pub fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// Build the kustomization in `dir` (absolute, inside the repository) for one environment.
pub(super) fn render(
    repo: &Repository,
    environment: &str,
    dir: &Path,
    inputs: &RenderInputs,
    unknown_outputs: UnknownOutputs,
) -> Result<RenderOutput, RenderError> {
    let shown_dir = repo.relative(dir);
    let tree = tree_root(&repo.root, dir);
    let copy = tempfile::Builder::new()
        .prefix("gitship-kustomize-")
        .tempdir()
        .map_err(|source| KustomizeError::Copy {
            path: std::env::temp_dir(),
            source,
        })?;

    // Template every source, collecting every problem before giving up.
    let derived = Derived::new(inputs);
    let mut renderer = Renderer::new(inputs, &derived, unknown_outputs, false);
    let mut mirror = Mirror {
        repo,
        manifests_dir: dir,
        copy: copy.path(),
        renderer: &mut renderer,
        injected_origin: false,
    };
    mirror.directory(&tree, 0)?;
    let injected_origin = mirror.injected_origin;
    let left_literal = std::mem::take(&mut renderer.left_literal);
    if !renderer.problems.is_empty() {
        let mut problems = renderer.problems;
        problems.sort_by(|a, b| a.location.cmp(&b.location));
        return Err(RenderError::Problems {
            environment: environment.to_string(),
            problems,
        });
    }

    let copied_dir = copy.path().join(&shown_dir);
    let (process, command) = command(repo, &shown_dir, &copied_dir)?;
    let process = super::helm::private_homes(process, &copy.path().join(".helm"));
    let output = run(repo, &process, command, &shown_dir, copy.path())?;

    // kustomize's output is data now: no second templating pass.
    let display = PathBuf::from(format!("{} (kustomize output)", shown_dir.display()));
    let text = output.stdout_text();
    let mut output = super::render_sources_with(
        environment,
        &[(display, text)],
        inputs,
        unknown_outputs,
        true,
    )?;
    for manifest in &mut output.manifests {
        if let Some(origin) = take_origin(&mut manifest.object, injected_origin) {
            manifest.source = Location::new(repo.relative(&normalise(&dir.join(origin))), 1, 1);
        }
    }
    output.notes.left_literal = left_literal;
    Ok(output)
}

/// Run kustomize; its failure as the error that says why (kustomize missing, helm missing for
/// `helmCharts`, kustomize's own message with the private copy's paths as the repository's).
fn run(
    repo: &Repository,
    process: &Process,
    command: String,
    shown_dir: &Path,
    copy: &Path,
) -> Result<ProcessOutput, RenderError> {
    let directory = shown_dir.to_path_buf();
    match run_blocking(process) {
        Ok(output) => Ok(output),
        Err(ProcessError::Spawn { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Err(KustomizeError::NotFound {
                directory,
                configured: repo.layout.kustomize_binary.clone(),
            }
            .into())
        }
        Err(ProcessError::Failed { output, .. }) => {
            let stderr = output.stderr_text();
            if stderr.contains("--enable-helm") && super::helm::program(repo).is_none() {
                return Err(super::helm::HelmError::NotFound {
                    what: format!(
                        "the `helmCharts` of the kustomization in `{}`",
                        directory.display()
                    ),
                    configured: repo.layout.helm_binary.clone(),
                }
                .into());
            }
            Err(KustomizeError::Failed {
                directory,
                command,
                message: clean_message(&scrub(stderr.trim(), copy)),
            }
            .into())
        }
        Err(source) => Err(KustomizeError::Run {
            directory,
            source: Box::new(source),
        }
        .into()),
    }
}

/// The directory whose tree is copied: the top-level directory of the repository holding `dir`
/// (so that overlays can reach `../../base`), or the repository root itself.
fn tree_root(root: &Path, dir: &Path) -> PathBuf {
    match dir
        .strip_prefix(root)
        .ok()
        .and_then(|r| r.components().next())
    {
        Some(Component::Normal(first)) => root.join(first),
        _ => root.to_path_buf(),
    }
}

/// A write into the private copy that failed (or was refused), for the file shown as `path`.
fn copy_error(
    path: PathBuf,
) -> impl FnOnce(gitship_foundation::private_file::WriteError) -> KustomizeError {
    move |error| KustomizeError::Copy {
        path,
        source: std::io::Error::other(error),
    }
}

/// Copy the file `from` (not YAML, or excluded from templating) to `to` in the private copy,
/// with its owner's permissions (an executable stays one).
fn copy_file(from: &Path, to: &Path, shown: PathBuf) -> Result<(), RenderError> {
    use std::os::unix::fs::PermissionsExt;
    let failed = |source| KustomizeError::Copy {
        path: shown.clone(),
        source,
    };
    let mut source = std::fs::File::open(from).map_err(failed)?;
    let mode = source.metadata().map_err(failed)?.permissions().mode() & 0o700;
    let mut copy = gitship_foundation::private_file::create_new(to, mode)
        .map_err(copy_error(shown.clone()))?;
    std::io::copy(&mut source, &mut copy).map_err(failed)?;
    Ok(())
}

/// The private copy of the tree being written.
struct Mirror<'a, 'r, 'i> {
    repo: &'a Repository,
    manifests_dir: &'a Path,
    copy: &'a Path,
    renderer: &'r mut Renderer<'i>,
    /// `buildMetadata: [originAnnotations]` was added to the manifests directory's kustomization.
    injected_origin: bool,
}

impl Mirror<'_, '_, '_> {
    fn directory(&mut self, dir: &Path, depth: usize) -> Result<(), RenderError> {
        let root = &self.repo.root;
        let target = self.copy.join(self.repo.relative(dir));
        gitship_foundation::private_file::create_dir_in(self.copy, &target)
            .map_err(copy_error(self.repo.relative(dir)))?;
        let io = |path: &Path| {
            let path = self.repo.relative(path);
            move |source| RenderError::Io { path, source }
        };
        let mut entries = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io(dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with('.')
                || (dir == root.as_path() && name == "target")
                || self.other_layer(&path)
            {
                continue;
            }
            // Symlinks are followed only inside the repository.
            let resolved = files::confine(root, &path, None)?;
            if resolved.is_dir() && resolved.join(crate::repo::helm::CHART_FILE).is_file() {
                // A Helm chart: its templates are helm's, copied as they are.
                self.copy_raw(&path, depth + 1)?;
            } else if resolved.is_dir() {
                if depth >= MAX_TREE_DEPTH {
                    return Err(crate::repo::RepoError::SymlinkLoop {
                        path: self.repo.relative(&path),
                        target: self.repo.relative(&resolved),
                    }
                    .into());
                }
                self.directory(&path, depth + 1)?;
            } else if resolved.is_file() {
                self.file(&path, &name)?;
            }
        }
        Ok(())
    }

    /// Each `helmCharts` entry of the kustomization `file` (templated) that names a remote
    /// `repo` must be vendored where kustomize looks before it downloads (`CHART_HOME/NAME`, or
    /// `CHART_HOME/NAME-VERSION/NAME` with a `version`; `CHART_HOME` is `helmGlobals.chartHome`,
    /// default `charts`): gitship never lets kustomize reach a network for a chart.
    fn check_helm_charts(&mut self, file: &Path, templated: &str) {
        let Ok(Some(root)) = yaml::parse_documents(templated)
            .map(|documents| documents.into_iter().find_map(|document| document.root))
        else {
            return;
        };
        let kustomization = root.to_json();
        let Some(charts) = kustomization.get("helmCharts").and_then(Value::as_array) else {
            return;
        };
        let home = kustomization
            .pointer("/helmGlobals/chartHome")
            .and_then(Value::as_str)
            .unwrap_or("charts");
        let dir = file.parent().unwrap_or(Path::new(""));
        for chart in charts {
            let text = |key: &str| {
                chart
                    .get(key)
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
            };
            let (Some(name), Some(repo)) = (text("name"), text("repo")) else {
                continue;
            };
            let vendored = match text("version") {
                Some(version) => dir.join(home).join(format!("{name}-{version}")).join(name),
                None => dir.join(home).join(name),
            };
            if self
                .repo
                .root
                .join(&vendored)
                .join(crate::repo::helm::CHART_FILE)
                .is_file()
            {
                continue;
            }
            self.renderer.problem(
                Location::new(file, 1, 1),
                format!(
                    "the `helmCharts` entry `{name}` from `{repo}` is not vendored in `{}`, and gitship never lets kustomize download a chart: run `helm pull --untar --untardir {} --repo {repo} {name}{}` once and commit it",
                    vendored.display(),
                    vendored.parent().unwrap_or(dir).display(),
                    text("version").map(|v| format!(" --version {v}")).unwrap_or_default()
                ),
                false,
            );
        }
    }

    /// Copy the directory `dir` (a Helm chart) as it is, without templating.
    fn copy_raw(&mut self, dir: &Path, depth: usize) -> Result<(), RenderError> {
        let shown = self.repo.relative(dir);
        if depth >= MAX_TREE_DEPTH {
            return Err(crate::repo::RepoError::SymlinkLoop {
                path: shown.clone(),
                target: shown,
            }
            .into());
        }
        gitship_foundation::private_file::create_dir_in(self.copy, &self.copy.join(&shown))
            .map_err(copy_error(shown.clone()))?;
        let io = |source| RenderError::Io {
            path: shown.clone(),
            source,
        };
        let mut entries = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let resolved = files::confine(&self.repo.root, &path, None)?;
            if resolved.is_dir() {
                self.copy_raw(&path, depth + 1)?;
            } else if resolved.is_file() {
                let target = self.copy.join(self.repo.relative(&path));
                copy_file(&resolved, &target, self.repo.relative(&path))?;
            }
        }
        Ok(())
    }

    /// `path` is the apps, Terraform or config directory (not holding the manifests): not
    /// kustomize's to read, and not YAML to template.
    fn other_layer(&self, path: &Path) -> bool {
        let layout = &self.repo.layout;
        [
            layout.apps_dir.as_deref(),
            layout.terraform_dir.as_deref(),
            Some(layout.config_dir.as_path()),
        ]
        .into_iter()
        .flatten()
        .any(|layer| layer == path && !self.manifests_dir.starts_with(layer))
    }

    fn file(&mut self, path: &Path, name: &str) -> Result<(), RenderError> {
        let shown = self.repo.relative(path);
        let target = self.copy.join(&shown);
        let is_kustomization = KUSTOMIZATION_FILES.contains(&name);
        let is_yaml =
            is_kustomization || path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        let excluded = path
            .strip_prefix(self.manifests_dir)
            .is_ok_and(|relative| self.repo.layout.exclude.is_match(relative));
        if !is_yaml || excluded {
            return copy_file(path, &target, shown);
        }
        let text = files::read_text(&self.repo.root, path)?;
        let top = is_kustomization && path.parent() == Some(self.manifests_dir);
        let templated = self.template(&shown, &text, top);
        if is_kustomization {
            self.check_helm_charts(&shown, &templated);
        }
        gitship_foundation::private_file::create_new(&target, 0o600)
            .map_err(copy_error(shown.clone()))?
            .write_all(templated.as_bytes())
            .map_err(|source| KustomizeError::Copy {
                path: shown,
                source,
            })?;
        Ok(())
    }

    /// `text` with its placeholders resolved, as YAML; problems go to the renderer. In the
    /// manifests directory's own kustomization (`top`), ask kustomize for origin annotations.
    fn template(&mut self, file: &Path, text: &str, top: bool) -> String {
        let documents = match yaml::parse_documents(text) {
            Ok(documents) => documents,
            Err(err) => {
                self.renderer.problem(
                    Location::new(file, err.line, err.column),
                    format!("invalid YAML: {}", err.message),
                    false,
                );
                return String::new();
            }
        };
        let mut state = DocumentState::new(file, text);
        let mut out = String::with_capacity(text.len());
        for document in documents {
            let Some(root) = document.root else { continue };
            if root.is_null() {
                continue;
            }
            state.sensitive_uses.clear();
            let mut object = self.renderer.document(&root, &mut state);
            let secret = super::is_secret(&object);
            for (output, at, position) in std::mem::take(&mut state.sensitive_uses) {
                let message = match position {
                    Some(position) => format!(
                        "the sensitive Terraform output `{output}` may only be a value under a Secret's `data` or `stringData`, not {position}"
                    ),
                    None if !secret => format!(
                        "the sensitive Terraform output `{output}` may only be used in a Secret, not in `{}`",
                        ObjectId::lenient(&object).qualified()
                    ),
                    None => continue,
                };
                self.renderer.problem(at, message, false);
            }
            if top {
                self.injected_origin |= ask_for_origin(&mut object);
            }
            out.push_str("---\n");
            emit::write_document(&mut out, &object);
        }
        out
    }
}

/// Add `originAnnotations` to a kustomization's `buildMetadata`; `true` when it was not there.
fn ask_for_origin(kustomization: &mut Value) -> bool {
    let Value::Object(map) = kustomization else {
        return false;
    };
    let entry = map
        .entry("buildMetadata")
        .or_insert_with(|| Value::Array(Vec::new()));
    if entry.is_null() {
        *entry = Value::Array(Vec::new());
    }
    let Value::Array(items) = entry else {
        return false;
    };
    if items
        .iter()
        .any(|i| i.as_str() == Some("originAnnotations"))
    {
        return false;
    }
    items.push(Value::String("originAnnotations".into()));
    true
}

/// The source path in an object's origin annotation (relative to the kustomization built),
/// removing the annotation when gitship asked for it.
fn take_origin(object: &mut Value, remove: bool) -> Option<PathBuf> {
    let metadata = object.get_mut("metadata")?.as_object_mut()?;
    let annotations = metadata.get_mut("annotations")?.as_object_mut()?;
    let origin = annotations.get(ORIGIN_ANNOTATION)?.as_str()?.to_string();
    if remove {
        annotations.remove(ORIGIN_ANNOTATION);
        if annotations.is_empty() {
            metadata.remove("annotations");
        }
    }
    origin.lines().find_map(|line| {
        let line = line.trim();
        line.strip_prefix("path:")
            .or_else(|| line.strip_prefix("configuredIn:"))
            .map(|path| PathBuf::from(path.trim().trim_matches(['"', '\''])))
    })
}

/// `path` with `.` and `..` resolved lexically.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The program that builds `copied_dir`, and how the command reads in messages (with the
/// repository's directory, not the private copy).
fn command(
    repo: &Repository,
    shown_dir: &Path,
    copied_dir: &Path,
) -> Result<(Process, String), KustomizeError> {
    let not_found = || KustomizeError::NotFound {
        directory: shown_dir.to_path_buf(),
        configured: repo.layout.kustomize_binary.clone(),
    };
    let (program, args): (PathBuf, &[&str]) = match &repo.layout.kustomize_binary {
        Some(configured) if configured.contains('/') => (repo.root.join(configured), &["build"]),
        Some(configured) => (on_path(configured).ok_or_else(not_found)?, &["build"]),
        None => match on_path("kustomize") {
            Some(kustomize) => (kustomize, &["build"]),
            None => (on_path("kubectl").ok_or_else(not_found)?, &["kustomize"]),
        },
    };
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut shown = format!("{name} {} {}", args.join(" "), shown_dir.display());
    let mut process = Process::new(program.to_string_lossy())
        .args(args.iter().copied())
        .arg(copied_dir)
        .cwd(copied_dir)
        .inherit_env(|key| matches!(key, "PATH" | "HOME" | "TMPDIR" | "XDG_CONFIG_HOME"));
    // `helmCharts:` are inflated by helm, when there is one (never downloading: the chart must
    // be in the kustomization's `charts/`, and helm's homes are private, see `helm::private_homes`).
    if let Some(helm) = super::helm::program(repo) {
        process = process.args(["--enable-helm", "--helm-command"]).arg(&helm);
        shown.push_str(" --enable-helm");
    }
    Ok((process, shown))
}

/// kustomize's message with the private copy's paths shown as the repository's.
fn scrub(message: &str, copy: &Path) -> String {
    let copy = copy.to_string_lossy();
    message
        .replace(&format!("{copy}/"), "")
        .replace(copy.as_ref(), ".")
}

/// kustomize's own words: without `Error: ` (kustomize) or kubectl's log prefix
/// (`E1203 08:39:04.544766 19519 run.go:72] "command failed" err="..."`).
fn clean_message(stderr: &str) -> String {
    let lines: Vec<String> = stderr
        .lines()
        .map(|line| {
            let line = line.strip_prefix("Error: ").unwrap_or(line);
            let logged = line.starts_with(['E', 'W', 'I', 'F'])
                && line
                    .as_bytes()
                    .get(1..5)
                    .is_some_and(|digits| digits.iter().all(u8::is_ascii_digit));
            match line.find(" err=\"") {
                Some(start) if logged => line[start + 6..]
                    .strip_suffix('"')
                    .unwrap_or(&line[start + 6..])
                    .replace("\\\"", "\""),
                _ => line.to_string(),
            }
        })
        .collect();
    lines.join("\n")
}

impl From<KustomizeError> for RenderError {
    fn from(error: KustomizeError) -> RenderError {
        RenderError::Kustomize(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn origin_is_requested_once_and_removed() {
        let mut kustomization = json!({"resources": ["a.yaml"]});
        assert!(ask_for_origin(&mut kustomization));
        assert_eq!(kustomization["buildMetadata"], json!(["originAnnotations"]));
        assert!(!ask_for_origin(&mut kustomization), "already there");

        let mut object = json!({"metadata": {"name": "a", "annotations": {ORIGIN_ANNOTATION: "path: ../../base/web.yaml\n"}}});
        assert_eq!(
            take_origin(&mut object, true),
            Some(PathBuf::from("../../base/web.yaml"))
        );
        assert_eq!(object, json!({"metadata": {"name": "a"}}));
        assert_eq!(
            normalise(Path::new("/r/k/overlays/prod/../../base/web.yaml")),
            PathBuf::from("/r/k/base/web.yaml")
        );
    }

    #[test]
    fn tree_root_is_the_top_level_directory() {
        let root = Path::new("/r");
        assert_eq!(
            tree_root(root, Path::new("/r/kustomize/overlays/prod")),
            PathBuf::from("/r/kustomize")
        );
        assert_eq!(tree_root(root, root), PathBuf::from("/r"));
    }

    #[test]
    fn kubectl_log_prefix_is_removed() {
        assert_eq!(
            clean_message(
                r#"E1203 08:39:04.544766   19519 run.go:72] "command failed" err="accumulating resources: \"x\" missing""#
            ),
            r#"accumulating resources: "x" missing"#
        );
        assert_eq!(clean_message("Error: no such file"), "no such file");
    }

    #[test]
    fn messages_show_repository_paths() {
        let copy = Path::new("/tmp/gitship-kustomize-x");
        assert_eq!(
            scrub(
                "open /tmp/gitship-kustomize-x/k/missing.yaml: no such file",
                copy
            ),
            "open k/missing.yaml: no such file"
        );
    }
}
