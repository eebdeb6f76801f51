//! `unlock --force`: break the environment's deploy lock when a deploy is stuck (or its holder
//! died without the Lease expiring yet), so that a rollback can get ahead of it. The holder
//! finds the lock lost at its next renewal and stops before its next write; an Event records who
//! broke it and whose it was.

use anyhow::Result;

use crate::ops::session::Session;
use gitship_foundation::diagnostics::user_error;
use gitship_kube::events::{self, EventType};
use gitship_kube::retry::RetryPolicy;

/// Break the lock; the holder it had (`None`: it was free).
pub async fn unlock(session: &Session) -> Result<Option<String>> {
    let connection = session.connect_announced().await?;
    let environment = session.environment();
    let who = gitship_foundation::ci::who();
    let holder = gitship_kube::lock::break_lock(
        &connection.client,
        &environment.name,
        &environment.namespace,
        &who,
        &RetryPolicy::default(),
    )
    .await
    .map_err(user_error)?;
    if let Some(holder) = &holder {
        events::record(
            &connection.client,
            &environment,
            &gitship_foundation::ci::who(),
            EventType::Warning,
            "LockBroken",
            &format!(
                "`{who}` broke the deploy lock of `{}`, held by `{holder}`: that deploy stops before its next write",
                environment.name
            ),
        )
        .await;
    }
    connection.save_sandbox()?;
    Ok(holder)
}
