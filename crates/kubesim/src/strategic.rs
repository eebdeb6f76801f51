//! Strategic merge patch (`application/strategic-merge-patch+json`), as apimachinery's
//! `strategicpatch` applies it to built-in kinds: maps merge key by key (`null` deletes), lists
//! whose schema says `x-kubernetes-patch-strategy: merge` merge their items by
//! `x-kubernetes-patch-merge-key` (lists of scalars by value), every other list and any field
//! with strategy `replace` is replaced whole. The directives kubectl sends are honoured:
//! `$patch: delete` (a list item, or a map, which becomes empty), `$patch: replace` (a map, or
//! a list through a `{"$patch": "replace"}` item), `$patch: merge`, `$setElementOrder/<list>` (the order of a
//! merged list), `$deleteFromPrimitiveList/<list>` (values removed from a merged list of
//! scalars) and `$retainKeys` (keys of a map that survive, as client-side apply sends for
//! `retainKeys` fields such as a Deployment's `strategy` or a volume).

use crate::schema::Node;
use serde_json::{Map, Value};

const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies `patch` to `target` (both whole objects) following the schema at `node`.
pub fn apply(target: &mut Value, patch: &Value, node: Node) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target_map), Some(patch_map)) => {
            if let Some(replacement) = merge_map(target_map, patch_map, node) {
                *target = replacement;
            }
        }
        _ => *target = without_directives(patch),
    }
}

/// Merges a patch map into a map in place, or returns the map that replaces it: the patch
/// itself for `$patch: replace`, an empty map for `$patch: delete`.
fn merge_map(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    node: Node,
) -> Option<Value> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => return Some(without_directives(&Value::Object(patch.clone()))),
        Some("delete") => return Some(Value::Object(Map::new())),
        _ => {}
    }
    if let Some(retained) = patch.get("$retainKeys").and_then(Value::as_array) {
        target.retain(|key, _| retained.iter().any(|kept| kept.as_str() == Some(key)));
    }
    for (key, value) in patch {
        if let Some(list) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST)
            && let (Some(Value::Array(items)), Some(removed)) =
                (target.get_mut(list), value.as_array())
        {
            items.retain(|item| !removed.contains(item));
        }
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            target.remove(key);
            continue;
        }
        let field = node.field(key);
        let before = target.get(key).cloned();
        let merged = match target.get_mut(key) {
            Some(existing) => merge_value(existing, value, field),
            // A field the target lacks takes the patch value (its directives are not stored).
            None => Some(without_directives(value)),
        };
        if let Some(merged) = merged {
            target.insert(key.clone(), merged);
        }
        if let Some(order) = patch
            .get(&format!("{SET_ELEMENT_ORDER}{key}"))
            .and_then(Value::as_array)
            && let Some(Value::Array(items)) = target.get_mut(key)
        {
            let server_order = match before {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            let merged = std::mem::take(items);
            *items = normalize_order(merged, order, &server_order, field.patch_merge_key());
        }
    }
    for (key, order) in patch {
        // An order for a list the patch does not touch: reorder what is there.
        if let (Some(list), Some(order)) = (key.strip_prefix(SET_ELEMENT_ORDER), order.as_array())
            && !patch.contains_key(list)
            && let Some(Value::Array(items)) = target.get_mut(list)
        {
            let server_order = items.clone();
            let merged = std::mem::take(items);
            *items = normalize_order(
                merged,
                order,
                &server_order,
                node.field(list).patch_merge_key(),
            );
        }
    }
    None
}

/// Merges `patch` into `existing` in place, or returns the value that replaces it.
fn merge_value(existing: &mut Value, patch: &Value, node: Node) -> Option<Value> {
    let strategy = node.patch_strategy();
    match (existing, patch) {
        (Value::Object(existing_map), Value::Object(patch_map))
            if !strategy.contains("replace") =>
        {
            merge_map(existing_map, patch_map, node)
        }
        (Value::Array(existing_items), Value::Array(patch_items)) if strategy.contains("merge") => {
            let original = std::mem::take(existing_items);
            Some(Value::Array(merge_list(original, patch_items, node)))
        }
        _ => Some(without_directives(patch)),
    }
}

