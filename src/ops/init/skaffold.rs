//! `init`'s reading of Skaffold: every config of `skaffold.yaml` and of the configs it
//! `requires` (files inside the repository, bounded in depth and count, cycles refused), each
//! with the environment's profiles applied ([`profile`]). Their artifacts become apps; their
//! manifests become one manifests directory plus `paths.exclude` for what no config lists
//! ([`manifests`]), so `validate` sees the objects Skaffold would deploy.

mod manifests;
mod profile;
mod requires;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::{FoundApp, InitReport, clean, join, relative};
use gitship_foundation::diagnostics::UserError;

use requires::{ResolvedConfig, resolve};

/// What the repository's Skaffold configs say, for `init`.
#[derive(Debug, Clone, Default)]
pub(super) struct Skaffold {
    pub(super) apps: Vec<FoundApp>,
    /// The manifests directory (relative to the root).
    pub(super) manifests: Option<String>,
    /// `paths.exclude` globs (relative to [`Skaffold::manifests`]): the files below it that no
    /// config lists.
    pub(super) exclude: Vec<String>,
}

pub(super) fn read_skaffold(
    root: &Path,
    env: &str,
    report: &mut InitReport,
) -> Result<Option<Skaffold>> {
    let Some(file) = ["skaffold.yaml", "skaffold.yml"]
        .into_iter()
        .find(|name| root.join(name).is_file())
    else {
        return Ok(None);
    };
    let mut load = |path: &str| load_file(root, path);
    let resolution = resolve(file, env, &mut load)?;
    report.assumed.extend(resolution.notes.iter().cloned());
    let mut skaffold = Skaffold::default();
    for config in &resolution.configs {
        for artifact in &config.artifacts {
            add_app(root, &mut skaffold, artifact, report);
        }
        report.found.push(describe(config));
    }
    let sources: Vec<SkaffoldManifests> = resolution
        .configs
        .iter()
        .flat_map(|config| config.manifests.iter().cloned())
        .collect();
    let mapped = manifests::map(root, &sources)?;
    report.assumed.extend(mapped.notes);
    skaffold.manifests = mapped.dir;
    skaffold.exclude = mapped.exclude;
    Ok(Some(skaffold))
}

/// A file that a Skaffold config names, read inside the repository: a directory means its
/// `skaffold.yaml`. Returns the file's path relative to the root, and its text.
fn load_file(root: &Path, path: &str) -> Result<(String, String), UserError> {
    let mut file = root.join(path);
    let mut shown = path.to_string();
    if file.is_dir() {
        file = file.join("skaffold.yaml");
        shown = join(path, "skaffold.yaml");
    }
    crate::repo::files::confine(root, &file, None).map_err(|error| {
        UserError::new(
            format!("skaffold config `{shown}`: {error}"),
            "Skaffold configs are read inside the repository only: vendor the file, or remove the `requires` entry",
        )
    })?;
    if !file.is_file() {
        return Err(UserError::new(
            format!("skaffold config `{shown}` does not exist"),
            "fix the `requires` entry's `path`, or remove it",
        ));
    }
    let text = crate::repo::files::read_text(root, &file).map_err(|error| {
        UserError::new(
            format!("skaffold config `{shown}`: {error}"),
            "fix the file, or move it away and run `gitship init` again",
        )
    })?;
    Ok((relative(root, &file), text))
}

/// One artifact as an app, unless an earlier one has its name.
fn add_app(
    root: &Path,
    skaffold: &mut Skaffold,
    artifact: &SkaffoldArtifact,
    report: &mut InitReport,
) {
    let Some(app) = skaffold_artifact(root, artifact) else {
        report.assumed.push(format!(
            "skaffold artifact `{}`: no Dockerfile inside the repository, or not an image name: not an app",
            artifact.image
        ));
        return;
    };
    // Two artifacts (or one repeated through a YAML alias, or in two configs) naming the same
    // app: one app.
    if skaffold.apps.iter().any(|known| known.name == app.name) {
        report.assumed.push(format!(
            "skaffold artifact `{}` names app `{}` again: the first one is kept",
            artifact.image, app.name
        ));
        return;
    }
    skaffold.apps.push(app);
}

