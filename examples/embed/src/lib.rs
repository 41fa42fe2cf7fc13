//! Shared bits of the embedding examples: reading settings, printing events, and
//! turning an outcome into an exit code.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use deploykit_core::{Event, EventSink, Outcome};

/// A required environment variable, or an error naming it.
pub fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow::anyhow!("set {name} (see examples/embed/README.md)"))
}

/// Prints each event as one line on stderr.
pub struct Lines;

impl EventSink for Lines {
    fn emit(&self, event: &Event) {
        match event {
            Event::PhaseFinished {
                phase,
                elapsed_ms,
                ok,
                detail,
            } => {
                eprintln!(
                    "[{phase}] {} in {elapsed_ms} ms: {detail}",
                    if *ok { "ok" } else { "FAILED" }
                )
            }
            Event::Compensated { undo, ok, .. } => {
                eprintln!("[undo] {undo}: {}", if *ok { "done" } else { "FAILED" })
            }
            Event::Warning { message } => eprintln!("warning: {message}"),
            Event::RunFinished { outcome, next } => eprintln!(
                "run {outcome}{}",
                next.as_deref()
                    .map(|n| format!("; next: {n}"))
                    .unwrap_or_default()
            ),
            _ => {}
        }
    }
}

/// The exit code deploykit's CLI uses for an outcome.
pub fn exit_code(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Succeeded => 0,
        Outcome::RolledBack => 1,
        Outcome::RollbackFailed | Outcome::Interrupted => 3,
    }
}
