//! The deploy lock: a `coordination.k8s.io/v1` Lease `gitship-<env>` in the environment
//! namespace, so two deploys of one environment never interleave.
//!
//! The holder identity is `<who> <uuid>`. Acquiring creates the Lease, or takes it over when it
//! is free or expired (`renewTime + leaseDurationSeconds` in the past: the holder crashed; a
//! warning names it); otherwise it waits, polling, up to the lock timeout and then fails naming
//! the holder. Every write uses the resourceVersion just read, so two contenders cannot both
//! win. While held, a background task renews the Lease every third of its duration; releasing
//! stops the task and deletes the Lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::KubeError;
use crate::error_message;
use crate::progress::Progress;
use crate::retry::{RetryPolicy, status_code};

/// Lock timing.
#[derive(Debug, Clone, Copy)]
pub struct LockOptions {
    /// How long to wait for another holder.
    pub timeout: Duration,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            timeout: Duration::from_secs(300),
            lease_duration: Duration::from_secs(30),
        }
    }
}

/// The state of a Lease as seen by `holder` at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    Free,
    Ours,
    Held { holder: String },
    Expired { holder: String },
}

/// The Lease's name for `environment`.
pub fn lease_name(environment: &str) -> String {
    gitship_foundation::model::reserved_name(environment)
}

