//! The Skaffold configs' manifests as gitship's one manifests directory: the common parent of
//! every `rawYaml` glob, plus `paths.exclude` globs for the files below it that no glob lists,
//! so the manifests gitship reads are exactly those Skaffold deploys. A kustomize path is used
//! as the directory when it is the only source; a mix is reported, not guessed.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;

use super::SkaffoldManifests;
use crate::ops::init::static_prefix;
use gitship_foundation::diagnostics::UserError;

/// Where the manifests are, for `gitship.yaml`.
#[derive(Debug, Default)]
pub(super) struct Mapped {
    /// The manifests directory (relative to the root).
    pub(super) dir: Option<String>,
    /// Globs relative to `dir` of its files that no config lists.
    pub(super) exclude: Vec<String>,
    /// What `init` reports about it.
    pub(super) notes: Vec<String>,
}

/// Map the configs' manifests sources (paths relative to the root).
pub(super) fn map(root: &Path, sources: &[SkaffoldManifests]) -> Result<Mapped> {
    let mut mapped = Mapped::default();
    let globs: Vec<&str> = unique(sources.iter().filter_map(|s| match s {
        SkaffoldManifests::RawYaml(glob) => Some(glob.as_str()),
        SkaffoldManifests::Kustomize(_) => None,
    }));
    let kustomize: Vec<&str> = unique(sources.iter().filter_map(|s| match s {
        SkaffoldManifests::Kustomize(path) => Some(path.as_str()),
        SkaffoldManifests::RawYaml(_) => None,
    }));
    if globs.is_empty() {
        if let [only] = kustomize.as_slice() {
            mapped.dir = Some(only.to_string());
        } else if !kustomize.is_empty() {
            mapped.notes.push(format!(
                "skaffold kustomizations {}: gitship builds one kustomization per environment: none is used; set `kubernetes.path` in each environment's config",
                listed(&kustomize)
            ));
        }
        return Ok(mapped);
    }
    if !kustomize.is_empty() {
        mapped.notes.push(format!(
            "skaffold kustomizations {} beside raw manifests: not deployed; build them into the manifests, or set `kubernetes.path`",
            listed(&kustomize)
        ));
    }
    let prefixes: Vec<String> = globs.iter().map(|glob| static_prefix(glob)).collect();
    let dir = common_parent(&prefixes);
    if dir.is_empty() {
        mapped.notes.push(format!(
            "skaffold's manifests {} have no directory in common: looking for the usual manifests directories",
            listed(&globs)
        ));
        return Ok(mapped);
    }
    if root.join(&dir).is_dir() {
        let (exclude, unmatched) = exclusions(root, &dir, &globs)?;
        mapped.exclude = exclude;
        for glob in unmatched {
            mapped
                .notes
                .push(format!("skaffold's manifests `{glob}` match no file"));
        }
    }
    mapped.dir = Some(dir);
    Ok(mapped)
}

fn unique<'s>(items: impl Iterator<Item = &'s str>) -> Vec<&'s str> {
    let mut seen = BTreeSet::new();
    items.filter(|item| seen.insert(*item)).collect()
}

fn listed(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The longest directory that every one of `dirs` is in (`""` when none).
fn common_parent(dirs: &[String]) -> String {
    let mut common: Option<Vec<&str>> = None;
    for dir in dirs {
        let parts: Vec<&str> = dir
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        common = Some(match common {
            None => parts,
            Some(known) => known
                .iter()
                .zip(&parts)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| *a)
                .collect(),
        });
    }
    common.unwrap_or_default().join("/")
}

/// The `paths.exclude` globs (relative to `dir`) for the manifest files below `dir` that no
/// glob matches (a directory none of whose files is listed is one `dir/**`), and the globs
/// that match no file.
fn exclusions(root: &Path, dir: &str, globs: &[&str]) -> Result<(Vec<String>, Vec<String>)> {
    let mut builders = Vec::new();
    for glob in globs {
        let compiled = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|error| {
                UserError::new(
                    format!(
                        "skaffold's manifests `{glob}` are not a glob: {}",
                        error.kind()
                    ),
                    "fix the `rawYaml` entry in the skaffold config",
                )
            })?;
        builders.push(compiled.compile_matcher());
    }
    let full = root.join(dir);
    let files = crate::repo::files::manifest_files(root, &full, &globset::GlobSet::empty())
        .map_err(gitship_foundation::diagnostics::user_error)?;
    let mut listed = BTreeSet::new();
    let mut unlisted = BTreeSet::new();
    let mut used = vec![false; builders.len()];
    for file in &files {
        let Ok(inner) = file.strip_prefix(&full) else {
            continue;
        };
        let inner = inner.to_string_lossy().into_owned();
        let from_root = format!("{dir}/{inner}");
        let mut matched = false;
        for (matcher, used) in builders.iter().zip(used.iter_mut()) {
            if matcher.is_match(&from_root) {
                *used = true;
                matched = true;
            }
        }
        if matched {
            listed.insert(inner);
        } else {
            unlisted.insert(inner);
        }
    }
    let unmatched = globs
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(glob, _)| glob.to_string())
        .collect();
    Ok((compress(&listed, &unlisted), unmatched))
}

/// Each unlisted file as a glob, or its highest directory holding no listed file as `dir/**`.
fn compress(listed: &BTreeSet<String>, unlisted: &BTreeSet<String>) -> Vec<String> {
    let mut globs = BTreeSet::new();
    for file in unlisted {
        let parts: Vec<&str> = file.split('/').collect();
        let mut glob = globset::escape(file);
        for depth in 1..parts.len() {
            let ancestor = parts[..depth].join("/");
            let prefix = format!("{ancestor}/");
            if !listed.iter().any(|l| l.starts_with(&prefix)) {
                glob = format!("{}/**", globset::escape(&ancestor));
                break;
            }
        }
        globs.insert(glob);
    }
    globs.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unlisted_files_and_directories_become_exclusions() {
        let listed = set(&["web/a.yaml", "db/b.yaml"]);
        let unlisted = set(&[
            "web/test.yaml",
            "docs/x.yaml",
            "docs/deep/y.yaml",
            "c[1].yaml",
        ]);
        assert_eq!(
            compress(&listed, &unlisted),
            ["c[[]1[]].yaml", "docs/**", "web/test.yaml"]
        );
        assert_eq!(
            common_parent(&[
                "deploy/web".into(),
                "deploy/db".into(),
                "deploy/web/x".into()
            ]),
            "deploy"
        );
        assert_eq!(common_parent(&["a".into(), "b".into()]), "");
    }
}
