//! `rollback`: pin the environment at an earlier good revision and re-deploy it through the one
//! pipeline, so that neither the agent nor a deploy of the branch undoes it. The pin is written
//! first (a deploy waiting for the lock reads it under the lock) and put back as it was when the
//! deploy fails.
//!
//! The model (ARCHITECTURE.md, "Rollback"): the *current* revision is what the newest record
//! tried, whether it succeeded, failed or rolled back. *Back* walks the distinct revisions that
//! succeeded before it, skipping the current one; a rollback record to X stands for X's own
//! earlier deploy, so the walk continues from there and a rollback after a rollback goes
//! further back, never forward to what was rolled back from. The target is the first such
//! revision, `--steps N` further back, or `--to REV` (a revision, or a record: `#17`). It is checked
//! out in gitship's own clone ([`Session::open_revision`]); `--to REV` must have been pushed,
//! as for `pin --rev` ([`crate::ops::pin::require_pushed`]). Its images are the ones already in
//! the registry (nothing is built); Terraform is not rolled back unless `--terraform`, because
//! a database schema or a destroyed resource rarely rolls back cleanly.

use std::time::Duration;

use anyhow::Result;

use crate::git::short_sha;
use crate::ops::deploy::{
    DeployPolicy, DeployRequest, ImagePolicy, StoredRevision, TerraformPolicy,
};
use crate::ops::session::{SessionTarget, Workspace};
use crate::ops::{DeploySource, Session};
use crate::repo::EnvConfig;
use gitship_foundation::diagnostics::UserError;
use gitship_kube::deploy::DeployReport;
use gitship_kube::inventory::{DeployOutcome, DeployRecord, RecordSource};

/// `gitship rollback ENV`: what the rollback is asked for.
#[derive(Debug, Clone)]
pub struct RollbackRequest {
    pub env: String,
    pub to: Option<String>,
    pub steps: usize,
    /// `--lock-timeout`: else the environment's `deploy.lock_timeout`.
    pub lock_timeout: Option<Duration>,
    pub terraform: bool,
    /// `--render`: render the revision again instead of re-applying its stored manifests.
    pub render: bool,
    pub yes: bool,
    pub sandbox: bool,
}

/// Where a rollback goes from and to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackTarget {
    /// The revision the environment runs: what its newest record tried.
    pub current: String,
    pub target: String,
    /// The record of `target` whose deploy is restored: the one `--to #N` names, else the
    /// newest that deployed `target` successfully (`None`: the revision was never deployed).
    pub record: Option<DeployRecord>,
}

impl RollbackTarget {
    /// `target` with the record of its deploy found in `history` (see [`Self::record`]).
    fn in_history(history: &[DeployRecord], current: String, target: String) -> RollbackTarget {
        let record = history
            .iter()
            .find(|r| r.outcome == DeployOutcome::Succeeded && r.sha.as_ref() == Some(&target))
            .cloned();
        RollbackTarget {
            current,
            target,
            record,
        }
    }
}

/// How a rollback restores its target.
#[derive(Debug)]
pub enum Restore {
    /// Re-apply the manifests the target's deploy applied, exactly.
    Stored(Box<StoredRevision>),
    /// Render the revision again, with today's Terraform outputs; why, for people.
    Render(String),
}

/// How to restore `target`: the manifests stored for its record, unless `render` asks to render
/// it again, or they are not stored (a deploy from before gitship kept them, dropped for room, or
/// never deployed). Stored manifests that cannot be read stop the rollback.
pub async fn restore(session: &Session, target: &RollbackTarget, render: bool) -> Result<Restore> {
    if render {
        return Ok(Restore::Render("asked for (`--render`)".into()));
    }
    let Some(record) = &target.record else {
        return Ok(Restore::Render(format!(
            "{} was never deployed to `{}`",
            short_sha(&target.target),
            session.config.name
        )));
    };
    let Some(key) = record.manifests else {
        return Ok(Restore::Render(format!(
            "record #{} has no stored manifests (deployed before gitship kept them, or they could not be written)",
            record.number
        )));
    };
    let connection = session.connect().await?;
    let environment = session.environment();
    let stored = gitship_kube::revisions::load(
        &connection.client,
        &environment.name,
        &environment.namespace,
        key,
        &gitship_kube::retry::RetryPolicy::default(),
    )
    .await
    .map_err(|error| {
        UserError::new(
            format!("the stored manifests of record #{}: {error}", record.number),
            "roll back with `--render` to render the revision again",
        )
    })?;
    let Some(stored) = stored else {
        return Ok(Restore::Render(format!(
            "the stored manifests of record #{} are gone from `{}` (dropped for room, or deleted)",
            record.number,
            gitship_kube::revisions::secret_name(&environment.name)
        )));
    };
    if stored.sha.as_ref() != Some(&target.target) {
        return Err(UserError::new(
            format!(
                "the manifests stored for record #{} in `{}` are of another revision ({}), not {}",
                record.number,
                gitship_kube::revisions::secret_name(&environment.name),
                stored.sha.as_deref().map_or("none", short_sha),
                short_sha(&target.target)
            ),
            "roll back with `--render` to render the revision again",
        )
        .into());
    }
    Ok(Restore::Stored(Box::new(StoredRevision {
        key,
        manifests: stored.into_manifests(),
        images: record.images.clone(),
    })))
}

