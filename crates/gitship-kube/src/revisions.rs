//! The manifests each successful deploy applied, kept for an exact rollback (ARCHITECTURE.md,
//! "Rollback"): `rollback` re-applies them as they were, with no render and no Terraform
//! outputs, and `history --diff A B` compares two of them.
//!
//! They live in one Secret, `gitship-<env>.revisions`, in the environment's namespace (a Secret:
//! the manifests hold the environment's Secrets). Each key `r<N>` holds, gzip-compressed, the
//! manifests record `#N` applied ([`StoredManifests`]); a record names its key in
//! [`DeployRecord::manifests`], and a record that applied the same manifests as the one before
//! it (a heal, a repeated deploy) names that one's key instead of storing them again. Keys no
//! record of the history names any more are removed when a deploy writes the Secret, and when
//! the Secret would outgrow [`MAX_SECRET_BYTES`] the oldest go first (a rollback to those
//! renders the revision again, and says so).
//!
//! One Secret, not one per revision as Helm keeps them, because the agent's RBAC names every
//! Secret it may write (`resourceNames`: a server-side apply that creates an object is
//! authorized by its name), and a name per revision cannot be listed ahead.
//!
//! The Secret is cluster data anyone with write access can edit: what it decompresses to is
//! bounded ([`MAX_MANIFESTS_BYTES`]) and must parse, or the rollback stops and says why.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::KubeError;
use crate::inventory::DeployRecord;
use crate::retry::RetryPolicy;
use gitship_foundation::diagnostics::Location;
use gitship_foundation::model::{FIELD_MANAGER, MANAGED_BY_LABEL, Manifest};

/// The most the revisions Secret's data may hold, compressed (a Secret holds at most 1 MiB,
/// base64 makes 4 bytes of 3).
pub(crate) const MAX_SECRET_BYTES: usize = 700 * 1024;

/// The most one revision's manifests may decompress to.
pub(crate) const MAX_MANIFESTS_BYTES: u64 = 64 * 1024 * 1024;

/// The version of [`StoredManifests`]'s shape.
const FORMAT_VERSION: u32 = 1;

/// The name of `environment`'s revisions Secret.
pub fn secret_name(environment: &str) -> String {
    format!(
        "{}.revisions",
        gitship_foundation::model::reserved_name(environment)
    )
}

/// The key of record `#number`'s manifests in the Secret.
fn key_of(number: u64) -> String {
    format!("r{number}")
}

/// The record number a key stands for.
fn number_of(key: &str) -> Option<u64> {
    key.strip_prefix('r')?.parse().ok()
}

/// What one key holds, before compression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredManifests {
    pub format_version: u32,
    /// The record whose deploy applied them.
    pub number: u64,
    pub sha: Option<String>,
    pub manifests: Vec<StoredManifest>,
}

/// One applied object and where it was declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredManifest {
    pub source: Location,
    pub object: Value,
}

impl StoredManifests {
    /// The manifests, as a deploy takes them.
    pub fn into_manifests(self) -> Vec<Manifest> {
        self.manifests
            .into_iter()
            .map(|stored| Manifest {
                source: stored.source,
                object: stored.object,
            })
            .collect()
    }
}

/// Why stored manifests cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unreadable {
    #[error(
        "the key `{key}` of Secret `{name}` is not gzip-compressed JSON of gitship's shape: {message}"
    )]
    Corrupt {
        name: String,
        key: String,
        message: String,
    },
    #[error("the key `{key}` of Secret `{name}` decompresses to more than {} MiB", MAX_MANIFESTS_BYTES / (1024 * 1024))]
    TooLarge { name: String, key: String },
}

/// The Secret's data: key -> compressed bytes.
type Entries = BTreeMap<String, Vec<u8>>;

fn compress(manifests: &StoredManifests) -> Result<Vec<u8>, std::io::Error> {
    let text = serde_json::to_vec(manifests)?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&text)?;
    encoder.finish()
}

/// Decompress and parse one key's bytes, at most [`MAX_MANIFESTS_BYTES`] of JSON.
fn decompress(bytes: &[u8], name: &str, key: &str) -> Result<StoredManifests, Unreadable> {
    let mut text = Vec::new();
    let decoder = flate2::read::GzDecoder::new(bytes);
    let corrupt = |message: String| Unreadable::Corrupt {
        name: name.to_string(),
        key: key.to_string(),
        message,
    };
    decoder
        .take(MAX_MANIFESTS_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| corrupt(e.to_string()))?;
    if text.len() as u64 > MAX_MANIFESTS_BYTES {
        return Err(Unreadable::TooLarge {
            name: name.to_string(),
            key: key.to_string(),
        });
    }
    let stored: StoredManifests =
        serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
    if stored.format_version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} (this gitship reads {FORMAT_VERSION})",
            stored.format_version
        )));
    }
    Ok(stored)
}

