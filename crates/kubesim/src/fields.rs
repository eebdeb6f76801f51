//! Field sets in the `FieldsV1` format of `metadata.managedFields`, and the walkers that compute
//! them from objects, compare objects, merge applied configurations and remove disowned fields.
//!
//! A [`FieldSet`] is a tree whose keys are exactly the `FieldsV1` keys (`f:name`, `k:{...}`,
//! `v:...`); a node is a *member* when the path itself is owned (a leaf, or `"."` in `FieldsV1`).

use crate::schema::{ListKind, Node};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A set of field paths (the `FieldsV1` tree).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Parses a `fieldsV1` value.
    pub fn from_fields_v1(value: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Value::Object(map) = value {
            if map.is_empty() {
                set.member = true;
            }
            for (key, child) in map {
                if key == "." {
                    set.member = true;
                } else {
                    set.children
                        .insert(key.clone(), FieldSet::from_fields_v1(child));
                }
            }
        }
        set
    }

    /// Renders as a `fieldsV1` value.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (key, child) in &self.children {
            map.insert(key.clone(), child.to_fields_v1());
        }
        Value::Object(map)
    }

    /// Whether no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    fn child(&mut self, key: String) -> &mut FieldSet {
        self.children.entry(key).or_default()
    }

    fn prune(&mut self) {
        self.children.retain(|_, child| {
            child.prune();
            !child.is_empty()
        });
    }

    /// The paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut result = self.clone();
        result.member |= other.member;
        for (key, child) in &other.children {
            let merged = match result.children.get(key) {
                Some(existing) => existing.union(child),
                None => child.clone(),
            };
            result.children.insert(key.clone(), merged);
        }
        result
    }

    /// The paths in `self` but not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut result = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            let remaining = match other.children.get(key) {
                Some(other_child) => child.difference(other_child),
                None => child.clone(),
            };
            if !remaining.is_empty() {
                result.children.insert(key.clone(), remaining);
            }
        }
        result
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut result = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            if let Some(other_child) = other.children.get(key) {
                let common = child.intersection(other_child);
                if !common.is_empty() {
                    result.children.insert(key.clone(), common);
                }
            }
        }
        result
    }

    /// The member paths, rendered like structured-merge-diff does (`.spec.containers[name="web"].image`).
    pub fn paths(&self) -> Vec<String> {
        let mut paths = Vec::new();
        self.collect_paths(String::new(), &mut paths);
        paths
    }

    fn collect_paths(&self, prefix: String, paths: &mut Vec<String>) {
        if self.member {
            paths.push(prefix.clone());
        }
        for (key, child) in &self.children {
            child.collect_paths(format!("{prefix}{}", render_path_element(key)), paths);
        }
    }

    /// Keeps only the paths accepted by `keep` at the top level (by `f:` key) and removes the
    /// given second-level paths below `metadata`.
    pub fn retain_top(&mut self, keep: impl Fn(&str) -> bool) {
        self.children
            .retain(|key, _| key.strip_prefix("f:").is_some_and(&keep));
    }

    /// Removes the `metadata` fields that are never tracked.
    pub fn strip_system_metadata(&mut self) {
        if let Some(metadata) = self.children.get_mut("f:metadata") {
            for field in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
            ] {
                metadata.children.remove(&format!("f:{field}"));
            }
        }
        self.prune();
    }

    /// The set containing only `f:a.f:b...` as a leaf.
    pub fn leaf(path: &[&str]) -> FieldSet {
        let mut root = FieldSet::default();
        let mut current = &mut root;
        for element in path {
            current = current.child(format!("f:{element}"));
        }
        current.member = true;
        root
    }
}

fn render_path_element(key: &str) -> String {
    if let Some(name) = key.strip_prefix("f:") {
        return format!(".{name}");
    }
    if let Some(keys) = key.strip_prefix("k:")
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(keys)
    {
        let parts: Vec<String> = map
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        return format!("[{}]", parts.join(","));
    }
    if let Some(value) = key.strip_prefix("v:") {
        return format!("[={value}]");
    }
    if let Some(index) = key.strip_prefix("i:") {
        return format!("[{index}]");
    }
    key.to_string()
}

