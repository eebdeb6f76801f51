//! Logging with `tracing` to stderr. By default only gitship's own warnings (and kubesim's, in
//! the sandbox) are shown: the libraries' log lines (kube, hyper, ...) say what gitship's errors
//! already say, less readably. `-v` shows gitship's debug lines and the libraries' info, `-vv`
//! everything, `-q` errors only; `RUST_LOG` overrides all of them.

use tracing_subscriber::EnvFilter;

use crate::cli::GlobalArgs;

/// Install the global subscriber (once; later calls are ignored).
pub fn init(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "gitship=error,kubesim=error",
        (false, 0) => "gitship=warn,kubesim=warn",
        (false, 1) => "gitship=debug,kubesim=debug,info",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = match global.color {
        crate::cli::ColorArg::Always => true,
        crate::cli::ColorArg::Never => false,
        crate::cli::ColorArg::Auto => {
            std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr())
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .without_time()
        .try_init();
}
