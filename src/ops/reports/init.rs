//! `gitship init`'s and `gitship ci init`'s reports: what was found, assumed and written.

use std::fmt::Write as _;

use super::CommandReport;
use crate::ops::ci_init::{self, CiInitReport, Platform};
use crate::ops::init::InitReport;

impl CommandReport for InitReport {
    const KIND: &'static str = "init";

    fn human(&self, _color: bool) -> String {
        let mut out = String::new();
        for line in &self.found {
            let _ = writeln!(out, "found: {line}");
        }
        for line in &self.assumed {
            let _ = writeln!(out, "assumed: {line}");
        }
        for file in &self.written {
            let _ = writeln!(out, "wrote: {}", file.display());
        }
        let _ = writeln!(out, "next: {}", self.next);
        out
    }
}

impl CommandReport for CiInitReport {
    const KIND: &'static str = "ci init";

    fn human(&self, _color: bool) -> String {
        let spec = &self.spec;
        let mut out = String::new();
        for file in &self.files {
            let _ = writeln!(out, "wrote {}", file.display());
        }
        let deploys: Vec<String> = spec
            .deploy
            .iter()
            .map(|d| {
                if d.agent {
                    format!("{} (build only: the agent applies)", d.name)
                } else {
                    d.name.clone()
                }
            })
            .collect();
        let _ = write!(
            out,
            "plan on pull requests: {}\ndeploy from `{}`: {}\ndrift on a schedule: {}\n",
            spec.plan.join(", "),
            spec.branch,
            deploys.join(", "),
            spec.drift.join(", ")
        );
        let secrets: Vec<String> = ci_init::secrets(spec, self.platform)
            .into_iter()
            .flat_map(|group| group.names)
            .collect();
        let scope = match self.platform {
            Platform::Github => {
                " as environment secrets (the file's header says what each holds, and in which environments)"
            }
            Platform::Gitlab => " (the file's header says what each holds)",
        };
        let _ = writeln!(out, "secrets to set: {}{scope}", secrets.join(", "));
        out
    }
}
