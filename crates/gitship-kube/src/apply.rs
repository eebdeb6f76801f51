//! Server-side apply of one object, the way gitship does it.
//!
//! A desired object is first [`prepare`]d: its resource and scope are resolved, the environment
//! namespace is filled in for namespaced kinds, and the ownership annotation
//! (`gitship.dev/owned-by: <env>`) and `app.kubernetes.io/managed-by: gitship` label are added.
//! [`apply_object`] then skips objects whose dry-run result equals the live object (see
//! [`crate::diff`]), so a deploy with nothing to change sends no writes. Every request is
//! retried on transient failures. An immutable-field rejection names the field, and objects
//! annotated `gitship.dev/replace: "true"` are deleted and recreated instead. An object the
//! server is still deleting (a prune's foreground deletion, a finalizer) is created anew once it
//! is gone: applying to it would change an object about to disappear.

use std::time::Duration;

use kube::Client;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check::Prepared;
use crate::diff::{self, PlannedAction};
use crate::retry::{RetryPolicy, status_code};
use crate::{KubeError, error_message, immutable_field};
use gitship_foundation::model::{FIELD_MANAGER, REPLACE_ANNOTATION};

/// How long applying waits for an object the server is deleting to be gone.
pub(crate) const DELETION_WAIT: Duration = Duration::from_secs(60);

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Applied {
    Created,
    Configured,
    /// Deleted and recreated (`gitship.dev/replace: "true"` and an immutable field changed).
    Replaced,
    Unchanged,
}

/// One server-side apply (optionally `dryRun=All`) with field manager `gitship`.
pub(crate) async fn server_side_apply(
    client: &Client,
    prepared: &Prepared,
    force: bool,
    dry_run: bool,
    retry: &RetryPolicy,
) -> Result<Value, kube::Error> {
    let api = prepared.api(client);
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = force;
    params.dry_run = dry_run;
    let patch = Patch::Apply(&prepared.body);
    let result = retry
        .run(&prepared.id.to_string(), || {
            api.patch(&prepared.id.name, &params, &patch)
        })
        .await?;
    serde_json::to_value(result).map_err(kube::Error::SerdeError)
}

/// What a deploy already knows about one object before applying it.
#[derive(Debug, Default)]
pub struct Known {
    /// Its live state when the deploy read it with a LIST (`Some(None)`: absent); `None`: GET it.
    pub live: Option<Option<Value>>,
    /// gitship's last successful apply of this object had exactly this body (the inventory's
    /// applied digest matches).
    pub applied_before: bool,
    /// The result of the dry run the deploy made of this object before its first write
    /// (`kube::deploy`'s validation of the whole set): not sent again.
    pub dry_run: Option<Value>,
}

/// Apply one object unless nothing would change: either gitship applied exactly this body
/// before and every field it sets still holds its value ([`Known::applied_before`] and
/// [`diff::compare_to_manifest`] finds nothing), or the dry-run result equals the
/// live object. The first needs no request: a field removed from the manifest changes the
/// digest, and a field someone else changed differs, so either takes the dry run.
pub(crate) async fn apply_object(
    client: &Client,
    prepared: &Prepared,
    known: Known,
    force: bool,
    retry: &RetryPolicy,
) -> Result<Applied, KubeError> {
    let api_error = |source: kube::Error| prepared.error(source);
    let live = match known.live {
        Some(live) => live,
        None => prepared.get_live(client, retry).await.map_err(api_error)?,
    };
    let live = match live {
        Some(live) if is_being_deleted(&live) => {
            tracing::info!(object = %prepared.id, "the live object is being deleted: creating it anew once it is gone");
            if !wait_until_gone(client, prepared, retry).await? {
                return Err(KubeError::StillDeleting {
                    object: prepared.describe(),
                    waited: DELETION_WAIT,
                });
            }
            None
        }
        live => live,
    };
    if let Some(live) = &live {
        crate::check::check_owner(prepared, live)?;
        if known.applied_before && diff::compare_to_manifest(live, &prepared.body).is_empty() {
            return Ok(Applied::Unchanged);
        }
    }
    if live.is_none() {
        server_side_apply(client, prepared, force, false, retry)
            .await
            .map_err(api_error)?;
        return Ok(Applied::Created);
    }
    let dry_run = match known.dry_run {
        Some(dry_run) => Ok(dry_run),
        None => server_side_apply(client, prepared, force, true, retry).await,
    };
    let planned = match dry_run {
        Ok(dry_run) => diff::diff_from(live, dry_run),
        Err(error) => return replace_if_allowed(client, prepared, force, retry, error).await,
    };
    if planned.action == PlannedAction::Unchanged {
        return Ok(Applied::Unchanged);
    }
    match server_side_apply(client, prepared, force, false, retry).await {
        Ok(_) => Ok(Applied::Configured),
        Err(error) => replace_if_allowed(client, prepared, force, retry, error).await,
    }
}

/// Whether the server is deleting `live` (it has a `deletionTimestamp`; finalizers hold it).
pub(crate) fn is_being_deleted(live: &Value) -> bool {
    live.pointer("/metadata/deletionTimestamp")
        .is_some_and(|timestamp| !timestamp.is_null())
}

/// Wait until the object is gone, at most [`DELETION_WAIT`]; `false` when it is still there.
async fn wait_until_gone(
    client: &Client,
    prepared: &Prepared,
    retry: &RetryPolicy,
) -> Result<bool, KubeError> {
    let deadline = tokio::time::Instant::now() + DELETION_WAIT;
    while prepared
        .get_live(client, retry)
        .await
        .map_err(|e| prepared.error(e))?
        .is_some()
    {
        if tokio::time::Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(true)
}

async fn replace_if_allowed(
    client: &Client,
    prepared: &Prepared,
    force: bool,
    retry: &RetryPolicy,
    error: kube::Error,
) -> Result<Applied, KubeError> {
    let Some(field) = immutable_field(&error) else {
        return Err(prepared.error(error));
    };
    if gitship_foundation::model::annotation(&prepared.body, REPLACE_ANNOTATION) != Some("true") {
        return Err(KubeError::Immutable {
            object: prepared.describe(),
            field,
            message: error_message(&error),
        });
    }
    tracing::info!(object = %prepared.id, %field, "immutable field changed: deleting and recreating");
    let api = prepared.api(client);
    let params = DeleteParams::foreground();
    let deleted = retry
        .run(&prepared.id.to_string(), || {
            api.delete(&prepared.id.name, &params)
        })
        .await;
    match deleted {
        Ok(_) => {}
        Err(error) if status_code(&error) == Some(404) => {}
        Err(error) => return Err(prepared.error(error)),
    }
    // Wait until the old object is gone (finalizers, foreground deletion), bounded.
    if !wait_until_gone(client, prepared, retry).await? {
        return Err(KubeError::Immutable {
            object: prepared.describe(),
            field,
            message: format!("the old object was not deleted within {DELETION_WAIT:?}"),
        });
    }
    server_side_apply(client, prepared, force, false, retry)
        .await
        .map_err(|e| prepared.error(e))?;
    Ok(Applied::Replaced)
}
