//! `history`: an environment's deploy records, newest first, as its inventory in the cluster
//! holds them (`deploy.history` of them), and with `--diff A B` how the objects two of them
//! applied differ. Read-only: nothing is written, not even the sandbox's state.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use gitship_foundation::diagnostics::{UserError, user_error};
use gitship_kube::retry::RetryPolicy;

use crate::ops::session::Session;
use crate::plan::{ObjectAction, ObjectChange};
use gitship_foundation::model::{Manifest, ObjectId, is_cluster_scoped};
/// The deploy history's records, as the Kubernetes stage keeps them in the inventory: what
/// `history` and `status` return and the commands print.
pub use gitship_kube::inventory::{DeployOutcome, DeployRecord, RecordSource};

/// The version of `history -o json`'s shape; bumped when a field changes meaning or goes away.
pub const FORMAT_VERSION: u32 = 2;

/// What `gitship history ENV` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryReport {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub environment: String,
    /// The inventory exists: gitship deployed this environment at least once.
    pub deployed: bool,
    /// The deploy records, newest first (at most the limit asked for).
    pub records: Vec<DeployRecord>,
}

/// Read the environment's last `limit` deploy records from its cluster.
pub async fn history(session: &Session, limit: usize) -> Result<HistoryReport> {
    let connection = session.connect_announced().await?;
    let (deployed, records) = match session.inventory(&connection).await? {
        Some(inventory) => (true, inventory.history.into_iter().take(limit).collect()),
        None => (false, Vec::new()),
    };
    Ok(HistoryReport {
        format_version: FORMAT_VERSION,
        environment: session.config.name.clone(),
        deployed,
        records,
    })
}

/// The version of `history --diff -o json`'s shape.
pub const DIFF_FORMAT_VERSION: u32 = 1;

/// What `gitship history ENV --diff A B` reports: how the objects record B applied differ from
/// those record A applied (from their stored manifests, [`gitship_kube::revisions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionDiff {
    /// [`DIFF_FORMAT_VERSION`].
    pub format_version: u32,
    pub environment: String,
    pub from: RevisionRef,
    pub to: RevisionRef,
    /// The objects that differ, sorted: `create` (B has it, A not), `prune` (A has it, B not),
    /// `update` with the fields that differ (a Secret's values never shown).
    pub objects: Vec<ObjectChange>,
}

/// One side of a [`RevisionDiff`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionRef {
    pub number: u64,
    pub sha: Option<String>,
    /// How many objects its deploy applied.
    pub objects: usize,
}

/// Compare the manifests records `from` and `to` applied (`#N`, `N`, or a revision: its newest
/// successful record).
pub async fn diff(session: &Session, from: &str, to: &str) -> Result<RevisionDiff> {
    let connection = session.connect_announced().await?;
    let inventory = session.deployed_inventory(&connection, "compare").await?;
    let environment = session.environment();
    let from = find_record(&inventory.history, from, &environment.name)?;
    let to = find_record(&inventory.history, to, &environment.name)?;
    // One read of the Secret for both records.
    let revisions = gitship_kube::revisions::load_all(
        &connection.client,
        &environment.name,
        &environment.namespace,
        &RetryPolicy::default(),
    )
    .await
    .map_err(user_error)?;
    let load = |record: &DeployRecord| -> Result<(RevisionRef, Vec<Manifest>)> {
        let missing = || {
            UserError::new(
                format!(
                    "record #{} of `{}` has no stored manifests: deployed before gitship kept them, failed, or dropped from `{}` for room",
                    record.number,
                    environment.name,
                    gitship_kube::revisions::secret_name(&environment.name)
                ),
                format!(
                    "`gitship history {}` lists the records; compare two deployed since",
                    environment.name
                ),
            )
        };
        let key = record.manifests.ok_or_else(missing)?;
        let stored = revisions
            .manifests(key)
            .map_err(user_error)?
            .ok_or_else(missing)?;
        let manifests = stored.into_manifests();
        let reference = RevisionRef {
            number: record.number,
            sha: record.sha.clone(),
            objects: manifests.len(),
        };
        Ok((reference, manifests))
    };
    let (from, before) = load(from)?;
    let (to, after) = load(to)?;
    Ok(RevisionDiff {
        format_version: DIFF_FORMAT_VERSION,
        environment: environment.name.clone(),
        from,
        to,
        objects: compare(&before, &after, &environment.namespace),
    })
}

