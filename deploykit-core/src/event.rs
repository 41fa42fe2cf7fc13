//! The typed event stream a run emits; sinks (terminal, JSON, tests) consume it.
//! Core has no terminal code: rendering is the sinks' business.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::health::HealthStatus;
use crate::journal::Outcome;
use crate::phase::Phase;

/// Something that happened during a run, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A run began.
    RunStarted {
        /// The run's id (its journal's name).
        run_id: String,
        /// Environment being deployed.
        env: String,
        /// Release being deployed.
        release: String,
        /// Release live before the run, if any.
        previous: Option<String>,
    },
    /// A phase began.
    PhaseStarted {
        /// Which phase.
        phase: Phase,
    },
    /// A phase ended.
    PhaseFinished {
        /// Which phase.
        phase: Phase,
        /// How long it took.
        elapsed_ms: u64,
        /// Whether it succeeded.
        ok: bool,
        /// One line of detail (error or summary), redacted.
        detail: String,
    },
    /// A line of output from a step (command output tail).
    StepOutput {
        /// Which phase produced it.
        phase: Phase,
        /// The line, redacted.
        line: String,
    },
    /// One probe attempt during verification.
    HealthAttempt {
        /// The probe's name.
        probe: String,
        /// Round number, from 1.
        attempt: u32,
        /// What it found.
        status: HealthStatus,
        /// How long it took.
        latency_ms: u64,
        /// Its explanation.
        detail: String,
    },
    /// An undo is about to run.
    Compensating {
        /// The undo, described for humans.
        undo: String,
    },
    /// An undo ran.
    Compensated {
        /// The undo, described for humans.
        undo: String,
        /// Whether it worked.
        ok: bool,
        /// The error, if it did not.
        error: Option<String>,
    },
    /// The environment's lock is held by a live holder and this command waits for
    /// it (`--lock-wait`); said every few seconds and whenever the holder changes.
    LockWaiting {
        /// The environment.
        env: String,
        /// Who holds it, with their message.
        holder: Box<crate::lock::LockHolder>,
        /// How long this command has waited so far.
        waited_secs: u64,
        /// How long it waits at most.
        limit_secs: u64,
    },
    /// Verify failed: the last lines the new release printed, read before the
    /// undo (redacted like every event).
    ReleaseLogs {
        /// The release that failed verify.
        release: String,
        /// Its logs, per source.
        logs: Vec<crate::logs::LogLines>,
    },
    /// Something a human should know that did not stop the run.
    Warning {
        /// What.
        message: String,
    },
    /// The run ended.
    RunFinished {
        /// How.
        outcome: Outcome,
        /// What a human must do next, if anything.
        next: Option<String>,
    },
}

/// Consumes events. Called inline by the run, so keep it quick and never panic.
pub trait EventSink: Send + Sync {
    /// Handles one event.
    fn emit(&self, event: &Event);
}

/// A fan-out to any number of sinks; cheap to clone into concurrent phases.
#[derive(Clone, Default)]
pub struct Events {
    sinks: Vec<Arc<dyn EventSink>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl Events {
    /// No sinks: events are dropped.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds a sink.
    pub fn with(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Sends an event to every sink, [`redact`](crate::secret::redact)ed first: an
    /// event carries command lines and tool output, and sinks print it as is.
    pub fn emit(&self, event: Event) {
        if self.sinks.is_empty() {
            return;
        }
        let event = redacted(event);
        for sink in &self.sinks {
            sink.emit(&event);
        }
    }
}

/// `event` with every masked value and URL password removed from its text, whatever
/// fields it has.
fn redacted(event: Event) -> Event {
    let Ok(mut value) = serde_json::to_value(&event) else {
        return event;
    };
    crate::secret::redact_json(&mut value);
    serde_json::from_value(value).unwrap_or(event)
}

/// A sink that keeps every event, for tests and summaries.
#[derive(Default)]
pub struct CollectingSink {
    events: std::sync::Mutex<Vec<Event>>,
}

impl std::fmt::Debug for CollectingSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectingSink")
            .field("events", &self.events().len())
            .finish()
    }
}

impl CollectingSink {
    /// Everything emitted so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl EventSink for CollectingSink {
    fn emit(&self, event: &Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}
