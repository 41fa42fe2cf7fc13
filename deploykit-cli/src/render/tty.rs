//! A terminal: one live line per phase, with a spinner while it runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use console::style;
use deploykit_core::{Event, EventSink, Phase};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::plain::describe;

/// Live spinners on stderr.
pub struct TtySink {
    multi: MultiProgress,
    bars: Mutex<HashMap<Phase, ProgressBar>>,
}

impl TtySink {
    /// A sink drawing on stderr.
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for TtySink {
    fn default() -> Self {
        Self::new()
    }
}

impl EventSink for TtySink {
    fn emit(&self, event: &Event) {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::PhaseStarted { phase } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<10} {elapsed:>4} {wide_msg}")
                        .expect("valid template"),
                );
                bar.set_prefix(phase.to_string());
                bar.enable_steady_tick(Duration::from_millis(100));
                bars.insert(*phase, bar);
            }
            Event::PhaseFinished {
                phase,
                elapsed_ms,
                ok,
                detail,
            } => {
                let mark = if *ok {
                    style("✔").green()
                } else {
                    style("✘").red()
                };
                let line = format!(
                    "{mark} {:<10} {:>5.1}s {detail}",
                    phase.to_string(),
                    *elapsed_ms as f64 / 1000.0
                );
                match bars.remove(phase) {
                    Some(bar) => {
                        bar.set_style(
                            ProgressStyle::with_template("{msg}").expect("valid template"),
                        );
                        bar.finish_with_message(line);
                    }
                    None => {
                        let _ = self.multi.println(line);
                    }
                }
            }
            Event::HealthAttempt { .. } | Event::StepOutput { .. } => {
                if let (Some(bar), Some(line)) = (
                    bars.get(&Phase::Verify).or_else(|| bars.values().next()),
                    describe(event),
                ) {
                    bar.set_message(line);
                }
            }
            Event::Compensating { .. } => {
                if let (Some(bar), Some(line)) = (bars.get(&Phase::Compensate), describe(event)) {
                    bar.set_message(line);
                }
            }
            other => {
                if let Some(line) = describe(other) {
                    let line = match other {
                        Event::Warning { .. } => style(line).yellow().to_string(),
                        Event::Compensated { ok: false, .. } => style(line).red().to_string(),
                        _ => line,
                    };
                    let _ = self.multi.println(line);
                }
            }
        }
    }
}
