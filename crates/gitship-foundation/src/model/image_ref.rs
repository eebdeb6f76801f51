//! An app's image reference, the one type every layer passes around for it.
//!
//! The image stage makes them (`image::image_refs`: the registry and the app's content tag, once
//! per operation); `render` substitutes them for `${images.<app>}`, the deploy record and a saved
//! plan keep them. Only [`ImageRef::new`] puts `<registry>/<app>` together.

use serde::{Deserialize, Serialize};

/// An app's image: `<registry>/<app>:<tag>`, optionally pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub app: String,
    /// `<registry>/<app>`.
    pub repository: String,
    pub tag: String,
    /// `sha256:...` once the image was pushed.
    pub digest: Option<String>,
}

impl ImageRef {
    /// The image of `app` under `registry` (an image repository prefix, as an environment's
    /// `registry` is), tagged `tag`, without a digest.
    pub fn new(registry: &str, app: &str, tag: impl Into<String>) -> ImageRef {
        ImageRef {
            app: app.to_string(),
            repository: format!("{}/{app}", registry.trim_end_matches('/')),
            tag: tag.into(),
            digest: None,
        }
    }

    /// `<repository>:<tag>`: what is built and pushed.
    pub fn tagged(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }

    /// `<repository>:<tag>` or `<repository>:<tag>@<digest>`: what the manifests run.
    pub fn reference(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}@{digest}", self.tagged()),
            None => self.tagged(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_registry_app_tag_and_digest() {
        let mut image = ImageRef::new("ghcr.io/acme/blog", "web", "0123456789ab");
        assert_eq!(image.repository, "ghcr.io/acme/blog/web");
        assert_eq!(image.tagged(), "ghcr.io/acme/blog/web:0123456789ab");
        assert_eq!(image.reference(), image.tagged());
        image.digest = Some("sha256:abc".into());
        assert_eq!(
            image.reference(),
            "ghcr.io/acme/blog/web:0123456789ab@sha256:abc"
        );
        assert_eq!(
            ImageRef::new("r.local/", "api", "t").repository,
            "r.local/api"
        );
    }
}
