//! How a run and a `recover` hold the environment's lock: taken before anything
//! is read, its lease renewed while they work, and never taken from a live holder
//! unless forced.

use super::*;
use crate::journal::Outcome;
use crate::journal_rules::final_outcome;
use crate::lock::{Liveness, LockHolder};

impl Pipeline {
    /// Takes the lock for a new run, with a lease renewed in the background.
    pub(super) async fn take_lock(&self, run_id: &str) -> Result<Option<LeaseKeeper>> {
        let Some(lock) = &self.lock else {
            return Ok(None);
        };
        let holder = LockHolder::this_process(&self.env, run_id, &self.who)
            .with_message(self.message.clone())
            .renewed(self.lease.lease);
        lock.acquire(&holder).await?;
        Ok(Some(LeaseKeeper::start(
            lock.clone(),
            holder,
            self.lease,
            self.events.clone(),
        )))
    }

    /// Takes the lock for `recover` of `run_id`: acquires it if free; takes it over
    /// from a holder that is gone (the crashed run, a recover that stopped); refuses
    /// a live holder unless `force`, and then says whom it overrides. The take-over
    /// is a compare-and-swap, so of two recovers at the same time only one wins.
    async fn take_lock_for_recover(
        &self,
        run_id: &str,
        force: bool,
    ) -> Result<Option<LeaseKeeper>> {
        let Some(lock) = &self.lock else {
            return Ok(None);
        };
        let me = LockHolder::this_process(&self.env, run_id, &self.who).renewed(self.lease.lease);
        match lock.holder().await? {
            None => lock.acquire(&me).await?,
            Some(held) => {
                match held.liveness() {
                    Liveness::Alive(why) if !force => {
                        self.events.emit(Event::Warning {
                            message: format!("not recovering: the lock's holder is alive ({why})"),
                        });
                        return Err(Error::Locked {
                            env: self.env.clone(),
                            holder: Box::new(held),
                            stale: false,
                        });
                    }
                    Liveness::Alive(why) => self.events.emit(Event::Warning {
                        message: format!(
                            "--force: taking the lock from {held}, which looks alive ({why})"
                        ),
                    }),
                    Liveness::Stale(why) => self.events.emit(Event::Warning {
                        message: format!("taking over the lock of {held}: {why}"),
                    }),
                }
                lock.replace(&held, Some(&me)).await?;
            }
        }
        Ok(Some(LeaseKeeper::start(
            lock.clone(),
            me,
            self.lease,
            self.events.clone(),
        )))
    }

    /// [`recover`](Self::recover), overriding a live lock holder when `force` is set:
    /// for when a human knows the holder is dead but its lease cannot show it yet
    /// (its machine vanished a moment ago). Its warning event names the holder.
    pub async fn recover_with(&self, journal: &dyn JournalStore, force: bool) -> Result<RunReport> {
        let run_id = match journal.records().await?.first() {
            Some(Record::RunStarted { run_id, env, .. }) if *env == self.env => run_id.clone(),
            // Not a journal of this environment: refused before anything is taken.
            _ => return self.recover_unlocked(journal).await,
        };
        let keeper = self.take_lock_for_recover(&run_id, force).await?;
        let report = self.recover_unlocked(journal).await;
        match &report {
            Ok(r) if matches!(r.outcome, Outcome::Succeeded | Outcome::RolledBack) => {
                self.release_lock(keeper.as_ref(), &run_id).await
            }
            _ => self.end_lease(keeper.as_ref()).await,
        }
        report
    }

    /// After a run: if it stopped without finishing, end its lease (the lock stays
    /// for `recover`); if another process finished it meanwhile, report that end
    /// rather than this process's view, which may be stale.
    pub(super) async fn settle_lock(
        &self,
        keeper: Option<&LeaseKeeper>,
        journal: &dyn JournalStore,
        report: &mut RunReport,
    ) {
        let lost = keeper.is_some_and(|k| k.lost().is_some());
        if !lost
            && matches!(
                report.outcome,
                Outcome::Interrupted | Outcome::RollbackFailed
            )
        {
            self.end_lease(keeper).await;
        } else if let Some(k) = keeper {
            k.stop();
        }
        if report.outcome != Outcome::Interrupted {
            return;
        }
        if let Some(outcome) = journal
            .records()
            .await
            .ok()
            .as_deref()
            .and_then(final_outcome)
        {
            report.outcome = outcome;
            let step = NextStep::FinishedElsewhere {
                env: self.env.clone(),
                outcome,
            };
            self.advise(report, Some(step));
        }
    }

    /// Ends the lease now, keeping the lock; a failure only means the lease runs out
    /// by itself.
    async fn end_lease(&self, keeper: Option<&LeaseKeeper>) {
        if let Some(k) = keeper {
            if let Err(e) = k.end().await {
                self.events.emit(Event::Warning {
                    message: format!(
                        "marking the deploy lock as left for recover failed ({e}); \
                         it counts as stale once its lease runs out"
                    ),
                });
            }
        }
    }

    /// The run's lock was taken away before it committed or undid: do neither.
    pub(super) fn lock_lost(&self, report: &mut RunReport, why: String) {
        report.outcome = Outcome::Interrupted;
        report.error = Some(why);
        let step = NextStep::LockTakenOver {
            env: self.env.clone(),
        };
        self.advise(report, Some(step));
        self.events.emit(Event::RunFinished {
            outcome: Outcome::Interrupted,
            next: report.next.clone(),
        });
    }
}
