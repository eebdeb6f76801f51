//! Every file gitship writes, and the rule they keep (ARCHITECTURE.md, Invariants, "Writes"):
//! gitship writes only regular files it created or owns, inside the repository's `.gitship/`,
//! the agent's cache, a private temporary directory of its own, or a path the user named; never
//! through a symlink, never over a device, FIFO, socket or directory, and never changing the mode
//! of anything it did not create.
//!
//! - [`write`]: a file holding secrets (a saved plan and its `.tfplan`, Terraform's var file and
//!   backend settings): a new 0600 file (`O_EXCL`) renamed over the target, so an existing
//!   regular file keeps none of its mode.
//! - [`write_in`]: a file of the repository (`init`, `ci init`, `env new`): created new
//!   (`O_EXCL`, never over a dangling link) or, when [`Existing`] allows, an existing regular file
//!   written in place (it keeps its mode); no directory on the way below the repository's root
//!   may be a symlink.
//! - [`create_new`]: a new file, opened (a child's output, the private copy kustomize builds).
//! - [`append`]: the end of a regular file the user named (`$GITHUB_STEP_SUMMARY`).
//! - [`create_dir`], [`create_dir_in`]: directories, 0700 for those gitship creates; an existing
//!   one keeps its mode.
//! - [`check`]: the same refusals, before anything runs (`plan --out`, `init`, `ci init`, `env
//!   new` check every file before writing the first).
//! - [`restrict`], [`remove`]: tighten a file another program wrote at gitship's request
//!   (Terraform's planfile) to 0600; remove a file or a symlink (never its target).
//!
//! Nothing else in gitship writes a file, creates a directory or changes a mode (`std::fs::write`,
//! `File::create`, `OpenOptions`, `set_permissions`, `create_dir*`, a rename):
//! `tests/it/writes.rs` reads the source to hold that, and drives every writer against a symlink,
//! a FIFO and a directory.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::diagnostics::StageError;

/// What [`write_in`] does with a regular file already at its target (anything else there is
/// always refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse it ([`WriteError::Exists`]): the file is created new.
    Refuse,
    /// Replace its content, in place.
    Replace,
    /// Keep it as it is and write nothing (a file written once, as a `.gitignore` marker).
    Keep,
}

