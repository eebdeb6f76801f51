//! An object's fields as the API server sees them: paths that name list items by key, the list
//! semantics of server-side apply, and who owns which field (`metadata.managedFields`).
//!
//! Three comparisons are built on them (ARCHITECTURE.md, "Drift is what a deploy would change"):
//!
//! - [`changes_between`]: two whole objects (live and a dry-run result), list items paired by
//!   their keys, so a reordered or extended list is no change of the items both hold;
//! - [`manifest_changes`]: what applying a manifest as gitship would change, without asking the
//!   server: every field the manifest sets that differs from the live value, plus every field
//!   gitship owns that the manifest no longer sets and no other manager owns (server-side apply
//!   removes those). Items and fields only other managers own are not looked at;
//! - [`owners`]: the managers whose `managedFields` entry holds a path.
//!
//! Associative lists (`containers`, `env`, `ports`, ...) are keyed as the server keys them: by
//! the `k:` entries of the object's `managedFields` when it has them (which covers custom
//! resources), else by the list-map keys of the built-in schema ([`schema_keys`]). Sets
//! (`finalizers`) compare by member, every other list atomically.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

/// One changed field. `path` names list items by key
/// (`spec.template.spec.containers[name=app].image`); `None` means absent on that side.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub path: FieldPath,
    pub live: Option<Value>,
    pub desired: Option<Value>,
}

/// Equality after normalisation: numbers by value; quantities by amount under resource-like
/// fields (`resources`, `limits`, `requests`, `capacity`, `hard`, `storage`).
pub(crate) fn loosely_equal(path: &str, left: &Value, right: &Value) -> bool {
    if left == right {
        return true;
    }
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => match (l.as_f64(), r.as_f64()) {
            (Some(l), Some(r)) => numbers_equal(l, r),
            _ => false,
        },
        _ if is_quantity_path(path) => match (quantity_of(left), quantity_of(right)) {
            (Some(l), Some(r)) => numbers_equal(l, r),
            _ => false,
        },
        _ => false,
    }
}

fn numbers_equal(left: f64, right: f64) -> bool {
    (left - right).abs() <= f64::EPSILON * left.abs().max(right.abs()).max(1.0) * 4.0
}

fn is_quantity_path(path: &str) -> bool {
    path.split(['.', '[']).any(|segment| {
        matches!(
            segment,
            "resources" | "limits" | "requests" | "capacity" | "hard" | "storage" | "allocatable"
        )
    })
}

fn quantity_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => parse_quantity(text),
        _ => None,
    }
}

/// The amount of a Kubernetes quantity (`500m` -> 0.5, `1Ki` -> 1024, `1e3` -> 1000).
pub(crate) fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * multiplier)
}

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A map field.
    Field(String),
    /// An item of an associative list by its key fields (`containers[name=app]`); `index` is its
    /// position (in Git's list when it has the item, else in the live list), for JSON pointers.
    Item {
        key: Vec<(String, Value)>,
        index: usize,
    },
    /// A member of a set (`finalizers["example.com/hold"]`).
    Member { value: Value, index: usize },
    /// An element of an atomic list, by position (`args[1]`).
    Index(usize),
}

/// Where a field is in an object: `spec.template.spec.containers[name=app].image`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldPath(Vec<Step>);

impl FieldPath {
    pub fn new() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// This path with `step` appended.
    pub fn child(&self, step: Step) -> FieldPath {
        let mut steps = self.0.clone();
        steps.push(step);
        FieldPath(steps)
    }

    pub fn field(&self, name: &str) -> FieldPath {
        self.child(Step::Field(name.to_string()))
    }

    pub fn steps(&self) -> &[Step] {
        &self.0
    }

    /// The path as a JSON pointer (`/spec/template/spec/containers/0/image`), list items by
    /// position, for `drift.ignore` rules.
    pub fn pointer(&self) -> String {
        let mut pointer = String::new();
        for step in &self.0 {
            pointer.push('/');
            match step {
                Step::Field(name) => pointer.push_str(&name.replace('~', "~0").replace('/', "~1")),
                Step::Item { index, .. } | Step::Member { index, .. } | Step::Index(index) => {
                    pointer.push_str(&index.to_string())
                }
            }
        }
        pointer
    }

