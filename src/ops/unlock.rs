//! `unlock --force`: break the environment's deploy lock when a deploy is stuck (or its holder
//! died without the Lease expiring yet), so that a rollback can get ahead of it. The holder
//! finds the lock lost at its next renewal and stops before its next write; an Event records who
//! broke it and whose it was.

use anyhow::Result;

use crate::diagnostics::user_error;
use crate::kube::events::{self, EventType};
use crate::kube::retry::RetryPolicy;
use crate::ops::session::Session;

/// Break the lock; the holder it had (`None`: it was free).
pub async fn unlock(session: &Session) -> Result<Option<String>> {
    let connection = session.connect_announced().await?;
    let environment = session.environment();
    let who = crate::ci::who();
    let holder = crate::kube::lock::break_lock(
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
            &crate::ci::who(),
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