impl Restore {
    /// The deploy source of this restore.
    pub fn source(self) -> DeploySource {
        match self {
            Restore::Stored(stored) => DeploySource::Stored(stored),
            Restore::Render(_) => DeploySource::WorkTree,
        }
    }
}

/// The revision to roll back to, from the environment's deploy history.
pub async fn target(session: &Session, settings: &RollbackRequest) -> Result<RollbackTarget> {
    let connection = session.connect().await?;
    let environment = session.environment();
    let inventory = session.deployed_inventory(&connection, "roll back").await?;
    let target = match &settings.to {
        Some(revision) => {
            let current = current(&inventory.history).unwrap_or_default();
            let target = match record_number(revision) {
                Some(number) => by_number(&inventory.history, number, &environment.name)?,
                None => session.resolve_revision(revision)?,
            };
            crate::ops::pin::require_pushed(session, revision, &target)?;
            let mut found = RollbackTarget::in_history(&inventory.history, current, target);
            if let Some(number) = record_number(revision) {
                found.record = inventory.history.iter().find(|r| r.number == number).cloned();
            }
            found
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

/// The current revision: what the newest record tried.
fn current(history: &[DeployRecord]) -> Option<String> {
    history.first().and_then(|r| r.sha.clone())
}

/// `#17`: a record number (only with `#`: a bare number could be a short SHA).
fn record_number(revision: &str) -> Option<u64> {
    revision.strip_prefix('#')?.parse().ok()
}

/// The revision of record `#number`, which must have succeeded.
fn by_number(history: &[DeployRecord], number: u64, environment: &str) -> Result<String> {
    let record = history.iter().find(|r| r.number == number).ok_or_else(|| {
        UserError::new(
            format!("`{environment}` has no record #{number} in its history"),
            format!("`gitship history {environment}` lists the records and their numbers"),
        )
    })?;
    if record.outcome != DeployOutcome::Succeeded {
        return Err(UserError::new(
            format!("record #{number} of `{environment}` is a failed deploy: rolling back to it would restore a revision that did not work"),
            "name a record that succeeded",
        )
        .into());
    }
    record.sha.clone().ok_or_else(|| {
        UserError::new(
            format!("record #{number} of `{environment}` has no revision"),
            "name the revision with `--to REV`",
        )
        .into()
    })
}

/// The revisions a rollback may go back to, nearest first: the distinct revisions that
/// succeeded before the current record. A rollback record to X stands for X's own earlier
/// deploy: the records between it and that deploy are what was rolled back from, and are
/// skipped (rollbacks among them skip their own ranges in turn, so the innermost is matched
/// first). When that earlier deploy fell out of the history, nothing older is offered.
fn back(history: &[DeployRecord]) -> Vec<String> {
    let current = current(history);
    let mut found: Vec<String> = Vec::new();
    // The revisions whose earlier deploy the walk looks for, innermost last.
    let mut seeking: Vec<&String> = Vec::new();
    for record in history {
        let Some(sha) = &record.sha else { continue };
        if record.outcome != DeployOutcome::Succeeded {
            continue;
        }
        let skipped = !seeking.is_empty();
        if seeking.last() == Some(&sha) {
            seeking.pop();
        }
        if record.source == RecordSource::Rollback {
            seeking.push(sha);
        }
        if skipped || Some(sha) == current.as_ref() || found.contains(sha) {
            continue;
        }
        found.push(sha.clone());
    }
    found
}

/// The current revision and the one `steps` revisions back ([`back`]).
fn choose(history: &[DeployRecord], steps: usize) -> Option<RollbackTarget> {
    let current = current(history)?;
    let target = back(history).into_iter().nth(steps.checked_sub(1)?)?;
    Some(RollbackTarget::in_history(history, current, target))
}

/// What a rollback's deploy of `config`'s environment may do: the images already in the
/// registry, Terraform only when asked, recorded as a rollback, over a pin; the environment's
/// timeouts, but for `--lock-timeout`.
fn rollback_deploy(settings: &RollbackRequest, config: &EnvConfig) -> DeployRequest {
    let defaults = DeployRequest::for_environment(config);
    DeployRequest {
        lock_timeout: settings.lock_timeout.unwrap_or(defaults.lock_timeout),
        // A pinned environment may always be rolled back.
        force: true,
        policy: DeployPolicy {
            images: ImagePolicy::RequireExisting,
            terraform: if settings.terraform {
                TerraformPolicy::Apply
            } else {
                TerraformPolicy::Off
            },
            source: RecordSource::Rollback,
            healed: Vec::new(),
        },
        ..defaults
    }
}

/// `deploy --atomic` after the health wait failed: deploy the revision [`back`] from the failed
/// record (the previous good one), recorded as a rollback; no pin, so the next deploy of a fixed
/// commit goes through. The revision gone back to.
pub async fn undo_failed(
    workspace: &Workspace,
    printer: &gitship_foundation::output::Printer,
    cluster: &SessionTarget,
) -> Result<String> {
    let session = Session::open(workspace, printer, cluster).await?;
    let connection = session.connect().await?;
    let inventory = session.deployed_inventory(&connection, "roll back").await?;
    let target = choose(&inventory.history, 1).ok_or_else(|| {
        UserError::new(
            format!(
                "`--atomic`: `{}` has no good revision before the failed deploy to go back to",
                cluster.env
            ),
            "fix the workloads and deploy again, or `gitship rollback --to REV`",
        )
    })?;
    let revision = Session::open_revision(workspace, printer, cluster, &target.target).await?;
    let deploy = rollback_deploy(
        &RollbackRequest {
            env: cluster.env.clone(),
            to: None,
            steps: 1,
            lock_timeout: None,
            terraform: false,
            render: false,
            yes: true,
            sandbox: cluster.sandbox,
        },
        &revision.config,
    );
    let restore = restore(&revision, &target, false).await?;
    if let Restore::Render(why) = &restore {
        printer.warn(&format!(
            "`--atomic`: rendering {} again: {why}",
            short_sha(&target.target)
        ));
    }
    crate::ops::deploy::deploy(&revision, &restore.source(), &deploy).await?;
    Ok(target.target)
}

/// Pin the environment at `revision` (a session from [`Session::open_revision`]) and deploy it
/// as a rollback, from `source` (with `--terraform`, the plan its preview showed and saved); the
/// previous pin (or none) is put back when the deploy fails.
pub async fn rollback(
    revision: &Session,
    settings: &RollbackRequest,
    source: &DeploySource,
) -> Result<DeployReport> {
    let deploy = rollback_deploy(settings, &revision.config);
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
    match crate::ops::deploy::deploy(revision, source, &deploy).await {
        Ok(deployed) => Ok(deployed.report),
        Err(error) => {
            if let Err(restore) = crate::ops::pin::restore(revision, previous.as_ref()).await {
                revision.printer.warn(&format!(
                    "the rollback failed and its pin at {} could not be undone: {}",
                    short_sha(&revision.git.sha),
                    gitship_foundation::diagnostics::render(&restore)
                ));
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(sha: &str, outcome: DeployOutcome, source: RecordSource) -> DeployRecord {
        DeployRecord::for_test(sha, outcome, source)
    }

    /// Newest first, as the inventory keeps it.
    fn history(records: &[(&str, DeployOutcome, RecordSource)]) -> Vec<DeployRecord> {
        records
            .iter()
            .map(|(sha, outcome, source)| record(sha, *outcome, *source))
            .collect()
    }

    #[test]
    fn after_a_failed_deploy_the_target_is_the_last_good_revision() {
        use DeployOutcome::*;
        use RecordSource::*;
        // A ok, B ok, C failed (the cluster runs part of C): back to B, not A.
        let history = history(&[
            ("c", Failed, Deploy),
            ("b", Succeeded, Deploy),
            ("a", Succeeded, Deploy),
        ]);
        let one = choose(&history, 1).expect("a target");
        assert_eq!((one.current.as_str(), one.target.as_str()), ("c", "b"));
        assert_eq!(choose(&history, 2).expect("two back").target, "a");
        assert_eq!(choose(&history, 3), None);
        assert_eq!(choose(&[], 1), None);
    }

    #[test]
    fn a_rollback_after_a_rollback_goes_further_back_never_forward() {
        use DeployOutcome::*;
        use RecordSource::*;
        // A, B, C; rollback to B; rollback again: A, not C.
        let history = history(&[
            ("b", Succeeded, Rollback),
            ("c", Succeeded, Deploy),
            ("b", Succeeded, Deploy),
            ("a", Succeeded, Deploy),
        ]);
        let again = choose(&history, 1).expect("a target");
        assert_eq!((again.current.as_str(), again.target.as_str()), ("b", "a"));
        assert_eq!(choose(&history, 2), None);
    }

    #[test]
    fn heals_and_repeated_deploys_of_the_current_revision_are_not_targets() {
        use DeployOutcome::*;
        use RecordSource::*;
        let history = history(&[
            ("b", Succeeded, Heal),
            ("b", Succeeded, Deploy),
            ("y", Failed, Deploy),
            ("a", Succeeded, Agent),
            ("b", Succeeded, Deploy),
        ]);
        assert_eq!(back(&history), vec!["a".to_string()]);
    }

    /// What happens to an environment, for the property test.
    #[derive(Debug, Clone)]
    enum Step {
        /// A deploy of revision `n` (of a handful), failing or not.
        Deploy { revision: u8, fails: bool },
        /// A deploy of the current revision that changes nothing.
        NoOp,
        /// A heal of the current revision.
        Heal,
        /// `rollback --steps n`, when there is a target.
        Rollback { steps: usize },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..6, prop::bool::weighted(0.25))
                .prop_map(|(revision, fails)| Step::Deploy { revision, fails }),
            1 => Just(Step::NoOp),
            1 => Just(Step::Heal),
            2 => (1usize..3).prop_map(|steps| Step::Rollback { steps }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Over generated histories, rollback never picks the current revision, one that never
        /// succeeded, or one that came after the revision the environment went back to; and it
        /// agrees with a model of the timeline as a stack of good revisions that a rollback pops.
        #[test]
        fn rollback_never_picks_the_current_a_failed_or_a_newer_revision(
            steps in prop::collection::vec(step(), 1..40)
        ) {
            let mut history: Vec<DeployRecord> = Vec::new();
            // The model: the good revisions in the order the environment went through them.
            let mut timeline: Vec<String> = Vec::new();
            let mut current: Option<String> = None;
            let mut succeeded: std::collections::BTreeSet<String> = Default::default();
            for step in steps {
                match step {
                    Step::Deploy { revision, fails } => {
                        let sha = format!("r{revision}");
                        let outcome = if fails { DeployOutcome::Failed } else { DeployOutcome::Succeeded };
                        gitship_kube::inventory::push_record(&mut history, record(&sha, outcome, RecordSource::Deploy));
                        if !fails {
                            succeeded.insert(sha.clone());
                            if timeline.last() != Some(&sha) {
                                timeline.push(sha.clone());
                            }
                        }
                        current = Some(sha);
                    }
                    Step::NoOp | Step::Heal => {
                        let Some(sha) = current.clone() else { continue };
                        if !succeeded.contains(&sha) || history.first().is_some_and(|r| r.outcome == DeployOutcome::Failed) {
                            continue;
                        }
                        let mut again = record(&sha, DeployOutcome::Succeeded, if matches!(step, Step::Heal) { RecordSource::Heal } else { RecordSource::Deploy });
                        if matches!(step, Step::Heal) {
                            again.counts.configured = 1;
                            again.healed = vec!["Deployment blog/web spec.replicas".into()];
                        }
                        gitship_kube::inventory::push_record(&mut history, again);
                    }
                    Step::Rollback { steps } => {
                        let chosen = choose(&history, steps);
                        // The model's answer: the distinct good revisions before the current
                        // one, nearest first; the timeline is then cut back to the target.
                        let mut candidates: Vec<String> = Vec::new();
                        for sha in timeline.iter().rev() {
                            if Some(sha) != current.as_ref() && !candidates.contains(sha) {
                                candidates.push(sha.clone());
                            }
                        }
                        let expected = candidates.get(steps - 1).cloned();
                        let model = match &expected {
                            Some(target) => {
                                let at = timeline.iter().rposition(|sha| sha == target).unwrap_or(0);
                                timeline[..=at].to_vec()
                            }
                            None => timeline.clone(),
                        };
                        prop_assert_eq!(chosen.as_ref().map(|c| c.target.clone()), expected.clone(), "history: {:?}", history.iter().map(|r| (r.sha.clone(), r.outcome, r.source)).collect::<Vec<_>>());
                        let Some(chosen) = chosen else { continue };
                        prop_assert_ne!(Some(&chosen.target), current.as_ref());
                        prop_assert!(succeeded.contains(&chosen.target));
                        gitship_kube::inventory::push_record(&mut history, record(&chosen.target, DeployOutcome::Succeeded, RecordSource::Rollback));
                        timeline = model;
                        current = Some(chosen.target);
                    }
                }
            }
            // Numbers are unique and grow with time.
            let numbers: Vec<u64> = history.iter().map(|r| r.number).collect();
            prop_assert!(numbers.windows(2).all(|w| w[0] > w[1]), "{:?}", numbers);
        }
    }
}