/// How far two machines' clocks may disagree: a Lease renewed further in the future than its
/// duration plus this was not renewed by a live holder.
const MAX_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Judge a Lease (as JSON).
pub fn lease_state(lease: &Value, holder: &str, now: DateTime<Utc>) -> LeaseState {
    let spec = lease.get("spec");
    let current = spec
        .and_then(|s| s.get("holderIdentity"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if current.is_empty() {
        return LeaseState::Free;
    }
    if current == holder {
        return LeaseState::Ours;
    }
    let duration = spec
        .and_then(|s| s.get("leaseDurationSeconds"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let renewed = spec
        .and_then(|s| s.get("renewTime").or_else(|| s.get("acquireTime")))
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    // The duration comes from the cluster: an absurd one must not panic. The field is an int32
    // in Kubernetes; a sum out of range holds the lease (never take over a lock by mistake).
    let duration = duration.clamp(i64::from(i32::MIN), i64::from(i32::MAX));
    let expires = |renewed: DateTime<Utc>| {
        chrono::TimeDelta::try_seconds(duration).and_then(|d| renewed.checked_add_signed(d))
    };
    // A renewal further ahead than the clocks of two machines can disagree cannot come from a
    // live holder: a Lease written by hand (or committed to Git) with `renewTime` in 2099 would
    // otherwise hold the lock, or the agent's leadership, for good.
    let forged = |renewed: DateTime<Utc>| {
        chrono::TimeDelta::try_seconds(duration.max(0))
            .and_then(|d| now.checked_add_signed(d + MAX_CLOCK_SKEW))
            .is_some_and(|latest| renewed > latest)
    };
    match renewed {
        Some(renewed) if forged(renewed) => LeaseState::Expired {
            holder: current.to_string(),
        },
        Some(renewed) if expires(renewed).is_none_or(|expires| expires > now) => LeaseState::Held {
            holder: current.to_string(),
        },
        _ => LeaseState::Expired {
            holder: current.to_string(),
        },
    }
}

fn micro_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn lease_body(
    name: &str,
    namespace: &str,
    holder: &str,
    duration: Duration,
    transitions: i64,
    resource_version: Option<&str>,
) -> Value {
    let now = micro_time(Utc::now());
    let mut metadata = json!({"name": name, "namespace": namespace});
    if let Some(version) = resource_version {
        metadata["resourceVersion"] = json!(version);
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration.as_secs().max(1),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }
    })
}

/// A held lock; call [`DeployLock::release`] when done.
#[derive(Debug)]
pub struct DeployLock {
    api: Api<Lease>,
    name: String,
    holder: String,
    stop: Option<oneshot::Sender<()>>,
    renewer: Option<JoinHandle<()>>,
    lost: Arc<AtomicBool>,
}

fn api_error(name: &str, namespace: &str) -> impl Fn(kube::Error) -> KubeError + use<> {
    let object = format!("Lease {namespace}/{name}");
    move |source| KubeError::Api {
        object: object.clone(),
        message: error_message(&source),
        source,
    }
}

/// Acquire the environment's lock, waiting up to `options.timeout` for another holder.
pub(crate) async fn acquire(
    client: &Client,
    environment: &str,
    namespace: &str,
    holder: &str,
    options: LockOptions,
    retry: &RetryPolicy,
    printer: &Progress,
) -> Result<DeployLock, KubeError> {
    let lease = NamedLease {
        name: lease_name(environment),
        namespace: namespace.to_string(),
        environment: environment.to_string(),
        what: "lock",
    };
    acquire_lease(client, &lease, holder, options, retry, printer).await
}

/// Break the environment's deploy lock (`gitship unlock --force`): its holder becomes
/// `broken by <who>` and the Lease is expired, so the next deploy takes it at once and the
/// holder (a stuck deploy) finds it lost at its next renewal and stops before its next write.
/// The holder it had, or `None` when nobody held it.
pub async fn break_lock(
    client: &Client,
    environment: &str,
    namespace: &str,
    who: &str,
    retry: &RetryPolicy,
) -> Result<Option<String>, KubeError> {
    let name = lease_name(environment);
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let Some(lease) = retry
        .run(&name, || api.get_opt(&name))
        .await
        .map_err(api_error(&name, namespace))?
    else {
        return Ok(None);
    };
    let mut value = serde_json::to_value(&lease)
        .map_err(|e| KubeError::about(format!("Lease {name}"), kube::Error::SerdeError(e)))?;
    let holder = value
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .filter(|holder| !holder.is_empty())
        .map(str::to_string);
    let Some(holder) = holder else {
        return Ok(None);
    };
    let long_ago = Utc::now() - chrono::TimeDelta::days(1);
    value["spec"]["holderIdentity"] = json!(format!("broken by {who}"));
    value["spec"]["renewTime"] = json!(micro_time(long_ago));
    value["spec"]["leaseDurationSeconds"] = json!(1);
    let body: Lease = serde_json::from_value(value)
        .map_err(|e| KubeError::about(format!("Lease {name}"), kube::Error::SerdeError(e)))?;
    let params = PostParams::default();
    retry
        .run(&name, || api.replace(&name, &params, &body))
        .await
        .map_err(api_error(&name, namespace))?;
    Ok(Some(holder))
}

/// A Lease other than the deploy lock that works the same way (the agent's leadership).
#[derive(Debug, Clone)]
pub struct NamedLease {
    pub name: String,
    pub namespace: String,
    /// The environment it belongs to.
    pub environment: String,
    /// What it is, for messages: `lock` ("waiting for the lock of `production`").
    pub what: &'static str,
}

/// Acquire `lease` as `holder`, waiting up to `options.timeout`; renewed until released.
pub async fn acquire_lease(
    client: &Client,
    lease: &NamedLease,
    holder: &str,
    options: LockOptions,
    retry: &RetryPolicy,
    printer: &Progress,
) -> Result<DeployLock, KubeError> {
    let name = lease.name.clone();
    let namespace = lease.namespace.as_str();
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let contender = Contender {
        api: &api,
        name: &name,
        namespace,
        environment: &lease.environment,
        what: lease.what,
        holder,
        options,
        retry,
        printer,
    };
    contender.take_lease().await?;
    let (stop, renewer, lost) = spawn_renewer(&api, &name, holder, options, *retry);
    Ok(DeployLock {
        api,
        name,
        holder: holder.to_string(),
        stop: Some(stop),
        renewer: Some(renewer),
        lost,
    })
}

/// One attempt at the Lease of an environment: what [`acquire`] was given.
struct Contender<'a> {
    api: &'a Api<Lease>,
    name: &'a str,
    namespace: &'a str,
    environment: &'a str,
    what: &'a str,
    holder: &'a str,
    options: LockOptions,
    retry: &'a RetryPolicy,
    printer: &'a Progress,
}

impl Contender<'_> {
    /// Read the Lease and write it as ours, until a write wins: waiting while another holder
    /// has it, reading again when someone else wrote between our read and write.
    async fn take_lease(&self) -> Result<(), KubeError> {
        let to_error = api_error(self.name, self.namespace);
        let started = tokio::time::Instant::now();
        let mut announced = false;
        loop {
            let current = self
                .retry
                .run(self.name, || self.api.get_opt(self.name))
                .await
                .map_err(&to_error)?;
            let attempt = match current {
                None => self.create().await,
                Some(lease) => {
                    let value = serde_json::to_value(&lease)
                        .map_err(|e| to_error(kube::Error::SerdeError(e)))?;
                    match lease_state(&value, self.holder, Utc::now()) {
                        LeaseState::Held { holder: other } => {
                            self.wait(other, started, &mut announced).await?;
                            continue;
                        }
                        LeaseState::Expired { holder: other } => {
                            self.printer.warn(&format!("taking over the expired {} of `{}` from `{other}` (it did not renew)", self.what, self.environment));
                        }
                        LeaseState::Free | LeaseState::Ours => {}
                    }
                    self.take_over(&lease, &value).await
                }
            };
            match attempt {
                Ok(()) => return Ok(()),
                // Someone else created or updated it between our read and write: read again.
                Err(error) if status_code(&error) == Some(409) => continue,
                Err(error) => return Err(to_error(error)),
            }
        }
    }

    /// Wait a moment for `other` to let go, failing once the lock timeout is spent; the first
    /// wait says who holds the lock.
    async fn wait(
        &self,
        other: String,
        started: tokio::time::Instant,
        announced: &mut bool,
    ) -> Result<(), KubeError> {
        let waited = started.elapsed();
        if gitship_foundation::process::is_interrupted() {
            return Err(KubeError::Interrupted);
        }
        if waited >= self.options.timeout {
            return Err(KubeError::LockTimeout {
                env: self.environment.to_string(),
                holder: other,
                waited,
            });
        }
        if !*announced {
            self.printer.line(&format!(
                "waiting for the {} of `{}`, held by `{other}`",
                self.what, self.environment
            ));
            *announced = true;
        }
        let remaining = self.options.timeout.saturating_sub(waited);
        tokio::time::sleep(Duration::from_millis(250).min(remaining.max(Duration::from_millis(1))))
            .await;
        Ok(())
    }

    /// Create the Lease, held by us.
    async fn create(&self) -> Result<(), kube::Error> {
        let body = self.body(0, None)?;
        let post = PostParams::default();
        self.retry
            .run(self.name, || self.api.create(&post, &body))
            .await
            .map(|_| ())
    }

    /// Replace the free, expired or already ours `lease` (`value` as JSON) with one held by us,
    /// on the condition that nobody wrote it since it was read.
    async fn take_over(&self, lease: &Lease, value: &Value) -> Result<(), kube::Error> {
        let transitions = value
            .pointer("/spec/leaseTransitions")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let body = self.body(transitions + 1, lease.metadata.resource_version.as_deref())?;
        let post = PostParams::default();
        self.retry
            .run(self.name, || self.api.replace(self.name, &post, &body))
            .await
            .map(|_| ())
    }

    fn body(&self, transitions: i64, resource_version: Option<&str>) -> Result<Lease, kube::Error> {
        serde_json::from_value(lease_body(
            self.name,
            self.namespace,
            self.holder,
            self.options.lease_duration,
            transitions,
            resource_version,
        ))
        .map_err(kube::Error::SerdeError)
    }
}

