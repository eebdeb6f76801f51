//! Skaffold-style image names: a container whose `image:` is exactly an app's name (`image:
//! adservice`, no registry, no tag, no digest) gets that app's built image, as Skaffold replaces
//! its artifacts' names. A repository written for Skaffold then deploys with no edits.
//!
//! Only the containers of Pod templates are looked at (`containers`, `initContainers` and
//! `ephemeralContainers` of a Pod's `spec`, of any object's `spec.template.spec`, and of a
//! CronJob-like `spec.jobTemplate.spec.template.spec`), after templating and kustomize, so the
//! name may come from either. An object annotated `gitship.dev/template: "off"` is left as
//! written. `images.bare_names: false` in `gitship.yaml` turns this off.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::render::TEMPLATE_ANNOTATION;
use gitship_foundation::diagnostics::Location;
use gitship_foundation::model::{ImageRef, Manifest, ObjectId};

/// The container lists of a Pod spec.
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// One container whose bare `image: <app>` became the app's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BareImage {
    pub object: ObjectId,
    /// Where the object is declared.
    pub source: Location,
    /// `spec.template.spec.containers[server]`: the container, by its name.
    pub container: String,
    /// The app, which was the image as written.
    pub app: String,
    /// What it became: `<registry>/<app>:<tag>` (with `@<digest>` once pushed).
    pub reference: String,
}

/// Replace bare app names in the containers of `manifests` by the apps' references; what was
/// replaced, in manifest order.
pub fn substitute(
    manifests: &mut [Manifest],
    images: &BTreeMap<String, ImageRef>,
) -> Vec<BareImage> {
    let mut found = Vec::new();
    if images.is_empty() {
        return found;
    }
    for manifest in manifests.iter_mut() {
        if templating_off(&manifest.object) {
            continue;
        }
        let id = manifest.id();
        let is_pod = id.kind == "Pod" && id.group.is_empty();
        let specs: &[&str] = if is_pod {
            &["/spec"]
        } else {
            &[
                "/spec/template/spec",
                "/spec/jobTemplate/spec/template/spec",
            ]
        };
        for pointer in specs {
            let Some(Value::Object(spec)) = manifest.object.pointer_mut(pointer) else {
                continue;
            };
            for list in CONTAINER_LISTS {
                let Some(Value::Array(containers)) = spec.get_mut(*list) else {
                    continue;
                };
                for (index, container) in containers.iter_mut().enumerate() {
                    let Some(Value::String(image)) = container.get("image") else {
                        continue;
                    };
                    let Some(reference) = images.get(image.as_str()) else {
                        continue;
                    };
                    let app = image.clone();
                    let reference = reference.reference();
                    let name = container
                        .get("name")
                        .and_then(Value::as_str)
                        .map_or_else(|| index.to_string(), str::to_string);
                    container["image"] = Value::String(reference.clone());
                    let path = pointer.trim_start_matches('/').replace('/', ".");
                    found.push(BareImage {
                        object: id.clone(),
                        source: manifest.source.clone(),
                        container: format!("{path}.{list}[{name}]"),
                        app,
                        reference,
                    });
                }
            }
        }
    }
    found
}

/// The object says `gitship.dev/template: "off"`.
pub(crate) fn templating_off(object: &Value) -> bool {
    object
        .pointer("/metadata/annotations")
        .and_then(|annotations| annotations.get(TEMPLATE_ANNOTATION))
        .and_then(Value::as_str)
        == Some("off")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn images() -> BTreeMap<String, ImageRef> {
        BTreeMap::from([(
            "adservice".to_string(),
            ImageRef {
                app: "adservice".into(),
                repository: "r.example/shop/adservice".into(),
                tag: "abc".into(),
                digest: None,
            },
        )])
    }

    fn manifest(object: Value) -> Manifest {
        Manifest {
            source: Location::new("m.yaml", 1, 1),
            object,
        }
    }

    #[test]
    fn bare_app_names_in_pod_templates_become_the_apps_images() {
        let pod_spec = json!({
            "initContainers": [{"name": "wait", "image": "adservice"}],
            "containers": [
                {"name": "server", "image": "adservice"},
                {"name": "tagged", "image": "adservice:1.0"},
                {"name": "registry", "image": "docker.io/adservice"},
                {"name": "other", "image": "busybox"},
            ],
        });
        let mut manifests = vec![
            manifest(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "ad", "namespace": "shop"},
                "spec": {"template": {"spec": pod_spec.clone()}},
            })),
            manifest(json!({
                "apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "nightly", "namespace": "shop"},
                "spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec.clone()}}}},
            })),
            manifest(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "debug", "namespace": "shop"},
                "spec": pod_spec.clone(),
            })),
            // Not a container: untouched.
            manifest(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "shop"},
                "data": {"image": "adservice"},
            })),
            // Templating off: as written.
            manifest(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "raw", "namespace": "shop",
                             "annotations": {"gitship.dev/template": "off"}},
                "spec": pod_spec,
            })),
        ];
        let found = substitute(&mut manifests, &images());
        let shown: Vec<String> = found
            .iter()
            .map(|b| format!("{} {} {} -> {}", b.object, b.container, b.app, b.reference))
            .collect();
        assert_eq!(
            shown,
            [
                "Deployment shop/ad spec.template.spec.containers[server] adservice -> r.example/shop/adservice:abc",
                "Deployment shop/ad spec.template.spec.initContainers[wait] adservice -> r.example/shop/adservice:abc",
                "CronJob shop/nightly spec.jobTemplate.spec.template.spec.containers[server] adservice -> r.example/shop/adservice:abc",
                "CronJob shop/nightly spec.jobTemplate.spec.template.spec.initContainers[wait] adservice -> r.example/shop/adservice:abc",
                "Pod shop/debug spec.containers[server] adservice -> r.example/shop/adservice:abc",
                "Pod shop/debug spec.initContainers[wait] adservice -> r.example/shop/adservice:abc",
            ]
        );
        let containers = &manifests[0].object["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "r.example/shop/adservice:abc");
        assert_eq!(containers[1]["image"], "adservice:1.0");
        assert_eq!(containers[2]["image"], "docker.io/adservice");
        assert_eq!(containers[3]["image"], "busybox");
        assert_eq!(manifests[3].object["data"]["image"], "adservice");
        assert_eq!(
            manifests[4].object["spec"]["containers"][0]["image"],
            "adservice"
        );
    }
}