    /// The name of the last map field on the path (the list's name for a list item).
    fn last_field(&self) -> Option<&str> {
        self.0.iter().rev().find_map(|step| match step {
            Step::Field(name) => Some(name.as_str()),
            _ => None,
        })
    }

    fn is_top(&self, name: &str) -> bool {
        self.0.len() == 1 && self.0.first() == Some(&Step::Field(name.to_string()))
    }
}

impl From<&str> for FieldPath {
    /// A path of map fields only (`spec.replicas`), as tests and ignore rules write them.
    fn from(dotted: &str) -> FieldPath {
        FieldPath(
            dotted
                .split('.')
                .filter(|s| !s.is_empty())
                .map(|s| Step::Field(s.to_string()))
                .collect(),
        )
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, step) in self.0.iter().enumerate() {
            match step {
                Step::Field(name) if position == 0 => write!(f, "{name}")?,
                Step::Field(name) => write!(f, ".{name}")?,
                Step::Item { key, .. } => {
                    let parts: Vec<String> = key
                        .iter()
                        .map(|(name, value)| format!("{name}={}", scalar_text(value)))
                        .collect();
                    write!(f, "[{}]", parts.join(","))?
                }
                Step::Member { value, .. } => write!(f, "[{value}]")?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// How the server merges a list.
#[derive(Debug, Clone, PartialEq)]
enum ListKind {
    /// An associative list keyed by these fields.
    Map(Vec<String>),
    /// A set of scalars.
    Set,
    /// Replaced as a whole.
    Atomic,
}

/// The list-map keys of the built-in kinds' lists, by field name (from the v1.37 OpenAPI
/// schema's `x-kubernetes-list-map-keys`), for lists no `managedFields` entry describes yet.
pub(crate) fn schema_keys(field: &str, item: &Value) -> Option<&'static [&'static str]> {
    Some(match field {
        "ports" if item.get("containerPort").is_some() => &["containerPort", "protocol"],
        "ports" => &["port", "protocol"],
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates"
        | "claims"
        | "webhooks"
        | "secrets"
        | "matchConditions"
        | "variables" => &["name"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "hostAliases" => &["ip"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        "ownerReferences" => &["uid"],
        "conditions" => &["type"],
        _ => return None,
    })
}

/// A key field's value as the server keys the item: a `protocol` left out is `TCP`.
fn key_value(item: &Value, field: &str) -> Value {
    match item.get(field) {
        Some(value) => value.clone(),
        None if field == "protocol" => Value::String("TCP".to_string()),
        None => Value::Null,
    }
}

fn list_kind(path: &FieldPath, shape: Option<&Value>, items: &[&Value]) -> ListKind {
    if let Some(node) = shape.and_then(Value::as_object) {
        if let Some(fields) = node.keys().find_map(|key| parse_entry(key, "k:")) {
            if let Value::Object(fields) = fields {
                return ListKind::Map(fields.keys().cloned().collect());
            }
        } else if node.keys().any(|key| key.starts_with("v:")) {
            return ListKind::Set;
        } else if node.keys().all(|key| key == ".") {
            return ListKind::Atomic;
        }
    }
    let field = path.last_field().unwrap_or_default();
    if field == "finalizers" && items.iter().all(|item| item.is_string()) {
        return ListKind::Set;
    }
    match items.first() {
        Some(first) if items.iter().all(|item| item.is_object()) => schema_keys(field, first)
            .map(|keys| ListKind::Map(keys.iter().map(|k| k.to_string()).collect()))
            .unwrap_or(ListKind::Atomic),
        _ => ListKind::Atomic,
    }
}

/// The JSON of a `fieldsV1` entry with `prefix` (`k:{"name":"app"}`, `v:"x"`).
fn parse_entry(key: &str, prefix: &str) -> Option<Value> {
    serde_json::from_str(key.strip_prefix(prefix)?).ok()
}

fn item_key(keys: &[String], item: &Value) -> Vec<(String, Value)> {
    keys.iter()
        .map(|field| (field.clone(), key_value(item, field)))
        .collect()
}

fn same_key(key: &[(String, Value)], item: &Value) -> bool {
    key.iter()
        .all(|(field, value)| loosely_equal("", &key_value(item, field), value))
}

/// The child of a `fieldsV1` node for `step`.
fn descend<'a>(node: Option<&'a Value>, step: &Step) -> Option<&'a Value> {
    let node = node?.as_object()?;
    match step {
        Step::Field(name) => node.get(&format!("f:{name}")),
        Step::Item { key, .. } => node.iter().find_map(|(entry, child)| {
            let Some(Value::Object(fields)) = parse_entry(entry, "k:") else {
                return None;
            };
            let matches = fields.len() == key.len()
                && key.iter().all(|(name, value)| {
                    fields
                        .get(name)
                        .is_some_and(|v| loosely_equal("", v, value))
                });
            matches.then_some(child)
        }),
        Step::Member { value, .. } => node.iter().find_map(|(entry, child)| {
            (parse_entry(entry, "v:").as_ref() == Some(value)).then_some(child)
        }),
        Step::Index(index) => node.get(&format!("i:{index}")),
    }
}

/// Whether a `fieldsV1` node owns the value itself (a leaf, or an item's `.` entry).
fn owns_value(node: &Value) -> bool {
    node.as_object()
        .is_none_or(|children| children.is_empty() || children.contains_key("."))
}

/// The `managedFields` entries of `object`: manager, operation, time and `fieldsV1` tree.
pub fn entries(object: &Value) -> Vec<ManagedEntry<'_>> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| {
                    Some(ManagedEntry {
                        manager: entry.get("manager")?.as_str()?,
                        operation: entry.get("operation").and_then(Value::as_str),
                        time: entry.get("time").and_then(Value::as_str),
                        subresource: entry.get("subresource").and_then(Value::as_str),
                        fields: entry.get("fieldsV1")?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One `managedFields` entry.
pub struct ManagedEntry<'a> {
    pub manager: &'a str,
    pub operation: Option<&'a str>,
    pub time: Option<&'a str>,
    /// `status` for a controller's status write, `scale` for `kubectl scale`.
    pub subresource: Option<&'a str>,
    pub fields: &'a Value,
}

/// The union of `fieldsV1` trees.
pub(crate) fn union(left: Option<Value>, right: Option<Value>) -> Option<Value> {
    match (left, right) {
        (None, other) | (other, None) => other,
        (Some(Value::Object(mut left)), Some(Value::Object(right))) => {
            for (key, value) in right {
                let merged =
                    union(left.remove(&key), Some(value)).unwrap_or(Value::Object(Map::new()));
                left.insert(key, merged);
            }
            Some(Value::Object(left))
        }
        (Some(left), Some(_)) => Some(left),
    }
}

/// The union of the trees of the entries `select` keeps.
/// Every manager's `fieldsV1` tree of `object`, unioned: how its lists merge.
pub(crate) fn all_managers(object: &Value) -> Option<Value> {
    union_of(object, |_| true)
}

fn union_of(object: &Value, select: impl Fn(&str) -> bool) -> Option<Value> {
    entries(object)
        .into_iter()
        .filter(|entry| select(entry.manager))
        .fold(None, |merged, entry| {
            union(merged, Some(entry.fields.clone()))
        })
}

/// The managers whose `managedFields` entry holds `path` (the field itself or anything below it).
pub fn owners(object: &Value, path: &FieldPath) -> Vec<String> {
    let mut managers: Vec<String> = Vec::new();
    for entry in entries(object) {
        let node = path
            .steps()
            .iter()
            .try_fold(entry.fields, |node, step| descend(Some(node), step));
        if node.is_some() && !managers.iter().any(|m| m == entry.manager) {
            managers.push(entry.manager.to_string());
        }
    }
    managers
}

/// The manager of the most recent `Update` other than `except`'s, if it came after `except`'s
/// last write: who last wrote the object with a plain write (`kubectl edit`, `patch`, `scale`,
/// a controller's spec write; status writes are not looked at) since gitship applied it. Used to name who removed a field, which
/// `managedFields` no longer records once the field is gone; `None` when gitship wrote last
/// (then the field is missing because Git changed).
pub fn last_writer(object: &Value, except: &str) -> Option<String> {
    let all = entries(object);
    let ours = all
        .iter()
        .filter(|entry| entry.manager == except)
        .filter_map(|entry| entry.time)
        .max();
    all.iter()
        .filter(|entry| entry.manager != except && entry.operation == Some("Update"))
        .filter(|entry| entry.subresource != Some("status"))
        .max_by(|a, b| a.time.cmp(&b.time))
        .filter(|entry| ours.is_none() || entry.time >= ours)
        .map(|entry| entry.manager.to_string())
}

/// The differences between two whole objects below `path`, list items paired by key. `shape`
/// is a `fieldsV1` tree (every manager's, unioned) that tells how lists merge.
pub fn changes_between(
    path: &FieldPath,
    live: &Value,
    desired: &Value,
    shape: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    match (live, desired) {
        (Value::Object(live_map), Value::Object(desired_map)) => {
            let mut keys: Vec<&String> = live_map.keys().chain(desired_map.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = path.field(key);
                let child_shape = descend(shape, &Step::Field(key.clone()));
                match (live_map.get(key), desired_map.get(key)) {
                    (Some(l), Some(d)) => changes_between(&child, l, d, child_shape, out),
                    (l, d) => {
                        if !is_empty_value(l) || !is_empty_value(d) {
                            out.push(change(child, l, d));
                        }
                    }
                }
            }
        }
        (Value::Array(live_items), Value::Array(desired_items)) => {
            let all: Vec<&Value> = desired_items.iter().chain(live_items).collect();
            match list_kind(path, shape, &all) {
                ListKind::Map(keys) => {
                    let (pairs, unmatched) = pair_by_key(&keys, desired_items, live_items);
                    for (step, item, live) in pairs {
                        match live {
                            Some(live) => {
                                let child_shape = descend(shape, &step);
                                changes_between(&path.child(step), live, item, child_shape, out);
                            }
                            None => out.push(change(path.child(step), None, Some(item))),
                        }
                    }
                    for (step, live) in unmatched {
                        out.push(change(path.child(step), Some(live), None));
                    }
                }
                ListKind::Set => {
                    for (index, value) in desired_items.iter().enumerate() {
                        if !live_items.contains(value) {
                            let step = Step::Member {
                                value: value.clone(),
                                index,
                            };
                            out.push(change(path.child(step), None, Some(value)));
                        }
                    }
                    for (index, value) in live_items.iter().enumerate() {
                        if !desired_items.contains(value) {
                            let step = Step::Member {
                                value: value.clone(),
                                index,
                            };
                            out.push(change(path.child(step), Some(value), None));
                        }
                    }
                }
                ListKind::Atomic if live_items.len() == desired_items.len() => {
                    for (index, (l, d)) in live_items.iter().zip(desired_items).enumerate() {
                        changes_between(&path.child(Step::Index(index)), l, d, None, out);
                    }
                }
                ListKind::Atomic => out.push(change(path.clone(), Some(live), Some(desired))),
            }
        }
        (l, d) => {
            if !loosely_equal(&path.to_string(), l, d) {
                out.push(change(path.clone(), Some(l), Some(d)));
            }
        }
    }
}

/// A desired list item, its step and the live item of the same key.
type Paired<'v> = (Step, &'v Value, Option<&'v Value>);

/// The items of an associative list keyed by `keys`, paired: each desired item with its step
/// (its key, its index in `desired`) and the live item of the same key, if any; then the live
/// items no desired item has, each with its step (its index in `live`).
fn pair_by_key<'v>(
    keys: &[String],
    desired: &'v [Value],
    live: &'v [Value],
) -> (Vec<Paired<'v>>, Vec<(Step, &'v Value)>) {
    let mut matched = vec![false; live.len()];
    let mut pairs = Vec::with_capacity(desired.len());
    for (index, item) in desired.iter().enumerate() {
        let key = item_key(keys, item);
        let found = live
            .iter()
            .enumerate()
            .find(|(at, candidate)| !matched[*at] && same_key(&key, candidate));
        if let Some((at, _)) = found {
            matched[at] = true;
        }
        pairs.push((Step::Item { key, index }, item, found.map(|(_, v)| v)));
    }
    let unmatched = live
        .iter()
        .enumerate()
        .filter(|(index, _)| !matched[*index])
        .map(|(index, item)| {
            let key = item_key(keys, item);
            (Step::Item { key, index }, item)
        })
        .collect();
    (pairs, unmatched)
}

fn change(path: FieldPath, live: Option<&Value>, desired: Option<&Value>) -> FieldChange {
    FieldChange {
        path,
        live: live.cloned(),
        desired: desired.cloned(),
    }
}

fn is_empty_value(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        _ => false,
    }
}

