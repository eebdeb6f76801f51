//! `gitship deploy`'s report: a per-kind table and a summary line.

use super::CommandReport;
use crate::ops::deploy::DeployOutput;

impl CommandReport for DeployOutput {
    const KIND: &'static str = "deploy";

    fn human(&self, _color: bool) -> String {
        let simulated = if self.sandbox {
            " (sandbox: simulated cluster)"
        } else {
            ""
        };
        let mut text = self.report.render_table();
        for hook in &self.report.hooks {
            text.push_str(&format!(
                "{} hook {}: {}\n",
                hook.phase.as_str(),
                hook.object,
                gitship_kube::hooks::outcome_text(hook)
            ));
        }
        let summary = if self.changed {
            self.report.summary_line()
        } else {
            format!("no changes ({})", self.report.summary_line())
        };
        text.push_str(&format!(
            "deployed `{}`{simulated}: {summary}\n",
            self.report.environment,
        ));
        text
    }
}