/// The `k:{...}` key of an associative-list item (key fields sorted by name; a missing
/// `protocol` defaults to `TCP`, as the API server's defaulting does).
pub fn item_key(item: &Value, keys: &[String]) -> String {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    let mut map = Map::new();
    for key in sorted {
        match item.get(key) {
            Some(value) if !value.is_null() => {
                map.insert(key.clone(), value.clone());
            }
            _ if key == "protocol" => {
                map.insert(key.clone(), Value::String("TCP".into()));
            }
            _ => {}
        }
    }
    format!("k:{}", Value::Object(map))
}

fn value_key(value: &Value) -> String {
    format!("v:{value}")
}

/// All paths set in `value` (leaves, list items and atomic values).
pub fn fields_of(value: &Value, node: Node) -> FieldSet {
    let mut set = FieldSet::default();
    collect(value, node, &mut set);
    if let Value::Object(_) = value {
        set.member = false;
    }
    set.prune();
    set
}

fn collect(value: &Value, node: Node, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() && !node.is_atomic_map() => {
            for (key, child) in map {
                collect(child, node.field(key), out.child(format!("f:{key}")));
            }
        }
        Value::Array(items) if !items.is_empty() => match node.list_kind() {
            ListKind::Atomic => out.member = true,
            ListKind::Set => {
                for item in items {
                    out.child(value_key(item)).member = true;
                }
            }
            ListKind::Map(keys) => {
                let item_node = node.items();
                for item in items {
                    let child = out.child(item_key(item, &keys));
                    child.member = true;
                    if let Value::Object(fields) = item {
                        for (key, field) in fields {
                            collect(field, item_node.field(key), child.child(format!("f:{key}")));
                        }
                    }
                }
            }
        },
        _ => out.member = true,
    }
}

/// The paths of `new` whose value differs from `old` (added or modified).
pub fn changed_fields(old: Option<&Value>, new: &Value, node: Node) -> FieldSet {
    let mut set = FieldSet::default();
    changed(old, new, node, &mut set);
    set.member = false;
    set.prune();
    set
}

