//! `gitship envs`: list environments (name, namespace, cluster context).

use anyhow::Result;

use crate::commands::Context;
use crate::diagnostics::UserError;
use crate::exit::Outcome;
use crate::repo::Repository;
use crate::settings::OutputFormat;

/// One row of the listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnvironmentSummary {
    pub name: String,
    pub namespace: String,
    /// `None`: the kubeconfig's current context.
    pub context: Option<String>,
    /// The config file, relative to the repository root.
    pub file: String,
}

pub fn run(ctx: &Context) -> Result<Outcome> {
    let repo = Repository::discover(ctx.global.repo.as_deref()).map_err(UserError::from)?;
    let mut rows = Vec::new();
    for name in repo.environments.keys() {
        let config = repo.load_env(name).map_err(UserError::from)?;
        rows.push(EnvironmentSummary {
            name: config.name.clone(),
            namespace: config.cluster.namespace.clone(),
            context: config.cluster.context.clone(),
            file: config.spans.file.display().to_string(),
        });
    }
    let text = match ctx.printer.format {
        OutputFormat::Json => serde_json::to_string_pretty(&rows)?,
        OutputFormat::Markdown => {
            let mut out =
                String::from("| environment | namespace | context |\n| --- | --- | --- |\n");
            for row in &rows {
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
                    repo.relative(&repo.layout.config_dir).display()
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
