//! The render's image notes as entries of the cross-layer plan. (The image stage's plan becomes
//! [`crate::plan::ImageChange`]s in `ops`, where the stages meet: the plan model takes what it
//! prints as plain data.)

use crate::plan::ImageSubstitution;
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