/// The `fieldsV1` trees a manifest comparison walks in step with the objects: every manager's
/// (for list semantics), gitship's (`owned`) and everyone else's (`others`).
#[derive(Clone, Copy)]
struct Trees<'a> {
    shape: Option<&'a Value>,
    owned: Option<&'a Value>,
    others: Option<&'a Value>,
}

impl<'a> Trees<'a> {
    fn descend(self, step: &Step) -> Trees<'a> {
        Trees {
            shape: descend(self.shape, step),
            owned: descend(self.owned, step),
            others: descend(self.others, step),
        }
    }
}

/// What applying `desired` (a manifest, as gitship sends it) with field manager `manager` would
/// change in `live`, computed locally: each field the manifest sets whose live value differs
/// (after the normalisation of [`loosely_equal`]), and each field `manager` owns in `live` that
/// the manifest no longer sets and no other manager owns. Fields the manifest does not set
/// (server defaults, other managers' fields and list items) are not looked at, so a freshly
/// applied object has no changes. Secrets compare as stored: `stringData` as base64 `data`.
pub(crate) fn manifest_changes(live: &Value, desired: &Value, manager: &str) -> Vec<FieldChange> {
    let shape = all_managers(live);
    let owned = union_of(live, |m| m == manager).map(|tree| secret_tree_as_stored(desired, tree));
    let others = union_of(live, |m| m != manager);
    let trees = Trees {
        shape: shape.as_ref(),
        owned: owned.as_ref(),
        others: others.as_ref(),
    };
    let desired = secret_as_stored(desired);
    let mut changes = Vec::new();
    if let (Value::Object(live), Value::Object(desired)) = (live, desired.as_ref()) {
        for (key, value) in desired {
            if key == "status" {
                continue;
            }
            let path = FieldPath::new().field(key);
            let step = Step::Field(key.clone());
            walk(
                &path,
                live.get(key),
                value,
                trees.descend(&step),
                &mut changes,
            );
        }
        removed_fields(&FieldPath::new(), live, desired, trees, &mut changes);
    }
    changes
}

