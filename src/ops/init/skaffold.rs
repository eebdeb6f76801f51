//! `init`'s reading of a `skaffold.yaml`: its artifacts become apps, its manifests a manifests
//! directory.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::{FoundApp, InitReport, clean, join, relative, static_prefix};
use crate::diagnostics::UserError;

/// What a `skaffold.yaml` says.
#[derive(Debug, Clone, Default)]
pub(super) struct Skaffold {
    pub(super) apps: Vec<FoundApp>,
    pub(super) manifests: Option<String>,
}

pub(super) fn read_skaffold(root: &Path, report: &mut InitReport) -> Result<Option<Skaffold>> {
    let file = ["skaffold.yaml", "skaffold.yml"]
        .iter()
        .map(|name| root.join(name))
        .find(|path| path.is_file());
    let Some(file) = file else {
        return Ok(None);
    };
    // A link out of the repository (`skaffold.yaml -> /etc/passwd`) is not read.
    crate::repo::files::confine(root, &file, None).map_err(crate::diagnostics::user_error)?;
    let text =
        crate::repo::files::read_text(root, &file).map_err(crate::diagnostics::user_error)?;
    let parsed = parse_skaffold(&text).map_err(|error| {
        UserError::new(
            format!("{}:{error}", relative(root, &file)),
            "fix the file, or move it away and run `gitship init` again",
        )
    })?;
    let mut skaffold = Skaffold::default();
    for artifact in parsed.artifacts {
        let Some(app) = skaffold_artifact(root, &artifact) else {
            continue;
        };
        // Two artifacts (or one repeated through a YAML alias) naming the same app: one app.
        if skaffold.apps.iter().any(|known| known.name == app.name) {
            report.assumed.push(format!(
                "skaffold artifact `{}` names app `{}` again: the first one is kept",
                artifact.image, app.name
            ));
            continue;
        }
        skaffold.apps.push(app);
    }
    match parsed.manifests {
        Some(SkaffoldManifests::RawYaml(glob)) => {
            let prefix = static_prefix(&glob);
            if prefix.is_empty() {
                // Manifests at the repository's root: a directory is looked for instead.
                report.assumed.push(format!(
                    "skaffold's `rawYaml: {glob}` names no directory: looking for the usual manifests directories"
                ));
            } else {
                skaffold.manifests = Some(prefix);
            }
        }
        Some(SkaffoldManifests::Kustomize(path)) => skaffold.manifests = Some(clean(&path)),
        None => {}
    }
    report.found.push(format!(
        "`{}`: {} artifact(s){}",
        relative(root, &file),
        skaffold.apps.len(),
        skaffold
            .manifests
            .as_ref()
            .map_or(String::new(), |m| format!(", manifests in `{m}`"))
    ));
    Ok(Some(skaffold))
}

/// What a `skaffold.yaml` declares, read without looking at the disk.
#[derive(Debug, Clone, Default)]
pub struct ParsedSkaffold {
    pub artifacts: Vec<SkaffoldArtifact>,
    /// The first manifests source of the first document that has one.
    pub manifests: Option<SkaffoldManifests>,
}

/// One `build.artifacts` item.
#[derive(Debug, Clone, Default)]
pub struct SkaffoldArtifact {
    pub image: String,
    pub context: Option<String>,
    pub dockerfile: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
}

/// Where a `skaffold.yaml`'s manifests are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkaffoldManifests {
    /// `manifests.rawYaml` (or `deploy.kubectl.manifests`): its first glob.
    RawYaml(String),
    /// `manifests.kustomize.paths` (or `deploy.kustomize.paths`): its first path.
    Kustomize(String),
}

/// Read a `skaffold.yaml`'s text: its artifacts and manifests, with the YAML reader's bounds
/// (size, depth, aliases); an error is `line:column: message`. Never touches the disk.
pub fn parse_skaffold(text: &str) -> Result<ParsedSkaffold, String> {
    let documents = crate::repo::yaml::parse_documents(text).map_err(|error| {
        format!(
            "{}:{}: invalid YAML: {}",
            error.line, error.column, error.message
        )
    })?;
    let mut parsed = ParsedSkaffold::default();
    for document in documents.iter().filter_map(|d| d.root.as_ref()) {
        let value = document.to_json();
        for artifact in value
            .pointer("/build/artifacts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(image) = artifact.get("image").and_then(Value::as_str) else {
                continue;
            };
            let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
            let docker = artifact.get("docker");
            parsed.artifacts.push(SkaffoldArtifact {
                image: image.to_string(),
                context: text(artifact.get("context")),
                dockerfile: text(docker.and_then(|d| d.get("dockerfile"))),
                build_args: docker
                    .and_then(|d| d.get("buildArgs"))
                    .and_then(Value::as_object)
                    .map(|args| {
                        args.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                target: text(docker.and_then(|d| d.get("target"))),
            });
        }
        if parsed.manifests.is_some() {
            continue;
        }
        let first = |pointers: [&str; 2]| {
            pointers
                .iter()
                .find_map(|p| value.pointer(p))
                .and_then(Value::as_array)
                .and_then(|items| items.first())
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        parsed.manifests = first(["/manifests/rawYaml", "/deploy/kubectl/manifests"])
            .map(SkaffoldManifests::RawYaml)
            .or_else(|| {
                first(["/manifests/kustomize/paths", "/deploy/kustomize/paths"])
                    .map(SkaffoldManifests::Kustomize)
            });
    }
    Ok(parsed)
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
