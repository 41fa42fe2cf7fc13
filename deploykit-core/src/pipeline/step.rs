//! One side effect of a run, journaled: an intent record (with the undo it will
//! owe) before it starts, an outcome record after. A crash between the two leaves
//! the undo owed, so `recover` can finish what the run began.

use std::future::Future;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::guard::{guarded, Unguarded};
use super::*;
use crate::rollback::Compensation;

impl Pipeline {
    /// Runs `effect` between its intent and outcome records, under the step
    /// deadline and with its panic caught, and returns its value; `detail` says
    /// what it did, for the journal and the events.
    pub(super) async fn step<T, F>(
        &self,
        state: &RunState<'_>,
        phase: Phase,
        undo: Option<Compensation>,
        effect: F,
        detail: impl FnOnce(&T) -> String,
    ) -> std::result::Result<T, Stop>
    where
        F: Future<Output = Result<T>>,
    {
        // The lock was taken over (a forced recover owns this run now): touch nothing.
        if let Some(why) = state.keeper.as_ref().and_then(|k| k.lost()) {
            return Err(Stop::Interrupted { error: why });
        }
        let t = self.phase_start(phase);
        let seq = state.seq.fetch_add(1, Ordering::SeqCst) + 1;
        state
            .journal
            .append(&Record::Intent {
                seq,
                phase,
                undo,
                at: OffsetDateTime::now_utc(),
            })
            .await
            .map_err(|e| Stop::Interrupted {
                error: e.to_string(),
            })?;
        let result = self.guarded_step(phase, effect).await;
        let (error, detail) = match &result {
            Ok(value) => (None, Some(detail(value))),
            Err(e) => (Some(e.to_string()), None),
        };
        state
            .journal
            .append(&Record::Outcome {
                seq,
                phase,
                error: error.clone(),
                detail: detail.clone(),
                at: OffsetDateTime::now_utc(),
            })
            .await
            .map_err(|e| Stop::Interrupted {
                error: e.to_string(),
            })?;
        let ok = error.is_none();
        self.phase_end(state, phase, t, ok, error.or(detail).unwrap_or_default());
        result.map_err(|error| Stop::Failed { phase, error })
    }

    /// `work` under the step deadline, its panic or timeout turned into the
    /// error of `phase`.
    pub(super) async fn guarded_step<T>(
        &self,
        phase: Phase,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let limit = self.policy.step_timeout;
        match guarded(limit, work).await {
            Ok(result) => result,
            Err(Unguarded::Panicked(message)) => Err(Error::Panicked {
                step: phase.to_string(),
                message,
            }),
            Err(Unguarded::TimedOut) => Err(Error::Timeout {
                step: phase.to_string(),
                location: self.env.clone(),
                after: limit,
            }),
        }
    }

    pub(super) fn phase_start(&self, phase: Phase) -> Instant {
        self.events.emit(Event::PhaseStarted { phase });
        Instant::now()
    }

    /// Records the phase's timing and tells the events how it ended.
    pub(super) fn phase_end(
        &self,
        state: &RunState<'_>,
        phase: Phase,
        started: Instant,
        ok: bool,
        detail: String,
    ) {
        let elapsed = started.elapsed();
        state
            .phases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(PhaseTiming { phase, elapsed, ok });
        self.events.emit(Event::PhaseFinished {
            phase,
            elapsed_ms: elapsed.as_millis() as u64,
            ok,
            detail,
        });
    }
}
