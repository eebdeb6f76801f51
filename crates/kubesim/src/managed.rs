//! `metadata.managedFields` bookkeeping: server-side apply (ownership, conflicts, `force`,
//! removal of fields a manager stopped applying) and ownership tracking for ordinary updates
//! (`Update` operations take the fields they change from everyone else).

use crate::fields::{self, FieldSet};
use crate::schema::Node;
use serde_json::{Map, Value, json};

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The main resource; `status` is ignored when the resource has a status subresource.
    Main {
        /// Whether the resource has a status subresource.
        has_status: bool,
    },
    /// The `status` subresource.
    Status,
    /// The `scale` subresource (only `spec.replicas`).
    Scale,
}

impl Scope {
    /// The `subresource` field of managed-field entries.
    pub fn subresource(self) -> Option<&'static str> {
        match self {
            Scope::Main { .. } => None,
            Scope::Status => Some("status"),
            Scope::Scale => Some("scale"),
        }
    }

    /// Restricts a field set to what this scope owns.
    pub fn filter(self, mut set: FieldSet) -> FieldSet {
        match self {
            Scope::Main { has_status } => {
                set.retain_top(|key| {
                    key != "apiVersion" && key != "kind" && !(has_status && key == "status")
                });
                set.strip_system_metadata();
                set
            }
            Scope::Status => {
                set.retain_top(|key| key == "status");
                set
            }
            Scope::Scale => set.intersection(&FieldSet::leaf(&["spec", "replicas"])),
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn same_owner(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if let Some(subresource) = &self.subresource {
            text.push_str(&format!(" with subresource {subresource:?}"));
        }
        if self.operation == "Update" {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }
}

fn read_entries(object: Option<&Value>) -> Vec<Entry> {
    let Some(entries) = object.and_then(|object| object["metadata"]["managedFields"].as_array())
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            Some(Entry {
                manager: entry["manager"].as_str()?.to_string(),
                operation: entry["operation"].as_str().unwrap_or("Update").to_string(),
                api_version: entry["apiVersion"].as_str().unwrap_or("").to_string(),
                time: entry["time"].as_str().unwrap_or("").to_string(),
                subresource: entry["subresource"].as_str().map(str::to_string),
                fields: FieldSet::from_fields_v1(&entry["fieldsV1"]),
            })
        })
        .collect()
}

fn write_entries(object: &mut Value, entries: &[Entry]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|entry| !entry.fields.is_empty())
        .map(|entry| {
            let mut map = Map::new();
            map.insert("manager".into(), json!(entry.manager));
            map.insert("operation".into(), json!(entry.operation));
            map.insert("apiVersion".into(), json!(entry.api_version));
            map.insert("time".into(), json!(entry.time));
            map.insert("fieldsType".into(), json!("FieldsV1"));
            map.insert("fieldsV1".into(), entry.fields.to_fields_v1());
            if let Some(subresource) = &entry.subresource {
                map.insert("subresource".into(), json!(subresource));
            }
            Value::Object(map)
        })
        .collect();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if rendered.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert("managedFields".into(), Value::Array(rendered));
        }
    }
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn set_entry(
    entries: &mut Vec<Entry>,
    manager: &str,
    operation: &str,
    scope: Scope,
    api_version: &str,
    fields: FieldSet,
) {
    let subresource = scope.subresource();
    match entries
        .iter_mut()
        .find(|entry| entry.same_owner(manager, operation, subresource))
    {
        Some(entry) => {
            if entry.fields != fields || entry.api_version != api_version {
                entry.fields = fields;
                entry.api_version = api_version.to_string();
                entry.time = now();
            }
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            time: now(),
            subresource: subresource.map(str::to_string),
            fields,
        }),
    }
}

/// A field owned by another manager with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// How the other manager is described (`"kubectl" using apps/v1`).
    pub manager: String,
    /// The field path (`.spec.replicas`).
    pub field: String,
}

