//! `gitship render`'s report: the manifests as multi-document YAML.

use super::CommandReport;
use crate::ops::render::RenderReport;

impl CommandReport for RenderReport {
    const KIND: &'static str = "render";

    fn human(&self, _color: bool) -> String {
        self.yaml.clone()
    }
}
