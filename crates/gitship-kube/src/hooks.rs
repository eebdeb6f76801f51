//! Hooks in a deploy (ARCHITECTURE.md, "Waves and hooks"): the objects annotated as Argo CD or
//! Helm hooks ([`gitship_foundation::model::hook`]) are not desired objects. They are resolved with the
//! others before the first write ([`prepare`]), then each phase runs its hooks one at a time,
//! by weight, kind and name ([`Runner::run_phase`]): delete the earlier run's object when the
//! policy says `BeforeHookCreation`, create the hook (a `POST`: a `generateName` makes a new
//! name each run), wait for it as a deploy waits for its kind (a Job until `Complete` or
//! `Failed`, within the deploy's timeout), then delete it when its policy asks
//! (`HookSucceeded`, `HookFailed`), with propagation so that its pods go too. A hook that fails
//! or times out stops the deploy ([`KubeError::HookFailed`]). Each run is reported
//! ([`HookRun`]) in the deploy report and its record.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use serde_json::Value;

use crate::KubeError;
use crate::check::{self, Prepared};
use crate::discovery::Resources;
use crate::health::{self, Health};
use crate::order;
use crate::progress::Progress;
use crate::retry::{RetryPolicy, status_code};
use gitship_foundation::model::hook::{Hook, HookPhase, Role, role_of};
use gitship_foundation::model::{
    Environment, FIELD_MANAGER, MANAGED_BY_LABEL, Manifest, OWNED_BY_ANNOTATION,
};

/// The label gitship puts on a hook with a `generateName` (its prefix, as a label value): how
/// `BeforeHookCreation` finds the objects of its earlier runs.
pub const HOOK_LABEL: &str = "gitship.dev/hook";

/// How long a `BeforeHookCreation` waits for the earlier object to be gone.
const DELETION_WAIT: Duration = Duration::from_secs(60);

/// A hook resolved and marked like a desired object; `prepared.id.name` is its name, or its
/// `generateName` prefix until it runs.
#[derive(Debug, Clone)]
pub struct PreparedHook {
    pub prepared: Prepared,
    pub hook: Hook,
    pub generate_name: Option<String>,
}

// A hook run is part of the deploy record: its types live with the record.
pub use crate::inventory::{HookOutcome, HookRun};

/// The hooks among `desired`, resolved (discovery) and marked, sorted by weight, kind and
/// name; no writes. A hook whose kind the cluster does not serve is an error.
pub async fn prepare(
    client: &Client,
    resources: &Resources,
    environment: &Environment,
    desired: &[Manifest],
    retry: &RetryPolicy,
) -> Result<Vec<PreparedHook>, KubeError> {
    let mut hooks = Vec::new();
    for manifest in desired {
        let hook = match role_of(&manifest.object) {
            Ok(Role::Hook(hook)) => hook,
            Ok(Role::Object | Role::Skipped(_)) => continue,
            Err(message) => {
                return Err(KubeError::InvalidManifest {
                    location: manifest.source.clone(),
                    message,
                });
            }
        };
        hooks.push(prepare_one(client, resources, environment, manifest, hook, retry).await?);
    }
    hooks.sort_by(|a, b| {
        (a.hook.weight, a.prepared.position, &a.prepared.id).cmp(&(
            b.hook.weight,
            b.prepared.position,
            &b.prepared.id,
        ))
    });
    Ok(hooks)
}