fn changed(old: Option<&Value>, new: &Value, node: Node, out: &mut FieldSet) {
    if old == Some(new) {
        return;
    }
    match new {
        Value::Object(map) if !map.is_empty() && !node.is_atomic_map() => {
            let old_map = old.and_then(Value::as_object);
            for (key, child) in map {
                changed(
                    old_map.and_then(|old| old.get(key)),
                    child,
                    node.field(key),
                    out.child(format!("f:{key}")),
                );
            }
        }
        Value::Array(items) if !items.is_empty() => match node.list_kind() {
            ListKind::Atomic => out.member = true,
            ListKind::Set => {
                let old_items = old.and_then(Value::as_array);
                for item in items {
                    if !old_items.is_some_and(|old_items| old_items.contains(item)) {
                        out.child(value_key(item)).member = true;
                    }
                }
            }
            ListKind::Map(keys) => {
                let item_node = node.items();
                let old_items = old.and_then(Value::as_array);
                for item in items {
                    let key = item_key(item, &keys);
                    let old_item = old_items.and_then(|old_items| {
                        old_items
                            .iter()
                            .find(|old_item| item_key(old_item, &keys) == key)
                    });
                    let child = out.child(key);
                    match old_item {
                        Some(old_item) => {
                            if let Value::Object(fields) = item {
                                for (field_name, field) in fields {
                                    changed(
                                        old_item.get(field_name),
                                        field,
                                        item_node.field(field_name),
                                        child.child(format!("f:{field_name}")),
                                    );
                                }
                            }
                        }
                        None => {
                            child.member = true;
                            if let Value::Object(fields) = item {
                                for (field_name, field) in fields {
                                    collect(
                                        field,
                                        item_node.field(field_name),
                                        child.child(format!("f:{field_name}")),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        },
        _ => out.member = true,
    }
}

/// Merges an applied configuration into a live object.
pub fn merge(live: &mut Value, config: &Value, node: Node) {
    match (live, config) {
        (Value::Object(live_map), Value::Object(config_map)) if !node.is_atomic_map() => {
            for (key, value) in config_map {
                match live_map.get_mut(key) {
                    Some(existing) => merge(existing, value, node.field(key)),
                    None => {
                        live_map.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(live_items), Value::Array(config_items)) => match node.list_kind() {
            ListKind::Atomic => *live_items = config_items.clone(),
            ListKind::Set => {
                for item in config_items {
                    if !live_items.contains(item) {
                        live_items.push(item.clone());
                    }
                }
            }
            ListKind::Map(keys) => {
                let item_node = node.items();
                for item in config_items {
                    let key = item_key(item, &keys);
                    match live_items
                        .iter_mut()
                        .find(|live_item| item_key(live_item, &keys) == key)
                    {
                        Some(live_item) => merge(live_item, item, item_node),
                        None => live_items.push(item.clone()),
                    }
                }
            }
        },
        (live, config) => *live = config.clone(),
    }
}

/// Removes the paths of `remove` from `value`; an associative-list item is only removed when
/// nothing below it is in `keep` (fields still owned by other managers).
pub fn remove_fields(value: &mut Value, remove: &FieldSet, keep: &FieldSet) {
    static EMPTY: std::sync::OnceLock<FieldSet> = std::sync::OnceLock::new();
    let empty = EMPTY.get_or_init(FieldSet::default);
    for (key, child) in &remove.children {
        let keep_child = keep.children.get(key).unwrap_or(empty);
        if let Some(name) = key.strip_prefix("f:") {
            if let Value::Object(map) = value {
                if child.member && keep_child.is_empty() {
                    map.remove(name);
                } else if let Some(field) = map.get_mut(name) {
                    remove_fields(field, child, keep_child);
                }
            }
        } else if let Some(item) = key.strip_prefix("k:") {
            let Ok(Value::Object(key_fields)) = serde_json::from_str::<Value>(item) else {
                continue;
            };
            let names: Vec<String> = key_fields.keys().cloned().collect();
            if let Value::Array(items) = value {
                if child.member && keep_child.is_empty() {
                    items.retain(|candidate| &item_key(candidate, &names) != key);
                } else if let Some(found) = items
                    .iter_mut()
                    .find(|candidate| &item_key(candidate, &names) == key)
                {
                    remove_fields(found, child, keep_child);
                }
            }
        } else if let Some(raw) = key.strip_prefix("v:")
            && let (Value::Array(items), Ok(target)) =
                (&mut *value, serde_json::from_str::<Value>(raw))
            && keep_child.is_empty()
        {
            items.retain(|candidate| candidate != &target);
        }
    }
}

/// Removes `null` values from objects (an applied `null` means "not set").
pub fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, child| !child.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Node {
        Node::root("apps/v1", "Deployment")
    }

    #[test]
    fn fields_of_a_deployment_use_list_keys() {
        let object = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}], "args": ["a", "b"]}
        ]}}}});
        let fields = fields_of(&object, deployment()).to_fields_v1();
        assert_eq!(
            fields,
            json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}
            }}}}})
        );
        assert_eq!(
            FieldSet::from_fields_v1(&fields),
            fields_of(&object, deployment())
        );
    }

    #[test]
    fn merge_by_key_and_remove_disowned_item() {
        let mut live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "a"}, {"name": "sidecar", "image": "b"}
        ]}}}});
        let config = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "c"}]}}}});
        merge(&mut live, &config, deployment());
        let containers = &live["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "c");
        assert_eq!(containers[1]["name"], "sidecar");
        let old = fields_of(
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "b"}]}}}}),
            deployment(),
        );
        remove_fields(&mut live, &old, &FieldSet::default());
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn paths_render_like_structured_merge_diff() {
        let object = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "a"}]}}}});
        let paths = fields_of(&object, deployment()).paths();
        assert!(
            paths.contains(&".spec.template.spec.containers[name=\"web\"].image".to_string()),
            "{paths:?}"
        );
    }
}