/// Server-side apply of `config` onto `live` (or onto nothing: create-on-apply).
///
/// Returns the merged object with updated `managedFields`, or the conflicts.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    scope: Scope,
) -> Result<Value, Vec<Conflict>> {
    let api_version = config["apiVersion"].as_str().unwrap_or("").to_string();
    let node = Node::root(&api_version, config["kind"].as_str().unwrap_or(""));
    let mut config = config.clone();
    fields::strip_nulls(&mut config);
    if let Some(metadata) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    match scope {
        Scope::Main { has_status: true } => {
            if let Some(map) = config.as_object_mut() {
                map.remove("status");
            }
        }
        Scope::Status => {
            if let Some(map) = config.as_object_mut() {
                map.retain(|key, _| {
                    matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "status")
                });
            }
        }
        _ => {}
    }
    let new_mine = scope.filter(fields::fields_of(&config, node));
    let mut entries = read_entries(live);
    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    fields::merge(&mut merged, &config, node);
    // Conflicts are fields this apply sets whose value actually changes.
    let changed = scope
        .filter(fields::changed_fields(live, &merged, node))
        .intersection(&new_mine);
    let mut conflicts = Vec::new();
    for entry in entries.iter_mut() {
        if entry.same_owner(manager, "Apply", scope.subresource()) {
            continue;
        }
        let overlap = changed.intersection(&entry.fields);
        if overlap.is_empty() {
            continue;
        }
        if force {
            entry.fields = entry.fields.difference(&overlap);
        } else {
            for field in overlap.paths() {
                conflicts.push(Conflict {
                    manager: entry.describe(),
                    field,
                });
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let old_mine = entries
        .iter()
        .find(|entry| entry.same_owner(manager, "Apply", scope.subresource()))
        .map(|entry| entry.fields.clone())
        .unwrap_or_default();
    let others = entries
        .iter()
        .filter(|entry| !entry.same_owner(manager, "Apply", scope.subresource()))
        .fold(FieldSet::default(), |union, entry| {
            union.union(&entry.fields)
        });
    let removed = old_mine.difference(&new_mine).difference(&others);
    if !removed.is_empty() {
        fields::remove_fields(&mut merged, &removed, &others);
    }
    set_entry(
        &mut entries,
        manager,
        "Apply",
        scope,
        &api_version,
        new_mine,
    );
    entries.retain(|entry| !entry.fields.is_empty());
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// Records an `Update` by `manager`: it takes ownership of every field it changed; fields it
/// removed are no longer owned by anyone.
pub fn track_update(old: Option<&Value>, new: &mut Value, manager: &str, scope: Scope) {
    let api_version = new["apiVersion"].as_str().unwrap_or("").to_string();
    let node = Node::root(&api_version, new["kind"].as_str().unwrap_or(""));
    let mut entries = read_entries(old);
    let mut changed = scope.filter(fields::changed_fields(old, new, node));
    let mut removed = match old {
        Some(old) => scope
            .filter(fields::fields_of(old, node))
            .difference(&scope.filter(fields::fields_of(new, node))),
        None => FieldSet::default(),
    };
    // The Scale's `spec.replicas` is omitted when 0, so a real server computes the scale to 0
    // as the field's removal: every manager loses it and the scaler gets no entry.
    let replicas = |object: &Value| object["spec"]["replicas"].as_i64().unwrap_or(0);
    if scope == Scope::Scale && replicas(new) == 0 && old.is_some_and(|old| replicas(old) != 0) {
        removed = changed.union(&removed);
        changed = FieldSet::default();
    }
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    for entry in entries.iter_mut() {
        entry.fields = entry.fields.difference(&changed).difference(&removed);
    }
    let mine = entries
        .iter()
        .find(|entry| entry.same_owner(manager, "Update", scope.subresource()))
        .map(|entry| entry.fields.clone())
        .unwrap_or_default();
    // The difference above already removed `changed` from the manager's own entry; add it back.
    let mine = mine.union(&changed).difference(&removed);
    set_entry(&mut entries, manager, "Update", scope, &api_version, mine);
    entries.retain(|entry| !entry.fields.is_empty());
    write_entries(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn conflicts_only_on_different_values_and_force_takes_ownership() {
        let created = apply(
            None,
            &deployment(2, "a"),
            "gitship",
            false,
            Scope::Main { has_status: true },
        );
        let created = created.unwrap_or_default();
        let same = apply(
            Some(&created),
            &deployment(2, "a"),
            "other",
            false,
            Scope::Main { has_status: true },
        );
        assert!(same.is_ok(), "same value is shared ownership");
        let shared = same.unwrap_or_default();
        let conflict = apply(
            Some(&shared),
            &deployment(3, "a"),
            "other",
            false,
            Scope::Main { has_status: true },
        );
        let conflicts = conflict.err().unwrap_or_default();
        assert_eq!(
            conflicts,
            vec![Conflict {
                manager: "\"gitship\"".into(),
                field: ".spec.replicas".into()
            }]
        );
        let forced = apply(
            Some(&shared),
            &deployment(3, "a"),
            "other",
            true,
            Scope::Main { has_status: true },
        )
        .unwrap_or_default();
        assert_eq!(forced["spec"]["replicas"], 3);
        let gitship_fields = forced["metadata"]["managedFields"]
            .as_array()
            .and_then(|entries| entries.iter().find(|entry| entry["manager"] == "gitship"))
            .map(|entry| entry["fieldsV1"].clone())
            .unwrap_or_default();
        assert!(
            gitship_fields["f:spec"].get("f:replicas").is_none(),
            "{gitship_fields}"
        );
    }

    #[test]
    fn omitted_field_is_removed_unless_owned_by_another_manager() {
        let mut first = deployment(2, "a");
        first["metadata"]["labels"] = json!({"keep": "x", "drop": "y"});
        let created = apply(
            None,
            &first,
            "gitship",
            false,
            Scope::Main { has_status: true },
        )
        .unwrap_or_default();
        let mut second = deployment(2, "a");
        second["metadata"]["labels"] = json!({"keep": "x"});
        let updated = apply(
            Some(&created),
            &second,
            "gitship",
            false,
            Scope::Main { has_status: true },
        )
        .unwrap_or_default();
        assert_eq!(updated["metadata"]["labels"], json!({"keep": "x"}));
        let mut scaled = updated.clone();
        scaled["spec"]["replicas"] = json!(10);
        track_update(Some(&updated), &mut scaled, "kubectl", Scope::Scale);
        let mut third = deployment(2, "a");
        if let Some(spec) = third["spec"].as_object_mut() {
            spec.remove("replicas");
        }
        let reapplied = apply(
            Some(&scaled),
            &third,
            "gitship",
            false,
            Scope::Main { has_status: true },
        )
        .unwrap_or_default();
        assert_eq!(
            reapplied["spec"]["replicas"], 10,
            "replicas is owned by kubectl now"
        );
    }

    #[test]
    fn a_scale_to_zero_leaves_no_owner_of_replicas() {
        let created = apply(
            None,
            &deployment(2, "a"),
            "gitship",
            false,
            Scope::Main { has_status: true },
        )
        .unwrap_or_default();
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(0);
        track_update(Some(&created), &mut scaled, "kubectl", Scope::Scale);
        let text = scaled["metadata"]["managedFields"].to_string();
        assert!(!text.contains("f:replicas"), "{text}");
        assert!(!text.contains("kubectl"), "{text}");
    }
}
