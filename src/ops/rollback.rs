//! `rollback`: pin the environment at an earlier good revision and re-deploy it through the one
//! pipeline, so that neither the agent nor a deploy of the branch undoes it. The pin is written
//! first (a deploy waiting for the lock reads it under the lock) and put back as it was when the
//! deploy fails.
//!
//! The target is the revision of the last successful record before the current one (failed
//! records and rollbacks are skipped), `--steps N` further back, or `--to REV`. It is checked
//! out in gitship's own clone ([`Session::open_revision`]); `--to REV` must have been pushed,
//! as for `pin --rev` ([`crate::ops::pin::require_pushed`]). Its images are the ones already in
//! the registry (nothing is built); Terraform is not rolled back unless `--terraform`, because
//! a database schema or a destroyed resource rarely rolls back cleanly.

use anyhow::Result;

use crate::diagnostics::UserError;
use crate::git::short_sha;
use crate::kube::deploy::DeployReport;
use crate::kube::inventory::{DeployOutcome, DeployRecord, RecordSource};
use crate::ops::deploy::{DeployPolicy, ImagePolicy, TerraformPolicy};
use crate::ops::{DeploySource, Session};
use crate::settings::{BuildSettings, ClusterSettings, DeploySettings, RollbackSettings};

/// Where a rollback goes from and to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackTarget {
    /// The revision the environment runs (its newest successful record).
    pub current: String,
    pub target: String,
}

/// The revision to roll back to, from the environment's deploy history.
pub async fn target(session: &Session, settings: &RollbackSettings) -> Result<RollbackTarget> {
    let connection = session.connect().await?;
    let environment = session.environment();
    let inventory = session.deployed_inventory(&connection, "roll back").await?;
    let target = match &settings.to {
        Some(revision) => {
            let current = newest_good(&inventory.history).unwrap_or_default();
            let target = session.resolve_revision(revision)?;
            crate::ops::pin::require_pushed(session, revision, &target)?;
            RollbackTarget { current, target }
        }
        None => choose(&inventory.history, settings.steps).ok_or_else(|| {
            UserError::new(
                format!(
                    "`{}` has no successful deploy {}before the current one in its history ({} record(s))",
                    environment.name,
                    if settings.steps == 1 { String::new() } else { format!("{} revisions ", settings.steps) },
                    inventory.history.len()
                ),
                "name the revision with `--to REV`",
            )
        })?,
    };
    if target.target == target.current {
        return Err(UserError::new(
            format!(
                "`{}` runs {} already",
                environment.name,
                short_sha(&target.current)
            ),
            "pick an earlier revision with `--to REV` or `--steps N`",
        )
        .into());
    }
    Ok(target)
}

/// The newest successful record's revision.
fn newest_good(history: &[DeployRecord]) -> Option<String> {
    history
        .iter()
        .find(|r| r.outcome == DeployOutcome::Succeeded)
        .and_then(|r| r.sha.clone())
}

/// The current revision and the one `steps` good revisions before it (newest first history;
/// failed records and rollbacks skipped).
fn choose(history: &[DeployRecord], steps: usize) -> Option<RollbackTarget> {
    let current = newest_good(history)?;
    let mut seen = vec![current.clone()];
    for record in history {
        if record.outcome != DeployOutcome::Succeeded || record.source == RecordSource::Rollback {
            continue;
        }
        let Some(sha) = &record.sha else { continue };
        if seen.contains(sha) {
            continue;
        }
        seen.push(sha.clone());
        if seen.len() > steps {
            return Some(RollbackTarget {
                current,
                target: sha.clone(),
            });
        }
    }
    None
}

/// Pin the environment at `revision` (a session from [`Session::open_revision`]) and deploy it
/// as a rollback; the previous pin (or none) is put back when the deploy fails.
pub async fn rollback(revision: &Session, settings: &RollbackSettings) -> Result<DeployReport> {
    let policy = DeployPolicy {
        images: ImagePolicy::RequireExisting,
        terraform: if settings.terraform {
            TerraformPolicy::Apply
        } else {
            TerraformPolicy::Off
        },
        source: RecordSource::Rollback,
        healed: Vec::new(),
    };
    let deploy = DeploySettings {
        cluster: ClusterSettings {
            env: settings.env.clone(),
            sandbox: settings.sandbox,
            terraform_outputs: None,
        },
        build: BuildSettings {
            force_build: false,
            jobs: 1,
            allow_dirty: false,
        },
        plan: None,
        allow_empty: false,
        prune_protected: false,
        no_prune: false,
        timeout: None,
        lock_timeout: None,
        lock_lease: None,
        skip_preflight: false,
        // A pinned environment may always be rolled back.
        force: true,
        rev: None,
    };
    if !settings.terraform && revision.revision_module_differs()? {
        revision.printer.warn(&format!(
            "Terraform is not rolled back: its module at {} differs from the work tree's; the infrastructure stays as the current state has it (roll it back with `--terraform` from a checkout of the revision)",
            short_sha(&revision.git.sha)
        ));
    }
    // The pin is written before the deploy takes the lock: a deploy (an agent's sync) waiting
    // for the lock reads it once it has the lock, and refuses the branch head.
    let previous = {
        let connection = revision.connect().await?;
        crate::ops::pin::current(revision, &connection).await?
    };
    crate::ops::pin::pin_sha(revision, &revision.git.sha, "rollback").await?;
    match crate::ops::deploy::deploy_with(revision, &DeploySource::WorkTree, &deploy, &policy).await
    {
        Ok(deployed) => Ok(deployed.report),
        Err(error) => {
            if let Err(restore) = crate::ops::pin::restore(revision, previous.as_ref()).await {
                revision.printer.warn(&format!(
                    "the rollback failed and its pin at {} could not be undone: {}",
                    short_sha(&revision.git.sha),
                    crate::diagnostics::render(&restore)
                ));
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn record(sha: &str, outcome: DeployOutcome, source: RecordSource) -> DeployRecord {
        DeployRecord {
            sha: Some(sha.into()),
            time: Utc::now(),
            who: "ann".into(),
            outcome,
            summary: String::new(),
            source,
            healed: Vec::new(),
            subject: None,
            author: None,
            started: None,
            duration_ms: None,
            counts: Default::default(),
            terraform: None,
            images: Vec::new(),
            ci_url: None,
        }
    }

    #[test]
    fn the_target_skips_failures_rollbacks_heals_of_the_same_revision() {
        use DeployOutcome::*;
        use RecordSource::*;
        let history = vec![
            record("c", Failed, Deploy),
            record("b", Succeeded, Heal),
            record("b", Succeeded, Deploy),
            record("x", Succeeded, Rollback),
            record("y", Failed, Deploy),
            record("a", Succeeded, Agent),
            record("z", Succeeded, Deploy),
        ];
        let one = choose(&history, 1).unwrap();
        assert_eq!((one.current.as_str(), one.target.as_str()), ("b", "a"));
        assert_eq!(choose(&history, 2).unwrap().target, "z");
        assert_eq!(choose(&history, 3), None);
        assert_eq!(choose(&[], 1), None);
    }
}
