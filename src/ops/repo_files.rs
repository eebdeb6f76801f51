//! The files `init`, `ci init` and `env new` write into the repository, checked and written one
//! way ([`gitship_foundation::private_file::check`], [`gitship_foundation::private_file::write_in`]): never through a
//! symlink (at the file or on the way to it), never over anything but a regular file, and every
//! file checked before the first one is written.

use std::path::{Path, PathBuf};

use anyhow::Result;

use gitship_foundation::diagnostics::user_error;
use gitship_foundation::private_file::{self, Existing, WriteError};

/// Those of `paths` (below `root`) where a regular file is, after refusing every one gitship
/// would not write: a symlink (dangling or not), a device, FIFO, socket or directory at the
/// path, or a symlink on the way below `root`.
pub fn existing(root: &Path, paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut existing = Vec::new();
    for path in paths {
        private_file::check(path, Some(root)).map_err(refused(root, path))?;
        // Checked: nothing, or a regular file.
        if std::fs::symlink_metadata(path).is_ok() {
            existing.push(path.clone());
        }
    }
    Ok(existing)
}

/// Write `text` to `path` below `root`: created new, or, when `replace`, over a regular file
/// (in place: it keeps its mode).
pub fn write(root: &Path, path: &Path, text: &str, replace: bool) -> Result<()> {
    let existing = if replace {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    private_file::write_in(root, path, text.as_bytes(), existing).map_err(refused(root, path))
}

/// A refused or failed write of `path`, named as the user sees it (relative to `root`), with
/// the refusal's reason and hint.
fn refused(root: &Path, path: &Path) -> impl FnOnce(WriteError) -> anyhow::Error {
    let shown = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    move |error| user_error(error).context(format!("cannot write `{shown}`"))
}