/// A Secret's `stringData.<key>` is stored as `data.<key>`: owning the one means owning the other.
fn secret_tree_as_stored(object: &Value, mut tree: Value) -> Value {
    if !gitship_foundation::model::is_secret(object) {
        return tree;
    }
    if let Some(map) = tree.as_object_mut()
        && let Some(string_data) = map.remove("f:stringData")
    {
        let merged = union(map.remove("f:data"), Some(string_data)).unwrap_or(Value::Null);
        map.insert("f:data".to_string(), merged);
    }
    tree
}

fn walk(
    path: &FieldPath,
    live: Option<&Value>,
    desired: &Value,
    trees: Trees<'_>,
    out: &mut Vec<FieldChange>,
) {
    match (desired, live) {
        (Value::Null, _) => {}
        (Value::Object(wanted), None | Some(Value::Null)) if wanted.is_empty() => {}
        (Value::Array(wanted), None | Some(Value::Null)) if wanted.is_empty() => {}
        (Value::Object(wanted), Some(Value::Object(found))) => {
            for (key, value) in wanted {
                let step = Step::Field(key.clone());
                walk(
                    &path.child(step.clone()),
                    found.get(key),
                    value,
                    trees.descend(&step),
                    out,
                );
            }
            removed_fields(path, found, wanted, trees, out);
        }
        (Value::Array(wanted), Some(Value::Array(found))) => {
            walk_list(path, found, wanted, trees, out)
        }
        (_, None) => out.push(change(path.clone(), None, Some(desired))),
        (wanted, Some(found)) => {
            let equal = match (wanted, found) {
                (Value::Object(_) | Value::Array(_), _)
                | (_, Value::Object(_) | Value::Array(_)) => false,
                _ => loosely_equal(&path.to_string(), found, wanted),
            };
            if !equal {
                out.push(change(path.clone(), Some(found), Some(desired)));
            }
        }
    }
}

