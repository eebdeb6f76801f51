//! The Kubernetes stage: everything gitship does against a cluster's API.
//!
//! It owns the concepts between "rendered manifests" and "a healthy, converged environment":
//!
//! - [`client`]: one `kube::Client` per environment, built from `--kubeconfig` / `KUBECONFIG` /
//!   `~/.kube/config` and the environment's context, or from the in-cluster config; the client is
//!   built once by the command and injected everywhere below.
//! - [`discovery`]: apiVersion/kind -> resource and scope, cached for the run.
//! - [`order`]: the staged, documented apply order (bootstrap kinds, kind order, waves).
//! - [`apply`]: server-side apply with field manager `gitship`, change detection and retries.
//! - [`diff`]: the server-side dry-run comparison with the live object over the fields gitship
//!   manages; `plan`, `diff` and `drift` reuse it.
//! - [`health`]: rollout health like `kubectl rollout status`, and failure reports with Events;
//!   [`tree`]: each object's health with its ReplicaSets and Pods, for the agent's status page.
//! - [`hooks`]: Argo CD and Helm hooks run in their phase (PreSync, Sync, PostSync, SyncFail),
//!   with their delete policies; they are no desired objects.
//! - [`inventory`] and [`prune`]: what gitship applied last time, and what to delete now.
//! - [`lock`]: the per-environment Lease that keeps two deploys from interleaving (and the
//!   agent's leader Lease).
//! - [`events`]: Kubernetes Events on the inventory, the audit trail `kubectl get events` shows.
//! - [`pin`]: the revision a rollback pinned the environment at.
//! - [`preview`]: preview environments, recorded on their namespaces.
//! - [`destroy`]: `gitship destroy`'s cluster side: the inventory's objects deleted in reverse
//!   order and waited for, gitship's records, the namespace.
//! - [`deploy`]: the entry point `gitship deploy` calls, [`deploy::deploy_objects`].

pub mod apply;
pub mod check;
pub mod client;
pub mod deploy;
pub mod destroy;
pub mod diff;
pub mod discovery;
mod error;
pub mod events;
pub mod fields;
pub mod health;
pub mod hooks;
pub mod inventory;
pub mod live;
pub mod lock;
pub mod order;
pub mod pin;
pub mod preview;
pub mod progress;
pub mod prune;
pub mod retry;
pub mod revisions;
pub mod sandbox;
pub mod sync_request;
pub mod tree;

pub use client::{ClientOptions, connect};
pub use deploy::{DeployOptions, DeployReport, ObjectAction, deploy_objects};
pub use diff::{FieldChange, ObjectDiff, PlannedAction};
pub(crate) use error::immutable_field;
pub use error::{KubeError, error_message};
