//! `gitship build`'s report: one line (or table row) per app.

use super::CommandReport;
use crate::ops::build::{BuildAction, BuildReport, BuildResult};

impl CommandReport for BuildReport {
    const KIND: &'static str = "build";

    fn human(&self, _color: bool) -> String {
        let width = self.images.iter().map(|r| r.app.len()).max().unwrap_or(0);
        self.images
            .iter()
            .map(|r| {
                format!(
                    "{:<width$}  {:<6}  {}\n",
                    r.app,
                    action_word(r),
                    r.reference
                )
            })
            .collect()
    }

    fn markdown(&self) -> String {
        let mut text = String::from("| app | action | image |\n| --- | --- | --- |\n");
        for result in &self.images {
            text.push_str(&format!(
                "| {} | {} | `{}` |\n",
                result.app,
                action_word(result),
                result.reference
            ));
        }
        text
    }
}

fn action_word(result: &BuildResult) -> &'static str {
    match result.action {
        BuildAction::Built => "built",
        BuildAction::Reused => "reused",
    }
}