fn walk_list(
    path: &FieldPath,
    found: &[Value],
    wanted: &[Value],
    trees: Trees<'_>,
    out: &mut Vec<FieldChange>,
) {
    let all: Vec<&Value> = wanted.iter().chain(found).collect();
    match list_kind(path, trees.shape, &all) {
        ListKind::Map(keys) => {
            let (pairs, unmatched) = pair_by_key(&keys, wanted, found);
            for (step, item, live) in pairs {
                let child = path.child(step.clone());
                walk(&child, live, item, trees.descend(&step), out);
            }
            // Items gitship owns that Git no longer has, and no one else holds.
            for (step, item) in unmatched {
                removed(&path.child(step.clone()), item, trees.descend(&step), out);
            }
        }
        ListKind::Set => {
            for (index, value) in wanted.iter().enumerate() {
                if !found.contains(value) {
                    let step = Step::Member {
                        value: value.clone(),
                        index,
                    };
                    out.push(change(path.child(step), None, Some(value)));
                }
            }
            for (index, value) in found.iter().enumerate() {
                if !wanted.contains(value) {
                    let step = Step::Member {
                        value: value.clone(),
                        index,
                    };
                    removed(&path.child(step.clone()), value, trees.descend(&step), out);
                }
            }
        }
        ListKind::Atomic => {
            let equal = found.len() == wanted.len()
                && found.iter().zip(wanted).enumerate().all(|(index, (l, d))| {
                    let mut inner = Vec::new();
                    walk(
                        &path.child(Step::Index(index)),
                        Some(l),
                        d,
                        Trees::none(),
                        &mut inner,
                    );
                    inner.is_empty()
                });
            if !equal {
                out.push(FieldChange {
                    path: path.clone(),
                    live: Some(Value::Array(found.to_vec())),
                    desired: Some(Value::Array(wanted.to_vec())),
                });
            }
        }
    }
}

