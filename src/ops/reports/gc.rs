//! `gitship gc`'s report: the expired previews destroyed (or to be), the failures, the kept.

use super::CommandReport;
use crate::ops::gc::GcReport;

impl CommandReport for GcReport {
    const KIND: &'static str = "gc";

    fn human(&self, _color: bool) -> String {
        let verb = if self.dry_run {
            "would destroy"
        } else {
            "destroyed"
        };
        let mut out = String::new();
        if self.destroyed.is_empty() && self.failed.is_empty() {
            out.push_str("no expired preview\n");
        }
        for preview in &self.destroyed {
            out.push_str(&format!(
                "{verb} preview `{}` of `{}` (namespace `{}`, expired {})\n",
                preview.name,
                preview.base,
                preview.namespace,
                preview
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        for failure in &self.failed {
            out.push_str(&format!(
                "failed to destroy preview `{}`: {}\n",
                failure.preview.name, failure.error
            ));
        }
        if !self.kept.is_empty() {
            let names: Vec<String> = self.kept.iter().map(|p| format!("`{}`", p.name)).collect();
            out.push_str(&format!("kept (not expired): {}\n", names.join(", ")));
        }
        for record in &self.unreadable {
            out.push_str(&format!(
                "left alone (unreadable record) preview `{}` of `{}` (namespace `{}`): {}\n",
                record.name, record.base, record.namespace, record.why
            ));
        }
        out
    }

    fn markdown(&self) -> String {
        self.human(false)
            .lines()
            .map(|line| format!("- {line}\n"))
            .collect()
    }
}
