//! What may be appended to a journal, given what it already holds.
//!
//! Two processes can write one run's journal: the run itself and a `recover`
//! (forced, or racing). These rules keep the record consistent whichever writes
//! first: a run is finished once, a run being undone starts no new step, and a run
//! whose undo began never finishes as `succeeded`.

use crate::journal::{Outcome, Record};

/// The outcome that ended the run for good, if any: every `run_finished` except
/// `rollback_failed`, after which `recover` keeps working on the run.
pub(crate) fn final_outcome(records: &[Record]) -> Option<Outcome> {
    records.iter().find_map(|r| match r {
        Record::RunFinished { outcome, .. } if *outcome != Outcome::RollbackFailed => {
            Some(*outcome)
        }
        _ => None,
    })
}

/// Refuses `next` when it would contradict `existing`, saying why.
pub(crate) fn check_append(existing: &[Record], next: &Record) -> Result<(), String> {
    if let Some(outcome) = final_outcome(existing) {
        return Err(format!(
            "the run already finished as {outcome} (possibly recorded by another process, \
             such as a forced recover); a journal gets one end"
        ));
    }
    let undoing = existing
        .iter()
        .any(|r| matches!(r, Record::UndoIntent { .. }));
    match next {
        Record::Intent { phase, .. } if undoing => Err(format!(
            "the run is being undone (possibly by another process); its {phase} step may not start"
        )),
        Record::RunFinished {
            outcome: Outcome::Succeeded,
            ..
        } if undoing => Err("the run is being undone; it cannot finish as succeeded".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phase::Phase;
    use time::OffsetDateTime;

    fn finished(outcome: Outcome) -> Record {
        Record::RunFinished {
            outcome,
            failed_phase: None,
            error: None,
            next: None,
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn one_end_per_run_but_rollback_failed_hands_over_to_recover() {
        assert!(check_append(&[], &finished(Outcome::Succeeded)).is_ok());
        let done = [finished(Outcome::RolledBack)];
        let err = check_append(&done, &finished(Outcome::Succeeded)).unwrap_err();
        assert!(err.contains("already finished as rolled_back"), "{err}");
        let failed = [finished(Outcome::RollbackFailed)];
        assert!(check_append(&failed, &finished(Outcome::RolledBack)).is_ok());
    }

    #[test]
    fn no_step_starts_and_no_success_is_recorded_once_the_undo_began() {
        let undoing = [Record::UndoIntent {
            seq: 3,
            at: OffsetDateTime::UNIX_EPOCH,
        }];
        let commit = Record::Intent {
            seq: 9,
            phase: Phase::Commit,
            undo: None,
            at: OffsetDateTime::UNIX_EPOCH,
        };
        assert!(check_append(&undoing, &commit).is_err());
        assert!(check_append(&undoing, &finished(Outcome::Succeeded)).is_err());
        assert!(check_append(&undoing, &finished(Outcome::RolledBack)).is_ok());
    }
}