impl Trees<'_> {
    fn none() -> Self {
        Trees {
            shape: None,
            owned: None,
            others: None,
        }
    }
}

/// The fields of the map `found` that gitship owns and `wanted` no longer sets.
fn removed_fields(
    path: &FieldPath,
    found: &Map<String, Value>,
    wanted: &Map<String, Value>,
    trees: Trees<'_>,
    out: &mut Vec<FieldChange>,
) {
    let Some(owned) = trees.owned.and_then(Value::as_object) else {
        return;
    };
    for entry in owned.keys() {
        let Some(name) = entry.strip_prefix("f:") else {
            continue;
        };
        if wanted.contains_key(name) || (path.steps().is_empty() && name == "status") {
            continue;
        }
        if path.is_top("metadata") && matches!(name, "managedFields" | "resourceVersion") {
            continue;
        }
        if let Some(value) = found.get(name) {
            let step = Step::Field(name.to_string());
            removed(&path.child(step.clone()), value, trees.descend(&step), out);
        }
    }
}

/// A live value Git no longer sets: server-side apply removes what only gitship owns of it.
fn removed(path: &FieldPath, live: &Value, trees: Trees<'_>, out: &mut Vec<FieldChange>) {
    let Some(owned) = trees.owned else {
        return;
    };
    if trees.others.is_none() && owns_value(owned) {
        out.push(change(path.clone(), Some(live), None));
        return;
    }
    // Shared with another manager, or gitship owns parts only: look at each part.
    let Some(children) = owned.as_object() else {
        return;
    };
    match live {
        Value::Object(map) => removed_fields(path, map, &Map::new(), trees, out),
        Value::Array(items) => {
            for entry in children.keys() {
                let found = match parse_entry(entry, "k:") {
                    Some(Value::Object(fields)) => {
                        let key: Vec<(String, Value)> = fields.into_iter().collect();
                        let index = items.iter().position(|item| same_key(&key, item));
                        index.map(|index| (Step::Item { key, index }, index))
                    }
                    _ => parse_entry(entry, "v:").and_then(|value| {
                        let index = items.iter().position(|item| *item == value);
                        index.map(|index| (Step::Member { value, index }, index))
                    }),
                };
                if let Some((step, index)) = found
                    && let Some(item) = items.get(index)
                {
                    removed(&path.child(step.clone()), item, trees.descend(&step), out);
                }
            }
        }
        _ => {}
    }
}

