//! The image stage's results as entries of the cross-layer plan.

use crate::image::{ImagePlan, PlannedAction};
use crate::plan::{ImageAction, ImageChange, ImageSubstitution};
use crate::render::bare_images::BareImage;

/// A bare image name the render replaced, as a plan entry.
pub fn image_substitution(bare: &BareImage) -> ImageSubstitution {
    ImageSubstitution {
        object: bare.object.to_string(),
        container: bare.container.clone(),
        source: format!("{}:{}", bare.source.file.display(), bare.source.line),
        image: bare.app.clone(),
        reference: bare.reference.clone(),
    }
}

/// The image section of the cross-layer plan: reused images carry their digest.
pub fn image_change(image: &ImagePlan) -> ImageChange {
    match &image.action {
        PlannedAction::Build { reason } => ImageChange {
            app: image.app.clone(),
            reference: image.reference.clone(),
            action: ImageAction::Build,
            reason: Some(reason.clone()),
        },
        PlannedAction::Reuse { digest } => ImageChange {
            app: image.app.clone(),
            reference: format!("{}@{digest}", image.reference),
            action: ImageAction::Reuse,
            reason: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_become_plan_image_changes() {
        let reuse = ImagePlan {
            app: "api".into(),
            reference: "r/api:t".into(),
            action: PlannedAction::Reuse {
                digest: "sha256:abc".into(),
            },
        };
        let change = image_change(&reuse);
        assert_eq!(change.reference, "r/api:t@sha256:abc");
        assert_eq!(change.action, ImageAction::Reuse);
        let build = ImagePlan {
            app: "web".into(),
            reference: "r/web:t".into(),
            action: PlannedAction::Build {
                reason: "tag `t` missing in `r`".into(),
            },
        };
        assert_eq!(
            image_change(&build).reason.as_deref(),
            Some("tag `t` missing in `r`")
        );
    }
}