async fn prepare_one(
    client: &Client,
    resources: &Resources,
    environment: &Environment,
    manifest: &Manifest,
    hook: Hook,
    retry: &RetryPolicy,
) -> Result<PreparedHook, KubeError> {
    let invalid = |message: &str| KubeError::InvalidManifest {
        location: manifest.source.clone(),
        message: message.to_string(),
    };
    let (api_version, kind) = (manifest.api_version(), manifest.kind());
    let mut object = manifest.object.clone();
    let metadata = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| invalid("`metadata` is not a mapping"))?;
    let named = metadata
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|name| !name.is_empty());
    let generate_name = match metadata.get("generateName").and_then(Value::as_str) {
        Some(prefix) if !named && !prefix.is_empty() => Some(prefix.to_string()),
        _ if named => None,
        _ => {
            return Err(invalid(
                "a hook needs `metadata.name` or `metadata.generateName`",
            ));
        }
    };
    if let Some(prefix) = &generate_name {
        metadata.insert("name".into(), Value::String(prefix.clone()));
    }
    let resolved = resources
        .resolve(client, retry, api_version, kind)
        .await
        .map_err(|source| KubeError::about(format!("{kind} ({})", manifest.source), source))?
        .ok_or_else(|| KubeError::UnknownKind {
            location: manifest.source.clone(),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: manifest.id().name,
        })?;
    let position = order::position(kind, hook.weight);
    let mut prepared = check::prepare(
        &object,
        &manifest.source,
        resolved,
        &environment.name,
        &environment.namespace,
        position,
    )?;
    if let Some(prefix) = &generate_name
        && let Some(metadata) = prepared
            .body
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
    {
        metadata.remove("name");
        if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
            labels.insert(HOOK_LABEL.into(), Value::String(label_value(prefix)));
        }
    }
    Ok(PreparedHook {
        prepared,
        hook,
        generate_name,
    })
}

/// A `generateName` prefix as a label value: its letters, digits, `-`, `_` and `.`, at most 63,
/// starting and ending with a letter or digit.
fn label_value(prefix: &str) -> String {
    let kept: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect();
    kept.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// What running hooks needs.
pub struct Runner<'a> {
    pub client: &'a Client,
    pub environment: &'a Environment,
    /// How long one hook may take.
    pub timeout: Duration,
    pub retry: &'a RetryPolicy,
    pub printer: &'a Progress,
}

