//! The repository's files on disk, read safely: every path gitship reads lies inside the
//! repository (after following symlinks), the manifest tree is walked without following a
//! symlink loop, and no file larger than [`MAX_FILE_BYTES`] is read.
//!
//! Paths in messages are relative to the repository root; a symlink's target outside it is shown
//! as it resolves.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::repo::RepoError;
use crate::repo::limits::{MAX_FILE_BYTES, human_bytes};
use gitship_foundation::diagnostics::Location;

/// Whether `relative` (a path from `gitship.yaml`) stays below the root when read as written:
/// not absolute, and no `..` climbing above its start.
pub fn lexically_inside(relative: &Path) -> bool {
    let mut depth: usize = 0;
    for component in relative.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => return false,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            Component::Normal(_) => depth += 1,
        }
    }
    true
}

/// `path` with symlinks resolved, refused when it resolves outside `root` (canonical). A path that
/// does not exist is returned as it is: the caller reports that in its own words.
pub fn confine(
    root: &Path,
    path: &Path,
    location: Option<&Location>,
) -> Result<PathBuf, RepoError> {
    let resolved = match path.canonicalize() {
        Ok(resolved) => resolved,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(source) => {
            return Err(RepoError::Io {
                path: shown(root, path),
                source,
            });
        }
    };
    if resolved.starts_with(root) {
        Ok(resolved)
    } else {
        Err(RepoError::OutsideRepository {
            location: location.cloned(),
            path: shown(root, path),
            target: resolved,
        })
    }
}

/// A Helm chart's file: a directory holding one is a chart (`kubernetes.helm`), not manifests.
pub const CHART_FILE: &str = "Chart.yaml";

/// The names of a kustomization file: never an object to apply.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// What a manifests directory holds: the plain manifest files, and the directories below it
/// that hold a kustomization (each built with kustomize as a whole, as Flux builds them, never
/// read file by file: that would drop its patches, prefixes and labels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestTree {
    /// `*.yaml` and `*.yml` files, in path order.
    pub files: Vec<PathBuf>,
    /// Directories below the start holding a kustomization file (not a `kind: Component`), in
    /// path order; their files are not in `files`.
    pub kustomizations: Vec<PathBuf>,
}

/// The manifest files below `dir`: `*.yaml` and `*.yml`, recursively, in path order; hidden files
/// and directories, kustomization files ([`KUSTOMIZATION_FILES`]), files matching `exclude`
/// (globs relative to `dir`) and the paths in `skip` (gitship's own files and layers, when the
/// manifests directory holds them: `paths.kubernetes: .`) are skipped. A directory below `dir`
/// holding a kustomization is a [`ManifestTree::kustomizations`] entry. A Helm chart (a
/// directory holding [`CHART_FILE`]) is not walked: its `Chart.yaml` stands
/// for it among the files, for the render to render it with helm or refuse it, never to read its
/// templates as manifests. Symlinks are followed
/// when they stay inside `root`; one that leaves it, or leads back to a directory being walked (a
/// loop), is an error; so is a file over [`MAX_FILE_BYTES`].
pub fn manifest_tree(
    root: &Path,
    dir: &Path,
    exclude: &globset::GlobSet,
    skip: &[PathBuf],
) -> Result<ManifestTree, RepoError> {
    let start = confine(root, dir, None)?;
    let mut walk = Walk {
        root,
        start: dir,
        exclude,
        skip,
        tree: ManifestTree::default(),
    };
    walk.directory(dir, &mut vec![start])?;
    let mut tree = walk.tree;
    tree.files.retain(|file| {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let relative = file.strip_prefix(dir).unwrap_or(file);
        !KUSTOMIZATION_FILES.contains(&name) && !exclude.is_match(relative)
    });
    tree.files.sort();
    tree.kustomizations.sort();
    Ok(tree)
}

/// [`manifest_tree`]'s files alone, with nothing skipped but hidden and excluded files.
pub fn manifest_files(
    root: &Path,
    dir: &Path,
    exclude: &globset::GlobSet,
) -> Result<Vec<PathBuf>, RepoError> {
    manifest_tree(root, dir, exclude, &[]).map(|tree| tree.files)
}

/// One walk of a manifests directory.
struct Walk<'a> {
    root: &'a Path,
    start: &'a Path,
    exclude: &'a globset::GlobSet,
    skip: &'a [PathBuf],
    tree: ManifestTree,
}

