//! `init`'s Helm charts: each directory of the repository holding `Chart.yaml` (not a chart
//! vendored inside another) becomes an item of `kubernetes.helm` in `config/<env>.yaml`
//! (`repo::helm`), with the chart's `values-<env>.yaml` when it has one.

use std::path::Path;

use super::{InitReport, join, relative, yaml_scalar};
use crate::repo::helm::CHART_FILE;

/// Directories never searched for charts.
const NOT_CHARTS: &[&str] = &["node_modules", "target", "vendor"];

/// How deep below the root a chart is looked for.
const MAX_DEPTH: usize = 6;

/// A chart `init` found, as `kubernetes.helm` will name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Chart {
    /// The chart directory, relative to the root (`.` for the root itself).
    pub dir: String,
    pub release: String,
    /// `values-<env>.yaml` of the chart, when it has one.
    pub values: Option<String>,
}

/// The charts of the repository at `root`, in path order, each with a distinct release name.
pub(super) fn find(root: &Path, env: &str) -> Vec<Chart> {
    let mut dirs = Vec::new();
    walk(root, root, 0, &mut dirs);
    let mut charts: Vec<Chart> = Vec::with_capacity(dirs.len());
    for found in dirs {
        let dir = if found.is_empty() { ".".into() } else { found };
        let base = Path::new(&dir)
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_else(|| "app".into());
        let mut release: String = base
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(53)
            .collect::<String>()
            .trim_matches('-')
            .to_string();
        if !crate::repo::config::is_dns_label(&release)
            || charts.iter().any(|c| c.release == release)
        {
            release = format!("release-{}", charts.len() + 1);
        }
        let values = join(&dir, &format!("values-{env}.yaml"));
        let values = root.join(&values).is_file().then_some(values);
        charts.push(Chart {
            dir,
            release,
            values,
        });
    }
    charts
}

/// The report's `deploy` line of each chart.
pub(super) fn report(charts: &[Chart], report: &mut InitReport) {
    for chart in charts {
        let mut line = format!(
            "the Helm chart `{}/` as release `{}` (`helm template`",
            chart.dir, chart.release
        );
        if let Some(values) = &chart.values {
            line.push_str(&format!(" with `{values}`"));
        }
        line.push(')');
        report.deploy.push(line);
    }
}

/// The `helm:` lines of `config/<env>.yaml`'s `kubernetes` section (nothing without charts).
pub(super) fn config_lines(charts: &[Chart]) -> String {
    let mut text = String::new();
    if charts.is_empty() {
        return text;
    }
    text.push_str("  helm:\n");
    for chart in charts {
        text.push_str(&format!(
            "    - chart: {}\n      release: {}\n",
            yaml_scalar(&chart.dir),
            chart.release
        ));
        if let Some(values) = &chart.values {
            text.push_str(&format!("      values: [{}]\n", yaml_scalar(values)));
        }
    }
    text
}

/// Collect the chart directories below `dir` (relative to `root`), not descending into a chart.
fn walk(root: &Path, dir: &Path, depth: usize, charts: &mut Vec<String>) {
    if dir.join(CHART_FILE).is_file() {
        charts.push(relative(root, dir));
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dirs: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && !NOT_CHARTS.contains(&name.as_str())
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for sub in dirs {
        if depth < MAX_DEPTH {
            walk(root, &sub, depth + 1, charts);
        }
    }
}
