//! Image digests added to manifests rendered before the images were pushed.
//!
//! A saved plan (`plan --out`) holds manifests rendered while an app's image was still to be
//! built: they name it by its content tag alone (`<registry>/<app>:<tag>`). The deploy that
//! builds it learns its digest; a deploy of the work tree renders with it
//! (`<registry>/<app>:<tag>@<digest>`), and so must a deploy of the saved plan, or the cluster
//! runs a tag that `drift` (which renders with the digest) reports until the next deploy.
//! [`pin_digests`] adds the digest wherever the render put the tagged reference, and changes
//! nothing else of what was reviewed.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::render::bare_images::templating_off;
use gitship_foundation::model::{ImageRef, Manifest};

/// In every string of `manifests`, the reference `<repository>:<tag>` of each image of `images`
/// that has a digest becomes `<repository>:<tag>@<digest>`, as a render with that digest writes
/// it. A reference already pinned, a longer tag, another repository ending in the same name and
/// objects annotated `gitship.dev/template: "off"` (never templated) are left alone. Returns how
/// many strings changed.
pub fn pin_digests(manifests: &mut [Manifest], images: &BTreeMap<String, ImageRef>) -> usize {
    let pins: Vec<(String, String)> = images
        .values()
        .filter_map(|image| {
            let digest = image.digest.as_ref()?;
            let tagged = format!("{}:{}", image.repository, image.tag);
            let pinned = format!("{tagged}@{digest}");
            Some((tagged, pinned))
        })
        .collect();
    if pins.is_empty() {
        return 0;
    }
    manifests
        .iter_mut()
        .filter(|manifest| !templating_off(&manifest.object))
        .map(|manifest| pin_value(&mut manifest.object, &pins))
        .sum()
}

/// [`pin_digests`] over one value and everything in it.
fn pin_value(value: &mut Value, pins: &[(String, String)]) -> usize {
    match value {
        Value::String(text) => {
            let mut changed = false;
            for (tagged, pinned) in pins {
                if let Some(replaced) = pin_text(text, tagged, pinned) {
                    *text = replaced;
                    changed = true;
                }
            }
            usize::from(changed)
        }
        Value::Array(items) => items.iter_mut().map(|item| pin_value(item, pins)).sum(),
        Value::Object(fields) => fields.values_mut().map(|item| pin_value(item, pins)).sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// `text` with every whole occurrence of `tagged` replaced by `pinned`; `None` when there is
/// none. Whole: not inside a longer name (a character of a reference before it) nor a longer
/// tag or an already pinned reference (a tag character or `@` after it).
fn pin_text(text: &str, tagged: &str, pinned: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + pinned.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(index) = rest.find(tagged) {
        let (before, after) = (&rest[..index], &rest[index + tagged.len()..]);
        let whole = !before.chars().next_back().is_some_and(in_reference)
            && !after
                .chars()
                .next()
                .is_some_and(|c| in_reference(c) || c == '@');
        out.push_str(before);
        out.push_str(if whole { pinned } else { tagged });
        changed |= whole;
        rest = after;
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// A character an image reference's name or tag may hold.
fn in_reference(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitship_foundation::diagnostics::Location;
    use serde_json::json;

    fn image(app: &str, digest: Option<&str>) -> ImageRef {
        ImageRef {
            app: app.into(),
            repository: format!("registry.local/{app}"),
            tag: "ae4f0d5570e2".into(),
            digest: digest.map(str::to_string),
        }
    }

    fn manifest(object: Value) -> Manifest {
        Manifest {
            object,
            source: Location::new("infrastructure/kubernetes/web.yaml", 1, 1),
        }
    }

    #[test]
    fn tagged_references_get_the_digest_everywhere_a_render_puts_them() {
        let images = BTreeMap::from([
            ("web".to_string(), image("web", Some("sha256:1"))),
            ("api".to_string(), image("api", None)),
        ]);
        let mut manifests = vec![manifest(json!({
            "kind": "Deployment",
            "spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": "registry.local/web:ae4f0d5570e2",
                 "env": [{"name": "IMAGE", "value": "built from registry.local/web:ae4f0d5570e2"}]},
                {"name": "api", "image": "registry.local/api:ae4f0d5570e2"},
            ]}}}
        }))];
        assert_eq!(pin_digests(&mut manifests, &images), 2);
        let containers = &manifests[0].object["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers[0]["image"],
            "registry.local/web:ae4f0d5570e2@sha256:1"
        );
        assert_eq!(
            containers[0]["env"][0]["value"],
            "built from registry.local/web:ae4f0d5570e2@sha256:1"
        );
        assert_eq!(
            containers[1]["image"], "registry.local/api:ae4f0d5570e2",
            "no digest known: left as rendered"
        );
    }

    #[test]
    fn pinned_longer_foreign_and_untemplated_references_are_left_alone() {
        let images = BTreeMap::from([("web".to_string(), image("web", Some("sha256:1")))]);
        let texts = [
            "registry.local/web:ae4f0d5570e2@sha256:0",
            "registry.local/web:ae4f0d5570e2-debug",
            "mirror.registry.local/web:ae4f0d5570e2x",
            "other/registry.local/web:ae4f0d5570e2",
        ];
        let mut manifests: Vec<Manifest> = texts
            .iter()
            .map(|text| manifest(json!({"data": {"image": text}})))
            .collect();
        manifests.push(manifest(json!({
            "metadata": {"annotations": {"gitship.dev/template": "off"}},
            "data": {"image": "registry.local/web:ae4f0d5570e2"}
        })));
        assert_eq!(pin_digests(&mut manifests, &images), 0);
        for (manifest, text) in manifests.iter().zip(texts) {
            assert_eq!(manifest.object["data"]["image"], text);
        }
        // Twice in one string, and idempotent.
        let mut twice = vec![manifest(json!(
            "registry.local/web:ae4f0d5570e2 registry.local/web:ae4f0d5570e2"
        ))];
        assert_eq!(pin_digests(&mut twice, &images), 1);
        let once = twice[0].object.clone();
        assert_eq!(pin_digests(&mut twice, &images), 0);
        assert_eq!(twice[0].object, once);
    }
}