impl Walk<'_> {
    /// Walk `dir`; `ancestors` are the canonical directories from the start down to `dir`.
    fn directory(&mut self, dir: &Path, ancestors: &mut Vec<PathBuf>) -> Result<(), RepoError> {
        let root = self.root;
        let io = |path: &Path| {
            let path = shown(root, path);
            move |source| RepoError::Io { path, source }
        };
        let chart = dir.join(CHART_FILE);
        if chart.is_file() {
            self.tree.files.push(chart);
            return Ok(());
        }
        let mut entries = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io(dir))?;
        entries.sort_by_key(|e| e.file_name());
        let mut seen_here = HashSet::new();
        for entry in entries {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') || self.skip.contains(&path) {
                continue;
            }
            let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            let file_type = entry.file_type().map_err(io(&path))?;
            let (is_dir, canonical) = if file_type.is_symlink() {
                match std::fs::metadata(&path) {
                    // A dangling link: an error only where a manifest was meant.
                    Err(source) if is_yaml => return Err(io(&path)(source)),
                    Err(_) => continue,
                    Ok(metadata) => (metadata.is_dir(), confine(root, &path, None)?),
                }
            } else {
                (file_type.is_dir(), path.clone())
            };
            if is_dir {
                if ancestors.contains(&canonical) {
                    return Err(RepoError::SymlinkLoop {
                        path: shown(root, &path),
                        target: shown(root, &canonical),
                    });
                }
                if !seen_here.insert(canonical.clone()) {
                    continue;
                }
                if self.kustomization(&path)? {
                    continue;
                }
                ancestors.push(canonical);
                self.directory(&path, ancestors)?;
                ancestors.pop();
            } else if is_yaml {
                let metadata = std::fs::metadata(&path).map_err(io(&path))?;
                if !metadata.is_file() {
                    return Err(io(&path)(not_regular()));
                }
                let size = metadata.len();
                if size > MAX_FILE_BYTES {
                    return Err(RepoError::TooLarge {
                        path: shown(root, &path),
                        size,
                    });
                }
                self.tree.files.push(path);
            }
        }
        Ok(())
    }

    /// Whether `dir` (below the start) holds a kustomization, which is then the tree's to
    /// build. A `kind: Component` is not: other kustomizations use it, it builds nothing alone;
    /// its directory (like one `paths.exclude` matches) is skipped whole.
    fn kustomization(&mut self, dir: &Path) -> Result<bool, RepoError> {
        let Some(file) = KUSTOMIZATION_FILES
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.is_file())
        else {
            return Ok(false);
        };
        let relative = dir.strip_prefix(self.start).unwrap_or(dir);
        let excluded = self.exclude.is_match(relative)
            || self
                .exclude
                .is_match(file.strip_prefix(self.start).unwrap_or(&file));
        let text = read_text(self.root, &file)?;
        let component = crate::repo::yaml::parse_single(&text)
            .ok()
            .flatten()
            .is_some_and(|node| node.to_json()["kind"] == "Component");
        if !excluded && !component {
            self.tree.kustomizations.push(dir.to_path_buf());
        }
        Ok(true)
    }
}

/// Read a text file of the repository, refusing one over [`MAX_FILE_BYTES`] without reading more
/// than that.
pub fn read_text(root: &Path, path: &Path) -> Result<String, RepoError> {
    let io = |source| RepoError::Io {
        path: shown(root, path),
        source,
    };
    // A FIFO would block the read for good, a device would never end: regular files only.
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(io(not_regular()));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let size = std::fs::metadata(path)
            .map(|m| m.len())
            .unwrap_or(bytes.len() as u64);
        return Err(RepoError::TooLarge {
            path: shown(root, path),
            size,
        });
    }
    String::from_utf8(bytes)
        .map_err(|err| io(std::io::Error::new(std::io::ErrorKind::InvalidData, err)))
}

/// The error for a path that is a FIFO, socket, device or directory where a file was meant.
fn not_regular() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "not a regular file (a FIFO, socket, device or directory): gitship reads regular files only",
    )
}

/// `path` relative to `root` when it lies below it.
fn shown(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

/// The limit, for messages.
pub fn max_file_size() -> String {
    human_bytes(MAX_FILE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_confinement() {
        assert!(lexically_inside(Path::new("infrastructure/kubernetes")));
        assert!(lexically_inside(Path::new("./a/../b")));
        assert!(!lexically_inside(Path::new("../outside")));
        assert!(!lexically_inside(Path::new("a/../../outside")));
        assert!(!lexically_inside(Path::new("/etc")));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_and_loops_are_refused() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("repo");
        let dir = root.join("k8s");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let root = root.canonicalize().unwrap();
        let dir = root.join("k8s");
        std::fs::write(dir.join("a.yaml"), "a: 1\n").unwrap();
        std::fs::write(dir.join("sub/b.yml"), "b: 1\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        let none = globset::GlobSet::empty();
        let found = manifest_files(&root, &dir, &none).unwrap();
        assert_eq!(found, vec![dir.join("a.yaml"), dir.join("sub/b.yml")]);
        std::fs::write(dir.join("kustomization.yaml"), "resources: []\n").unwrap();
        let mut exclude = globset::GlobSetBuilder::new();
        exclude.add(globset::Glob::new("sub/**").unwrap());
        let found = manifest_files(&root, &dir, &exclude.build().unwrap()).unwrap();
        assert_eq!(
            found,
            vec![dir.join("a.yaml")],
            "kustomization and excluded files skipped"
        );
        std::fs::remove_file(dir.join("kustomization.yaml")).unwrap();

        std::os::unix::fs::symlink(&dir, dir.join("sub/loop")).unwrap();
        let err = manifest_files(&root, &dir, &none).unwrap_err();
        assert!(matches!(err, RepoError::SymlinkLoop { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "`k8s/sub/loop` is a symlink loop: it leads back to `k8s`"
        );
        std::fs::remove_file(dir.join("sub/loop")).unwrap();

        let outside = temp.path().join("outside.yaml");
        std::fs::write(&outside, "secret: 1\n").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link.yaml")).unwrap();
        let err = manifest_files(&root, &dir, &none).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`k8s/link.yaml` is outside the repository: it resolves to `"),
            "{err}"
        );
    }

    #[test]
    fn large_files_are_refused_unread() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().canonicalize().unwrap();
        let path = root.join("big.yaml");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(20 * 1024 * 1024).unwrap();
        let err = read_text(&root, &path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`big.yaml` is 20 MiB, larger than the 16 MiB gitship reads from one file"
        );
        std::fs::write(&path, "a: 1\n").unwrap();
        assert_eq!(read_text(&root, &path).unwrap(), "a: 1\n");
    }
}
