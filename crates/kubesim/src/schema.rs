//! Schema facts for server-side apply: which lists are associative (and by which keys), which
//! are sets, and which maps are atomic, loaded from the Kubernetes v1.37 object schema
//! (`data/v1.37-definitions.json`, kubernetes-validate 1.37.0, Apache-2.0).
//!
//! Objects are walked by the shape of their *values*; the schema is only consulted for the
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` facts.
//! Where no schema is known (custom resources, unknown fields) the structured-merge-diff
//! "deduced" behaviour applies: objects merge field by field and lists are atomic.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

const DEFINITIONS: &str = include_str!("../data/v1.37-definitions.json");

/// The parsed definitions and the root definition of every group/version/kind.
struct Definitions {
    definitions: serde_json::Map<String, Value>,
    roots: HashMap<(String, String, String), String>,
}

fn definitions() -> &'static Definitions {
    static DEFINITIONS_CELL: OnceLock<Definitions> = OnceLock::new();
    DEFINITIONS_CELL.get_or_init(|| {
        let parsed: Value = serde_json::from_str(DEFINITIONS).unwrap_or(Value::Null);
        let definitions = match parsed {
            Value::Object(mut document) => match document.remove("$defs") {
                Some(Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            },
            _ => serde_json::Map::new(),
        };
        // Descriptions are most of the file; dropping them keeps the parsed schema small.
        fn strip_descriptions(value: &mut Value) {
            match value {
                Value::Object(map) => {
                    map.remove("description");
                    map.values_mut().for_each(strip_descriptions);
                }
                Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
                _ => {}
            }
        }
        let mut definitions = definitions;
        definitions.values_mut().for_each(strip_descriptions);
        let mut roots = HashMap::new();
        for (name, definition) in &definitions {
            if let Some(Value::Array(kinds)) = definition.get("x-kubernetes-group-version-kind") {
                for gvk in kinds {
                    let field = |key: &str| {
                        gvk.get(key)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    roots
                        .entry((field("group"), field("version"), field("kind")))
                        .or_insert_with(|| name.clone());
                }
            }
        }
        Definitions { definitions, roots }
    })
}

/// Loads the schema eagerly (it is otherwise parsed on first use).
pub fn preload() {
    let _ = definitions();
}

/// How the elements of a list are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    /// The list is replaced as a whole.
    Atomic,
    /// A set of scalars, merged by value.
    Set,
    /// An associative list, merged by these key fields.
    Map(Vec<String>),
}

/// A position in the schema; `None` means unknown (deduced behaviour).
#[derive(Debug, Clone, Copy)]
pub struct Node(Option<&'static Value>);

impl Node {
    /// The root node for objects of `api_version` + `kind`.
    pub fn root(api_version: &str, kind: &str) -> Node {
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        let definitions = definitions();
        let key = (group.to_string(), version.to_string(), kind.to_string());
        Node(
            definitions
                .roots
                .get(&key)
                .and_then(|name| definitions.definitions.get(name)),
        )
    }

    fn resolved(self) -> Option<&'static Value> {
        let mut current = self.0?;
        for _ in 0..8 {
            let reference = current
                .get("$ref")
                .and_then(Value::as_str)
                .or_else(|| current.get("allOf")?.get(0)?.get("$ref")?.as_str());
            match reference {
                Some(reference) => {
                    let name = reference.trim_start_matches("#/$defs/");
                    current = definitions().definitions.get(name)?;
                }
                None => return Some(current),
            }
        }
        Some(current)
    }

    fn annotation(self, key: &str) -> Option<&'static Value> {
        self.0?.get(key).or_else(|| self.resolved()?.get(key))
    }

    /// The schema of field `name` of an object (or the value schema of a map).
    pub fn field(self, name: &str) -> Node {
        let Some(resolved) = self.resolved() else {
            return Node(None);
        };
        if let Some(property) = resolved
            .get("properties")
            .and_then(|properties| properties.get(name))
        {
            return Node(Some(property));
        }
        match resolved.get("additionalProperties") {
            Some(additional @ Value::Object(_)) => Node(Some(additional)),
            _ => Node(None),
        }
    }

    /// The schema of the items of a list.
    pub fn items(self) -> Node {
        Node(self.resolved().and_then(|resolved| resolved.get("items")))
    }

    /// How a list at this node merges.
    pub fn list_kind(self) -> ListKind {
        match self
            .annotation("x-kubernetes-list-type")
            .and_then(Value::as_str)
        {
            Some("set") => ListKind::Set,
            Some("map") => {
                let keys: Vec<String> = self
                    .annotation("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(|key| key.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if keys.is_empty() {
                    ListKind::Atomic
                } else {
                    ListKind::Map(keys)
                }
            }
            _ => ListKind::Atomic,
        }
    }

    /// Whether the schema knows this position.
    pub fn is_known(self) -> bool {
        self.0.is_some()
    }

    /// Whether values at this node are `resource.Quantity`s (`$ref` to the Quantity definition).
    pub fn is_quantity(self) -> bool {
        let Some(node) = self.0 else {
            return false;
        };
        node.get("$ref")
            .or_else(|| node.get("allOf")?.get(0)?.get("$ref"))
            .and_then(Value::as_str)
            .is_some_and(|reference| {
                reference.ends_with("/io.k8s.apimachinery.pkg.api.resource.Quantity")
            })
    }

    /// The strategic merge patch strategy of this field (`merge`, `replace`,
    /// `merge,retainKeys`, ...), empty when the schema declares none.
    pub fn patch_strategy(self) -> &'static str {
        self.annotation("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The key a strategic merge patch merges this list's items by.
    pub fn patch_merge_key(self) -> Option<&'static str> {
        self.annotation("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
    }

    /// Whether an object at this node is replaced as a whole.
    pub fn is_atomic_map(self) -> bool {
        matches!(
            self.annotation("x-kubernetes-map-type")
                .and_then(Value::as_str),
            Some("atomic")
        )
    }
}

impl Node {
    /// The declared properties when the object accepts no others.
    fn closed_properties(self) -> Option<&'static serde_json::Map<String, Value>> {
        let resolved = self.resolved()?;
        if resolved.get("additionalProperties").is_some()
            || resolved
                .get("x-kubernetes-preserve-unknown-fields")
                .is_some()
            || self
                .annotation("x-kubernetes-preserve-unknown-fields")
                .is_some()
        {
            return None;
        }
        resolved.get("properties")?.as_object()
    }

    fn required(self) -> Vec<&'static str> {
        self.resolved()
            .and_then(|resolved| resolved.get("required"))
            .and_then(Value::as_array)
            .map(|required| required.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}

/// A path being walked; rendered only when something is reported.
#[derive(Default)]
struct Path(Vec<String>);

impl Path {
    fn with(&self, field: &str) -> String {
        let mut rendered = self.render();
        if !rendered.is_empty() {
            rendered.push('.');
        }
        rendered.push_str(field);
        rendered
    }

    fn render(&self) -> String {
        let mut rendered = String::new();
        for segment in &self.0 {
            if !rendered.is_empty() && !segment.starts_with('[') {
                rendered.push('.');
            }
            rendered.push_str(segment);
        }
        rendered
    }
}

/// Paths (`spec.foo`) of fields the schema does not declare.
pub fn unknown_fields(value: &Value, node: Node) -> Vec<String> {
    let mut found = Vec::new();
    walk_unknown(value, node, &mut Path::default(), &mut found);
    found
}

fn walk_unknown(value: &Value, node: Node, path: &mut Path, found: &mut Vec<String>) {
    if node.0.is_none() {
        return;
    }
    match value {
        Value::Object(map) => {
            let closed = node.closed_properties();
            for (key, child) in map {
                if closed.is_some_and(|properties| !properties.contains_key(key)) {
                    found.push(path.with(key));
                } else if child.is_object() || child.is_array() {
                    path.0.push(key.clone());
                    walk_unknown(child, node.field(key), path, found);
                    path.0.pop();
                }
            }
        }
        Value::Array(items) => {
            let item_node = node.items();
            for (index, item) in items.iter().enumerate() {
                if item.is_object() || item.is_array() {
                    path.0.push(format!("[{index}]"));
                    walk_unknown(item, item_node, path, found);
                    path.0.pop();
                }
            }
        }
        _ => {}
    }
}

/// Drops fields the schema does not declare (as decoding into the API types does).
pub fn prune_unknown(value: &mut Value, node: Node) {
    if node.0.is_none() {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(properties) = node.closed_properties() {
                map.retain(|key, _| properties.contains_key(key));
            }
            for (key, child) in map.iter_mut() {
                prune_unknown(child, node.field(key));
            }
        }
        Value::Array(items) => {
            let item_node = node.items();
            items
                .iter_mut()
                .for_each(|item| prune_unknown(item, item_node));
        }
        _ => {}
    }
}

/// Paths (`spec.template.spec.containers[0].name`) of required fields that are missing.
pub fn missing_required(value: &Value, node: Node) -> Vec<String> {
    let mut found = Vec::new();
    walk_required(value, node, &mut Path::default(), &mut found);
    found
}

fn walk_required(value: &Value, node: Node, path: &mut Path, found: &mut Vec<String>) {
    if node.0.is_none() {
        return;
    }
    match value {
        Value::Object(map) => {
            for required in node.required() {
                if map.get(required).is_none_or(Value::is_null) {
                    found.push(path.with(required));
                }
            }
            for (key, child) in map {
                if child.is_object() || child.is_array() {
                    path.0.push(key.clone());
                    walk_required(child, node.field(key), path, found);
                    path.0.pop();
                }
            }
        }
        Value::Array(items) => {
            let item_node = node.items();
            for (index, item) in items.iter().enumerate() {
                if item.is_object() || item.is_array() {
                    path.0.push(format!("[{index}]"));
                    walk_required(item, item_node, path, found);
                    path.0.pop();
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_merge_by_name_and_service_ports_by_port_and_protocol() {
        let deployment = Node::root("apps/v1", "Deployment");
        let containers = deployment
            .field("spec")
            .field("template")
            .field("spec")
            .field("containers");
        assert_eq!(containers.list_kind(), ListKind::Map(vec!["name".into()]));
        let ports = containers.items().field("ports");
        assert_eq!(
            ports.list_kind(),
            ListKind::Map(vec!["containerPort".into(), "protocol".into()])
        );
        let args = containers.items().field("args");
        assert_eq!(args.list_kind(), ListKind::Atomic);
        assert!(deployment.field("spec").field("selector").is_atomic_map());
        let labels = deployment.field("metadata").field("labels");
        assert!(!labels.is_atomic_map());
        let service_ports = Node::root("v1", "Service").field("spec").field("ports");
        assert_eq!(
            service_ports.list_kind(),
            ListKind::Map(vec!["port".into(), "protocol".into()])
        );
        let finalizers = Node::root("v1", "ConfigMap")
            .field("metadata")
            .field("finalizers");
        assert_eq!(finalizers.list_kind(), ListKind::Set);
    }

    #[test]
    fn unknown_and_missing_required_fields() {
        let deployment = Node::root("apps/v1", "Deployment");
        let object = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "labels": {"any": "thing"}},
            "spec": {"replicaz": 1, "selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"image": "x", "imagePullPolicyy": "Always", "ports": [{"containerPort": "8080"}], "resources": {"limits": {"cpu": "1"}}}]}}},
        });
        assert_eq!(
            unknown_fields(&object, deployment),
            [
                "spec.replicaz",
                "spec.template.spec.containers[0].imagePullPolicyy"
            ]
        );
        assert_eq!(
            missing_required(&object, deployment),
            ["spec.template.spec.containers[0].name"]
        );
        let mut pruned = object.clone();
        prune_unknown(&mut pruned, deployment);
        assert!(unknown_fields(&pruned, deployment).is_empty());
        assert_eq!(pruned["metadata"]["labels"]["any"], "thing");
    }
}
