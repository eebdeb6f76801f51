//! Every command's report, rendered one way per format: a report is a typed, serialisable value
//! built by its operation, carrying its `format_version`; [`render`] turns any report into the
//! asked format (JSON is serde's, pretty), so a command only calls it. The plan and the drift
//! report have their own renderers ([`super::human`], [`super::markdown`]); the other reports'
//! human and Markdown renderings are their `CommandReport` impls, beside their types in `ops`
//! (see `ARCHITECTURE.md`, "JSON reports" in the README).

use serde::Serialize;

use gitship_foundation::output::OutputFormat;

use super::{DriftReport, Plan};

/// Markdown plans and drift reports stay below GitHub's comment limit.
pub const MARKDOWN_LIMIT: usize = 65_000;

/// A command's typed, versioned report.
///
/// Its JSON is its serde form, an object with an integer `format_version` equal to its module's
/// `FORMAT_VERSION` (the report's constructor sets it): fields may be added freely; a field that
/// changes meaning or goes away bumps the version.
pub trait CommandReport: Serialize {
    /// What the report is (`deploy`, `build`, ...), for messages and tests.
    const KIND: &'static str;

    /// The report for a terminal or a log, colored when `color`.
    fn human(&self, color: bool) -> String;

    /// The report as Markdown (a pull request comment, a job summary); the human text by default.
    fn markdown(&self) -> String {
        self.human(false)
    }
}

/// `report` in `format`: JSON (pretty, from serde), human (colored when `color`) or Markdown.
pub fn render<R: CommandReport>(
    report: &R,
    format: OutputFormat,
    color: bool,
) -> Result<String, serde_json::Error> {
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(report)?,
        OutputFormat::Human => report.human(color),
        OutputFormat::Markdown => report.markdown(),
    })
}

impl CommandReport for Plan {
    const KIND: &'static str = "plan";

    fn human(&self, color: bool) -> String {
        super::human::render_plan(self, color)
    }

    fn markdown(&self) -> String {
        super::markdown::render_plan(self, MARKDOWN_LIMIT)
    }
}

impl CommandReport for DriftReport {
    const KIND: &'static str = "drift";

    fn human(&self, color: bool) -> String {
        super::human::render_drift(self, color)
    }

    fn markdown(&self) -> String {
        super::markdown::render_drift(self, MARKDOWN_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Example {
        format_version: u32,
        name: &'static str,
    }

    impl CommandReport for Example {
        const KIND: &'static str = "example";
        fn human(&self, color: bool) -> String {
            format!("{} {color}\n", self.name)
        }
    }

    #[test]
    fn one_function_renders_every_format() {
        let report = Example {
            format_version: 3,
            name: "web",
        };
        assert_eq!(
            render(&report, OutputFormat::Json, true).unwrap(),
            "{\n  \"format_version\": 3,\n  \"name\": \"web\"\n}"
        );
        assert_eq!(
            render(&report, OutputFormat::Human, true).unwrap(),
            "web true\n"
        );
        assert_eq!(
            render(&report, OutputFormat::Markdown, true).unwrap(),
            "web false\n"
        );
    }
}