/// The Secret's entries (empty when it does not exist); values that are not base64 are left
/// out (they are removed at the next write).
async fn read(
    client: &Client,
    environment: &str,
    namespace: &str,
    retry: &RetryPolicy,
) -> Result<Entries, KubeError> {
    let name = secret_name(environment);
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let found = retry
        .run(&name, || api.get_opt(&name))
        .await
        .map_err(|source| KubeError::api(format!("Secret {namespace}/{name}"), source))?;
    Ok(found
        .and_then(|secret| secret.data)
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| number_of(key).is_some())
        .map(|(key, bytes)| (key, bytes.0))
        .collect())
}

/// The revisions Secret of an environment, as read once ([`load_all`]).
#[derive(Debug)]
pub struct Revisions {
    name: String,
    entries: Entries,
}

impl Revisions {
    /// The manifests stored under record `#number`'s key; `Ok(None)` when the key is gone.
    pub fn manifests(&self, number: u64) -> Result<Option<StoredManifests>, KubeError> {
        let key = key_of(number);
        let Some(bytes) = self.entries.get(&key) else {
            return Ok(None);
        };
        decompress(bytes, &self.name, &key)
            .map(Some)
            .map_err(|error| KubeError::CorruptInventory {
                name: self.name.clone(),
                message: error.to_string(),
            })
    }
}

/// Read the environment's revisions Secret once (empty when it does not exist).
pub async fn load_all(
    client: &Client,
    environment: &str,
    namespace: &str,
    retry: &RetryPolicy,
) -> Result<Revisions, KubeError> {
    Ok(Revisions {
        name: secret_name(environment),
        entries: read(client, environment, namespace, retry).await?,
    })
}

/// The manifests stored under record `#number`'s key; `Ok(None)` when the Secret or the key is
/// gone.
pub async fn load(
    client: &Client,
    environment: &str,
    namespace: &str,
    number: u64,
    retry: &RetryPolicy,
) -> Result<Option<StoredManifests>, KubeError> {
    load_all(client, environment, namespace, retry)
        .await?
        .manifests(number)
}

/// Remember what the newest record of `history` (a successful deploy just pushed) applied:
/// `desired`, under its own key, or under the key of an earlier record whose manifests are the
/// same (`from`, the record a rollback re-applied, else the nearest record before it that has
/// stored manifests). Sets the record's [`DeployRecord::manifests`]; the entries to write come
/// back for [`store`], after the inventory is written.
pub async fn remember(
    client: &Client,
    environment: &str,
    namespace: &str,
    history: &mut [DeployRecord],
    desired: &[Manifest],
    from: Option<u64>,
    retry: &RetryPolicy,
) -> Result<Pending, KubeError> {
    let mut entries = read(client, environment, namespace, retry).await?;
    let before = entries.clone();
    let Some(newest) = history.first() else {
        return Ok(Pending { entries, before });
    };
    let stored = StoredManifests {
        format_version: FORMAT_VERSION,
        number: newest.number,
        sha: newest.sha.clone(),
        manifests: desired
            .iter()
            .map(|manifest| StoredManifest {
                source: manifest.source.clone(),
                object: manifest.object.clone(),
            })
            .collect(),
    };
    // The same manifests as the newest record that has some: name its key.
    let name = secret_name(environment);
    let same = from
        .into_iter()
        .chain(history.iter().skip(1).find_map(|record| record.manifests))
        .find(|number| {
            let key = key_of(*number);
            entries
                .get(&key)
                .and_then(|bytes| decompress(bytes, &name, &key).ok())
                .is_some_and(|earlier| earlier.manifests == stored.manifests)
        });
    let number = match same {
        Some(number) => number,
        None => {
            let bytes = compress(&stored).map_err(|e| KubeError::CorruptInventory {
                name: name.clone(),
                message: e.to_string(),
            })?;
            entries.insert(key_of(stored.number), bytes);
            stored.number
        }
    };
    if let Some(newest) = history.first_mut() {
        newest.manifests = Some(number);
    }
    Ok(Pending { entries, before })
}

/// The revisions Secret's entries as [`remember`] left them, to write once the inventory is.
#[derive(Debug)]
pub struct Pending {
    entries: Entries,
    before: Entries,
}

/// What [`store`] did beyond writing: the records whose manifests no longer fit.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// Record numbers whose stored manifests were dropped for room (oldest first).
    pub dropped: Vec<u64>,
}

