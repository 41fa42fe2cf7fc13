//! How a run ends: commit (the point of no return), undo and re-verify, or stop
//! where it was when the journal cannot be written. Every end goes through one
//! [`Pipeline::finish`], so the journal's last record, the lock and the final event
//! always agree.

use tokio::time::Instant;

use super::*;
use crate::backup::{BackupArtifact, BackupExt};
use crate::compensate::undo_owed;
use crate::health_driver::HealthDriver;
use crate::journal::Outcome;
use crate::policy::MigrationFailurePolicy;
use crate::release::ReleaseId;
use crate::report::UndoResult;
use crate::rollback::PartsRollback;
use crate::target::TargetExt;

/// Whether finishing a run also frees the environment's lock.
pub(super) enum Unlock<'k> {
    /// Keep it: the run needs `recover`, or the caller frees it.
    No,
    /// Free it, stopping this run's lease renewal.
    Yes(Option<&'k LeaseKeeper>),
}

impl Pipeline {
    /// Ends a run as `report` says: records its end in the journal, frees the lock
    /// if asked, runs `closing` (the last phase's event), then announces the end.
    /// `Err` only when the journal cannot be written; then nothing else happened.
    pub(super) async fn finish(
        &self,
        journal: &dyn JournalStore,
        report: &RunReport,
        unlock: Unlock<'_>,
        closing: impl FnOnce(),
    ) -> Result<()> {
        journal
            .append(&Record::RunFinished {
                outcome: report.outcome,
                failed_phase: report.failed_phase,
                error: report.error.clone(),
                next: report.next.clone(),
                at: OffsetDateTime::now_utc(),
            })
            .await?;
        if let Unlock::Yes(keeper) = unlock {
            self.release_lock(keeper, &report.run_id).await;
        }
        closing();
        self.events.emit(Event::RunFinished {
            outcome: report.outcome,
            next: report.next.clone(),
        });
        Ok(())
    }

    /// The point of no return: record it, prune (warnings only), unlock, finish.
    pub(super) async fn commit(
        &self,
        state: &RunState<'_>,
        spec: &ReleaseSpec,
        previous: Option<&ReleaseId>,
        report: &mut RunReport,
    ) {
        let t = self.phase_start(Phase::Commit);
        if let Some(keeper) = &state.keeper {
            if let Some(why) = keeper.confirm().await {
                return self.lock_lost(report, why);
            }
        }
        let seq = state.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let marker = Record::Intent {
            seq,
            phase: Phase::Commit,
            undo: None,
            at: OffsetDateTime::now_utc(),
        };
        if let Err(e) = state.journal.append(&marker).await {
            return self.interrupted(report, e.to_string());
        }
        let protect_release: Vec<ReleaseId> = std::iter::once(spec.id.clone())
            .chain(previous.cloned())
            .collect();
        let protect_backup = self
            .backups_to_keep(state.journals, report.backup.as_ref())
            .await;
        self.prune(&protect_release, protect_backup.as_deref())
            .await;
        report.outcome = Outcome::Succeeded;
        self.after_commit_hooks(state.journal, spec, previous, report)
            .await;
        let closing = || {
            self.phase_end(
                state,
                Phase::Commit,
                t,
                true,
                format!("{} committed", spec.id),
            )
        };
        let unlock = Unlock::Yes(state.keeper.as_ref());
        if let Err(e) = self.finish(state.journal, report, unlock, closing).await {
            self.interrupted(report, e.to_string());
        }
    }

    /// The run stopped where it was because the journal could not be written.
    pub(super) fn interrupted(&self, report: &mut RunReport, error: String) {
        report.outcome = Outcome::Interrupted;
        report.error = Some(error);
        let step = NextStep::RecoverAfterJournalFailure {
            env: self.env.clone(),
        };
        self.advise(report, Some(step));
        self.events.emit(Event::RunFinished {
            outcome: Outcome::Interrupted,
            next: report.next.clone(),
        });
    }

    /// A step failed: undo what the journal says was done, re-verify the old
    /// release, finish.
    pub(super) async fn undo_and_finish(
        &self,
        state: &RunState<'_>,
        previous: Option<&ReleaseId>,
        phase: Phase,
        error: Error,
        report: &mut RunReport,
    ) {
        // What a failed migration left applied that no undo removes (a migration
        // run outside a transaction that failed part-way). A restore brings the
        // whole schema back, so it leaves none.
        let residue = (matches!(error, Error::PartlyApplied { .. })
            && self.policy.migration_failure != MigrationFailurePolicy::Restore)
            .then(|| self.word(&error));
        report.failed_phase = Some(phase);
        report.error = Some(self.word(&error));
        report.failure = Some(crate::report::RunFailure::new(error));
        // Whoever took the lock over (a forced recover) does the undo, not this run.
        if let Some(keeper) = &state.keeper {
            if let Some(why) = keeper.confirm().await {
                return self.lock_lost(report, why);
            }
        }
        let (undone, mut outcome, mut next) =
            match self.undo_and_verify(state.journal, previous).await {
                Ok(ended) => ended,
                Err(e) => return self.interrupted(report, e.to_string()),
            };
        if let Some(residue) = residue {
            // Every undo ran, yet the schema is not the old one.
            outcome = Outcome::RollbackFailed;
            next = Some(NextStep::RemoveResidue {
                env: self.env.clone(),
                residue,
                also: next.map(Box::new),
            });
        }
        report.undone = undone;
        report.outcome = outcome;
        self.advise(report, next);
        self.after_undo_hooks(state.journal, report).await;
        let unlock = match outcome {
            Outcome::RolledBack => Unlock::Yes(state.keeper.as_ref()),
            _ => Unlock::No,
        };
        if let Err(e) = self.finish(state.journal, report, unlock, || {}).await {
            self.interrupted(report, e.to_string());
        }
    }

