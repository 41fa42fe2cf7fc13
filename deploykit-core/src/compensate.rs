//! Undoing a run, written once for the pipeline and for `recover`: both work from the
//! journal's records, so a crash can never make them disagree about what to undo.

use std::time::Duration;

use time::OffsetDateTime;

use crate::error::Result;
use crate::event::{Event, Events};
use crate::journal::{JournalStore, Record};
use crate::pipeline::guard::{guarded, Unguarded};
use crate::report::UndoResult;
use crate::rollback::{Compensation, Rollback};

/// The undos a journal still owes, newest first: every intent's undo except those
/// already recorded as done. An undo whose outcome is missing (crash mid-undo) is
/// owed again; undos are idempotent.
pub(crate) fn owed_undos(records: &[Record]) -> Vec<(u32, Compensation)> {
    let mut owed: Vec<(u32, Compensation)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Intent {
                seq,
                undo: Some(undo),
                ..
            } => Some((*seq, undo.clone())),
            _ => None,
        })
        .filter(|(seq, _)| {
            !records
                .iter()
                .any(|r| matches!(r, Record::UndoOutcome { seq: s, error: None, .. } if s == seq))
        })
        .collect();
    owed.reverse();
    owed
}

/// Runs every owed undo, newest first, journaling each; keeps going past failures
/// so every failure is reported. Fails only if the journal cannot be written.
pub(crate) async fn undo_owed(
    journal: &dyn JournalStore,
    rollback: &dyn Rollback,
    events: &Events,
    timeout: Duration,
) -> Result<Vec<UndoResult>> {
    let owed = owed_undos(&journal.records().await?);
    let mut results = Vec::new();
    let mut failed = false;
    for (seq, undo) in owed {
        let what = undo.describe();
        // Discarding a release is cleanup, and a failed undo before it may still
        // need that release (its image runs a revert): leave it owed for `recover`.
        if failed && matches!(undo, Compensation::DiscardRelease { .. }) {
            let error = "deferred: an earlier undo failed; `deploykit recover` discards it once the rest is undone";
            events.emit(Event::Compensated {
                undo: what.clone(),
                ok: false,
                error: Some(error.into()),
            });
            results.push(UndoResult {
                undo: what,
                error: Some(error.into()),
            });
            continue;
        }
        journal
            .append(&Record::UndoIntent {
                seq,
                at: OffsetDateTime::now_utc(),
            })
            .await?;
        events.emit(Event::Compensating { undo: what.clone() });
        let error = match guarded(timeout, rollback.compensate(&undo)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(Unguarded::Panicked(message)) => Some(format!("the undo panicked: {message}")),
            Err(Unguarded::TimedOut) => Some(format!("the undo did not finish within {timeout:?}")),
        };
        journal
            .append(&Record::UndoOutcome {
                seq,
                error: error.clone(),
                at: OffsetDateTime::now_utc(),
            })
            .await?;
        events.emit(Event::Compensated {
            undo: what.clone(),
            ok: error.is_none(),
            error: error.clone(),
        });
        failed |= error.is_some();
        results.push(UndoResult { undo: what, error });
    }
    Ok(results)
}
