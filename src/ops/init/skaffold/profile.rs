//! A Skaffold profile applied to its config, as Skaffold applies it: first its pipeline
//! sections (`build`, `manifests`, `deploy`, ...) are laid over the config's (mappings merge
//! key by key; a list or a value replaces the config's; an empty list or `null` leaves it), then
//! its `patches` (JSON patch: `op` `add`, `replace` (the default) or `remove`, `path` a JSON
//! pointer, `value`) change the result in order. Any other `op` is refused, never skipped.

use serde_json::Value;

/// The profile's keys that are not pipeline sections.
const PROFILE_KEYS: &[&str] = &["name", "activation", "requiresAllActivations", "patches"];

/// Apply `profile` to `config`; an error names the patch (1-based) and what is wrong.
pub(super) fn apply(config: &mut Value, profile: &Value) -> Result<(), String> {
    let Some(fields) = profile.as_object() else {
        return Err("a profile is a mapping".into());
    };
    for (key, section) in fields {
        if PROFILE_KEYS.contains(&key.as_str()) {
            continue;
        }
        match config.as_object_mut() {
            Some(object) => match object.get_mut(key) {
                Some(existing) => overlay(existing, section),
                None if !is_empty(section) => {
                    object.insert(key.clone(), section.clone());
                }
                None => {}
            },
            None => return Err("the config is not a mapping".into()),
        }
    }
    let patches = match profile.get("patches") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(patches)) => patches,
        Some(_) => return Err("`patches` is a list".into()),
    };
    for (index, patch) in patches.iter().enumerate() {
        apply_patch(config, patch)
            .map_err(|error| format!("patch {}: {error}", index.saturating_add(1)))?;
    }
    Ok(())
}

/// Lay `top` over `base`: mappings merge, anything else that is not empty replaces.
fn overlay(base: &mut Value, top: &Value) {
    match (base, top) {
        (Value::Object(base), Value::Object(top)) => {
            for (key, value) in top {
                match base.get_mut(key) {
                    Some(existing) => overlay(existing, value),
                    None if !is_empty(value) => {
                        base.insert(key.clone(), value.clone());
                    }
                    None => {}
                }
            }
        }
        (base, top) if !is_empty(top) => *base = top.clone(),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// One JSON patch operation.
fn apply_patch(config: &mut Value, patch: &Value) -> Result<(), String> {
    let op = match patch.get("op") {
        None | Some(Value::Null) => "replace",
        Some(Value::String(op)) => op.as_str(),
        Some(_) => return Err("`op` is a string".into()),
    };
    let path = patch
        .get("path")
        .and_then(Value::as_str)
        .ok_or("`path` is missing")?;
    let tokens = pointer(path)?;
    let (last, parents) = tokens
        .split_last()
        .ok_or_else(|| format!("`path` `{path}` names the whole config"))?;
    let value = patch.get("value");
    let mut target = &mut *config;
    for token in parents {
        target = child(target, token).ok_or_else(|| format!("`{path}` does not exist"))?;
    }
    match op {
        "add" => add(target, last, value.ok_or("`add` needs a `value`")?, path),
        "replace" => {
            let value = value.ok_or("`replace` needs a `value`")?;
            let slot = child(target, last).ok_or_else(|| format!("`{path}` does not exist"))?;
            *slot = value.clone();
            Ok(())
        }
        "remove" => remove(target, last, path),
        other => Err(format!(
            "`op: {other}` is not supported (gitship applies `add`, `replace` and `remove`)"
        )),
    }
}

/// A JSON pointer's tokens (`/a/b~1c` -> `a`, `b/c`).
fn pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!(
            "`path` `{path}` is not a JSON pointer (it starts with `/`)"
        ));
    };
    Ok(rest
        .split('/')
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn child<'v>(value: &'v mut Value, token: &str) -> Option<&'v mut Value> {
    match value {
        Value::Object(object) => object.get_mut(token),
        Value::Array(items) => items.get_mut(index(token)?),
        _ => None,
    }
}

