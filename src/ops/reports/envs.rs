//! `gitship envs`'s report: a table of the environments, then one of the live previews.

use super::CommandReport;
use crate::ops::envs::{Listing, PreviewSummary};
use gitship_foundation::output::{paint, style};

impl CommandReport for Listing {
    const KIND: &'static str = "envs";

    /// Empty when there is no environment (the command says how to create one, on stderr).
    fn human(&self, color: bool) -> String {
        if self.environments.is_empty() {
            return String::new();
        }
        let mut rows = vec![
            ["ENVIRONMENT", "NAMESPACE", "CONTEXT"]
                .map(String::from)
                .to_vec(),
        ];
        rows.extend(
            self.environments
                .iter()
                .map(|row| vec![row.name.clone(), row.namespace.clone(), context(row)]),
        );
        let mut out = table(&rows, color);
        if !self.previews.is_empty() {
            let mut rows = vec![
                ["PREVIEW", "BASE", "NAMESPACE", "AGE", "EXPIRES"]
                    .map(String::from)
                    .to_vec(),
            ];
            rows.extend(self.previews.iter().map(|preview| {
                vec![
                    preview.name.clone(),
                    preview.base.clone(),
                    preview.namespace.clone(),
                    span(preview.age_seconds),
                    expiry(preview),
                ]
            }));
            out.push('\n');
            out.push_str(&table(&rows, color));
        }
        out.push_str(&unreadable(self));
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
        if !self.previews.is_empty() {
            out.push_str("\n| preview | base | namespace | age | expires |\n| --- | --- | --- | --- | --- |\n");
            for preview in &self.previews {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    preview.name,
                    preview.base,
                    preview.namespace,
                    span(preview.age_seconds),
                    expiry(preview)
                ));
            }
        }
        out.push_str(&unreadable(self));
        out
    }
}

/// One line per preview record that does not decode: which namespace, and why.
fn unreadable(listing: &Listing) -> String {
    listing
        .unreadable
        .iter()
        .map(|record| {
            format!(
                "\nunreadable preview record `{}` of `{}` (namespace `{}`): {}; `gc` leaves it \
                 alone, `gitship env new {} --from {} --ephemeral` records it again\n",
                record.name, record.base, record.namespace, record.why, record.name, record.base
            )
        })
        .collect()
}

/// Aligned columns, the header painted.
fn table(rows: &[Vec<String>], color: bool) -> String {
    let columns = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (index, row) in rows.iter().enumerate() {
        let line = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect::<Vec<_>>()
            .join("  ");
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

/// `45s`, `12m`, `3h20m`, `2d4h`.
fn span(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

fn expiry(preview: &PreviewSummary) -> String {
    let time = preview
        .expires_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if preview.expired {
        format!("{time} (expired)")
    } else {
        time
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_in_the_largest_units() {
        let cases = [
            (45, "45s"),
            (720, "12m"),
            (3_600, "1h"),
            (12_000, "3h20m"),
            (172_800, "2d"),
            (187_200, "2d4h"),
        ];
        for (seconds, shown) in cases {
            assert_eq!(span(seconds), shown);
        }
    }
}