/// A Secret's `stringData` moved into `data`, base64-encoded, as the server stores it.
fn secret_as_stored(object: &Value) -> Cow<'_, Value> {
    use base64::Engine;
    if !gitship_foundation::model::is_secret(object) || object.get("stringData").is_none() {
        return Cow::Borrowed(object);
    }
    let mut object = object.clone();
    if let Some(Value::Object(plain)) = object.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        let data = object.as_object_mut().map(|m| {
            m.entry("data")
                .or_insert_with(|| Value::Object(Default::default()))
        });
        if let Some(Value::Object(data)) = data {
            for (key, value) in plain {
                let text = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                data.insert(
                    key,
                    Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
    Cow::Owned(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GITSHIP: &str = "gitship";

    fn manifest() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "blog", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{
                "name": "app", "image": "web:1",
                "env": [{"name": "MODE", "value": "prod"}],
                "ports": [{"containerPort": 8080}]}]}}}})
    }

    /// The manifest as the server stores it after gitship applied it, with `others`'
    /// managedFields entries added.
    fn live(others: Value) -> Value {
        let mut live = manifest();
        live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["spec"]["revisionHistoryLimit"] = json!(10);
        let mut entries = vec![json!({"manager": GITSHIP, "operation": "Apply",
            "time": "2026-12-01T10:00:00Z", "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {},
                    "f:env": {"k:{\"name\":\"MODE\"}": {".": {}, "f:name": {}, "f:value": {}}},
                    "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}}})];
        if let Value::Array(more) = others {
            entries.extend(more);
        }
        live["metadata"]["managedFields"] = Value::Array(entries);
        live
    }

    fn containers(object: &mut Value) -> &mut Value {
        &mut object["spec"]["template"]["spec"]["containers"]
    }

    fn paths(changes: &[FieldChange]) -> Vec<String> {
        changes.iter().map(|c| c.path.to_string()).collect()
    }

    #[test]
    fn a_freshly_applied_object_has_no_changes() {
        assert!(manifest_changes(&live(json!([])), &manifest(), GITSHIP).is_empty());
    }

    #[test]
    fn items_other_managers_add_to_lists_git_declares_are_not_changes() {
        let mut object = live(json!([{"manager": "istio", "operation": "Update",
            "time": "2026-12-02T10:00:00Z", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"istio-proxy\"}": {".": {}, "f:name": {}, "f:image": {}},
                "k:{\"name\":\"app\"}": {
                    "f:env": {"k:{\"name\":\"MESH\"}": {".": {}, "f:name": {}, "f:value": {}}},
                    "f:ports": {"k:{\"containerPort\":15090,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}}}]));
        let list = containers(&mut object);
        list[0]["env"]
            .as_array_mut()
            .unwrap()
            .insert(0, json!({"name": "MESH", "value": "on"}));
        list[0]["ports"]
            .as_array_mut()
            .unwrap()
            .push(json!({"containerPort": 15090, "protocol": "TCP"}));
        list.as_array_mut()
            .unwrap()
            .insert(0, json!({"name": "istio-proxy", "image": "proxy:1"}));
        assert_eq!(
            manifest_changes(&object, &manifest(), GITSHIP),
            Vec::<FieldChange>::new()
        );
    }

    #[test]
    fn an_owned_value_someone_changed_is_a_change_named_by_item() {
        let mut object = live(json!([{"manager": "kubectl-edit", "operation": "Update",
            "time": "2026-12-02T10:00:00Z", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {"f:env": {"k:{\"name\":\"MODE\"}": {"f:value": {}}}}}}}}}}]));
        containers(&mut object)[0]["env"][0]["value"] = json!("debug");
        let changes = manifest_changes(&object, &manifest(), GITSHIP);
        assert_eq!(
            paths(&changes),
            vec!["spec.template.spec.containers[name=app].env[name=MODE].value"]
        );
        assert!(owners(&object, &changes[0].path).contains(&"kubectl-edit".to_string()));
        assert_eq!(
            changes[0].path.pointer(),
            "/spec/template/spec/containers/0/env/0/value"
        );
    }

    #[test]
    fn an_owned_item_someone_removed_is_a_change_of_that_item() {
        let mut object = live(json!([{"manager": "kubectl-patch", "operation": "Update",
            "time": "2026-12-02T10:00:00Z", "fieldsV1": {"f:metadata": {"f:annotations": {"f:x": {}}}}}]));
        containers(&mut object)[0]["env"] = json!([]);
        let changes = manifest_changes(&object, &manifest(), GITSHIP);
        assert_eq!(
            paths(&changes),
            vec!["spec.template.spec.containers[name=app].env[name=MODE]"]
        );
        assert_eq!(changes[0].live, None);
        assert_eq!(
            last_writer(&object, GITSHIP).as_deref(),
            Some("kubectl-patch")
        );
    }

    #[test]
    fn a_field_git_no_longer_sets_is_removed_unless_another_manager_holds_it() {
        let object = live(json!([]));
        let mut desired = manifest();
        desired["metadata"]["labels"] = json!({});
        containers(&mut desired)[0]["env"] = json!([]);
        let changes = manifest_changes(&object, &desired, GITSHIP);
        assert_eq!(
            paths(&changes),
            vec![
                "metadata.labels.app",
                "spec.template.spec.containers[name=app].env[name=MODE]"
            ]
        );
        assert!(changes.iter().all(|c| c.desired.is_none()));
        // Shared with another manager: the apply only gives up its ownership.
        let shared = live(json!([{"manager": "kubectl", "operation": "Apply",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}}]));
        let mut desired = manifest();
        desired["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        assert!(manifest_changes(&shared, &desired, GITSHIP).is_empty());
    }

    #[test]
    fn sets_compare_by_member_and_atomic_lists_as_a_whole() {
        let mut object = live(json!([]));
        object["metadata"]["finalizers"] = json!(["example.com/other"]);
        let mut desired = manifest();
        desired["metadata"]["finalizers"] = json!(["example.com/hold"]);
        assert_eq!(
            paths(&manifest_changes(&object, &desired, GITSHIP)),
            vec!["metadata.finalizers[\"example.com/hold\"]"]
        );
        containers(&mut desired)[0]["args"] = json!(["--a", "--b"]);
        containers(&mut object)[0]["args"] = json!(["--a"]);
        let changes = manifest_changes(&object, &desired, GITSHIP);
        assert_eq!(
            paths(&changes)[1],
            "spec.template.spec.containers[name=app].args"
        );
    }

    #[test]
    fn ports_without_protocol_are_keyed_as_tcp() {
        let mut desired = manifest();
        containers(&mut desired)[0]["ports"] = json!([{"containerPort": 9090}]);
        let changes = manifest_changes(&live(json!([])), &desired, GITSHIP);
        assert_eq!(
            paths(&changes),
            vec![
                "spec.template.spec.containers[name=app].ports[containerPort=9090,protocol=TCP]",
                "spec.template.spec.containers[name=app].ports[containerPort=8080,protocol=TCP]",
            ]
        );
    }

    #[test]
    fn dotted_paths_and_pointers() {
        let path = FieldPath::from("metadata.annotations").field("a/b");
        assert_eq!(path.pointer(), "/metadata/annotations/a~1b");
        assert_eq!(path.to_string(), "metadata.annotations.a/b");
    }
}