/// Start the background task that renews the Lease every third of its duration until told to
/// stop; it sets the returned flag when someone else took the Lease.
fn spawn_renewer(
    api: &Api<Lease>,
    name: &str,
    holder: &str,
    options: LockOptions,
    retry: RetryPolicy,
) -> (oneshot::Sender<()>, JoinHandle<()>, Arc<AtomicBool>) {
    let (stop, mut stopped) = oneshot::channel();
    let lost = Arc::new(AtomicBool::new(false));
    let (api, name, holder, flag) = (
        api.clone(),
        name.to_string(),
        holder.to_string(),
        lost.clone(),
    );
    let period = (options.lease_duration / 3).max(Duration::from_millis(100));
    let renewer = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = tokio::time::sleep(period) => {}
            }
            if let Err(message) = renew(&api, &name, &holder, &retry).await {
                tracing::warn!(%name, %message, "could not renew the deploy lock");
                if message.contains("now held by") {
                    flag.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    });
    (stop, renewer, lost)
}

async fn renew(
    api: &Api<Lease>,
    name: &str,
    holder: &str,
    retry: &RetryPolicy,
) -> Result<(), String> {
    let lease = retry
        .run(name, || api.get(name))
        .await
        .map_err(|e| error_message(&e))?;
    let mut value = serde_json::to_value(&lease).map_err(|e| e.to_string())?;
    let current = value
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if current != holder {
        return Err(format!("the lock is now held by `{current}`"));
    }
    value["spec"]["renewTime"] = json!(micro_time(Utc::now()));
    let body: Lease = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let params = PostParams::default();
    retry
        .run(name, || api.replace(name, &params, &body))
        .await
        .map_err(|e| error_message(&e))?;
    Ok(())
}

