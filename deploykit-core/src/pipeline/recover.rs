//! Finishing a run another process left unfinished, from its journal alone: the
//! journal, not memory, says what was done, so a crash cannot make `recover` and
//! the run disagree about what to undo.

use super::finish::Unlock;
use super::*;
use crate::journal::Outcome;
use crate::release::ReleaseId;

impl Pipeline {
    /// Finishes a run that did not end (its process was killed, or its undo failed):
    /// completes the commit if the run had reached it, otherwise performs every undo
    /// still owed and re-verifies the old release. Idempotent: on a finished run it
    /// changes nothing and returns the recorded outcome.
    ///
    /// It first takes the environment's lock, and refuses ([`Error::Locked`]) while
    /// the lock's holder is alive: a run still working, or another `recover`. Use
    /// [`recover_with`](Self::recover_with) to override a holder known to be dead.
    pub async fn recover(&self, journal: &dyn JournalStore) -> Result<RunReport> {
        self.recover_with(journal, false).await
    }

    /// The body of `recover`, run while holding the lock; the caller releases it.
    pub(super) async fn recover_unlocked(&self, journal: &dyn JournalStore) -> Result<RunReport> {
        let records = journal.records().await?;
        let Some(Record::RunStarted {
            run_id,
            env,
            release,
            previous,
            ..
        }) = records.first().cloned()
        else {
            return Err(Error::Refused {
                reason: "the journal does not start with a run_started record".into(),
                next:
                    "this is not a deploykit journal, or it is empty: nothing was done by that run"
                        .into(),
            });
        };
        if env != self.env {
            return Err(Error::Refused {
                reason: format!("the journal is for environment {env}, not {}", self.env),
                next: (self.words)(&NextStep::RecoverOtherEnv { env: env.clone() }),
            });
        }
        let mut report = RunReport::started(&run_id, &env, &release, previous.as_ref());
        report.outcome = Outcome::Interrupted;
        report.approver = records.iter().find_map(|r| match r {
            Record::Approved { approver, .. } => Some(approver.clone()),
            _ => None,
        });
        let last_finish = records.iter().rev().find_map(|r| match r {
            Record::RunFinished {
                outcome,
                failed_phase,
                error,
                next,
                ..
            } => Some((*outcome, *failed_phase, error.clone(), next.clone())),
            _ => None,
        });
        if let Some((outcome, failed_phase, error, next)) = last_finish {
            if outcome != Outcome::RollbackFailed {
                report.outcome = outcome;
                report.failed_phase = failed_phase;
                report.error = error;
                report.next = next;
                return Ok(report);
            }
        }
        let committed = records.iter().any(|r| {
            matches!(
                r,
                Record::Intent {
                    phase: Phase::Commit,
                    ..
                }
            )
        });
        if committed {
            let protect: Vec<ReleaseId> = std::iter::once(release.clone())
                .chain(previous.clone())
                .collect();
            // Which backups other runs' undos still need is unknown here (no
            // journal directory): keep them all; the next deploy prunes.
            self.prune(&protect, None).await;
            report.outcome = Outcome::Succeeded;
            self.finish(journal, &report, Unlock::No, || {}).await?;
            return Ok(report);
        }
        let failure = records.iter().find_map(|r| match r {
            Record::Outcome {
                phase,
                error: Some(e),
                ..
            } => Some((*phase, e.clone())),
            _ => None,
        });
        report.failed_phase = failure.as_ref().map(|f| f.0);
        report.error = Some(
            failure
                .map(|f| f.1)
                .unwrap_or_else(|| "the deploying process stopped before the run ended".into()),
        );
        let (undone, outcome, next) = self.undo_and_verify(journal, previous.as_ref()).await?;
        report.undone = undone;
        report.outcome = outcome;
        self.advise(&mut report, next);
        self.after_undo_hooks(journal, &report).await;
        self.finish(journal, &report, Unlock::No, || {}).await?;
        Ok(report)
    }
}