/// Why a write was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Something other than a regular file (a symlink, a device, a FIFO, a socket, a directory)
    /// is where a file is to be written: it is neither replaced nor written through.
    #[error("`{}` is {found}, not a regular file", path.display())]
    NotAFile { path: PathBuf, found: &'static str },
    /// Something other than a directory (a symlink, below the directory a write is confined to)
    /// is where a directory is needed.
    #[error("`{}` is {found}, not a directory", path.display())]
    NotADirectory { path: PathBuf, found: &'static str },
    /// A regular file is there, and the write may not replace it.
    #[error("`{}` exists already", path.display())]
    Exists { path: PathBuf },
    /// A path that is not below the directory its write is confined to.
    #[error("`{}` is outside `{}`", path.display(), root.display())]
    Outside { path: PathBuf, root: PathBuf },
    /// The file system refused.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StageError for WriteError {
    fn hint(&self) -> Option<String> {
        match self {
            WriteError::NotAFile { path, found } | WriteError::NotADirectory { path, found }
                if *found == SYMLINK =>
            {
                Some(format!(
                    "gitship never writes through a symlink: remove the link `{}` (its target is left alone) or use a path without one",
                    path.display()
                ))
            }
            WriteError::NotAFile { path, .. } => Some(format!(
                "gitship writes only regular files, never into a device, FIFO, socket or directory: move `{}` away, or write elsewhere",
                path.display()
            )),
            WriteError::NotADirectory { path, .. } => Some(format!(
                "move `{}` away, or name a path whose directories are directories",
                path.display()
            )),
            WriteError::Exists { path } => Some(format!(
                "gitship does not overwrite `{}`: move it away first",
                path.display()
            )),
            WriteError::Outside { .. } | WriteError::Io { .. } => None,
        }
    }
}

/// How [`kind`] names a symlink.
const SYMLINK: &str = "a symlink";

/// What a file type is, for messages.
fn kind(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_symlink() {
        SYMLINK
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_file() {
        "a regular file"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io {
        action,
        path,
        source,
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Whether anything is at `path` (not following a symlink): `false` for nothing, `true` for a
/// regular file; anything else is refused.
fn regular_or_nothing(path: &Path) -> Result<bool, WriteError> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_file() => Ok(true),
        Ok(metadata) => Err(WriteError::NotAFile {
            path: path.to_path_buf(),
            found: kind(metadata.file_type()),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(io_error("inspect", path)(source)),
    }
}

/// Refuse, without writing anything, what a write of `path` would refuse: anything at `path`
/// but a regular file (a symlink included), and a directory on the way that is not one. Below
/// `root` (the repository, for its files) no directory on the way may be a symlink; without a
/// root (a path the user named) only `path` itself is checked, and the directories it is in may
/// be reached through links.
pub fn check(path: &Path, root: Option<&Path>) -> Result<(), WriteError> {
    match root {
        Some(root) => check_directories(root, parent_of(path))?,
        None => match std::fs::metadata(parent_of(path)) {
            Ok(metadata) if !metadata.is_dir() => {
                return Err(WriteError::NotADirectory {
                    path: parent_of(path).to_path_buf(),
                    found: kind(metadata.file_type()),
                });
            }
            _ => {}
        },
    }
    regular_or_nothing(path).map(|_| ())
}

/// The components of `dir` below `root`, refusing a `..` or a path elsewhere.
fn below(root: &Path, dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
    let outside = || WriteError::Outside {
        path: dir.to_path_buf(),
        root: root.to_path_buf(),
    };
    let relative = dir.strip_prefix(root).map_err(|_| outside())?;
    let mut current = root.to_path_buf();
    let mut directories = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(name) => current.push(name),
            Component::CurDir => continue,
            _ => return Err(outside()),
        }
        directories.push(current.clone());
    }
    Ok(directories)
}

/// Every directory on the way from `root` (excluded) to `dir` that exists is a directory, not
/// a symlink.
fn check_directories(root: &Path, dir: &Path) -> Result<(), WriteError> {
    for directory in below(root, dir)? {
        if !is_directory_below_root(&directory)? {
            break;
        }
    }
    Ok(())
}

/// `true` when `path` is a directory (not a symlink to one), `false` when nothing is there.
fn is_directory_below_root(path: &Path) -> Result<bool, WriteError> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => Ok(true),
        Ok(metadata) => Err(WriteError::NotADirectory {
            path: path.to_path_buf(),
            found: kind(metadata.file_type()),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(io_error("inspect", path)(source)),
    }
}

/// Write `bytes` to `path` as a file only its owner can read (see the module documentation).
/// The directory must exist ([`create_dir`]); what is at `path` must be nothing or a regular
/// file.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    regular_or_nothing(path)?;
    // tempfile creates its files 0600 with O_EXCL, in the target's directory, so the rename
    // stays on one filesystem and is atomic (and replaces a directory entry, never writes
    // through one).
    let mut file = tempfile::Builder::new()
        .prefix(".gitship-")
        .tempfile_in(parent_of(path))
        .map_err(io_error("create a file beside", path))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(io_error("write", path))?;
    file.persist(path)
        .map_err(|error| io_error("write", path)(error.error))?;
    Ok(())
}

/// Write `bytes` to `path`, a file of the repository at `root`, readable as the umask allows.
/// The directories missing on the way are created with the default mode (they are the
/// repository's), and none of those there may be a symlink. A regular file at `path` is
/// handled as `existing` says; anything else there (a dangling symlink too) is refused.
pub fn write_in(
    root: &Path,
    path: &Path,
    bytes: &[u8],
    existing: Existing,
) -> Result<(), WriteError> {
    for directory in below(root, parent_of(path))? {
        if !is_directory_below_root(&directory)? {
            make_dir(&directory, 0o777)?;
        }
    }
    let mut file = if regular_or_nothing(path)? {
        match existing {
            Existing::Refuse => {
                return Err(WriteError::Exists {
                    path: path.to_path_buf(),
                });
            }
            Existing::Keep => return Ok(()),
            Existing::Replace => open_regular(path)?,
        }
    } else {
        open_new(path, 0o666)?
    };
    file.write_all(bytes).map_err(io_error("write", path))
}

/// Create the file `path` (nothing may be there: `O_EXCL`, a dangling symlink counts) with
/// `mode` (less the umask), and open it for writing. Its directory must exist: a private one of
/// gitship's ([`create_dir`], [`create_dir_in`], a temporary directory of its own).
pub fn create_new(path: &Path, mode: u32) -> Result<std::fs::File, WriteError> {
    if !regular_or_nothing(path)? {
        return open_new(path, mode);
    }
    Err(WriteError::Exists {
        path: path.to_path_buf(),
    })
}

/// Append `bytes` to the regular file at `path` (a path the user named; created when missing,
/// as the umask allows): never through a symlink, never to a device, FIFO or socket.
pub fn append(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    regular_or_nothing(path)?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(io_error("open", path))?;
    let metadata = file.metadata().map_err(io_error("inspect", path))?;
    if !metadata.is_file() {
        return Err(WriteError::NotAFile {
            path: path.to_path_buf(),
            found: kind(metadata.file_type()),
        });
    }
    file.write_all(bytes).map_err(io_error("append to", path))
}

/// A new file at `path` with `mode` (less the umask): `O_EXCL`, so nothing that appeared there
/// meanwhile (a symlink included) is opened.
fn open_new(path: &Path, mode: u32) -> Result<std::fs::File, WriteError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_error("create", path))
}

