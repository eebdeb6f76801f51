//! `gitship affected --since REF`: which environments and apps the commits since `REF` touch
//! ([`crate::ops::affected`]), as a summary and one line per changed file, or JSON.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::Session;
use crate::ops::affected::{DEPLOYED, Touches};
use crate::ops::session::SessionTarget;
use crate::output::OutputFormat;

pub async fn run(ctx: &Context, since: &str, sandbox: bool) -> Result<Outcome> {
    let affected = match since.strip_prefix(DEPLOYED) {
        Some(env) => {
            let target = SessionTarget {
                env: env.to_string(),
                sandbox,
                terraform_outputs: None,
            };
            let session = Session::open(&ctx.global.workspace, &ctx.printer, &target)?;
            crate::ops::affected::since_deployed(&session).await?
        }
        None => crate::ops::affected::affected(ctx.global.workspace.repo.as_deref(), since)?,
    };
    if ctx.printer.format == OutputFormat::Json {
        ctx.printer
            .data(&serde_json::to_string_pretty(&affected)?)?;
        return Ok(Outcome::Success);
    }
    let list = |names: &[String]| {
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    };
    let base = match &affected.base {
        Some(base) => crate::git::short_sha(base).to_string(),
        None => "none: never deployed".to_string(),
    };
    let mut out = format!(
        "since `{}` (base {base}, HEAD {}): {} file{} changed{}\nenvironments: {}\napps: {}\n",
        affected.since,
        crate::git::short_sha(&affected.head),
        affected.files.len(),
        if affected.files.len() == 1 { "" } else { "s" },
        match (affected.everything, &affected.base) {
            (true, None) => "; never deployed: everything is affected",
            (true, Some(_)) => "; `gitship.yaml` changed: everything is affected",
            (false, _) => "",
        },
        list(&affected.environments),
        list(&affected.apps),
    );
    let width = affected
        .files
        .iter()
        .map(|f| f.path.len())
        .max()
        .unwrap_or(0);
    for file in &affected.files {
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
    ctx.printer.data(&out)?;
    Ok(Outcome::Success)
}