/// `skaffold.yaml` config `app` (profile `dev`): 3 artifact(s), manifests `k8s/*.yaml`.
fn describe(config: &ResolvedConfig) -> String {
    let mut text = format!("`{}`", config.file);
    if let Some(name) = &config.name {
        text.push_str(&format!(" config `{name}`"));
    }
    if !config.profiles.is_empty() {
        let names: Vec<String> = config.profiles.iter().map(|p| format!("`{p}`")).collect();
        text.push_str(&format!(" (profile {})", names.join(", ")));
    }
    text.push_str(&format!(": {} artifact(s)", config.artifacts.len()));
    let sources: Vec<String> = config
        .manifests
        .iter()
        .map(|m| match m {
            SkaffoldManifests::RawYaml(glob) => format!("`{glob}`"),
            SkaffoldManifests::Kustomize(path) => format!("kustomize `{path}`"),
        })
        .collect();
    if !sources.is_empty() {
        text.push_str(&format!(", manifests {}", sources.join(", ")));
    }
    text
}

/// What a skaffold file declares, read without looking at the disk: its configs (documents).
#[derive(Debug, Clone, Default)]
pub struct ParsedSkaffold {
    pub configs: Vec<SkaffoldConfig>,
    /// Every config's artifacts as written (no profile applied).
    pub artifacts: Vec<SkaffoldArtifact>,
}

/// One config (a document of a skaffold file) as written.
#[derive(Debug, Clone)]
pub struct SkaffoldConfig {
    /// `metadata.name`.
    pub name: Option<String>,
    /// The document's first line.
    pub line: usize,
    pub value: Value,
}

/// One `build.artifacts` item; paths as written (relative to its file's directory) until
/// [`resolve`] makes them relative to the root.
#[derive(Debug, Clone, Default)]
pub struct SkaffoldArtifact {
    pub image: String,
    pub context: Option<String>,
    pub dockerfile: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
}

/// A config's manifests source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkaffoldManifests {
    /// A `manifests.rawYaml` (or `deploy.kubectl.manifests`) glob.
    RawYaml(String),
    /// A `manifests.kustomize.paths` (or `deploy.kustomize.paths`) directory.
    Kustomize(String),
}

/// Read a skaffold file's text: its configs, with the YAML reader's bounds (size, depth,
/// aliases); an error is `line:column: message`. Never touches the disk.
pub fn parse_skaffold(text: &str) -> Result<ParsedSkaffold, String> {
    let documents = crate::repo::yaml::parse_documents(text).map_err(|error| {
        format!(
            "{}:{}: invalid YAML: {}",
            error.line, error.column, error.message
        )
    })?;
    let mut parsed = ParsedSkaffold::default();
    for document in &documents {
        let Some(root) = &document.root else {
            continue;
        };
        let value = root.to_json();
        if !value.is_object() {
            return Err(format!(
                "{}:{}: a skaffold config is a mapping, found {}",
                root.line,
                root.column,
                root.type_name()
            ));
        }
        parsed.artifacts.extend(artifacts(&value));
        parsed.configs.push(SkaffoldConfig {
            name: value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string),
            line: document.line,
            value,
        });
    }
    Ok(parsed)
}

/// A config's `build.artifacts` (those with an `image`).
pub fn artifacts(config: &Value) -> Vec<SkaffoldArtifact> {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
    let mut found = Vec::new();
    for artifact in config
        .pointer("/build/artifacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(image) = artifact.get("image").and_then(Value::as_str) else {
            continue;
        };
        let docker = artifact.get("docker");
        found.push(SkaffoldArtifact {
            image: image.to_string(),
            context: text(artifact.get("context")),
            dockerfile: text(docker.and_then(|d| d.get("dockerfile"))),
            build_args: docker
                .and_then(|d| d.get("buildArgs"))
                .and_then(Value::as_object)
                .map(|args| {
                    args.iter()
                        .map(|(k, v)| {
                            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                            (k.clone(), v)
                        })
                        .collect()
                })
                .unwrap_or_default(),
            target: text(docker.and_then(|d| d.get("target"))),
        });
    }
    found
}

