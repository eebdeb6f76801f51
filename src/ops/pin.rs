//! `pin` and `resume`: fix the environment at a revision, and let it follow Git again. See
//! [`gitship_kube::pin`] for where the pin lives and what it means to `deploy` and the agent.

use anyhow::{Context as _, Result};
use chrono::Utc;

use crate::git::short_sha;
use crate::ops::session::{ClusterConnection, Session};
use crate::plan::PinInfo;
use gitship_foundation::diagnostics::{UserError, user_error};
use gitship_kube::events::{self, EventType};
use gitship_kube::pin;
/// The environment's pin, as the Kubernetes stage stores it.
pub use gitship_kube::pin::Pin;
use gitship_kube::retry::RetryPolicy;

/// Pin the environment at `revision` (resolved in the repository); the pin written. The commit
/// must have been pushed (be reachable from a remote-tracking branch) when the repository has a
/// remote: the agent heals to the pin from its own clone of the source.
pub async fn pin(session: &Session, revision: &str, reason: &str) -> Result<Pin> {
    let sha = session.resolve_revision(revision)?;
    require_pushed(session, revision, &sha)?;
    pin_sha(session, &sha, reason).await
}

/// Refuse `revision` (resolved to `sha`) as a pin when the repository has remote-tracking
/// branches and none of them has it: the agent heals to the pin from its own clone of the
/// source, which could not check an unpushed commit out. What `pin --rev` and `rollback --to`
/// check before they pin.
pub fn require_pushed(session: &Session, revision: &str, sha: &str) -> Result<()> {
    let pushed = crate::git::reachable_from_remote(&session.repo.root, sha)
        .with_context(|| format!("cannot tell whether `{revision}` was pushed"))?;
    if pushed == Some(false) {
        return Err(UserError::new(
            format!(
                "`{revision}` ({}) is on no remote-tracking branch: it has not been pushed, so the agent of `{}` could not check it out",
                short_sha(sha),
                session.config.name
            ),
            "push it first (`git push`, then `git fetch`), or name a commit of a pushed branch",
        )
        .into());
    }
    Ok(())
}

/// Pin the environment at the commit `sha`.
pub async fn pin_sha(session: &Session, sha: &str, reason: &str) -> Result<Pin> {
    let sha = sha.to_string();
    let connection = session.connect_announced().await?;
    session.deployed_inventory(&connection, "pin").await?;
    let pin = Pin {
        sha,
        who: gitship_foundation::ci::who(),
        time: Utc::now(),
        reason: reason.to_string(),
    };
    let environment = session.environment();
    pin::store(
        &connection.client,
        &environment,
        Some(&pin),
        &RetryPolicy::default(),
    )
    .await
    .map_err(user_error)?;
    events::record(
        &connection.client,
        &environment,
        &gitship_foundation::ci::who(),
        EventType::Normal,
        "Pinned",
        &format!(
            "`{}` pinned at {} by {} ({reason})",
            environment.name,
            short_sha(&pin.sha),
            pin.who
        ),
    )
    .await;
    connection.save_sandbox()?;
    Ok(pin)
}

/// Put `previous` (a pin read before, or none) back as the environment's pin: what a failed
/// rollback to `session`'s revision undoes. An Event says so (`PinRestored`, or `PinRemoved`
/// when there was no pin before), next to the rollback's `Pinned`.
pub async fn restore(session: &Session, previous: Option<&Pin>) -> Result<()> {
    let connection = session.connect().await?;
    let environment = session.environment();
    pin::store(
        &connection.client,
        &environment,
        previous,
        &RetryPolicy::default(),
    )
    .await
    .map_err(user_error)?;
    let failed = format!(
        "the rollback of `{}` to {} failed",
        environment.name,
        short_sha(&session.git.sha)
    );
    let (reason, message) = match previous {
        Some(previous) => (
            "PinRestored",
            format!(
                "{failed}: its pin is undone, `{}` is pinned at {} again ({} by {})",
                environment.name,
                short_sha(&previous.sha),
                previous.reason,
                previous.who
            ),
        ),
        None => (
            "PinRemoved",
            format!(
                "{failed}: its pin is removed, `{}` follows Git again",
                environment.name
            ),
        ),
    };
    events::record(
        &connection.client,
        &environment,
        &gitship_foundation::ci::who(),
        EventType::Warning,
        reason,
        &message,
    )
    .await;
    connection.save_sandbox()
}