/// The regular file at `path`, opened to be written from its start (emptied): never through a
/// symlink, never blocking on a FIFO swapped in since it was checked, and checked again.
fn open_regular(path: &Path) -> Result<std::fs::File, WriteError> {
    let file = open_checked(path, std::fs::OpenOptions::new().write(true))?;
    file.set_len(0).map_err(io_error("empty", path))?;
    Ok(file)
}

/// `path` opened with `options`, never through a symlink nor blocking on a FIFO, and refused
/// unless what was opened is a regular file (checked on the open file: nothing can be swapped
/// in between).
fn open_checked(
    path: &Path,
    options: &mut std::fs::OpenOptions,
) -> Result<std::fs::File, WriteError> {
    let file = options
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(io_error("open", path))?;
    let metadata = file.metadata().map_err(io_error("inspect", path))?;
    if !metadata.is_file() {
        return Err(WriteError::NotAFile {
            path: path.to_path_buf(),
            found: kind(metadata.file_type()),
        });
    }
    Ok(file)
}

/// Create `dir` and its missing parents, each with mode 0700; a directory that exists keeps
/// its mode (it may be a link to one: a path the user named). Something else than a directory
/// on the way is refused.
pub fn create_dir(dir: &Path) -> Result<(), WriteError> {
    match std::fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => return Ok(()),
        Ok(metadata) => {
            return Err(WriteError::NotADirectory {
                path: dir.to_path_buf(),
                found: kind(metadata.file_type()),
            });
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(io_error("inspect", dir)(source)),
    }
    if std::fs::symlink_metadata(dir).is_ok() {
        // A symlink to nothing.
        return Err(WriteError::NotADirectory {
            path: dir.to_path_buf(),
            found: SYMLINK,
        });
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    make_dir(dir, 0o700)
}

/// `mkdir` `dir` with `mode` (less the umask); one that appeared meanwhile is fine when it is a
/// directory.
fn make_dir(dir: &Path, mode: u32) -> Result<(), WriteError> {
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            is_directory_below_root(dir).map(|_| ())
        }
        Err(source) => Err(io_error("create", dir)(source)),
    }
}

/// Create `dir` below `root` (the repository, the cache) and the directories missing on the way,
/// each with mode 0700; one that exists keeps its mode, and must be a directory, not a symlink.
pub fn create_dir_in(root: &Path, dir: &Path) -> Result<(), WriteError> {
    for directory in below(root, dir)? {
        if !is_directory_below_root(&directory)? {
            make_dir(&directory, 0o700)?;
        }
    }
    Ok(())
}

/// Make the file at `path` (written by another program at gitship's request) readable by its
/// owner only. Anything but a regular file is refused, a symlink included.
pub fn restrict(path: &Path) -> Result<(), WriteError> {
    if !regular_or_nothing(path)? {
        return Err(io_error("restrict", path)(
            std::io::ErrorKind::NotFound.into(),
        ));
    }
    // The mode changes on what was opened and checked.
    let file = open_checked(path, std::fs::OpenOptions::new().read(true))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io_error("restrict", path))
}

