//! Preview environments as the cluster records them: a preview (`gitship env new pr-123 --from
//! staging --ephemeral`) has no config file; its record is its own namespace, in the cluster of
//! the environment it derives from, labelled and annotated so that any process (a CI job on a
//! fresh checkout) finds it by name with one LIST by label selector:
//!
//! - labels [`PREVIEW_LABEL`] (its name), [`PREVIEW_OF_LABEL`] (the base environment), gitship's
//!   `managed-by` and `environment` labels;
//! - annotations [`CREATED_AT_ANNOTATION`], [`EXPIRES_AT_ANNOTATION`] (RFC 3339) and
//!   [`VALUES_ANNOTATION`] (the `--set` overrides as a JSON object; values are never secret).
//!
//! Deleting the namespace (what `destroy` does) deletes the record with everything in it.
//! Written by server-side apply under the field manager [`FIELD_MANAGER`], so a deploy's own
//! writes to the namespace never remove it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::KubeError;
use crate::retry::RetryPolicy;
use gitship_foundation::model::{ENVIRONMENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// Label naming the preview whose record the namespace is.
pub const PREVIEW_LABEL: &str = "gitship.dev/preview";
/// Label naming the committed environment the preview derives from.
pub const PREVIEW_OF_LABEL: &str = "gitship.dev/preview-of";
/// Annotation: when the preview was first created (RFC 3339).
pub const CREATED_AT_ANNOTATION: &str = "gitship.dev/created-at";
/// Annotation: when the preview expires and `gitship gc` may destroy it (RFC 3339).
pub const EXPIRES_AT_ANNOTATION: &str = "gitship.dev/expires-at";
/// Annotation: the preview's `values` overrides, a JSON object of dotted keys to values.
pub const VALUES_ANNOTATION: &str = "gitship.dev/preview-values";
/// The field manager of the record.
const FIELD_MANAGER: &str = "gitship-preview";

/// One preview, as recorded on its namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreviewRecord {
    pub name: String,
    /// The committed environment it derives from.
    pub base: String,
    /// Its namespace (the record itself).
    pub namespace: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// `--set values.KEY=VALUE` overrides: `KEY` (dotted, without `values.`) -> the typed value.
    pub values: BTreeMap<String, serde_json::Value>,
}

impl PreviewRecord {
    /// Whether the preview has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }
}

/// What [`record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The namespace was created with the record.
    Created,
    /// The preview existed: its values and expiry were replaced (its creation time kept).
    Updated,
}

/// Create the preview's namespace with its record, or update the record of an existing preview
/// (its values and expiry; the creation time stays). A namespace of that name that is not this
/// preview's record (another preview, or not a preview at all) is refused, changing nothing.
pub async fn record(
    client: &Client,
    preview: &PreviewRecord,
    retry: &RetryPolicy,
) -> Result<(Recorded, PreviewRecord), KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let name = &preview.namespace;
    let existing = retry
        .run(name, || api.get_opt(name))
        .await
        .map_err(|source| KubeError::about(format!("Namespace {name}"), source))?;
    let mut stored = preview.clone();
    let outcome = match existing {
        None => Recorded::Created,
        Some(namespace) => {
            let current = check_existing(&namespace, preview)?;
            stored.created_at = current.created_at;
            Recorded::Updated
        }
    };
    let body = body(&stored);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    retry
        .run(name, || api.patch(name, &params, &patch))
        .await
        .map_err(|source| KubeError::about(format!("Namespace {name}"), source))?;
    Ok((outcome, stored))
}

/// The record of an existing namespace, when it is `preview`'s (same preview, same base, not
/// being deleted); otherwise why not.
fn check_existing(
    namespace: &Namespace,
    preview: &PreviewRecord,
) -> Result<PreviewRecord, KubeError> {
    let refuse = |why: String| KubeError::PreviewTaken {
        preview: preview.name.clone(),
        namespace: preview.namespace.clone(),
        why,
    };
    if namespace.metadata.deletion_timestamp.is_some() {
        return Err(refuse(
            "is being deleted (wait until it is gone, then run this again)".into(),
        ));
    }
    match decode(namespace) {
        Some(Decoded::Record(current))
            if current.name == preview.name && current.base == preview.base =>
        {
            Ok(current)
        }
        // The same preview's unreadable record is written anew (its creation time unknown: now).
        Some(Decoded::Unreadable(current))
            if current.name == preview.name && current.base == preview.base =>
        {
            Ok(preview.clone())
        }
        Some(Decoded::Record(PreviewRecord { name, base, .. }))
        | Some(Decoded::Unreadable(UnreadableRecord { name, base, .. })) => {
            Err(refuse(format!("holds preview `{name}` of `{base}`")))
        }
        None => Err(refuse("exists and is not a preview's".into())),
    }
}