/// The record `given` names: `#N` or `N` (a record number), else a revision (a SHA or its
/// prefix): the newest record of it that succeeded.
fn find_record<'h>(
    history: &'h [DeployRecord],
    given: &str,
    environment: &str,
) -> Result<&'h DeployRecord> {
    let number = given.strip_prefix('#').unwrap_or(given);
    let by_number = number
        .parse::<u64>()
        .ok()
        .filter(|_| given.starts_with('#') || number.len() < 7)
        .and_then(|number| history.iter().find(|r| r.number == number));
    let by_revision = || {
        (given.len() >= 4 && given.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| {
                history.iter().find(|r| {
                    r.outcome == DeployOutcome::Succeeded
                        && r.sha.as_deref().is_some_and(|sha| sha.starts_with(given))
                })
            })
            .flatten()
    };
    by_number.or_else(by_revision).ok_or_else(|| {
        UserError::new(
            format!("`{environment}` has no record `{given}` in its history"),
            format!(
                "give a record number (`#17`) or a deployed revision; `gitship history {environment}` lists them"
            ),
        )
        .into()
    })
}

/// The objects that differ between `before` and `after`, each with its fields (values shown as
/// every plan shows them: a Secret's never).
fn compare(before: &[Manifest], after: &[Manifest], namespace: &str) -> Vec<ObjectChange> {
    let index = |manifests: &[Manifest]| -> BTreeMap<ObjectId, Manifest> {
        manifests
            .iter()
            .map(|manifest| {
                let mut id = manifest.id();
                if id.namespace.is_none() && !is_cluster_scoped(&id.group, &id.kind) {
                    id.namespace = Some(namespace.to_string());
                }
                (id, manifest.clone())
            })
            .collect()
    };
    let (before, after) = (index(before), index(after));
    let redactor = crate::render::Redactor::new(&gitship_foundation::model::Outputs::new());
    let mut ids: Vec<&ObjectId> = before.keys().chain(after.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut changes = Vec::new();
    for id in ids {
        let (old, new) = (before.get(id), after.get(id));
        let shown = new.or(old).map_or(&Value::Null, |m| &m.object);
        let (action, fields) = match (old, new) {
            (None, Some(_)) => (ObjectAction::Create, Vec::new()),
            (Some(_), None) => (ObjectAction::Prune, Vec::new()),
            (Some(old), Some(new)) => {
                let mut found = Vec::new();
                gitship_kube::fields::changes_between(
                    &gitship_kube::fields::FieldPath::new(),
                    &old.object,
                    &new.object,
                    None,
                    &mut found,
                );
                if found.is_empty() {
                    continue;
                }
                let secret = gitship_foundation::model::is_secret(&new.object);
                let fields = found
                    .iter()
                    .map(|change| {
                        crate::plan::kubernetes::describe(change, secret, None, &redactor)
                    })
                    .collect();
                (ObjectAction::Update, fields)
            }
            (None, None) => continue,
        };
        changes.push(ObjectChange {
            object: crate::plan::kubernetes::object_ref(id, shown),
            action,
            source: new.map(|m| m.source.to_string()),
            fields,
            diff: None,
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(object: Value) -> Manifest {
        Manifest {
            source: gitship_foundation::diagnostics::Location::new("k.yaml", 1, 1),
            object,
        }
    }

    #[test]
    fn objects_added_removed_and_changed_with_secret_values_hidden() {
        let site = |title: &str| {
            manifest(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "site"}, "data": {"title": title}}))
        };
        let secret = |password: &str| {
            manifest(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db"}, "stringData": {"password": password}}))
        };
        let old =
            manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old"}}));
        let new = manifest(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra"}}),
        );
        let changes = compare(
            &[site("a"), secret("hunter2"), old],
            &[site("b"), secret("swordfish"), new],
            "web",
        );
        let lines: Vec<String> = changes
            .iter()
            .map(|c| {
                let fields: Vec<String> = c.fields.iter().map(|f| f.line()).collect();
                format!("{:?} {} {}", c.action, c.object, fields.join("; "))
            })
            .collect();
        assert_eq!(
            lines,
            [
                "Prune ConfigMap web/old ",
                "Update ConfigMap web/site data.title: a -> b",
                "Create Namespace extra ",
                "Update Secret web/db stringData.password: <sensitive> (changed)",
            ]
        );
        let text = serde_json::to_string(&changes).expect("JSON");
        assert!(
            !text.contains("hunter2") && !text.contains("swordfish"),
            "{text}"
        );
    }

    #[test]
    fn records_are_found_by_number_or_revision() {
        let record = |number: u64, sha: &str| {
            let source = gitship_kube::inventory::RecordSource::Deploy;
            let mut record = DeployRecord::for_test(sha, DeployOutcome::Succeeded, source);
            record.number = number;
            record
        };
        let history = [record(12, "abcdef1234"), record(11, "1234567890")];
        let found = |given: &str| find_record(&history, given, "prod").map(|r| r.number).ok();
        assert_eq!(found("#12"), Some(12));
        assert_eq!(found("11"), Some(11));
        assert_eq!(found("abcdef"), Some(12));
        assert_eq!(found("1234567"), Some(11), "7 digits: a SHA prefix");
        assert_eq!(found("#3"), None);
        let error = find_record(&history, "#3", "prod").unwrap_err();
        assert!(error.to_string().contains("no record `#3`"), "{error}");
    }
}