/// Remove whatever is at `path` (a file or a symlink, never its target); nothing there is fine.
pub fn remove(path: &Path) -> Result<(), WriteError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => std::fs::remove_file(path).map_err(io_error("remove", path)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_error("inspect", path)(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o777
    }

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn open_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn an_existing_readable_file_becomes_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, b"secret").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret");
    }

    #[test]
    fn a_symlink_is_refused_never_followed_nor_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("plan.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let target_mode = mode(&target);
        let error = write(&link, b"secret").unwrap_err();
        assert!(
            matches!(&error, WriteError::NotAFile { found, .. } if *found == SYMLINK),
            "{error:?}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert!(check(&link, None).is_err());
        assert!(
            error
                .hint()
                .unwrap()
                .contains("never writes through a symlink")
        );
        // `restrict` refuses a symlink, `remove` removes the link and not its target.
        assert!(restrict(&link).is_err());
        assert_eq!(mode(&target), target_mode);
        remove(&link).unwrap();
        assert!(target.exists());
        remove(&link).unwrap();
    }

    #[test]
    fn a_fifo_or_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let directory = dir.path().join("directory");
        std::fs::create_dir(&directory).unwrap();
        for (path, found) in [(&fifo, "a FIFO"), (&directory, "a directory")] {
            let error = write(path, b"secret").unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("`{}` is {found}, not a regular file", path.display())
            );
            assert!(error.hint().is_some());
            assert!(check(path, None).is_err());
            assert!(restrict(path).is_err());
        }
        assert!(fifo.symlink_metadata().unwrap().file_type().is_fifo());
        assert_eq!(std::fs::read_dir(&directory).unwrap().count(), 0);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary file left behind");
    }

    #[test]
    fn only_directories_gitship_creates_are_made_private() {
        let dir = open_dir();
        let nested = dir.path().join("a/b");
        create_dir(&nested).unwrap();
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(dir.path()), 0o755, "it was there before");
        let existing = open_dir();
        create_dir(existing.path()).unwrap();
        assert_eq!(mode(existing.path()), 0o755);
        let written = nested.join("f");
        std::fs::write(&written, "x").unwrap();
        restrict(&written).unwrap();
        assert_eq!(mode(&written), 0o600);
    }

    #[test]
    fn directories_below_a_root_never_go_through_a_symlink() {
        let root = open_dir();
        let outside = open_dir();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let error = create_dir_in(root.path(), &root.path().join("link/state")).unwrap_err();
        assert!(
            matches!(&error, WriteError::NotADirectory { found, .. } if *found == SYMLINK),
            "{error:?}"
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(check(&root.path().join("link/file"), Some(root.path())).is_err());
        assert!(
            check(&root.path().join("link/file"), None).is_ok(),
            "a named path"
        );
        assert!(matches!(
            create_dir_in(root.path(), outside.path()),
            Err(WriteError::Outside { .. })
        ));
        assert!(matches!(
            create_dir_in(root.path(), &root.path().join("../escape")),
            Err(WriteError::Outside { .. })
        ));
        create_dir_in(root.path(), &root.path().join(".gitship/sandbox")).unwrap();
        assert_eq!(mode(&root.path().join(".gitship")), 0o700);
        assert_eq!(mode(&root.path().join(".gitship/sandbox")), 0o700);
        assert_eq!(mode(root.path()), 0o755);
    }

    #[test]
    fn files_of_the_repository_are_created_or_replaced_in_place_never_through_a_link() {
        let root = open_dir();
        let outside = open_dir();
        let file = root.path().join(".github/workflows/gitship.yml");
        write_in(root.path(), &file, b"one", Existing::Refuse).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "one");
        assert_eq!(
            mode(&root.path().join(".github")),
            0o755,
            "the umask's mode"
        );
        let error = write_in(root.path(), &file, b"two", Existing::Refuse).unwrap_err();
        assert!(matches!(error, WriteError::Exists { .. }), "{error:?}");
        write_in(root.path(), &file, b"two", Existing::Keep).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "one");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_in(root.path(), &file, b"2", Existing::Replace).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "2");
        assert_eq!(mode(&file), 0o640, "replaced in place, its mode kept");

        let dangling = root.path().join(".gitlab-ci.yml");
        std::os::unix::fs::symlink(outside.path().join("written"), &dangling).unwrap();
        let fifo = root.path().join("fifo");
        mkfifo(&fifo);
        let linked_dir = root.path().join("config");
        std::os::unix::fs::symlink(outside.path(), &linked_dir).unwrap();
        for existing in [Existing::Refuse, Existing::Replace, Existing::Keep] {
            for path in [&dangling, &fifo, &linked_dir.join("staging.yaml")] {
                let error = write_in(root.path(), path, b"x", existing).unwrap_err();
                assert!(
                    matches!(
                        error,
                        WriteError::NotAFile { .. } | WriteError::NotADirectory { .. }
                    ),
                    "{path:?} {existing:?}: {error:?}"
                );
                assert!(check(path, Some(root.path())).is_err());
            }
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(fifo.symlink_metadata().unwrap().file_type().is_fifo());
    }

    #[test]
    fn new_files_and_appends_refuse_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("stdout");
        create_new(&fresh, 0o600).unwrap().write_all(b"x").unwrap();
        assert_eq!(mode(&fresh), 0o600);
        assert!(matches!(
            create_new(&fresh, 0o600),
            Err(WriteError::Exists { .. })
        ));
        let summary = dir.path().join("summary.md");
        append(&summary, b"one\n").unwrap();
        append(&summary, b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&summary).unwrap(), "one\ntwo\n");

        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&summary, &link).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        for path in [&fifo, &link, &dangling] {
            assert!(
                matches!(append(path, b"x"), Err(WriteError::NotAFile { .. })),
                "{path:?}"
            );
            assert!(
                matches!(create_new(path, 0o600), Err(WriteError::NotAFile { .. })),
                "{path:?}"
            );
        }
        assert_eq!(std::fs::read_to_string(&summary).unwrap(), "one\ntwo\n");
        assert!(!dir.path().join("nowhere").exists());
    }
}