impl Runner<'_> {
    /// Run the hooks of `phase` (of Sync, only those of `wave` when given) in order; the first
    /// that fails stops the phase with its error. Every run is pushed to `runs`.
    pub async fn run_phase(
        &self,
        hooks: &[PreparedHook],
        phase: HookPhase,
        wave: Option<i64>,
        runs: &mut Vec<HookRun>,
    ) -> Result<(), KubeError> {
        let due = hooks.iter().filter(|hook| {
            hook.hook.phases.contains(&phase) && wave.is_none_or(|wave| hook.hook.weight == wave)
        });
        for hook in due {
            if gitship_foundation::process::is_interrupted() {
                return Err(KubeError::Interrupted);
            }
            self.printer.stage(
                &format!("running {} hook {}", phase.as_str(), hook.prepared.id),
                true,
            );
            let (run, error) = self.run_one(hook, phase).await?;
            self.printer.line(&format!(
                "{} hook {}: {}",
                phase.as_str(),
                run.object,
                outcome_text(&run)
            ));
            runs.push(run);
            if let Some(error) = error {
                return Err(error);
            }
        }
        Ok(())
    }

    /// One run: delete the earlier object (`BeforeHookCreation`), create, wait, delete per the
    /// policy. `Err` for a request that failed; the run and its failure otherwise.
    async fn run_one(
        &self,
        hook: &PreparedHook,
        phase: HookPhase,
    ) -> Result<(HookRun, Option<KubeError>), KubeError> {
        if hook.hook.delete.before_creation {
            self.delete_earlier(hook).await?;
        }
        let created = self.create(hook).await?;
        let outcome = health::wait(
            self.client,
            std::slice::from_ref(&created),
            self.timeout,
            self.retry,
            |_, _| {},
        )
        .await
        .map_err(|source| created.error(source))?;
        let (result, message) = match outcome.unhealthy.first() {
            None => (HookOutcome::Succeeded, None),
            Some((_, Health::Failed(text), _)) => {
                let pods = self.failed_pods(&created).await;
                (HookOutcome::Failed, Some(format!("{text}{pods}")))
            }
            Some((_, health, _)) => (
                HookOutcome::TimedOut,
                Some(match health {
                    Health::Progressing(text) => format!("{text} after {:?}", self.timeout),
                    _ => format!("not done after {:?}", self.timeout),
                }),
            ),
        };
        let policy = hook.hook.delete;
        let delete = match result {
            HookOutcome::Succeeded => policy.succeeded,
            HookOutcome::Failed | HookOutcome::TimedOut => policy.failed,
        };
        if delete {
            self.delete(&created, &created.id.name, false).await?;
        }
        let run = HookRun {
            phase,
            object: created.id.to_string(),
            source: created.source.to_string(),
            outcome: result,
            message: message.clone(),
            deleted: delete,
        };
        let error = message
            .filter(|_| result != HookOutcome::Succeeded)
            .map(|reason| KubeError::HookFailed {
                phase: phase.as_str(),
                hook: created.describe(),
                how: if result == HookOutcome::Failed {
                    "failed"
                } else {
                    "timed out"
                },
                reason,
            });
        Ok((run, error))
    }

    /// How a failed Job's pods ended (`; pod migrate-x7k2p: container migrate exited 1 (Error):
    /// ...`), as the real server reports them; empty for another kind, or when none is known.
    async fn failed_pods(&self, job: &Prepared) -> String {
        let (Some(namespace), "Job") = (&job.id.namespace, job.id.kind.as_str()) else {
            return String::new();
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params =
            ListParams::default().labels(&format!("batch.kubernetes.io/job-name={}", job.id.name));
        let Ok(pods) = self.retry.run("pods", || api.list(&params)).await else {
            return String::new();
        };
        let mut text = String::new();
        for pod in pods.items.iter().take(3) {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref());
            for status in statuses.into_iter().flatten() {
                let Some(ended) = status.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
                    continue;
                };
                if ended.exit_code == 0 {
                    continue;
                }
                let reason = ended.reason.as_deref().unwrap_or("terminated");
                let message = ended.message.as_deref().unwrap_or_default().trim();
                text.push_str(&format!(
                    "; pod {name}: container {} exited {} ({reason}){}",
                    status.name,
                    ended.exit_code,
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ));
            }
        }
        text
    }

    /// Create the hook's object; the prepared hook with the name the server gave it. A named
    /// hook that exists already (its policy keeps it) is not created again: it is waited for
    /// as it is.
    async fn create(&self, hook: &PreparedHook) -> Result<Prepared, KubeError> {
        let prepared = &hook.prepared;
        let api = prepared.api(self.client);
        let object: DynamicObject = serde_json::from_value(prepared.body.clone())
            .map_err(|source| prepared.error(kube::Error::SerdeError(source)))?;
        let params = PostParams {
            dry_run: false,
            field_manager: Some(FIELD_MANAGER.to_string()),
        };
        let created = if hook.generate_name.is_some() {
            // Not retried: a retried POST could run the hook twice.
            api.create(&params, &object).await
        } else {
            self.retry
                .run(&prepared.id.to_string(), || api.create(&params, &object))
                .await
        };
        let name = match created {
            Ok(created) => created.metadata.name.unwrap_or_default(),
            Err(error) if status_code(&error) == Some(409) && hook.generate_name.is_none() => {
                self.printer.line(&format!(
                    "{} exists and its delete policy keeps it: not run again",
                    prepared.id
                ));
                prepared.id.name.clone()
            }
            Err(error) => return Err(prepared.error(error)),
        };
        let mut created = prepared.clone();
        created.id.name = name;
        Ok(created)
    }

    /// `BeforeHookCreation`: delete the object an earlier run left (by name, or for a
    /// `generateName` every object of this environment carrying its [`HOOK_LABEL`]), and wait
    /// until a named one is gone.
    async fn delete_earlier(&self, hook: &PreparedHook) -> Result<(), KubeError> {
        let prepared = &hook.prepared;
        let Some(prefix) = &hook.generate_name else {
            self.delete(prepared, &prepared.id.name, true).await?;
            return self.wait_gone(prepared).await;
        };
        let api = prepared.api(self.client);
        let selector = format!(
            "{HOOK_LABEL}={},{MANAGED_BY_LABEL}={FIELD_MANAGER}",
            label_value(prefix)
        );
        let params = ListParams::default().labels(&selector);
        let listed = self
            .retry
            .run(&prepared.id.to_string(), || api.list(&params))
            .await
            .map_err(|source| prepared.error(source))?;
        for item in listed.items {
            let Some(name) = item.metadata.name.clone() else {
                continue;
            };
            let owner = item
                .metadata
                .annotations
                .as_ref()
                .and_then(|annotations| annotations.get(OWNED_BY_ANNOTATION));
            let generated_here = name.starts_with(prefix.as_str());
            if owner.map(String::as_str) == Some(self.environment.name.as_str()) && generated_here {
                self.delete(prepared, &name, false).await?;
            }
        }
        Ok(())
    }

    /// Delete `name` of `prepared`'s resource, its dependents with it (foreground when the
    /// caller waits for it to be gone, background otherwise); a missing object is fine.
    async fn delete(
        &self,
        prepared: &Prepared,
        name: &str,
        foreground: bool,
    ) -> Result<(), KubeError> {
        let api = prepared.api(self.client);
        let params = if foreground {
            DeleteParams::foreground()
        } else {
            DeleteParams::background()
        };
        match self.retry.run(name, || api.delete(name, &params)).await {
            Ok(_) => {
                tracing::info!(object = %prepared.id.kind, %name, "hook deleted");
                Ok(())
            }
            Err(error) if status_code(&error) == Some(404) => Ok(()),
            Err(error) => Err(prepared.error(error)),
        }
    }

    /// Wait until the named hook's earlier object is gone, at most [`DELETION_WAIT`].
    async fn wait_gone(&self, prepared: &Prepared) -> Result<(), KubeError> {
        let deadline = tokio::time::Instant::now() + DELETION_WAIT;
        loop {
            let live = prepared
                .get_live(self.client, self.retry)
                .await
                .map_err(|source| prepared.error(source))?;
            if live.is_none() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(KubeError::StillDeleting {
                    object: prepared.describe(),
                    waited: DELETION_WAIT,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `succeeded`, `failed: ...`, `timed out: ...`, and `(deleted)` when its policy deleted it.
pub fn outcome_text(run: &HookRun) -> String {
    let mut text = match (run.outcome, &run.message) {
        (HookOutcome::Succeeded, _) => "succeeded".to_string(),
        (HookOutcome::Failed, Some(message)) => format!("failed: {message}"),
        (HookOutcome::TimedOut, Some(message)) => format!("timed out: {message}"),
        (HookOutcome::Failed, None) => "failed".to_string(),
        (HookOutcome::TimedOut, None) => "timed out".to_string(),
    };
    if run.deleted {
        text.push_str(" (deleted)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_becomes_a_label_value() {
        assert_eq!(label_value("migrate-"), "migrate");
        assert_eq!(label_value("db.Migrate_x-"), "db.Migrate_x");
        assert_eq!(label_value("-a-"), "a");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn outcomes_read_as_one_line() {
        let run = HookRun {
            phase: HookPhase::PreSync,
            object: "Job blog/migrate-x".into(),
            source: "deploy/migrate.yaml:1:1".into(),
            outcome: HookOutcome::Failed,
            message: Some(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into(),
            ),
            deleted: true,
        };
        assert_eq!(
            outcome_text(&run),
            "failed: BackoffLimitExceeded: Job has reached the specified backoff limit (deleted)"
        );
    }
}