fn body(preview: &PreviewRecord) -> serde_json::Value {
    let values = serde_json::to_string(&preview.values).unwrap_or_else(|_| "{}".into());
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": preview.namespace,
            "labels": {
                MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                ENVIRONMENT_LABEL: preview.name,
                PREVIEW_LABEL: preview.name,
                PREVIEW_OF_LABEL: preview.base,
            },
            "annotations": {
                gitship_foundation::model::CREATED_BY_ANNOTATION: preview.name,
                CREATED_AT_ANNOTATION: rfc3339(preview.created_at),
                EXPIRES_AT_ANNOTATION: rfc3339(preview.expires_at),
                VALUES_ANNOTATION: values,
            },
        },
    })
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The largest annotation of a record that is read (a record written by gitship is far
/// smaller; a larger one is unreadable, not parsed).
pub const MAX_ANNOTATION_BYTES: usize = 64 * 1024;

/// A namespace labelled as a preview's record whose annotations do not decode: never counted as
/// expired (so `gc` leaves it alone) and never deployed or destroyed by name (ARCHITECTURE.md,
/// "Preview environments").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnreadableRecord {
    pub name: String,
    pub base: String,
    pub namespace: String,
    /// Which annotation, and what is wrong with it.
    pub why: String,
}

/// What a namespace labelled as a preview's record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Record(PreviewRecord),
    Unreadable(UnreadableRecord),
}

/// The preview records of a cluster (namespaces being deleted left out), by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    pub records: Vec<PreviewRecord>,
    pub unreadable: Vec<UnreadableRecord>,
}

/// Every preview recorded in the cluster (namespaces being deleted left out), by name.
pub async fn list(client: &Client, retry: &RetryPolicy) -> Result<Listed, KubeError> {
    list_selected(client, PREVIEW_LABEL, retry).await
}

/// The preview `name`'s records in the cluster (none or one, unless two bases recorded one of
/// that name).
pub async fn find(client: &Client, name: &str, retry: &RetryPolicy) -> Result<Listed, KubeError> {
    list_selected(client, &format!("{PREVIEW_LABEL}={name}"), retry).await
}

async fn list_selected(
    client: &Client,
    selector: &str,
    retry: &RetryPolicy,
) -> Result<Listed, KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let params = ListParams::default().labels(selector);
    let listed = retry
        .run("namespaces", || api.list(&params))
        .await
        .map_err(|source| KubeError::about("Namespaces".to_string(), source))?;
    let mut out = Listed::default();
    for decoded in listed
        .items
        .iter()
        .filter(|namespace| namespace.metadata.deletion_timestamp.is_none())
        .filter_map(decode)
    {
        match decoded {
            Decoded::Record(record) => out.records.push(record),
            Decoded::Unreadable(unreadable) => out.unreadable.push(unreadable),
        }
    }
    out.records
        .sort_by(|a, b| a.name.cmp(&b.name).then(a.base.cmp(&b.base)));
    out.unreadable
        .sort_by(|a, b| a.name.cmp(&b.name).then(a.base.cmp(&b.base)));
    Ok(out)
}

/// What a namespace holds: `None` when it is no preview's record (without both labels, or
/// nameless); a record whose annotations are missing, too large or do not parse is
/// [`Decoded::Unreadable`], with which one and why (never read as expired or as no values).
pub fn decode(namespace: &Namespace) -> Option<Decoded> {
    let labels = namespace.metadata.labels.as_ref()?;
    let name = labels.get(PREVIEW_LABEL)?.clone();
    let base = labels.get(PREVIEW_OF_LABEL)?.clone();
    let namespace_name = namespace.metadata.name.clone()?;
    let annotations = namespace.metadata.annotations.clone().unwrap_or_default();
    let decoded =
        decode_annotations(&annotations).map(|(created_at, expires_at, values)| PreviewRecord {
            name: name.clone(),
            base: base.clone(),
            namespace: namespace_name.clone(),
            created_at,
            expires_at,
            values,
        });
    Some(match decoded {
        Ok(record) => Decoded::Record(record),
        Err(why) => Decoded::Unreadable(UnreadableRecord {
            name,
            base,
            namespace: namespace_name,
            why,
        }),
    })
}

type Annotated = (
    DateTime<Utc>,
    DateTime<Utc>,
    BTreeMap<String, serde_json::Value>,
);