/// A config's manifests: every `rawYaml` glob and kustomize path, as written.
pub fn manifest_sources(config: &Value) -> Vec<SkaffoldManifests> {
    let strings = |pointer: &str| -> Vec<String> {
        config
            .pointer(pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let mut sources = Vec::new();
    for pointer in ["/manifests/rawYaml", "/deploy/kubectl/manifests"] {
        sources.extend(strings(pointer).into_iter().map(SkaffoldManifests::RawYaml));
    }
    for pointer in ["/manifests/kustomize/paths", "/deploy/kustomize/paths"] {
        sources.extend(
            strings(pointer)
                .into_iter()
                .map(SkaffoldManifests::Kustomize),
        );
    }
    sources
}

/// One artifact as an app: its image's last segment names it; its Dockerfile must exist inside
/// the repository (a context or Dockerfile that leads out of it is not an app).
pub(super) fn skaffold_artifact(root: &Path, artifact: &SkaffoldArtifact) -> Option<FoundApp> {
    let name = artifact
        .image
        .rsplit('/')
        .next()?
        .split([':', '@'])
        .next()?
        .to_string();
    if !crate::repo::config::is_dns_label(&name) {
        return None;
    }
    let context = clean(artifact.context.as_deref().unwrap_or("."));
    let dockerfile = join(
        &context,
        artifact.dockerfile.as_deref().unwrap_or("Dockerfile"),
    );
    let path = root.join(&dockerfile);
    if !path.is_file() || crate::repo::files::confine(root, &path, None).is_err() {
        return None;
    }
    if crate::repo::files::confine(root, &root.join(&context), None).is_err() {
        return None;
    }
    Some(FoundApp {
        name,
        dockerfile,
        context,
        build_args: artifact.build_args.clone(),
        target: artifact.target.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> InitReport {
        InitReport::new("dev")
    }

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A required file that is a link out of the repository is not read.
    #[test]
    fn a_required_file_linked_out_of_the_repository_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "skaffold.yaml", "metadata: {name: x}\n");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        write(&root, "skaffold.yaml", "requires:\n  - path: vendor\n");
        std::fs::create_dir_all(root.join("vendor")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("skaffold.yaml"),
            root.join("vendor/skaffold.yaml"),
        )
        .unwrap();
        let error = read_skaffold(&root, "dev", &mut report()).unwrap_err();
        let text = gitship_foundation::diagnostics::render(&error);
        assert!(
            text.contains("skaffold config `vendor/skaffold.yaml`"),
            "{text}"
        );
        assert!(text.contains("outside the repository"), "{text}");
    }

    /// Manifests of several configs in several directories: their common parent, and the files
    /// below it that no config lists excluded; what matches nothing is said.
    #[test]
    fn manifests_in_several_directories_become_one_with_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        write(
            &root,
            "skaffold.yaml",
            "manifests:\n  rawYaml: [deploy/a/*.yaml, deploy/gone/*.yaml]\n---\nrequires:\n  - path: b/skaffold.yaml\n",
        );
        write(
            &root,
            "b/skaffold.yaml",
            "manifests:\n  rawYaml: [../deploy/b/x.yaml]\n",
        );
        for file in [
            "deploy/a/1.yaml",
            "deploy/b/x.yaml",
            "deploy/b/y.yaml",
            "deploy/docs/z.yaml",
        ] {
            write(&root, file, "kind: ConfigMap\n");
        }
        let mut report = report();
        let skaffold = read_skaffold(&root, "dev", &mut report).unwrap().unwrap();
        assert_eq!(skaffold.manifests.as_deref(), Some("deploy"));
        assert_eq!(skaffold.exclude, ["b/y.yaml", "docs/**"]);
        assert!(
            report
                .assumed
                .iter()
                .any(|a| a.contains("`deploy/gone/*.yaml` match no file")),
            "{report:?}"
        );
    }
}
