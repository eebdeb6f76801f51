//! Where output goes: stdout carries data only (rendered YAML, plans, `--output json`); progress,
//! logs and status go to stderr. Color follows `--color`, `NO_COLOR` and whether the stream is a
//! terminal; everything must read fine without color.

use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};

/// Where data goes and how it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
    Markdown,
}

/// Whether to color human output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    Auto,
    Always,
    Never,
}

/// Styles used across human output.
pub mod style {
    use super::*;
    pub const ADD: Style = AnsiColor::Green.on_default();
    pub const REMOVE: Style = AnsiColor::Red.on_default();
    pub const CHANGE: Style = AnsiColor::Yellow.on_default();
    pub const HEADER: Style = Style::new().bold();
    pub const DIM: Style = Style::new().dimmed();
    pub const WARN: Style = AnsiColor::Yellow.on_default().bold();
    pub const ERROR: Style = AnsiColor::Red.on_default().bold();
}

/// Writes data to stdout and status to stderr, honouring quiet and color settings.
#[derive(Debug, Clone)]
pub struct Printer {
    pub format: OutputFormat,
    pub quiet: bool,
    pub color_stdout: bool,
    pub color_stderr: bool,
    /// True when stderr is a terminal: progress bars may be drawn.
    pub interactive: bool,
}

impl Printer {
    /// The printer for `--output`, `--color` and `--quiet`.
    pub fn new(format: OutputFormat, color: ColorMode, quiet: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let decide = |is_tty: bool| match color {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => is_tty && !no_color,
        };
        let stderr_tty = std::io::stderr().is_terminal();
        Printer {
            format,
            quiet,
            color_stdout: decide(std::io::stdout().is_terminal()),
            color_stderr: decide(stderr_tty),
            interactive: stderr_tty && !crate::ci::in_ci(),
        }
    }

    /// A printer that never colors and never draws progress (tests, libraries).
    pub fn plain(format: OutputFormat) -> Self {
        Printer {
            format,
            quiet: false,
            color_stdout: false,
            color_stderr: false,
            interactive: false,
        }
    }

    /// Write data to stdout (never suppressed by `-q`).
    pub fn data(&self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') && !text.is_empty() {
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// A status line on stderr (suppressed by `-q`).
    pub fn status(&self, text: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "{text}");
        }
    }

    /// A warning on stderr (shown even with `-q`).
    pub fn warn(&self, text: &str) {
        let prefix = self.paint_stderr(style::WARN, "warning");
        let _ = writeln!(std::io::stderr(), "{prefix}: {text}");
    }

    /// `text` styled for stdout when color is on.
    pub fn paint(&self, style: Style, text: &str) -> String {
        paint(self.color_stdout, style, text)
    }

    /// `text` styled for stderr when color is on.
    pub fn paint_stderr(&self, style: Style, text: &str) -> String {
        paint(self.color_stderr, style, text)
    }
}

/// `text` wrapped in `style` when `enabled`.
pub fn paint(enabled: bool, style: Style, text: &str) -> String {
    if enabled {
        format!("{style}{text}{style:#}")
    } else {
        text.to_string()
    }
}

/// Append `markdown` to the GitHub Actions job summary (`$GITHUB_STEP_SUMMARY`) when that
/// variable names a file; `Ok(false)` when it is unset. `plan` and `drift` write their Markdown
/// report there (already redacted: it is what `-o markdown` prints). Only a regular file is
/// appended to ([`crate::private_file::append`]).
pub fn append_step_summary(markdown: &str) -> Result<bool, crate::private_file::WriteError> {
    let Some(path) = crate::ci::step_summary_file() else {
        return Ok(false);
    };
    let mut text = markdown.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    crate::private_file::append(&path, text.as_bytes())?;
    Ok(true)
}

impl Printer {
    /// [`append_step_summary`], a failure being a warning (the summary is a courtesy).
    pub fn step_summary(&self, markdown: &str) {
        if let Err(err) = append_step_summary(markdown) {
            use crate::diagnostics::StageError as _;
            let file = crate::ci::step_summary_file().unwrap_or_default();
            let mut warning = format!(
                "cannot append to `${}` ({}): {err}",
                crate::ci::STEP_SUMMARY_VARIABLE,
                file.display()
            );
            if let Some(source) = std::error::Error::source(&err) {
                warning.push_str(&format!(": {source}"));
            }
            if let Some(hint) = err.hint() {
                warning.push_str(&format!("\nhint: {hint}"));
            }
            self.warn(&warning);
        }
    }
}

/// A duration as people read it: `45s`, `4m 10s`, `2h 5m`, `3d 4h` (the two largest units).
pub fn duration_text(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let Some(first) = units.iter().position(|(size, _)| seconds >= *size) else {
        return "0s".to_string();
    };
    let (size, name) = units[first];
    let mut text = format!("{}{name}", seconds / size);
    if let Some((next, next_name)) = units.get(first + 1) {
        let rest = (seconds % size) / next;
        if rest > 0 {
            text.push_str(&format!(" {rest}{next_name}"));
        }
    }
    text
}

#[cfg(test)]
mod duration_tests {
    use super::duration_text;
    use std::time::Duration;

    #[test]
    fn durations_read_in_their_two_largest_units() {
        assert_eq!(duration_text(Duration::ZERO), "0s");
        assert_eq!(duration_text(Duration::from_millis(900)), "0s");
        assert_eq!(duration_text(Duration::from_secs(45)), "45s");
        assert_eq!(duration_text(Duration::from_secs(250)), "4m 10s");
        assert_eq!(duration_text(Duration::from_secs(3600)), "1h");
        assert_eq!(duration_text(Duration::from_secs(7_500)), "2h 5m");
        assert_eq!(duration_text(Duration::from_secs(273_600)), "3d 4h");
        assert_eq!(
            duration_text(Duration::MAX),
            format!("{}d 7h", u64::MAX / 86_400)
        );
    }
}
