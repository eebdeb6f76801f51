//! `gitship gc [--yes] [--dry-run]`: destroy every expired preview ([`crate::ops::gc`]).

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;

pub async fn run(ctx: &Context, yes: bool, dry_run: bool) -> Result<Outcome> {
    let confirm = |expired: &[crate::ops::envs::PreviewSummary]| {
        if yes {
            return Ok(());
        }
        let names: Vec<String> = expired.iter().map(|p| format!("`{}`", p.name)).collect();
        crate::commands::confirm(
            &format!(
                "destroy {} expired preview(s): {} (their objects, namespaces and Terraform state)?",
                expired.len(),
                names.join(", ")
            ),
            "destroying expired previews",
        )
    };
    let report = crate::ops::gc::gc(&ctx.global.workspace, &ctx.printer, dry_run, confirm).await?;
    for cluster in &report.unreachable {
        ctx.printer
            .warn(&format!("could not look for previews in {cluster}"));
    }
    ctx.print(&report)?;
    if !report.failed.is_empty() {
        return Err(gitship_foundation::diagnostics::UserError::new(
            format!(
                "{} expired preview(s) could not be destroyed",
                report.failed.len()
            ),
            "see why above; run `gitship destroy NAME` for each, or `gitship gc` again",
        )
        .into());
    }
    Ok(Outcome::Success)
}
