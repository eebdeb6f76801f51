//! `gitship render`'s report: the manifests as multi-document YAML.

use super::CommandReport;
use crate::ops::render::{FORMAT_VERSION, RenderReport};

impl CommandReport for RenderReport {
    const KIND: &'static str = "render";
    const FORMAT_VERSION: u32 = FORMAT_VERSION;

    fn human(&self, _color: bool) -> String {
        self.yaml.clone()
    }
}
