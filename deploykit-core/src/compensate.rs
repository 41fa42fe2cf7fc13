//! Undoing a run, written once for the pipeline and for `recover`: both work from the
//! journal's records, so a crash can never make them disagree about what to undo.

use std::time::Duration;

use time::OffsetDateTime;

use crate::error::Result;
use crate::event::{Event, Events};
use crate::journal::{JournalStore, Record};
use crate::pipeline::guard::{guarded, Unguarded};
use crate::release::ReleaseSpec;
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
    // Journals written before applied sets named their release say it only in
    // `run_started`: that is the release whose files or tool applied them.
    if let Some(release) = run_release(records) {
        for (_, undo) in &mut owed {
            if let Compensation::RevertMigrations { applied }
            | Compensation::KeepSchema { applied } = undo
            {
                applied.release.get_or_insert_with(|| release.clone());
            }
            if let Compensation::RestoreBackup {
                only_if_applied: Some(applied),
                ..
            } = undo
            {
                applied.release.get_or_insert_with(|| release.clone());
            }
        }
    }
    owed
}

/// The release (and commit) a journaled run was deploying, from its `run_started`
/// record: what `recover` and `migrate revert --run` read a run's files from.
pub fn run_release(records: &[Record]) -> Option<ReleaseSpec> {
    records.iter().find_map(|r| match r {
        Record::RunStarted {
            release,
            commit,
            branch,
            ..
        } => Some(ReleaseSpec {
            id: release.clone(),
            commit: commit.clone(),
            branch: branch.clone(),
        }),
        _ => None,
    })
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
            let error = "deferred: an earlier undo failed; recovering the environment discards it once the rest is undone";
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

#[cfg(test)]
mod tests {
    use super::*;

    fn records(lines: &[serde_json::Value]) -> Vec<Record> {
        lines
            .iter()
            .map(|l| serde_json::from_value(l.clone()).unwrap())
            .collect()
    }

    fn owed_release(records: &[Record]) -> Option<ReleaseSpec> {
        match owed_undos(records).remove(0).1 {
            Compensation::RevertMigrations { applied } => applied.release,
            other => panic!("unexpected undo {other:?}"),
        }
    }

    fn started() -> serde_json::Value {
        serde_json::json!({"record": "run_started", "run_id": "run-a", "env": "d",
            "release": "r2", "commit": "abc1234", "branch": "main", "previous": "r1",
            "who": "ci", "at": "2026-11-26T10:00:00Z"})
    }

    #[test]
    fn an_old_journal_reverts_with_the_release_its_run_started() {
        // Written before applied sets named their release.
        let old = records(&[
            started(),
            serde_json::json!({"record": "intent", "seq": 1, "phase": "migrate",
                "undo": {"undo": "revert_migrations", "applied": {
                    "migrations": [{"version": "0002", "name": "tags"}],
                    "revision_before": null, "revision_after": null}},
                "at": "2026-11-26T10:00:01Z"}),
        ]);
        let release = owed_release(&old).expect("the run's release");
        assert_eq!(release.id.as_str(), "r2");
        assert_eq!(release.commit.as_str(), "abc1234");
        assert_eq!(release.branch.as_deref(), Some("main"));
    }

    #[test]
    fn a_journaled_release_is_kept() {
        let new = records(&[
            started(),
            serde_json::json!({"record": "intent", "seq": 1, "phase": "migrate",
                "undo": {"undo": "revert_migrations", "applied": {
                    "migrations": [{"version": "0002", "name": "tags"}],
                    "revision_before": null, "revision_after": null,
                    "release": {"id": "r9", "commit": "def5678", "branch": null}}},
                "at": "2026-11-26T10:00:01Z"}),
        ]);
        assert_eq!(owed_release(&new).unwrap().id.as_str(), "r9");
    }
}
