//! Running the render's programs (kustomize, helm): found on `PATH`, run to completion from
//! synchronous code through [`gitship_foundation::process::Process`], never a shell.

use std::path::{Path, PathBuf};

use gitship_foundation::process::{Process, ProcessError, ProcessOutput};

/// The executable `program` on `PATH`.
pub(super) fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Run `process` to completion from synchronous code: on a thread of its own with its own
/// runtime, so it works whether or not the caller is inside one.
// `ProcessError` is large by design (see `Process::check`).
#[allow(clippy::result_large_err)]
pub(super) fn run_blocking(process: &Process) -> Result<ProcessOutput, ProcessError> {
    let io = |source| ProcessError::Io {
        program: process.program.clone(),
        source,
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(io)?;
                runtime.block_on(process.run())
            })
            .join()
            .unwrap_or_else(|_| Err(io(std::io::Error::other("the thread running it panicked"))))
    })
}
