//! How the image stage shows what it is doing, on stderr: one live line per app on a terminal
//! (queued, checking, building, pushing, done, reused, failed, with the builder's latest output
//! line), and plain prefixed log lines otherwise (CI, pipes), including every line of builder
//! output as `<app> | <line>`.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use gitship_foundation::output::{Printer, style};

/// Where an app is in the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    Queued,
    Checking,
    Building,
    Pushing,
    Done,
    Reused,
    Failed,
    Skipped,
}

impl AppState {
    fn word(self) -> &'static str {
        match self {
            AppState::Queued => "queued",
            AppState::Checking => "checking registry",
            AppState::Building => "building",
            AppState::Pushing => "pushing",
            AppState::Done => "done",
            AppState::Reused => "reused",
            AppState::Failed => "failed",
            AppState::Skipped => "skipped",
        }
    }
}

/// The stage's display (shared by the concurrent builds).
#[derive(Debug)]
pub struct Progress {
    printer: Printer,
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    width: usize,
}

impl Progress {
    /// A display for `apps`: live lines when the printer is interactive and not quiet.
    pub fn new(printer: &Printer, apps: &[&str]) -> Self {
        let width = apps.iter().map(|a| a.len()).max().unwrap_or(0);
        let bars = (printer.interactive && !printer.quiet).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bars = apps
                .iter()
                .map(|app| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(format!("{app:<width$}"));
                    bar.set_message(AppState::Queued.word());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    (app.to_string(), bar)
                })
                .collect();
            (multi, bars)
        });
        Progress {
            printer: printer.clone(),
            bars,
            width,
        }
    }

    /// The app moved to `state`; `detail` says more (a reference, a digest, a reason).
    pub fn set_state(&self, app: &str, state: AppState, detail: &str) {
        let word = match state {
            AppState::Done | AppState::Reused => {
                self.printer.paint_stderr(style::ADD, state.word())
            }
            AppState::Failed => self.printer.paint_stderr(style::ERROR, state.word()),
            _ => state.word().to_string(),
        };
        let text = if detail.is_empty() {
            word
        } else {
            format!("{word} {detail}")
        };
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = bars.get(app) {
                    bar.set_message(text);
                    if matches!(
                        state,
                        AppState::Done | AppState::Reused | AppState::Failed | AppState::Skipped
                    ) {
                        bar.finish();
                    }
                }
            }
            None => {
                if !matches!(state, AppState::Queued | AppState::Checking) {
                    self.printer.status(&format!("{app}: {text}"));
                }
            }
        }
    }

    /// One line of builder output for `app`.
    pub fn output_line(&self, app: &str, state: AppState, line: &str) {
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = bars.get(app) {
                    let line: String = line.trim().chars().take(100).collect();
                    bar.set_message(format!("{}: {line}", state.word()));
                }
            }
            None => {
                let width = self.width;
                self.printer.status(&format!("{app:<width$} | {line}"));
            }
        }
    }

    /// Stop drawing (lines already drawn stay).
    pub fn finish(&self) {
        if let Some((_, bars)) = &self.bars {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}
