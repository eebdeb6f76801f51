//! Deploy progress on stderr: a progress bar on a terminal, plain status lines otherwise (CI,
//! pipes, `-q`). Lines printed while the bar is drawn go above it.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use gitship_foundation::output::Printer;

/// Progress of one deploy.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    printer: Printer,
}

impl Progress {
    /// Progress over `total` objects; a bar only when stderr is an interactive terminal.
    pub fn new(printer: &Printer, total: usize) -> Progress {
        let bar = (printer.interactive && !printer.quiet).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{spinner} {msg:24} [{bar:30}] {pos}/{len} objects")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            printer: printer.clone(),
        }
    }

    /// A status line (above the bar on a terminal).
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => self.printer.status(text),
        }
    }

    /// A warning, shown even with `-q`.
    pub fn warn(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| self.printer.warn(text)),
            None => self.printer.warn(text),
        }
    }

    /// What is happening now (the bar's message; a status line without a bar when `always`).
    pub fn stage(&self, text: &str, always: bool) {
        match &self.bar {
            Some(bar) => bar.set_message(text.to_string()),
            None if always => self.printer.status(text),
            None => {}
        }
    }

    /// `count` more objects applied.
    pub(crate) fn advance(&self, count: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(count as u64);
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
