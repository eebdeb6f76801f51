//! `gitship envs`: list environments (name, namespace, cluster context).

use anyhow::Result;

use crate::commands::Context;
use crate::exit::Outcome;
use crate::output::OutputFormat;

pub fn run(ctx: &Context) -> Result<Outcome> {
    let listing = crate::ops::envs::environments(ctx.global.workspace.repo.as_deref())?;
    let rows = &listing.environments;
    let text = match ctx.printer.format {
        OutputFormat::Json => serde_json::to_string_pretty(rows)?,
        OutputFormat::Markdown => {
            let mut out =
                String::from("| environment | namespace | context |\n| --- | --- | --- |\n");
            for row in rows {
                out.push_str(&format!(
                    "| {} | {} | {} |\n",
                    row.name,
                    row.namespace,
                    row.context.as_deref().unwrap_or("(current)")
                ));
            }
            out
        }
        OutputFormat::Human => {
            if rows.is_empty() {
                ctx.printer.status(&format!(
                    "no environments: create `{}/<env>.yaml`",
                    listing.config_dir.display()
                ));
                return Ok(Outcome::Success);
            }
            let table: Vec<[String; 3]> =
                std::iter::once(["ENVIRONMENT".into(), "NAMESPACE".into(), "CONTEXT".into()])
                    .chain(rows.iter().map(|row| {
                        [
                            row.name.clone(),
                            row.namespace.clone(),
                            row.context.clone().unwrap_or_else(|| "(current)".into()),
                        ]
                    }))
                    .collect();
            let widths: Vec<usize> = (0..3)
                .map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            let mut out = String::new();
            for (index, row) in table.iter().enumerate() {
                let line = format!(
                    "{:w0$}  {:w1$}  {}",
                    row[0],
                    row[1],
                    row[2],
                    w0 = widths[0],
                    w1 = widths[1]
                );
                let line = line.trim_end().to_string();
                out.push_str(&if index == 0 {
                    ctx.printer.paint(crate::output::style::HEADER, &line)
                } else {
                    line
                });
                out.push('\n');
            }
            out
        }
    };
    ctx.printer.data(&text)?;
    Ok(Outcome::Success)
}
