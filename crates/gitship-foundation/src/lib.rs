//! gitship's foundation: what every layer may use, and nothing of gitship above it.
//!
//! A crate of its own so that the Kubernetes stage (`gitship-kube`), which uses only these
//! modules, is a crate too and the compiler enforces its boundary (`ARCHITECTURE.md`, "Layers").
//! The `gitship` crate names each module by its crate path (`gitship_foundation::diagnostics`).
//! The rest of the foundation (`repo`, `git`, `exit`) stays in `gitship`: nothing here needs it.
//! `ci` is here because the printer and the diagnostics ask it which CI they run in.

pub mod ci;
pub mod diagnostics;
pub mod duration;
pub mod model;
pub mod output;
pub mod private_file;
pub mod process;
pub mod tls;