/// Write the revisions Secret: the entries of `pending` that the records of `kept` (the history
/// as the inventory now holds it) name, the oldest dropped while they exceed
/// [`MAX_SECRET_BYTES`] (the newest always stays). Nothing is written when nothing changed.
pub async fn store(
    client: &Client,
    environment: &str,
    namespace: &str,
    pending: Pending,
    kept: &[DeployRecord],
    retry: &RetryPolicy,
) -> Result<Stored, KubeError> {
    let Pending {
        mut entries,
        before,
    } = pending;
    let dropped = retain(&mut entries, kept);
    if entries == before {
        return Ok(Stored { dropped });
    }
    let name = secret_name(environment);
    let data: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(key, bytes)| {
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            (key.clone(), Value::String(text))
        })
        .collect();
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: FIELD_MANAGER, "gitship.dev/revisions": environment},
        },
        "type": "gitship.dev/revisions",
        "data": data,
    });
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&secret);
    retry
        .run(&name, || api.patch(&name, &params, &patch))
        .await
        .map_err(|source| KubeError::api(format!("Secret {namespace}/{name}"), source))?;
    Ok(Stored { dropped })
}

/// Keep the entries the records of `kept` name; then, while they exceed [`MAX_SECRET_BYTES`],
/// drop the oldest (but the newest record's). The record numbers dropped for room.
fn retain(entries: &mut Entries, kept: &[DeployRecord]) -> Vec<u64> {
    let named: Vec<String> = kept
        .iter()
        .filter_map(|record| record.manifests)
        .map(key_of)
        .collect();
    entries.retain(|key, _| named.contains(key));
    let newest = kept.first().and_then(|record| record.manifests).map(key_of);
    let mut dropped = Vec::new();
    let size = |entries: &Entries| entries.values().map(Vec::len).sum::<usize>();
    while size(entries) > MAX_SECRET_BYTES {
        let oldest = entries
            .keys()
            .filter(|key| Some(*key) != newest.as_ref())
            .min_by_key(|key| number_of(key).unwrap_or(0))
            .cloned();
        let Some(oldest) = oldest else { break };
        entries.remove(&oldest);
        dropped.extend(number_of(&oldest));
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests(replicas: u64) -> StoredManifests {
        StoredManifests {
            format_version: FORMAT_VERSION,
            number: 3,
            sha: Some("abc".into()),
            manifests: vec![StoredManifest {
                source: Location::new("infrastructure/kubernetes/web.yaml", 1, 1),
                object: json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web"}, "spec": {"replicas": replicas}}),
            }],
        }
    }

    #[test]
    fn manifests_round_trip_compressed() {
        let stored = manifests(3);
        let bytes = compress(&stored).expect("compress");
        assert_eq!(decompress(&bytes, "s", "r3"), Ok(stored));
    }

    #[test]
    fn corrupt_and_oversized_entries_are_refused_with_the_key() {
        let error = decompress(b"not gzip", "gitship-prod.revisions", "r3").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`r3` of Secret `gitship-prod.revisions`"),
            "{error}"
        );
        // A gzip bomb: 65 MiB of zeros compresses to a few KiB.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..65 {
            encoder.write_all(&zeros).expect("write");
        }
        let bomb = encoder.finish().expect("finish");
        assert!(bomb.len() < 200 * 1024);
        assert!(matches!(
            decompress(&bomb, "s", "r1"),
            Err(Unreadable::TooLarge { .. })
        ));
    }

    fn record(number: u64, manifests: Option<u64>) -> DeployRecord {
        use crate::inventory::{DeployOutcome, RecordSource};
        let mut record =
            DeployRecord::for_test("abc", DeployOutcome::Succeeded, RecordSource::Deploy);
        record.number = number;
        record.manifests = manifests;
        record
    }

    #[test]
    fn entries_no_kept_record_names_are_dropped_then_the_oldest_for_room() {
        let mut entries: Entries = [("r1", 10), ("r2", 10), ("r4", 10), ("r9", 10)]
            .into_iter()
            .map(|(k, n)| (k.to_string(), vec![0; n]))
            .collect();
        let kept = [record(5, Some(4)), record(4, Some(4)), record(2, Some(2))];
        assert!(retain(&mut entries, &kept).is_empty());
        assert_eq!(entries.keys().collect::<Vec<_>>(), ["r2", "r4"]);
        entries.insert("r2".into(), vec![0; MAX_SECRET_BYTES]);
        assert_eq!(retain(&mut entries, &kept), [2]);
        assert_eq!(entries.keys().collect::<Vec<_>>(), ["r4"]);
        // The newest's entry stays even alone over the limit.
        entries.insert("r4".into(), vec![0; MAX_SECRET_BYTES + 1]);
        assert!(retain(&mut entries, &kept).is_empty());
        assert_eq!(entries.len(), 1);
    }
}
