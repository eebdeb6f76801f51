//! Files that hold secrets (a saved plan, Terraform's planfile and var file, backend settings):
//! only their owner may read them, on every write, whatever was there before.
//!
//! [`write`] creates a new temporary file in the target's directory (0600, `O_EXCL`) and renames
//! it over the target: an existing file keeps none of its mode, and a symlink at the target is
//! replaced, never followed. [`create_dir`] creates directories 0700. [`restrict`] tightens a
//! file another program wrote (Terraform's planfile) to 0600, refusing to follow a symlink.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Write `bytes` to `path` as a file only its owner can read (see the module documentation).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // tempfile creates its files 0600 with O_EXCL, in `dir`, so the rename stays on one
    // filesystem and is atomic.
    let mut file = tempfile::Builder::new()
        .prefix(".gitship-")
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// Create `dir` and its missing parents with mode 0700; an existing directory is tightened to
/// 0700 too (it is gitship's own: `.gitship/...`).
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Make the file at `path` (written by another program) readable by its owner only. A symlink
/// is refused rather than followed.
pub fn restrict(path: &Path) -> std::io::Result<()> {
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.file_type().is_symlink() {
        return Err(std::io::Error::other(format!(
            "`{}` is a symlink; refusing to follow it",
            path.display()
        )));
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Remove whatever is at `path` (a file or a symlink, never its target); nothing there is fine.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => std::fs::remove_file(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o777
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
    fn a_symlink_is_replaced_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("plan.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write(&link, b"secret").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(
            !std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(mode(&link), 0o600);
        // `restrict` refuses a symlink, `remove` removes the link and not its target.
        let other = dir.path().join("other");
        std::os::unix::fs::symlink(&target, &other).unwrap();
        assert!(restrict(&other).is_err());
        remove(&other).unwrap();
        assert!(target.exists());
        remove(&other).unwrap();
    }

    #[test]
    fn directories_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir(&nested).unwrap();
        assert_eq!(mode(&nested), 0o700);
        let written = nested.join("f");
        std::fs::write(&written, "x").unwrap();
        restrict(&written).unwrap();
        assert_eq!(mode(&written), 0o600);
    }
}
