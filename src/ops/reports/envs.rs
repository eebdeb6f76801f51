//! `gitship envs`'s report: a table of the environments.

use super::CommandReport;
use crate::ops::envs::Listing;
use gitship_foundation::output::{paint, style};

impl CommandReport for Listing {
    const KIND: &'static str = "envs";

    /// Empty when there is no environment (the command says how to create one, on stderr).
    fn human(&self, color: bool) -> String {
        if self.environments.is_empty() {
            return String::new();
        }
        let table: Vec<[String; 3]> =
            std::iter::once(["ENVIRONMENT".into(), "NAMESPACE".into(), "CONTEXT".into()])
                .chain(
                    self.environments
                        .iter()
                        .map(|row| [row.name.clone(), row.namespace.clone(), context(row)]),
                )
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
                paint(color, style::HEADER, &line)
            } else {
                line
            });
            out.push('\n');
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::from("| environment | namespace | context |\n| --- | --- | --- |\n");
        for row in &self.environments {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                row.name,
                row.namespace,
                context(row)
            ));
        }
        out
    }
}

/// The context, `(current)`, or the Terraform output the cluster comes from.
fn context(row: &crate::ops::envs::EnvironmentSummary) -> String {
    match (&row.context, &row.cluster_output) {
        (Some(context), _) => context.clone(),
        (None, Some(output)) => format!("(terraform output `{output}`)"),
        (None, None) => "(current)".to_string(),
    }
}
