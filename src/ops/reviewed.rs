//! `deploy ENV --reviewed PLAN.json [--require-reviewed]`: the plan reviewed on the pull
//! request is the plan applied (the Atlantis way).
//!
//! The deploy plans again on the runner ([`crate::ops::plan::plan`], the same plan a person
//! would see) and compares it with the reviewed report ([`crate::plan::reviewed::compare`]).
//! When they are the same, it says "applying the plan reviewed in <run>" and applies that
//! fresh plan as a saved plan: its manifests, its Terraform planfile, stale when a live object
//! moves before the apply. When they differ, it names every difference (the tree moved, or the
//! same tree met a changed world) and applies the fresh plan, saying so, or, with
//! `--require-reviewed`, refuses before anything changes. Either way what is applied was planned
//! here and printed; the report, an artifact anyone who reads the repository can read (it holds
//! no Secret value and no planfile), only says what people reviewed.

use std::path::PathBuf;

use anyhow::Result;

use crate::ops::pin::Target;
use crate::ops::session::Session;
use crate::plan::report::CommandReport as _;
use crate::plan::saved::{SavedPlan, StaleReason};
use gitship_foundation::diagnostics::UserError;

/// `--reviewed FILE` and `--require-reviewed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewedPlan {
    /// The reviewed plan's JSON report (`plan --report FILE`, or `plan -o json`).
    pub report: PathBuf,
    /// Refuse to deploy a plan that is not the reviewed one.
    pub require: bool,
}

/// The plan made now, ready to deploy as a saved plan.
pub struct Fresh {
    pub saved: SavedPlan,
    /// Where its Terraform planfile is.
    pub dir: PathBuf,
}

/// Plan `session` again and compare it with `reviewed`; the fresh plan to apply, or (with
/// `--require-reviewed`) the error naming how it differs.
pub async fn fresh_plan(session: &Session, reviewed: &ReviewedPlan) -> Result<Fresh> {
    let environment = &session.config.name;
    let report = crate::plan::reviewed::load(&reviewed.report, environment, session.sandbox)?;
    let outcome = crate::ops::plan::plan(session, Target::Session).await?;
    let differences = crate::plan::reviewed::compare(&report, &outcome.plan);
    let place = match &report.ci_run {
        Some(run) => run.clone(),
        None => format!("`{}`", reviewed.report.display()),
    };
    if differences.is_empty() {
        let tree = outcome.plan.tree.as_deref().unwrap_or_default();
        session.printer.status(&format!(
            "applying the plan reviewed in {place}: the same tree ({}) and the same changes",
            crate::git::short_sha(tree)
        ));
    } else {
        let listed: String = differences.iter().map(|d| format!("\n  - {d}")).collect();
        if reviewed.require {
            return Err(UserError::new(
                format!("the plan of `{environment}` is not the plan reviewed in {place}:{listed}"),
                "review the change again (plan it in a pull request), or deploy without `--require-reviewed` to apply the plan made now",
            )
            .into());
        }
        session.printer.warn(&format!(
            "the plan of `{environment}` is not the plan reviewed in {place}: applying the plan made now, shown below{listed}"
        ));
        session.printer.status(outcome.plan.human(false).trim_end());
    }
    let mut saved = crate::ops::plan::saved_plan(&outcome, &session.repo.root);
    let dir = match &outcome.planfile {
        Some(planfile) => {
            saved.terraform_planfile = planfile
                .file_name()
                .map(|name| name.to_string_lossy().into_owned());
            planfile.parent().map(PathBuf::from).unwrap_or_default()
        }
        None => PathBuf::new(),
    };
    Ok(Fresh { saved, dir })
}

/// The error for a plan made now that a live object outran before the deploy applied it.
pub fn stale(reason: StaleReason) -> anyhow::Error {
    UserError::new(
        format!("the plan made for this deploy is stale: {reason}"),
        "something changed the environment while the deploy planned: deploy again",
    )
    .into()
}
