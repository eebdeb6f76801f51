//! `gitship agent ENV`: pull-based GitOps. See `ARCHITECTURE.md` ("The agent").
//!
//! - [`state`]: the status and metrics the loop shares with the HTTP server;
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, `/status`, `/` and `POST /hooks/git`;
//! - [`manifests`]: what runs the agent in the cluster.

pub mod http;
pub mod manifests;
pub mod metrics;
pub mod state;
