//! `gitship build ENV`: build and push the images of the environment's apps whose content tag is
//! missing from the registry, reuse the others, and print every app's image reference.

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::ops::build::BuildInputs;
use crate::ops::build::{BuildAction, BuildResult};
use crate::output::OutputFormat;

pub async fn run(ctx: &Context, env: &str, settings: BuildInputs) -> Result<Outcome> {
    let results = crate::ops::build::build(
        ctx.global.workspace.repo.as_deref(),
        env,
        &settings,
        &ctx.printer,
    )
    .await?;
    ctx.printer.status(&summary(&results));
    ctx.printer.data(&render(&results, ctx.printer.format)?)?;
    Ok(Outcome::Success)
}

fn summary(results: &[BuildResult]) -> String {
    let built = results
        .iter()
        .filter(|r| r.action == BuildAction::Built)
        .count();
    let plural = |n: usize| if n == 1 { "image" } else { "images" };
    format!(
        "{built} {} built and pushed, {} reused",
        plural(built),
        results.len() - built
    )
}

fn render(results: &[BuildResult], format: OutputFormat) -> Result<String> {
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(results)?,
        OutputFormat::Markdown => {
            let mut text = String::from("| app | action | image |\n| --- | --- | --- |\n");
            for result in results {
                text.push_str(&format!(
                    "| {} | {} | `{}` |\n",
                    result.app,
                    action_word(result),
                    result.reference
                ));
            }
            text
        }
        OutputFormat::Human => {
            let width = results.iter().map(|r| r.app.len()).max().unwrap_or(0);
            results
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
    })
}

fn action_word(result: &BuildResult) -> &'static str {
    match result.action {
        BuildAction::Built => "built",
        BuildAction::Reused => "reused",
    }
}
