//! Turning events and reports into output: live lines on a terminal, plain lines
//! in logs, JSON lines for machines, and a markdown summary for GitHub Actions.

pub mod json;
pub mod logs;
pub mod next_step;
mod plain;
mod plan;
mod summary;
mod tty;

use std::io::IsTerminal;
use std::sync::Arc;

use deploykit_core::{redact, EventSink, RunReport};

pub use json::JsonSink;
pub use plain::PlainSink;
pub use plan::plan_lines;
pub use summary::{github_summary, summary_table};
pub use tty::TtySink;

/// How output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live spinners and a summary table.
    Tty,
    /// One line per event.
    Plain,
    /// One JSON object per line.
    Json,
}

impl Mode {
    /// `--json` wins; otherwise a terminal gets spinners and anything else plain lines.
    pub fn detect(json: bool) -> Self {
        if std::env::var_os("NO_COLOR").is_some() {
            console::set_colors_enabled(false);
            console::set_colors_enabled_stderr(false);
        }
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Tty
        } else {
            Mode::Plain
        }
    }

    /// The event sink for this mode.
    pub fn sink(self) -> Arc<dyn EventSink> {
        match self {
            Mode::Tty => Arc::new(TtySink::new()),
            Mode::Plain => Arc::new(PlainSink),
            Mode::Json => Arc::new(JsonSink),
        }
    }

    /// Prints a run's final report in this mode, and the GitHub summary if asked for.
    pub fn finish(self, report: &RunReport) {
        // The report quotes errors and undo failures: redacted like every output.
        match self {
            Mode::Json => json::print_outcome(report),
            Mode::Tty | Mode::Plain => eprintln!("{}", redact(&summary_table(report), &[])),
        }
        if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
            use std::io::Write;
            let written = deploykit_core::private_fs::open_append(std::path::Path::new(&path))
                .and_then(|mut f| f.write_all(redact(&github_summary(report), &[]).as_bytes()));
            if let Err(e) = written {
                eprintln!("warning: could not append to GITHUB_STEP_SUMMARY: {e}");
            }
        }
    }
}
