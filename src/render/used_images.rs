//! Which apps an environment uses: an app is used when one of the environment's rendered objects
//! names its image (`<registry>/<app>:<tag>`, with or without a digest), wherever the render put
//! it: `${images.<app>}`, a bare image name ([`super::bare_images`]), a kustomize `images:`
//! entry. An app no object names is neither built nor pushed for that environment (ARCHITECTURE.md,
//! "the image stage"). Read from the objects already rendered: nothing is rendered again. An
//! environment that renders no object at all (a repository that only builds its images) uses
//! every app.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use gitship_foundation::model::{ImageRef, Manifest};

/// The apps of `images` whose image one of `manifests` names; every app when there is no
/// object.
pub fn used_apps(manifests: &[Manifest], images: &BTreeMap<String, ImageRef>) -> BTreeSet<String> {
    if manifests.is_empty() {
        return images.keys().cloned().collect();
    }
    let tagged: Vec<(&String, String)> = images
        .iter()
        .map(|(app, image)| (app, image.tagged()))
        .collect();
    let mut used = BTreeSet::new();
    for manifest in manifests {
        visit_strings(&manifest.object, &mut |text| {
            for (app, reference) in &tagged {
                if text.contains(reference.as_str()) {
                    used.insert((*app).clone());
                }
            }
        });
        if used.len() == tagged.len() {
            break;
        }
    }
    used
}

/// Call `found` on every string of `value` (keys are names, not images: not visited).
fn visit_strings(value: &Value, found: &mut dyn FnMut(&str)) {
    match value {
        Value::String(text) => found(text),
        Value::Array(items) => items.iter().for_each(|item| visit_strings(item, found)),
        Value::Object(object) => object.values().for_each(|item| visit_strings(item, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitship_foundation::diagnostics::Location;
    use serde_json::json;

    #[test]
    fn an_app_is_used_where_an_object_names_its_image() {
        let images: BTreeMap<String, ImageRef> = ["web", "web-api", "admin"]
            .iter()
            .map(|app| (app.to_string(), ImageRef::new("r.example/shop", app, "t1")))
            .collect();
        let manifest = |object| Manifest {
            source: Location::new("k8s/a.yaml", 1, 1),
            object,
        };
        let manifests = [
            manifest(
                json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
                    {"image": "r.example/shop/web:t1@sha256:0123"}
                ]}}}}),
            ),
            manifest(
                json!({"kind": "ConfigMap", "data": {"r.example/shop/admin:t1": "a key is no use"}}),
            ),
        ];
        let used = used_apps(&manifests, &images);
        assert_eq!(used, BTreeSet::from(["web".to_string()]));
        let in_a_value = [manifest(
            json!({"data": {"API": "r.example/shop/web-api:t1"}}),
        )];
        assert_eq!(
            used_apps(&in_a_value, &images),
            BTreeSet::from(["web-api".to_string()])
        );
        // No object at all: a repository that only builds its images.
        assert_eq!(used_apps(&[], &images).len(), 3);
    }
}