    /// The shared tail of a failed run and of `recover`: owed undos, then the old
    /// release's health. `Err` only when the journal cannot be written.
    pub(super) async fn undo_and_verify(
        &self,
        journal: &dyn JournalStore,
        previous: Option<&ReleaseId>,
    ) -> Result<(Vec<UndoResult>, Outcome, Option<NextStep>)> {
        let t = self.phase_start(Phase::Compensate);
        let rollback = self.rollback_executor();
        let undone = undo_owed(
            journal,
            rollback.as_ref(),
            &self.events,
            self.policy.step_timeout,
        )
        .await?;
        let failed: Vec<&UndoResult> = undone.iter().filter(|u| u.error.is_some()).collect();
        if !failed.is_empty() {
            let list = failed
                .iter()
                .map(|u| format!("{}: {}", u.undo, u.error.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ");
            let next = NextStep::FinishUndo {
                env: self.env.clone(),
                failures: list.clone(),
            };
            self.compensate_ended(t, false, list);
            return Ok((undone, Outcome::RollbackFailed, Some(next)));
        }
        self.compensate_ended(t, true, format!("{} undo(s) ran", undone.len()));
        if previous.is_some() && !self.probes.is_empty() {
            let t = self.phase_start(Phase::Verify);
            let verdict = HealthDriver::new(self.probes.clone(), self.policy.health.clone())
                .run(&self.events)
                .await;
            self.events.emit(Event::PhaseFinished {
                phase: Phase::Verify,
                elapsed_ms: t.elapsed().as_millis() as u64,
                ok: verdict.passed,
                detail: if verdict.passed {
                    "previous release healthy".into()
                } else {
                    verdict.failures()
                },
            });
            if !verdict.passed {
                let next = NextStep::PreviousUnhealthy {
                    env: self.env.clone(),
                    failures: verdict.failures(),
                };
                return Ok((undone, Outcome::RollbackFailed, Some(next)));
            }
        }
        Ok((undone, Outcome::RolledBack, None))
    }

    fn compensate_ended(&self, started: Instant, ok: bool, detail: String) {
        self.events.emit(Event::PhaseFinished {
            phase: Phase::Compensate,
            elapsed_ms: started.elapsed().as_millis() as u64,
            ok,
            detail,
        });
    }

    fn rollback_executor(&self) -> Arc<dyn Rollback> {
        match &self.rollback {
            Some(r) => r.clone(),
            None => Arc::new(PartsRollback {
                target: self.target.clone(),
                migrator: self.migrator.clone(),
                backup: self.backup.clone(),
            }),
        }
    }

    pub(super) async fn release_lock(&self, keeper: Option<&LeaseKeeper>, run_id: &str) {
        if let Some(k) = keeper {
            k.stop();
        }
        if let Some(lock) = &self.lock {
            if let Err(e) = lock.release(run_id).await {
                self.events.emit(Event::Warning {
                    message: format!("releasing the deploy lock failed: {e}"),
                });
            }
        }
    }

    /// The backups pruning must keep: this run's, and every one an unfinished run's
    /// undo still needs. `None` when the journals cannot be read: then no backup
    /// is pruned at all.
    async fn backups_to_keep(
        &self,
        journals: Option<&dyn StateStore>,
        ours: Option<&BackupArtifact>,
    ) -> Option<Vec<std::path::PathBuf>> {
        let mut keep: Vec<_> = ours.iter().map(|a| a.path.clone()).collect();
        if let Some(dir) = journals {
            match crate::backup_scope::backups_pending_undo(dir).await {
                Ok(pending) => keep.extend(pending),
                Err(e) => {
                    self.events.emit(Event::Warning {
                        message: format!(
                            "old backups were not pruned: the journals could not be read to see which ones pending undos need ({e})"
                        ),
                    });
                    return None;
                }
            }
        }
        Some(keep)
    }

    /// Prunes releases, and backups unless `protect_backup` is `None`.
    pub(super) async fn prune(
        &self,
        protect_release: &[ReleaseId],
        protect_backup: Option<&[std::path::PathBuf]>,
    ) {
        if let Some(target) = &self.target {
            if let Err(e) = target
                .prune(self.policy.keep_releases, protect_release)
                .await
            {
                self.events.emit(Event::Warning {
                    message: format!("pruning old releases failed: {e}"),
                });
            }
        }
        if let (Some(backup), Some(protect_backup)) = (&self.backup, protect_backup) {
            if let Err(e) = backup
                .prune(&self.env, self.policy.keep_backups, protect_backup)
                .await
            {
                self.events.emit(Event::Warning {
                    message: format!("pruning old backups failed: {e}"),
                });
            }
        }
    }
}
