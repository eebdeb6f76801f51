//! kubesim: a simulated Kubernetes API server for tests and gitship's `--sandbox` mode.
//!
//! (Being built: see the kubesim issue.)