impl DeployLock {
    /// The holder identity this lock was taken with.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether the lock was lost (taken over by someone else) while held.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Whether the Lease still names this holder, read now (a definitive check before an
    /// irreversible step such as pruning; the renewer only notices at its next renewal).
    pub(crate) async fn still_held(&self, retry: &RetryPolicy) -> Result<bool, KubeError> {
        if self.is_lost() {
            return Ok(false);
        }
        let lease = retry
            .run(&self.name, || self.api.get_opt(&self.name))
            .await
            .map_err(|source| KubeError::about(format!("Lease {}", self.name), source))?;
        let holder = lease
            .as_ref()
            .and_then(|lease| lease.spec.as_ref())
            .and_then(|spec| spec.holder_identity.as_deref());
        Ok(holder == Some(self.holder.as_str()))
    }

    /// Stop renewing and delete the Lease (only if still ours).
    pub async fn release(mut self, retry: &RetryPolicy) -> Result<(), KubeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.await;
        }
        let lease = retry.run(&self.name, || self.api.get_opt(&self.name)).await;
        let Ok(Some(lease)) = lease else {
            return Ok(());
        };
        if lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            != Some(self.holder.as_str())
        {
            return Ok(());
        }
        let preconditions = Preconditions {
            resource_version: lease.metadata.resource_version.clone(),
            uid: lease.metadata.uid.clone(),
        };
        let params = DeleteParams::default().preconditions(preconditions);
        match retry
            .run(&self.name, || self.api.delete(&self.name, &params))
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if matches!(status_code(&error), Some(404) | Some(409)) => Ok(()),
            Err(error) => Err(KubeError::Api {
                object: format!("Lease {}", self.name),
                message: error_message(&error),
                source: error,
            }),
        }
    }
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        // Released without `release` (a panic or an early return): stop renewing, so the Lease
        // expires and the next deploy takes it over.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_seconds_ago: i64, duration: i64) -> Value {
        let renewed = Utc::now() - chrono::Duration::seconds(renewed_seconds_ago);
        json!({"spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "renewTime": micro_time(renewed)}})
    }

    #[test]
    fn a_renewal_far_in_the_future_holds_nothing() {
        let now = Utc::now();
        let forged = json!({"spec": {"holderIdentity": "evil", "leaseDurationSeconds": 15,
            "renewTime": "2099-01-01T00:00:00.000000Z"}});
        assert_eq!(
            lease_state(&forged, "me", now),
            LeaseState::Expired {
                holder: "evil".into()
            }
        );
        // A clock a few minutes ahead still holds it.
        assert!(matches!(
            lease_state(&lease(Some("ci"), -120, 30), "me", now),
            LeaseState::Held { .. }
        ));
    }

    #[test]
    fn lease_states() {
        let now = Utc::now();
        assert_eq!(
            lease_state(&lease(None, 0, 30), "me", now),
            LeaseState::Free
        );
        assert_eq!(
            lease_state(&lease(Some(""), 0, 30), "me", now),
            LeaseState::Free
        );
        assert_eq!(
            lease_state(&lease(Some("me"), 100, 30), "me", now),
            LeaseState::Ours
        );
        assert_eq!(
            lease_state(&lease(Some("ci"), 5, 30), "me", now),
            LeaseState::Held {
                holder: "ci".into()
            }
        );
        assert_eq!(
            lease_state(&lease(Some("ci"), 60, 30), "me", now),
            LeaseState::Expired {
                holder: "ci".into()
            }
        );
        assert_eq!(
            lease_state(&json!({"spec": {"holderIdentity": "ci"}}), "me", now),
            LeaseState::Expired {
                holder: "ci".into()
            }
        );
    }

    #[test]
    fn absurd_lease_durations_do_not_panic() {
        let now = Utc::now();
        assert_eq!(
            lease_state(&lease(Some("other"), 10, i64::MAX), "me", now),
            LeaseState::Held {
                holder: "other".into()
            }
        );
        assert_eq!(
            lease_state(&lease(Some("other"), 10, i64::MIN), "me", now),
            LeaseState::Expired {
                holder: "other".into()
            }
        );
    }

    #[test]
    fn micro_time_is_rfc3339_with_microseconds() {
        let time = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        assert_eq!(micro_time(time), "2023-11-14T22:13:20.123456Z");
        let body = lease_body(
            "gitship-prod",
            "blog",
            "me",
            Duration::from_secs(15),
            2,
            Some("42"),
        );
        let lease: Lease = serde_json::from_value(body).unwrap();
        assert_eq!(lease.spec.unwrap().lease_duration_seconds, Some(15));
        assert_eq!(lease.metadata.resource_version.as_deref(), Some("42"));
    }
}