/// What `resume` found of the pin and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// There was no pin.
    NotPinned,
    /// This pin was removed.
    Unpinned(Pin),
    /// The pin could not be read (the message says why); it was removed all the same.
    UnreadableRemoved(String),
}

/// What `resume` did: the pin and the suspension it removed; the agent is then asked for a
/// sync, so that it follows Git at once, not at its next poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumption {
    pub pin: Resumed,
    pub suspension: Option<pin::Suspension>,
}

/// Remove the environment's pin and suspension (`gitship resume`), and ask the agent to sync.
pub async fn resume(session: &Session) -> Result<Resumption> {
    let connection = session.connect_announced().await?;
    let environment = session.environment();
    let retry = RetryPolicy::default();
    let client = &connection.client;
    let configmap = gitship_kube::inventory::load_configmap(
        client,
        &environment.name,
        &environment.namespace,
        &retry,
    )
    .await
    .map_err(user_error)?;
    let (previous, suspension) = match &configmap {
        None => (Resumed::NotPinned, None),
        Some(configmap) => (
            match pin::decode(configmap) {
                Ok(None) => Resumed::NotPinned,
                Ok(Some(previous)) => Resumed::Unpinned(previous),
                Err(message) => Resumed::UnreadableRemoved(message),
            },
            pin::decode_suspension(configmap),
        ),
    };
    if previous == Resumed::NotPinned && suspension.is_none() {
        return Ok(Resumption {
            pin: previous,
            suspension,
        });
    }
    if previous != Resumed::NotPinned {
        pin::store(client, &environment, None, &retry)
            .await
            .map_err(user_error)?;
    }
    if suspension.is_some() {
        pin::store_suspension(client, &environment, None, &retry)
            .await
            .map_err(user_error)?;
    }
    let mut was = Vec::new();
    match &previous {
        Resumed::Unpinned(pin) => was.push(format!("was pinned at {}", short_sha(&pin.sha))),
        Resumed::UnreadableRemoved(_) => was.push("its pin was unreadable".to_string()),
        Resumed::NotPinned => {}
    }
    if let Some(suspension) = &suspension {
        was.push(format!("was suspended by {}", suspension.who));
    }
    events::record(
        client,
        &environment,
        &gitship_foundation::ci::who(),
        EventType::Normal,
        "Resumed",
        &format!(
            "`{}` follows Git again ({}) by {}",
            environment.name,
            was.join(", "),
            gitship_foundation::ci::who()
        ),
    )
    .await;
    gitship_kube::sync_request::request(client, &environment)
        .await
        .map_err(user_error)?;
    connection.save_sandbox()?;
    Ok(Resumption {
        pin: previous,
        suspension,
    })
}

/// The environment's pin, read through `connection`.
pub async fn current(session: &Session, connection: &ClusterConnection) -> Result<Option<Pin>> {
    pin::load(
        &connection.client,
        &session.environment(),
        &RetryPolicy::default(),
    )
    .await
    .map_err(user_error)
}

/// What `plan` and `drift` compare the cluster with (the command line decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The pinned revision when the environment is pinned at another commit than the session's,
    /// else the session's own revision (the work tree).
    FollowPin,
    /// The session's own revision (`--rev REV`), whatever the pin.
    Session,
}

/// The pin whose revision a comparison with `target` checks out instead of the session's own
/// (at `session_sha`): none without a pin, with `--rev`, or when the session is at the pin.
pub fn pin_to_compare<'pin>(
    pin: Option<&'pin Pin>,
    target: Target,
    session_sha: &str,
) -> Option<&'pin Pin> {
    match target {
        Target::FollowPin => pin.filter(|pin| pin.sha != session_sha),
        Target::Session => None,
    }
}

