//! `gitship init`'s and `gitship ci init`'s reports: what was found, assumed and written.

use std::fmt::Write as _;

use super::CommandReport;
use crate::ops::ci_init::{self, CiInitReport, Platform};
use crate::ops::init::InitReport;

impl CommandReport for InitReport {
    const KIND: &'static str = "init";

    fn human(&self, _color: bool) -> String {
        let mut out = format!("environment `{}`:\n", self.environment);
        for (heading, lines) in [
            ("found", &self.found),
            ("will deploy", &self.deploy),
            ("will build", &self.build),
            ("will not use", &self.not_used),
            ("assumed", &self.assumed),
        ] {
            for line in lines {
                let _ = writeln!(out, "  {heading}: {line}");
            }
        }
        if self.build.is_empty() {
            let _ = writeln!(out, "  will build: nothing (no app)");
        }
        for file in &self.written {
            let _ = writeln!(out, "wrote: {}", file.display());
        }
        if self.edit.is_empty() {
            let _ = writeln!(
                out,
                "checked: `gitship validate {}` passes",
                self.environment
            );
        } else {
            for line in &self.edit {
                let _ = writeln!(out, "edit: {line}");
            }
        }
        let _ = writeln!(out, "next:");
        for command in &self.next {
            let _ = writeln!(out, "  {command}");
        }
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
            Platform::GitHub => {
                " as environment secrets (the file's header says what each holds, and in which environments)"
            }
            Platform::GitLab => " (the file's header says what each holds)",
        };
        let _ = writeln!(out, "secrets to set: {}{scope}", secrets.join(", "));
        out
    }
}