/// The creation time, expiry and values of a record's annotations, or which one is unreadable.
fn decode_annotations(annotations: &BTreeMap<String, String>) -> Result<Annotated, String> {
    let text = |key: &str| -> Result<&str, String> {
        let text = annotations
            .get(key)
            .ok_or_else(|| format!("annotation `{key}` is missing"))?;
        if text.len() > MAX_ANNOTATION_BYTES {
            return Err(format!(
                "annotation `{key}` is {} bytes (at most {MAX_ANNOTATION_BYTES} are read)",
                text.len()
            ));
        }
        Ok(text)
    };
    let time = |key: &str| -> Result<DateTime<Utc>, String> {
        let text = text(key)?;
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|error| format!("annotation `{key}` is not an RFC 3339 time ({error})"))
    };
    let values = serde_json::from_str(text(VALUES_ANNOTATION)?).map_err(|error| {
        format!("annotation `{VALUES_ANNOTATION}` is not a JSON object ({error})")
    })?;
    Ok((
        time(CREATED_AT_ANNOTATION)?,
        time(EXPIRES_AT_ANNOTATION)?,
        values,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_at(expires: &str) -> PreviewRecord {
        PreviewRecord {
            name: "pr-1".into(),
            base: "staging".into(),
            namespace: "blog-pr-1".into(),
            created_at: DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            expires_at: DateTime::parse_from_rfc3339(expires)
                .unwrap()
                .with_timezone(&Utc),
            values: BTreeMap::from([("host".to_string(), json!("pr-1.example"))]),
        }
    }

    #[test]
    fn the_record_reads_back_from_its_namespace() {
        let preview = record_at("2026-12-04T10:00:00Z");
        let namespace: Namespace = serde_json::from_value(body(&preview)).unwrap();
        assert_eq!(decode(&namespace), Some(Decoded::Record(preview.clone())));
        let now = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(preview.is_expired(now));
        assert!(!preview.is_expired(now - chrono::Duration::seconds(1)));
    }

    fn labelled(annotations: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({"metadata": {
            "name": "blog-pr-2",
            "labels": {PREVIEW_LABEL: "pr-2", PREVIEW_OF_LABEL: "staging"},
            "annotations": annotations,
        }}))
        .unwrap()
    }

    fn why_unreadable(namespace: &Namespace) -> String {
        match decode(namespace) {
            Some(Decoded::Unreadable(unreadable)) => {
                assert_eq!(
                    (unreadable.name.as_str(), unreadable.namespace.as_str()),
                    ("pr-2", "blog-pr-2")
                );
                unreadable.why
            }
            other => panic!("not unreadable: {other:?}"),
        }
    }

    #[test]
    fn a_namespace_without_the_labels_is_no_preview_and_a_bad_record_is_unreadable() {
        let plain: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "blog"}})).unwrap();
        assert_eq!(decode(&plain), None);
        let good = json!({
            CREATED_AT_ANNOTATION: "2026-12-01T10:00:00Z",
            EXPIRES_AT_ANNOTATION: "2026-12-04T10:00:00Z",
            VALUES_ANNOTATION: "{\"host\":\"x\"}",
        });
        assert!(matches!(
            decode(&labelled(good.clone())),
            Some(Decoded::Record(_))
        ));
        // Labels only (a namespace labelled by hand): unreadable, never expired.
        let why = why_unreadable(&labelled(json!({})));
        assert!(why.contains("is missing"), "{why}");
        let mut bad_time = good.clone();
        bad_time[EXPIRES_AT_ANNOTATION] = json!("soon");
        let why = why_unreadable(&labelled(bad_time));
        assert!(
            why.contains(EXPIRES_AT_ANNOTATION) && why.contains("RFC 3339"),
            "{why}"
        );
        for values in ["[1", "[1]", "\"text\""] {
            let mut bad_values = good.clone();
            bad_values[VALUES_ANNOTATION] = json!(values);
            let why = why_unreadable(&labelled(bad_values));
            assert!(why.contains(VALUES_ANNOTATION), "{why}");
        }
        let mut huge = good;
        huge[VALUES_ANNOTATION] = json!(format!(
            "{{\"a\":\"{}\"}}",
            "x".repeat(MAX_ANNOTATION_BYTES)
        ));
        let why = why_unreadable(&labelled(huge));
        assert!(why.contains("at most"), "{why}");
    }

    #[test]
    fn another_preview_or_a_foreign_namespace_is_refused() {
        let preview = record_at("2026-12-04T10:00:00Z");
        let mut other = preview.clone();
        other.base = "production".into();
        let theirs: Namespace = serde_json::from_value(body(&other)).unwrap();
        let error = check_existing(&theirs, &preview).unwrap_err().to_string();
        assert!(
            error.contains("holds preview `pr-1` of `production`"),
            "{error}"
        );
        let plain: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "blog-pr-1"}})).unwrap();
        assert!(check_existing(&plain, &preview).is_err());
        let ours: Namespace = serde_json::from_value(body(&preview)).unwrap();
        assert_eq!(check_existing(&ours, &preview).unwrap(), preview);
    }
}