/// The pin as `plan` and `drift` report it, with the work tree's commit `git_sha`.
pub fn info(pin: &Pin, git_sha: &str) -> PinInfo {
    PinInfo {
        sha: pin.sha.clone(),
        git_sha: git_sha.to_string(),
        by: pin.who.clone(),
        reason: pin.reason.clone(),
        at: pin.time,
    }
}

/// The session of the environment's pinned revision (`pin`), checked out in gitship's own clone
/// for `plan` or `drift` (`command`). A pinned commit the repository does not have (pinned from
/// another clone, not fetched here) is an error saying how to get it or compare with Git.
pub fn open_pinned(session: &Session, pin: &Pin, command: &str) -> Result<Session> {
    let environment = &session.config.name;
    session.printer.status(&format!(
        "`{environment}` is pinned at {} (Git at {}): {command} of the pinned revision",
        short_sha(&pin.sha),
        short_sha(&session.git.sha)
    ));
    let root = &session.user_repo().root;
    if let Err(error) = crate::git::resolve_revision(root, &pin.sha) {
        return Err(anyhow::Error::new(error).context(UserError::new(
            format!(
                "`{environment}` is pinned at {} ({} by {}), a commit the repository `{}` does not have",
                short_sha(&pin.sha),
                pin.reason,
                pin.who,
                root.display()
            ),
            format!(
                "fetch it (`git fetch`), or compare with Git instead: `gitship {command} {environment} --rev HEAD`"
            ),
        )));
    }
    session.at_commit(&pin.sha)
}

/// A deploy of another revision than the pinned one is refused unless forced.
pub fn check_deploy(pin: Option<&Pin>, sha: &str, environment: &str, force: bool) -> Result<()> {
    match pin {
        Some(pin) if pin.sha != sha && !force => Err(UserError::new(
            format!(
                "`{environment}` is pinned at {} ({} by {}, {}); this deploy is {}",
                short_sha(&pin.sha),
                pin.reason,
                pin.who,
                pin.time.format("%Y-%m-%d %H:%M:%SZ"),
                short_sha(sha)
            ),
            format!(
                "`git revert` the bad change and run `gitship resume {environment}`, or pass `--force` to deploy anyway"
            ),
        )
        .into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_drift_compare_the_pin_unless_rev_names_a_revision() {
        let pin = Pin {
            sha: "a".repeat(40),
            who: "ann".into(),
            time: Utc::now(),
            reason: "rollback".into(),
        };
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        assert_eq!(
            pin_to_compare(Some(&pin), Target::FollowPin, &b),
            Some(&pin),
            "Git moved on: the pinned revision"
        );
        assert_eq!(
            pin_to_compare(Some(&pin), Target::FollowPin, &a),
            None,
            "the work tree is at the pin"
        );
        assert_eq!(
            pin_to_compare(Some(&pin), Target::Session, &b),
            None,
            "`--rev`"
        );
        assert_eq!(pin_to_compare(None, Target::FollowPin, &b), None);
        let info = info(&pin, &b);
        assert_eq!((info.sha, info.git_sha), (a, b));
        assert_eq!(
            (info.by.as_str(), info.reason.as_str()),
            ("ann", "rollback")
        );
    }

    #[test]
    fn a_pinned_environment_refuses_other_revisions_unless_forced() {
        let pin = Pin {
            sha: "a".repeat(40),
            who: "ann".into(),
            time: Utc::now(),
            reason: "rollback".into(),
        };
        assert!(check_deploy(Some(&pin), &"a".repeat(40), "production", false).is_ok());
        assert!(check_deploy(Some(&pin), &"b".repeat(40), "production", true).is_ok());
        assert!(check_deploy(None, &"b".repeat(40), "production", false).is_ok());
        let error = check_deploy(Some(&pin), &"b".repeat(40), "production", false).unwrap_err();
        let text = gitship_foundation::diagnostics::render(&error);
        assert!(text.contains("pinned at aaaaaaaaaaaa"), "{text}");
        assert!(text.contains("gitship resume production"), "{text}");
    }
}