/// Merges the items of a list with strategy `merge`: lists of maps by the merge key (with the
/// `$patch: delete` and `$patch: replace` items), lists of scalars as a set. The result is in
/// apimachinery's order: the patch's items in the patch's order, interleaved with the items
/// only the server had, in their order.
fn merge_list(mut original: Vec<Value>, patch: &[Value], node: Node) -> Vec<Value> {
    let merge_key = node.patch_merge_key();
    let item_node = node.items();
    let mut plain = Vec::new();
    let mut replace = false;
    for item in patch {
        match item.get("$patch").and_then(Value::as_str) {
            Some("delete") => {
                let wanted = merge_key.and_then(|key| item.get(key));
                original.retain(|candidate| {
                    wanted.is_none() || merge_key.and_then(|key| candidate.get(key)) != wanted
                });
            }
            Some("replace") => replace = true,
            _ => plain.push(item.clone()),
        }
    }
    if replace {
        return plain.iter().map(without_directives).collect();
    }
    let mut merged = original.clone();
    for item in &plain {
        match item.as_object() {
            Some(item_map) => {
                let wanted = merge_key.and_then(|key| item_map.get(key));
                let position = wanted.and_then(|wanted| {
                    merged.iter().position(|candidate| {
                        merge_key.and_then(|key| candidate.get(key)) == Some(wanted)
                    })
                });
                match position {
                    Some(index) => {
                        if let Some(Value::Object(target)) = merged.get_mut(index)
                            && let Some(replacement) = merge_map(target, item_map, item_node)
                        {
                            merged[index] = replacement;
                        }
                    }
                    None => merged.push(without_directives(item)),
                }
            }
            None => {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
        }
    }
    normalize_order(merged, &plain, &original, merge_key)
}

/// apimachinery's `normalizeElementOrder`: the merged items the patch (or `$setElementOrder`)
/// names, sorted in that order, interleaved with the server-only items, which keep the
/// server's order; a patch item goes first unless both are known to the server and the server
/// had the other first.
fn normalize_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let identity = |item: &Value| -> Value {
        match (merge_key, item) {
            (Some(key), Value::Object(map)) => map.get(key).cloned().unwrap_or(Value::Null),
            _ => item.clone(),
        }
    };
    let index = |list: &[Value], item: &Value| {
        let wanted = identity(item);
        list.iter()
            .position(|candidate| identity(candidate) == wanted)
    };
    let (mut patch_items, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| index(patch_order, item).is_some());
    patch_items.sort_by_key(|item| index(patch_order, item));
    let mut result = Vec::with_capacity(patch_items.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        patch_items.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(server), Some(patched)) => {
                matches!((index(server_order, server), index(server_order, patched)),
                    (Some(server_index), Some(patched_index)) if server_index < patched_index)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        result.extend(next);
    }
    result
}

/// A patch value with every `$` key removed, as decoding into the API type drops them.
fn without_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !key.starts_with('$'))
                .map(|(key, value)| (key.clone(), without_directives(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": ["a", "b"]},
            "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                "template": {"spec": {"containers": [
                    {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                    {"name": "side", "image": "side:1"}]}}}})
    }

    fn patched(patch: Value) -> Value {
        let mut target = deployment();
        apply(&mut target, &patch, Node::root("apps/v1", "Deployment"));
        target
    }

    #[test]
    fn kubectl_edit_replaces_a_container_port() {
        // What `kubectl edit` sends when containerPort 80 becomes 8080.
        let result = patched(json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
            "containers": [{"$setElementOrder/ports": [{"containerPort": 8080}], "name": "web",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}, {"$patch": "delete", "containerPort": 80}]}]}}}}));
        let containers = &result["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers[0]["ports"],
            json!([{"containerPort": 8080, "protocol": "TCP"}])
        );
        assert_eq!(containers[1]["name"], "side");
        assert_eq!(containers[0]["env"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn items_merge_by_key_delete_and_reorder() {
        let result = patched(json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
            "containers": [{"name": "web", "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}]}]}}}}));
        let containers = &result["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["name"], "side");
        assert_eq!(containers[1]["image"], "nginx:1");
        assert_eq!(
            containers[1]["env"],
            json!([{"name": "C", "value": "3"}, {"name": "B", "value": "2"}])
        );
    }

    #[test]
    fn replace_delete_from_primitive_list_and_retain_keys() {
        let result = patched(json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]},
            "spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                "template": {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}},
            },
        }));
        assert_eq!(result["metadata"]["finalizers"], json!(["c", "b"]));
        assert_eq!(result["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(
            result["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "x"}])
        );
        let replaced =
            patched(json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}));
        assert_eq!(replaced["spec"]["strategy"], json!({"type": "Recreate"}));
        let deleted = patched(json!({"spec": {"strategy": {"$patch": "delete"}}}));
        assert_eq!(deleted["spec"]["strategy"], json!({}));
    }

    #[test]
    fn lists_without_merge_strategy_are_replaced() {
        // `args` has no patch strategy: replaced whole.
        let mut target = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["a", "b"]}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["c"]}]}}}});
        apply(&mut target, &patch, Node::root("apps/v1", "Deployment"));
        assert_eq!(
            target["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["c"])
        );
    }
}