/// An array index as JSON pointer writes it: digits, no leading zero.
fn index(token: &str) -> Option<usize> {
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    if !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

fn add(target: &mut Value, token: &str, value: &Value, path: &str) -> Result<(), String> {
    match target {
        Value::Object(object) => {
            object.insert(token.to_string(), value.clone());
            Ok(())
        }
        Value::Array(items) => {
            let at = if token == "-" {
                items.len()
            } else {
                index(token)
                    .filter(|at| *at <= items.len())
                    .ok_or_else(|| format!("`{path}`: no index `{token}` to add at"))?
            };
            items.insert(at, value.clone());
            Ok(())
        }
        _ => Err(format!(
            "`{path}`: its parent is neither a mapping nor a list"
        )),
    }
}

fn remove(target: &mut Value, token: &str, path: &str) -> Result<(), String> {
    let removed = match target {
        Value::Object(object) => object.shift_remove(token).is_some(),
        Value::Array(items) => match index(token).filter(|at| *at < items.len()) {
            Some(at) => {
                items.remove(at);
                true
            }
            None => false,
        },
        _ => false,
    };
    if removed {
        Ok(())
    } else {
        Err(format!("`{path}` does not exist"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Value {
        json!({
            "build": {"artifacts": [{"image": "a"}, {"image": "b"}], "local": {"push": false}},
            "manifests": {"rawYaml": ["k8s/*.yaml"]},
        })
    }

    #[test]
    fn sections_overlay_as_skaffold_does() {
        let mut value = config();
        apply(
            &mut value,
            &json!({"name": "dev", "build": {"local": {"push": true}}, "manifests": {"rawYaml": ["dev/*.yaml"]}, "deploy": {"kubectl": {}}}),
        )
        .unwrap();
        assert_eq!(value["build"]["artifacts"].as_array().unwrap().len(), 2);
        assert_eq!(value["build"]["local"]["push"], true);
        assert_eq!(value["manifests"]["rawYaml"], json!(["dev/*.yaml"]));
        assert_eq!(value["deploy"], json!({"kubectl": {}}));
        // An empty list leaves the config's.
        apply(
            &mut value,
            &json!({"name": "x", "manifests": {"rawYaml": []}}),
        )
        .unwrap();
        assert_eq!(value["manifests"]["rawYaml"], json!(["dev/*.yaml"]));
        assert!(value.get("name").is_none());
    }

    #[test]
    fn patches_add_replace_and_remove() {
        let mut value = config();
        let profile = json!({"name": "p", "patches": [
            {"op": "replace", "path": "/build/artifacts/0/image", "value": "c"},
            {"path": "/build/artifacts/1/image", "value": "d"},
            {"op": "add", "path": "/build/artifacts/-", "value": {"image": "e"}},
            {"op": "add", "path": "/build/artifacts/0", "value": {"image": "z"}},
            {"op": "remove", "path": "/build/local"},
            {"op": "add", "path": "/manifests/rawYaml/0", "value": "a~1b/*.yaml"},
            {"op": "add", "path": "/metadata", "value": {"name": "x/y"}},
            {"op": "replace", "path": "/metadata/name", "value": "w"},
        ]});
        apply(&mut value, &profile).unwrap();
        let images: Vec<&str> = value["build"]["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["image"].as_str().unwrap())
            .collect();
        assert_eq!(images, ["z", "c", "d", "e"]);
        assert!(value["build"].get("local").is_none());
        assert_eq!(value["manifests"]["rawYaml"][0], "a~1b/*.yaml");
        assert_eq!(value["metadata"]["name"], "w");
        let escaped = json!({"name": "p", "patches": [{"op": "add", "path": "/a~1b", "value": 1}]});
        apply(&mut value, &escaped).unwrap();
        assert_eq!(value["a/b"], 1);
    }

    #[test]
    fn a_bad_patch_is_an_error_that_names_it() {
        for (patch, expected) in [
            (
                json!({"op": "replace", "path": "/build/nope", "value": 1}),
                "patch 1: `/build/nope` does not exist",
            ),
            (
                json!({"op": "remove", "path": "/build/artifacts/7"}),
                "patch 1: `/build/artifacts/7` does not exist",
            ),
            (
                json!({"op": "add", "path": "/build/artifacts/9", "value": 1}),
                "no index `9`",
            ),
            (
                json!({"op": "add", "path": "/build/artifacts/01", "value": 1}),
                "no index `01`",
            ),
            (
                json!({"op": "move", "from": "/a", "path": "/b"}),
                "`op: move` is not supported",
            ),
            (json!({"op": "add", "path": "build"}), "not a JSON pointer"),
            (
                json!({"op": "add", "path": "/x/y", "value": 1}),
                "`/x/y` does not exist",
            ),
            (json!({"op": "add", "path": "/x"}), "`add` needs a `value`"),
            (
                json!({"op": "remove", "path": ""}),
                "names the whole config",
            ),
            (json!({"value": 1}), "`path` is missing"),
        ] {
            let mut value = config();
            let before = value.clone();
            let error = apply(&mut value, &json!({"name": "p", "patches": [patch]})).unwrap_err();
            assert!(error.contains(expected), "{error} / {expected}");
            assert_eq!(value, before, "a failed patch changes nothing: {expected}");
        }
    }
}
