//! `gitship affected`'s report: a summary and one line per changed file.

use super::CommandReport;
use crate::ops::affected::{Affected, Touches};

impl CommandReport for Affected {
    const KIND: &'static str = "affected";

    fn human(&self, _color: bool) -> String {
        let list = |names: &[String]| {
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            }
        };
        let base = match &self.base {
            Some(base) => crate::git::short_sha(base).to_string(),
            None => "none: never deployed".to_string(),
        };
        let mut out = format!(
            "since `{}` (base {base}, HEAD {}): {} file{} changed{}\nenvironments: {}\napps: {}\n",
            self.since,
            crate::git::short_sha(&self.head),
            self.files.len(),
            if self.files.len() == 1 { "" } else { "s" },
            match (self.everything, &self.base) {
                (true, None) => "; never deployed: everything is affected",
                (true, Some(_)) => "; `gitship.yaml` changed: everything is affected",
                (false, _) => "",
            },
            list(&self.environments),
            list(&self.apps),
        );
        let width = self.files.iter().map(|f| f.path.len()).max().unwrap_or(0);
        for file in &self.files {
            let what = match &file.touches {
                Touches::Settings => "gitship.yaml: everything".to_string(),
                Touches::Environment { name } => format!("environment `{name}`"),
                Touches::RemovedEnvironment { name } => {
                    format!("environment `{name}`, removed (its resources stay until destroyed)")
                }
                Touches::App { name } => format!("app `{name}`"),
                Touches::Manifests { environments } => {
                    format!("manifests of {}", list(environments))
                }
                Touches::Terraform => "Terraform: every environment".to_string(),
                Touches::Nothing => "nothing".to_string(),
            };
            out.push_str(&format!("  {:width$}  {what}\n", file.path));
        }
        out
    }
}
