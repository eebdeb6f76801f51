//! `gitship env new NAME --from ENV --ephemeral`'s report: the preview as recorded.

use super::CommandReport;
use crate::ops::preview::PreviewReport;

impl CommandReport for PreviewReport {
    const KIND: &'static str = "env-new-ephemeral";

    fn human(&self, _color: bool) -> String {
        let preview = &self.preview;
        let mut out = format!(
            "{} preview `{}` of `{}`: namespace `{}`, expires {}\n",
            self.action,
            preview.name,
            preview.base,
            preview.namespace,
            preview
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        for (key, value) in &preview.values {
            out.push_str(&format!("  values.{key} = {value}\n"));
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = format!(
            "Preview `{}` of `{}` {}: namespace `{}`, expires {}.\n",
            self.preview.name,
            self.preview.base,
            self.action,
            self.preview.namespace,
            self.preview
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        for (key, value) in &self.preview.values {
            out.push_str(&format!("- `values.{key}` = `{value}`\n"));
        }
        out
    }
}
