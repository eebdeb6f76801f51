//! Leader election: one Lease per environment (`gitship-<env>.agent`, in the environment's
//! namespace), so that several agent replicas can run and only one reconciles.
//!
//! The leader renews the Lease every third of its duration (the deploy lock's renewer). When it
//! dies without letting go (kill -9, a lost node), the Lease expires and a follower takes over
//! within one lease duration and a poll. A leader that sees another holder in its Lease steps
//! down. On SIGTERM the leader deletes its Lease, so a follower takes over at once.
//!
//! The leader also publishes its [`Status`] to the ConfigMap `gitship-<env>.agent`, whenever it
//! changes (a no-op reconcile writes nothing), so `gitship status` can show it from the cluster,
//! and followers learn from it where the leader serves HTTP (they forward webhooks there).
//! `gitship sync` asks the leader for a sync through the same ConfigMap
//! ([`gitship_kube::sync_request`]).

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::agent::state::Status;
pub use crate::ops::agent_status::load_published;
use gitship_foundation::model::{Environment, MANAGED_BY_LABEL};
use gitship_foundation::output::Printer;
use gitship_kube::KubeError;
use gitship_kube::lock::{self, DeployLock, LockOptions, NamedLease};
use gitship_kube::progress::Progress;
use gitship_kube::retry::RetryPolicy;

/// The field manager of what the agent itself writes (its status).
const FIELD_MANAGER: &str = "gitship-agent";

/// The outcome of one attempt at leading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contention {
    Leading,
    /// Another replica leads.
    Following {
        leader: String,
    },
}

/// This replica's place in the election.
#[derive(Debug)]
pub struct Leadership {
    lease: NamedLease,
    identity: String,
    options: LockOptions,
    held: Option<DeployLock>,
    /// The leader this replica last followed. The lock's waiting line is printed the first time
    /// only, not at every lease duration; the agent prints a line when the leader changes.
    following: Option<String>,
}

impl Leadership {
    pub fn new(
        environment: &Environment,
        identity: &str,
        lease_duration: std::time::Duration,
    ) -> Leadership {
        Leadership {
            lease: NamedLease {
                name: gitship_foundation::model::agent_lease_name(&environment.name),
                namespace: environment.namespace.clone(),
                environment: environment.name.clone(),
                what: "leadership",
            },
            identity: identity.to_string(),
            options: LockOptions {
                // One attempt waits one lease duration, then reports who leads.
                timeout: lease_duration,
                lease_duration,
            },
            held: None,
            following: None,
        }
    }

    /// Whether this replica leads (it holds the Lease and nobody took it over).
    pub fn is_leader(&self) -> bool {
        self.held.as_ref().is_some_and(|held| !held.is_lost())
    }

    /// Take the lead, waiting up to one lease duration for the leader's Lease to expire.
    pub async fn contend(
        &mut self,
        client: &Client,
        printer: &Printer,
    ) -> Result<Contention, KubeError> {
        if self.is_leader() {
            return Ok(Contention::Leading);
        }
        self.held = None;
        if gitship_kube::deploy::ensure_namespace_exists(
            client,
            &self.lease.namespace,
            &self.lease.environment,
            &RetryPolicy::default(),
        )
        .await?
        {
            printer.status(&format!(
                "agent: created namespace `{}`",
                self.lease.namespace
            ));
        }
        let quiet;
        let printer = if self.following.is_some() {
            quiet = Printer {
                quiet: true,
                ..printer.clone()
            };
            &quiet
        } else {
            printer
        };
        let progress = Progress::new(printer, 0);
        match lock::acquire_lease(
            client,
            &self.lease,
            &self.identity,
            self.options,
            &RetryPolicy::default(),
            &progress,
        )
        .await
        {
            Ok(held) => {
                self.held = Some(held);
                self.following = None;
                Ok(Contention::Leading)
            }
            Err(KubeError::LockTimeout { holder, .. }) => {
                self.following = Some(holder.clone());
                Ok(Contention::Following { leader: holder })
            }
            Err(error) => Err(error),
        }
    }

    /// Give the lead up: delete the Lease when it is still ours.
    pub async fn resign(&mut self) -> Result<(), KubeError> {
        match self.held.take() {
            Some(held) => held.release(&RetryPolicy::default()).await,
            None => Ok(()),
        }
    }
}

/// Write `status` to the environment's agent status ConfigMap (server-side apply).
pub async fn publish(
    client: &Client,
    environment: &Environment,
    status: &Status,
) -> Result<(), KubeError> {
    let name = gitship_foundation::model::agent_status_name(&environment.name);
    let text = serde_json::to_string_pretty(status)
        .map_err(|e| KubeError::about(format!("ConfigMap {name}"), kube::Error::SerdeError(e)))?;
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": environment.namespace,
            "labels": {MANAGED_BY_LABEL: gitship_foundation::model::FIELD_MANAGER},
        },
        "data": {"status.json": text},
    });
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), &environment.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    RetryPolicy::default()
        .run(&name, || api.patch(&name, &params, &patch))
        .await
        .map(|_| ())
        .map_err(|source| KubeError::about(format!("ConfigMap {name}"), source))
}
