//! `gitship destroy`'s report: each step with its outcome, then what happened to each object
//! and record (the plan was shown on stderr before the question).

use std::fmt::Write as _;

use super::CommandReport;
use crate::ops::destroy::DestroyReport;
use gitship_foundation::output::{paint, style};
use gitship_kube::destroy::Removal;

impl CommandReport for DestroyReport {
    const KIND: &'static str = "destroy";

    fn human(&self, color: bool) -> String {
        let mut out = paint(
            color,
            style::HEADER,
            &format!("Destroyed `{}`", self.environment),
        );
        out.push('\n');
        for step in &self.steps {
            let _ = writeln!(
                out,
                "  {:<10} {:<12} {}",
                step.step.as_str(),
                step.outcome,
                step.detail
            );
        }
        for object in &self.objects {
            let _ = writeln!(out, "  {}: {}", word(object.removal), object.id);
        }
        for record in &self.records {
            let _ = writeln!(out, "  {}: {}", word(record.removal), record.name);
        }
        out
    }
}

fn word(removal: Removal) -> &'static str {
    match removal {
        Removal::Deleted => "deleted",
        Removal::AlreadyGone => "already gone",
        Removal::Kept => "kept",
    }
}
