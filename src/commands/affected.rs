//! `gitship affected --since REF`: which environments and apps the commits since `REF` touch
//! ([`crate::ops::affected`]), as a summary and one line per changed file, or JSON.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::affected::Touches;
use crate::output::OutputFormat;

pub fn run(ctx: &Context, since: &str) -> Result<Outcome> {
    let affected = crate::ops::affected::affected(ctx.global.workspace.repo.as_deref(), since)?;
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
    let mut out = format!(
        "since `{}` (base {}, HEAD {}): {} file{} changed{}\nenvironments: {}\napps: {}\n",
        affected.since,
        crate::git::short_sha(&affected.base),
        crate::git::short_sha(&affected.head),
        affected.files.len(),
        if affected.files.len() == 1 { "" } else { "s" },
        if affected.everything {
            "; `gitship.yaml` changed: everything is affected"
        } else {
            ""
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
