//! `gitship ci init github|gitlab`: write the CI configuration ([`crate::ops::ci_init`]) and say
//! what was written and which secrets to set.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::ci_init;
use crate::ops::ci_init::CiInitRequest;
use crate::output::OutputFormat;

pub fn init(ctx: &Context, settings: CiInitRequest) -> Result<Outcome> {
    let report = ci_init::ci_init(ctx.global.workspace.repo.as_deref(), &settings)?;
    if ctx.printer.format == OutputFormat::Json {
        ctx.printer.data(&serde_json::to_string_pretty(&report)?)?;
        return Ok(Outcome::Success);
    }
    let spec = &report.spec;
    let mut out = String::new();
    for file in &report.files {
        out.push_str(&format!("wrote {}\n", file.display()));
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
    out.push_str(&format!(
        "plan on pull requests: {}\ndeploy from `{}`: {}\ndrift on a schedule: {}\n",
        spec.plan.join(", "),
        spec.branch,
        deploys.join(", "),
        spec.drift.join(", ")
    ));
    let secrets: Vec<String> = ci_init::secrets(spec, settings.platform)
        .into_iter()
        .flat_map(|group| group.names)
        .collect();
    let scope = match settings.platform {
        ci_init::Platform::Github => {
            " as environment secrets (the file's header says what each holds, and in which environments)"
        }
        ci_init::Platform::Gitlab => " (the file's header says what each holds)",
    };
    out.push_str(&format!("secrets to set: {}{scope}\n", secrets.join(", ")));
    ctx.printer.data(&out)?;
    Ok(Outcome::Success)
}
