//! Plain lines for logs and CI (no terminal).

use deploykit_core::{Event, EventSink};

/// One line per event on stderr.
pub struct PlainSink;

impl EventSink for PlainSink {
    fn emit(&self, event: &Event) {
        if let Some(line) = describe(event) {
            eprintln!("{line}");
        }
    }
}

/// One human line for an event (`None` for events not worth a line).
pub fn describe(event: &Event) -> Option<String> {
    Some(match event {
        Event::RunStarted {
            run_id,
            env,
            release,
            previous,
        } => format!(
            "deploying {release} to {env} (live now: {}; run {run_id})",
            previous.as_deref().unwrap_or("nothing")
        ),
        Event::PhaseStarted { phase } => format!("[{phase}] started"),
        Event::PhaseFinished {
            phase,
            elapsed_ms,
            ok,
            detail,
        } => {
            format!(
                "[{phase}] {} in {:.1}s: {detail}",
                if *ok { "ok" } else { "FAILED" },
                *elapsed_ms as f64 / 1000.0
            )
        }
        Event::StepOutput { phase, line } => format!("[{phase}] {line}"),
        Event::HealthAttempt {
            probe,
            attempt,
            status,
            latency_ms,
            detail,
        } => {
            format!("[verify] attempt {attempt}: {probe} {status:?} in {latency_ms} ms ({detail})")
        }
        Event::Compensating { undo } => format!("[undo] {undo}"),
        Event::Compensated { undo, ok, error } => match (ok, error) {
            (true, _) => format!("[undo] done: {undo}"),
            (false, e) => format!("[undo] FAILED: {undo}: {}", e.as_deref().unwrap_or("")),
        },
        Event::LockWaiting {
            env,
            holder,
            waited_secs,
            limit_secs,
        } => format!(
            "waiting for the lock of {env} ({waited_secs}s of at most {limit_secs}s): held by {holder}"
        ),
        Event::ReleaseLogs { release, logs } => format!(
            "[verify] the last lines {release} printed, read before the undo:\n{}",
            super::logs::log_block(logs).trim_end()
        ),
        Event::Warning { message } => format!("warning: {message}"),
        Event::RunFinished { outcome, next } => match next {
            Some(n) => format!("run {outcome}; next: {n}"),
            None => format!("run {outcome}"),
        },
        _ => return None,
    })
}
