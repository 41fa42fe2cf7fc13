//! The transactional run: preflight → (prepare ∥ backup) → migrate → activate →
//! verify → commit, undoing what was done when any step fails.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::backup::{Backup, BackupArtifact, BackupExt, BackupRequest};
use crate::compensate::{panic_message, undo_owed};
use crate::error::{Error, Result};
use crate::event::{Event, Events};
use crate::gate::{ApprovalGate, ApprovalRequest};
use crate::health::HealthProbe;
use crate::health_driver::HealthDriver;
use crate::journal::{JournalStore, Outcome, Record};
use crate::lease::{LeaseKeeper, LeaseTiming};
use crate::lock::DeployLock;
use crate::migrate::{AppliedSet, MigrationPlan, Migrator};
use crate::phase::Phase;
use crate::policy::{MigrationFailurePolicy, Policy};
use crate::release::{ReleaseId, ReleaseSpec};
use crate::report::{PhaseTiming, RunReport, UndoResult};
use crate::rollback::{Compensation, PartsRollback, Rollback};
use crate::state_store::StateStore;
use crate::target::{Target, TargetExt};

mod debug;
mod run_lock;

/// One environment's deploy: its parts, its rules and where it reports.
///
/// Every part is optional, so the same pipeline runs "migrations only", "code only" or
/// the full sequence; phases without a part are skipped.
#[derive(Clone)]
pub struct Pipeline {
    env: String,
    who: String,
    target: Option<Arc<dyn Target>>,
    backup: Option<Arc<dyn Backup>>,
    migrator: Option<Arc<dyn Migrator>>,
    probes: Vec<Arc<dyn HealthProbe>>,
    rollback: Option<Arc<dyn Rollback>>,
    lock: Option<Arc<dyn DeployLock>>,
    gate: Option<Arc<dyn ApprovalGate>>,
    policy: Policy,
    events: Events,
    lease: LeaseTiming,
}

/// Why the run stopped going forward.
enum Stop {
    /// A step failed: undo and report.
    Failed { phase: Phase, error: String },
    /// The journal could not be written: touch nothing more; `recover` finishes.
    Interrupted { error: String },
}

/// State shared by the steps of one run.
struct RunState<'a> {
    journal: &'a dyn JournalStore,
    /// The environment's other journals, when known: their pending undos keep
    /// their backups from being pruned.
    journals: Option<&'a dyn StateStore>,
    /// What a failed migration left applied that no undo removes (a migration
    /// run outside a transaction that failed part-way).
    residue: Mutex<Option<String>>,
    seq: AtomicU32,
    phases: Mutex<Vec<PhaseTiming>>,
    /// Renews the lock's lease while the run works (`None` without a lock).
    keeper: Option<LeaseKeeper>,
}

impl Pipeline {
    /// An empty pipeline for `env` with the default (safe) policy.
    pub fn new(env: impl Into<String>) -> Self {
        Self {
            env: env.into(),
            who: std::env::var("GITHUB_ACTOR")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "unknown".into()),
            target: None,
            backup: None,
            migrator: None,
            probes: Vec::new(),
            rollback: None,
            lock: None,
            gate: None,
            policy: Policy::default(),
            events: Events::none(),
            lease: LeaseTiming::default(),
        }
    }

    /// Where releases are staged and activated.
    pub fn target(mut self, target: Arc<dyn Target>) -> Self {
        self.target = Some(target);
        self
    }

    /// How the database is backed up before migrating.
    pub fn backup(mut self, backup: Arc<dyn Backup>) -> Self {
        self.backup = Some(backup);
        self
    }

    /// How the schema is migrated.
    pub fn migrator(mut self, migrator: Arc<dyn Migrator>) -> Self {
        self.migrator = Some(migrator);
        self
    }

    /// Adds a health probe run in the verify phase (and after a rollback).
    pub fn probe(mut self, probe: Arc<dyn HealthProbe>) -> Self {
        self.probes.push(probe);
        self
    }

    /// Replaces the default undo executor (which dispatches to the parts above).
    pub fn rollback(mut self, rollback: Arc<dyn Rollback>) -> Self {
        self.rollback = Some(rollback);
        self
    }

    /// The environment's deploy lock.
    pub fn lock(mut self, lock: Arc<dyn DeployLock>) -> Self {
        self.lock = Some(lock);
        self
    }

    /// How long the lock's lease lasts and how often a running deploy renews it.
    pub fn lease(mut self, timing: LeaseTiming) -> Self {
        self.lease = timing;
        self
    }

    /// The approval gate protected environments need.
    pub fn gate(mut self, gate: Arc<dyn ApprovalGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The rules of this environment.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Where events go.
    pub fn events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// Who is deploying, for the lock and the journal (defaults to `$GITHUB_ACTOR`/`$USER`).
    pub fn who(mut self, who: impl Into<String>) -> Self {
        self.who = who.into();
        self
    }

    /// The environment's name.
    pub fn env(&self) -> &str {
        &self.env
    }

    /// A run id that sorts by start time and names the release.
    pub fn new_run_id(&self, spec: &ReleaseSpec) -> String {
        let now = OffsetDateTime::now_utc();
        format!(
            "{}-{:09}-{}",
            crate::release::utc_stamp(now),
            now.nanosecond(),
            spec.id
        )
    }

    /// Runs a deploy with its journal in the environment's state `store` (one
    /// journal per run).
    pub async fn run_in(&self, store: &dyn StateStore, spec: &ReleaseSpec) -> Result<RunReport> {
        let run_id = self.new_run_id(spec);
        let journal = store.journal(&run_id).await?;
        self.run_journaled(&run_id, spec, journal.as_ref(), Some(store))
            .await
    }

    /// Runs a deploy, journaling to `journal`, with a fresh run id.
    pub async fn run(&self, spec: &ReleaseSpec, journal: &dyn JournalStore) -> Result<RunReport> {
        let run_id = self.new_run_id(spec);
        self.run_with_id(&run_id, spec, journal).await
    }

    /// Runs a deploy. `Err` means nothing started (locked, journal unwritable, target
    /// unreachable): nothing was changed. Every started run ends in a report.
    pub async fn run_with_id(
        &self,
        run_id: &str,
        spec: &ReleaseSpec,
        journal: &dyn JournalStore,
    ) -> Result<RunReport> {
        self.run_journaled(run_id, spec, journal, None).await
    }

    async fn run_journaled(
        &self,
        run_id: &str,
        spec: &ReleaseSpec,
        journal: &dyn JournalStore,
        journals: Option<&dyn StateStore>,
    ) -> Result<RunReport> {
        // Lock first, then read what is live: read before, another run could
        // activate a release in between, and an undo would go back past it.
        let keeper = self.take_lock(run_id).await?;
        let previous = match &self.target {
            Some(t) => match t.current().await {
                Ok(p) => p,
                Err(e) => {
                    self.release_lock(keeper.as_ref(), run_id).await;
                    return Err(e);
                }
            },
            None => None,
        };
        let started = Record::RunStarted {
            run_id: run_id.to_string(),
            env: self.env.clone(),
            release: spec.id.clone(),
            commit: spec.commit.clone(),
            branch: spec.branch.clone(),
            previous: previous.clone(),
            who: self.who.clone(),
            at: OffsetDateTime::now_utc(),
        };
        if let Err(e) = journal.append(&started).await {
            self.release_lock(keeper.as_ref(), run_id).await;
            return Err(e);
        }
        self.events.emit(Event::RunStarted {
            run_id: run_id.to_string(),
            env: self.env.clone(),
            release: spec.id.to_string(),
            previous: previous.as_ref().map(|p| p.to_string()),
        });

        let state = RunState {
            journal,
            journals,
            residue: Mutex::new(None),
            seq: AtomicU32::new(0),
            phases: Mutex::new(Vec::new()),
            keeper,
        };
        let mut report = RunReport {
            run_id: run_id.to_string(),
            env: self.env.clone(),
            release: spec.id.clone(),
            previous: previous.clone(),
            outcome: Outcome::Succeeded,
            failed_phase: None,
            error: None,
            undone: Vec::new(),
            next: None,
            approver: None,
            backup: None,
            applied: None,
            phases: Vec::new(),
        };

        let forward = self
            .forward(&state, spec, previous.as_ref(), &mut report)
            .await;
        match forward {
            Ok(()) => {
                self.commit(&state, spec, previous.as_ref(), &mut report)
                    .await
            }
            Err(Stop::Interrupted { error }) => self.interrupted(&mut report, error),
            Err(Stop::Failed { phase, error }) => {
                report.failed_phase = Some(phase);
                report.error = Some(error.clone());
                self.undo_and_finish(&state, previous.as_ref(), &mut report)
                    .await;
            }
        }
        self.settle_lock(state.keeper.as_ref(), state.journal, &mut report)
            .await;
        report.phases = state.phases.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok(report)
    }

    /// Everything up to and including verify.
    async fn forward(
        &self,
        state: &RunState<'_>,
        spec: &ReleaseSpec,
        previous: Option<&ReleaseId>,
        report: &mut RunReport,
    ) -> std::result::Result<(), Stop> {
        // Preflight: changes nothing, so it needs no intent records.
        let t = self.phase_start(Phase::Preflight);
        let guarded = AssertUnwindSafe(self.preflight(state, spec, previous)).catch_unwind();
        let checked = match tokio::time::timeout(self.policy.step_timeout, guarded).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(Stop::Failed {
                phase: Phase::Preflight,
                error: format!("preflight panicked: {}", panic_message(&panic)),
            }),
            Err(_) => Err(Stop::Failed {
                phase: Phase::Preflight,
                error: Error::Timeout {
                    step: "preflight".into(),
                    location: self.env.clone(),
                    after: self.policy.step_timeout,
                }
                .to_string(),
            }),
        };
        let plan = match checked {
            Ok((plan, approver)) => {
                report.approver = approver;
                self.phase_end(state, Phase::Preflight, t, Ok("checks passed".into()));
                plan
            }
            Err(Stop::Failed { phase, error }) => {
                self.phase_end(state, phase, t, Err(error.clone()));
                return Err(Stop::Failed { phase, error });
            }
            Err(stop) => return Err(stop),
        };

        // Prepare and backup touch no live traffic, so they run side by side.
        let prepare = async {
            match &self.target {
                // Already staged (a rollback, or a redeploy of a kept release): nothing
                // to prepare, and nothing to discard if the run fails.
                Some(target) if self.is_staged(target.as_ref(), &spec.id).await? => {
                    self.events.emit(Event::Warning {
                        message: format!("{} is already staged; prepare skipped", spec.id),
                    });
                    Ok(())
                }
                Some(target) => {
                    let undo = Compensation::DiscardRelease {
                        release: spec.id.clone(),
                    };
                    self.step(state, Phase::Prepare, Some(undo), async {
                        target
                            .prepare(spec)
                            .await
                            .map(|_| format!("staged {}", spec.id))
                    })
                    .await
                    .map(|_| ())
                }
                None => Ok(()),
            }
        };
        let needs_backup = self.backup.is_some() && (!plan.is_empty() || self.migrator.is_none());
        let backup = async {
            match (&self.backup, needs_backup) {
                (Some(backup), true) => {
                    let request = BackupRequest {
                        env: self.env.clone(),
                        release: spec.id.clone(),
                        commit: spec.commit.clone(),
                        branch: spec.branch.clone(),
                    };
                    let artifact = Mutex::new(None);
                    self.step(state, Phase::Backup, None, async {
                        let a = backup.create(&request).await?;
                        backup.verify(&a).await?;
                        let detail = format!(
                            "{} ({} bytes, sha256 {})",
                            a.path.display(),
                            a.size,
                            a.sha256
                        );
                        *artifact.lock().unwrap_or_else(|e| e.into_inner()) = Some(a);
                        Ok(detail)
                    })
                    .await?;
                    Ok(artifact.into_inner().unwrap_or_else(|e| e.into_inner()))
                }
                _ => Ok(None),
            }
        };
        let (prepared, backed_up) = futures::join!(prepare, backup);
        let artifact = match (prepared, backed_up) {
            (Err(Stop::Interrupted { error }), _) | (_, Err(Stop::Interrupted { error })) => {
                return Err(Stop::Interrupted { error })
            }
            (Err(stop), _) | (_, Err(stop)) => return Err(stop),
            (Ok(()), Ok(artifact)) => artifact,
        };
        report.backup = artifact.clone();

        if let (Some(migrator), false) = (&self.migrator, plan.is_empty()) {
            self.check_backup_fresh(artifact.as_ref())?;
            let undo =
                match self.policy.migration_failure {
                    MigrationFailurePolicy::Down => Compensation::RevertMigrations {
                        applied: plan.as_applied(),
                    },
                    MigrationFailurePolicy::Keep => Compensation::KeepSchema {
                        applied: plan.as_applied(),
                    },
                    MigrationFailurePolicy::Restore => match &artifact {
                        Some(a) => Compensation::RestoreBackup {
                            artifact: a.clone(),
                            only_if_applied: plan.all_or_nothing().then(|| plan.as_applied()),
                        },
                        None => return Err(Stop::Failed {
                            phase: Phase::Migrate,
                            error:
                                "policy `restore` needs a backup taken by this run, and none was"
                                    .into(),
                        }),
                    },
                };
            let applied: Mutex<Option<AppliedSet>> = Mutex::new(None);
            self.step(state, Phase::Migrate, Some(undo), async {
                let set = migrator.apply(&plan).await.inspect_err(|e| {
                    // A restore brings the whole schema back; other undos cannot
                    // remove what a half-run migration left.
                    let restores = self.policy.migration_failure == MigrationFailurePolicy::Restore;
                    if matches!(e, Error::PartlyApplied { .. }) && !restores {
                        *state.residue.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(e.to_string());
                    }
                })?;
                let detail = format!("applied {} migration(s)", set.migrations.len());
                *applied.lock().unwrap_or_else(|e| e.into_inner()) = Some(set);
                Ok(detail)
            })
            .await?;
            report.applied = applied.into_inner().unwrap_or_else(|e| e.into_inner());
        }

        if let Some(target) = &self.target {
            let undo = Compensation::Reactivate {
                previous: previous.cloned(),
                failed: spec.id.clone(),
            };
            self.step(state, Phase::Activate, Some(undo), async {
                target
                    .activate(Some(&spec.id))
                    .await
                    .map(|_| format!("{} is live", spec.id))
            })
            .await?;
        }

        if !self.probes.is_empty() {
            let driver = HealthDriver::new(self.probes.clone(), self.policy.health.clone());
            let events = self.events.clone();
            self.step(state, Phase::Verify, None, async move {
                let verdict = driver.run(&events).await;
                if verdict.passed {
                    Ok(format!(
                        "all probes passed after {} round(s)",
                        verdict.rounds
                    ))
                } else {
                    Err(Error::part(
                        "verify",
                        "health probes",
                        format!(
                            "not healthy after {} round(s): {}",
                            verdict.rounds,
                            verdict.failures()
                        ),
                    ))
                }
            })
            .await?;
        }
        Ok(())
    }

    async fn is_staged(
        &self,
        target: &dyn Target,
        id: &ReleaseId,
    ) -> std::result::Result<bool, Stop> {
        target
            .list()
            .await
            .map(|staged| staged.contains(id))
            .map_err(|e| Stop::Failed {
                phase: Phase::Prepare,
                error: e.to_string(),
            })
    }

    /// Gates and plan checks, before anything changes.
    async fn preflight(
        &self,
        state: &RunState<'_>,
        spec: &ReleaseSpec,
        previous: Option<&ReleaseId>,
    ) -> std::result::Result<(MigrationPlan, Option<String>), Stop> {
        let fail = |error: String| Stop::Failed {
            phase: Phase::Preflight,
            error,
        };
        if previous == Some(&spec.id) {
            return Err(fail(format!(
                "release {} is already live; deploy a new release id, or use `rollback` to go back",
                spec.id
            )));
        }
        let plan = match &self.migrator {
            Some(m) => m.plan().await.map_err(|e| fail(e.to_string()))?,
            None => MigrationPlan::default(),
        };
        if !plan.is_empty() {
            if self.policy.migration_failure == MigrationFailurePolicy::Down {
                let irreversible: Vec<String> = plan
                    .migrations
                    .iter()
                    .filter(|m| !m.reversible)
                    .map(|m| m.id.to_string())
                    .collect();
                if !irreversible.is_empty() {
                    return Err(fail(format!(
                        "migration(s) {} have no down script, so policy `down` could not undo them; \
                         add down scripts, or set the migration failure policy to `keep` or `restore`",
                        irreversible.join(", ")
                    )));
                }
            }
            if self.policy.protected {
                let flagged: Vec<String> = plan
                    .migrations
                    .iter()
                    .filter(|m| !m.findings.is_empty() && !m.allowed)
                    .map(|m| {
                        let rules: Vec<&str> = m.findings.iter().map(|f| f.rule.as_str()).collect();
                        format!("{} ({})", m.id, rules.join(", "))
                    })
                    .collect();
                if !flagged.is_empty() {
                    return Err(fail(format!(
                        "protected environment {} refuses destructive migration(s) {}; \
                         review them and add the allow marker to each file to proceed",
                        self.env,
                        flagged.join("; ")
                    )));
                }
            }
            if self.backup.is_none() && !self.policy.waive_backup {
                return Err(fail(
                    "migrations need a fresh backup and no backup is configured; configure one, \
                     or waive the requirement explicitly"
                        .into(),
                ));
            }
            if self.policy.migration_failure == MigrationFailurePolicy::Restore
                && self.backup.is_none()
            {
                return Err(fail("policy `restore` needs a configured backup".into()));
            }
        }
        let mut approver = None;
        if self.policy.protected {
            let gate = self.gate.as_ref().ok_or_else(|| {
                fail(format!(
                    "environment {} is protected and no approval was given (e.g. --approve NAME)",
                    self.env
                ))
            })?;
            let request = ApprovalRequest {
                env: self.env.clone(),
                release: spec.id.clone(),
                previous: previous.cloned(),
                migrations: plan.migrations.iter().map(|m| m.id.to_string()).collect(),
            };
            let name = gate
                .approve(&request)
                .await
                .map_err(|e| fail(format!("approval refused: {e}")))?;
            state
                .journal
                .append(&Record::Approved {
                    approver: name.clone(),
                    at: OffsetDateTime::now_utc(),
                })
                .await
                .map_err(|e| Stop::Interrupted {
                    error: e.to_string(),
                })?;
            approver = Some(name);
        }
        Ok((plan, approver))
    }

    fn check_backup_fresh(
        &self,
        artifact: Option<&BackupArtifact>,
    ) -> std::result::Result<(), Stop> {
        if self.policy.waive_backup {
            self.events.emit(Event::Warning {
                message: "migrating without a fresh backup (waived)".into(),
            });
            return Ok(());
        }
        let max = self.policy.backup_max_age;
        match artifact {
            Some(a) if (OffsetDateTime::now_utc() - a.created) <= max => Ok(()),
            Some(a) => Err(Stop::Failed {
                phase: Phase::Migrate,
                error: format!(
                    "backup {} is older than {} minute(s); nothing was migrated. Re-run the deploy",
                    a.path.display(),
                    max.as_secs() / 60
                ),
            }),
            None => Err(Stop::Failed {
                phase: Phase::Migrate,
                error: "no backup was taken, so migrations were not applied".into(),
            }),
        }
    }

    /// Runs one side effect between an intent record and an outcome record.
    async fn step<F>(
        &self,
        state: &RunState<'_>,
        phase: Phase,
        undo: Option<Compensation>,
        effect: F,
    ) -> std::result::Result<String, Stop>
    where
        F: Future<Output = Result<String>>,
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
        let timeout = self.policy.step_timeout;
        let result =
            match tokio::time::timeout(timeout, AssertUnwindSafe(effect).catch_unwind()).await {
                Ok(Ok(r)) => r.map_err(|e| e.to_string()),
                Ok(Err(panic)) => Err(format!("{phase} panicked: {}", panic_message(&panic))),
                Err(_) => Err(Error::Timeout {
                    step: phase.to_string(),
                    location: self.env.clone(),
                    after: timeout,
                }
                .to_string()),
            };
        let (error, detail) = match &result {
            Ok(d) => (None, Some(d.clone())),
            Err(e) => (Some(e.clone()), None),
        };
        state
            .journal
            .append(&Record::Outcome {
                seq,
                phase,
                error,
                detail,
                at: OffsetDateTime::now_utc(),
            })
            .await
            .map_err(|e| Stop::Interrupted {
                error: e.to_string(),
            })?;
        self.phase_end(state, phase, t, result.clone());
        result.map_err(|error| Stop::Failed { phase, error })
    }

    fn phase_start(&self, phase: Phase) -> Instant {
        self.events.emit(Event::PhaseStarted { phase });
        Instant::now()
    }

    fn phase_end(
        &self,
        state: &RunState<'_>,
        phase: Phase,
        started: Instant,
        result: std::result::Result<String, String>,
    ) {
        let elapsed = started.elapsed();
        let ok = result.is_ok();
        let detail = match result {
            Ok(d) | Err(d) => d,
        };
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

    /// The point of no return: record it, prune (warnings only), unlock, finish.
    async fn commit(
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
        let seq = state.seq.fetch_add(1, Ordering::SeqCst) + 1;
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
        let finished = Record::RunFinished {
            outcome: Outcome::Succeeded,
            failed_phase: None,
            error: None,
            next: None,
            at: OffsetDateTime::now_utc(),
        };
        if let Err(e) = state.journal.append(&finished).await {
            return self.interrupted(report, e.to_string());
        }
        self.release_lock(state.keeper.as_ref(), &report.run_id)
            .await;
        self.phase_end(
            state,
            Phase::Commit,
            t,
            Ok(format!("{} committed", spec.id)),
        );
        report.outcome = Outcome::Succeeded;
        self.events.emit(Event::RunFinished {
            outcome: Outcome::Succeeded,
            next: None,
        });
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
    async fn prune(
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

    fn interrupted(&self, report: &mut RunReport, error: String) {
        report.outcome = Outcome::Interrupted;
        report.error = Some(error);
        report.next = Some(format!(
            "the journal could not be written, so the run stopped where it was; fix the cause, then run `deploykit recover --env {}` to finish the undo",
            self.env
        ));
        self.events.emit(Event::RunFinished {
            outcome: Outcome::Interrupted,
            next: report.next.clone(),
        });
    }

    /// Undo what the journal says was done, re-verify the old release, finish.
    async fn undo_and_finish(
        &self,
        state: &RunState<'_>,
        previous: Option<&ReleaseId>,
        report: &mut RunReport,
    ) {
        // Whoever took the lock over (a forced recover) does the undo, not this run.
        if let Some(keeper) = &state.keeper {
            if let Some(why) = keeper.confirm().await {
                return self.lock_lost(report, why);
            }
        }
        match self.undo_and_verify(state.journal, previous).await {
            Ok((undone, mut outcome, mut next)) => {
                let residue = state
                    .residue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                if let Some(residue) = residue {
                    // Every undo ran, yet the schema is not the old one.
                    outcome = Outcome::RollbackFailed;
                    next = Some(match next {
                        Some(n) => format!("{residue}; also: {n}"),
                        None => format!(
                            "{residue}. The lock is kept until `deploykit recover --env {}` succeeds",
                            self.env
                        ),
                    });
                }
                report.undone = undone;
                report.outcome = outcome;
                report.next = next;
                let finished = Record::RunFinished {
                    outcome,
                    failed_phase: report.failed_phase,
                    error: report.error.clone(),
                    next: report.next.clone(),
                    at: OffsetDateTime::now_utc(),
                };
                if let Err(e) = state.journal.append(&finished).await {
                    return self.interrupted(report, e.to_string());
                }
                if outcome == Outcome::RolledBack {
                    self.release_lock(state.keeper.as_ref(), &report.run_id)
                        .await;
                }
                self.events.emit(Event::RunFinished {
                    outcome,
                    next: report.next.clone(),
                });
            }
            Err(e) => self.interrupted(report, e.to_string()),
        }
    }

    /// The shared tail of a failed run and of `recover`: owed undos, then the old
    /// release's health. `Err` only when the journal cannot be written.
    async fn undo_and_verify(
        &self,
        journal: &dyn JournalStore,
        previous: Option<&ReleaseId>,
    ) -> Result<(Vec<UndoResult>, Outcome, Option<String>)> {
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
            let next = format!(
                "the undo did not complete ({list}). The environment is neither fully old nor fully new and the \
                 lock is kept; fix the cause, then run `deploykit recover --env {}`",
                self.env
            );
            self.events.emit(Event::PhaseFinished {
                phase: Phase::Compensate,
                elapsed_ms: t.elapsed().as_millis() as u64,
                ok: false,
                detail: list,
            });
            return Ok((undone, Outcome::RollbackFailed, Some(next)));
        }
        self.events.emit(Event::PhaseFinished {
            phase: Phase::Compensate,
            elapsed_ms: t.elapsed().as_millis() as u64,
            ok: true,
            detail: format!("{} undo(s) ran", undone.len()),
        });
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
                let next = format!(
                    "everything this run did was undone, but the previous release is not healthy: {}. \
                     Investigate the app and its dependencies; the lock is kept until `deploykit recover --env {}` succeeds",
                    verdict.failures(),
                    self.env
                );
                return Ok((undone, Outcome::RollbackFailed, Some(next)));
            }
        }
        Ok((undone, Outcome::RolledBack, None))
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

    async fn release_lock(&self, keeper: Option<&LeaseKeeper>, run_id: &str) {
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
    async fn recover_unlocked(&self, journal: &dyn JournalStore) -> Result<RunReport> {
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
                next: format!("run `deploykit recover --env {env}`"),
            });
        }
        let mut report = RunReport {
            run_id: run_id.clone(),
            env,
            release: release.clone(),
            previous: previous.clone(),
            outcome: Outcome::Interrupted,
            failed_phase: None,
            error: None,
            undone: Vec::new(),
            next: None,
            approver: records.iter().find_map(|r| match r {
                Record::Approved { approver, .. } => Some(approver.clone()),
                _ => None,
            }),
            backup: None,
            applied: None,
            phases: Vec::new(),
        };
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
        if let Some((outcome, failed_phase, error, next)) = &last_finish {
            if *outcome != Outcome::RollbackFailed {
                report.outcome = *outcome;
                report.failed_phase = *failed_phase;
                report.error = error.clone();
                report.next = next.clone();
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
            journal
                .append(&Record::RunFinished {
                    outcome: Outcome::Succeeded,
                    failed_phase: None,
                    error: None,
                    next: None,
                    at: OffsetDateTime::now_utc(),
                })
                .await?;
            report.outcome = Outcome::Succeeded;
            self.events.emit(Event::RunFinished {
                outcome: Outcome::Succeeded,
                next: None,
            });
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
        report.next = next;
        journal
            .append(&Record::RunFinished {
                outcome,
                failed_phase: report.failed_phase,
                error: report.error.clone(),
                next: report.next.clone(),
                at: OffsetDateTime::now_utc(),
            })
            .await?;
        self.events.emit(Event::RunFinished {
            outcome,
            next: report.next.clone(),
        });
        Ok(report)
    }

    /// How long a single step may take (from the policy).
    pub fn step_timeout(&self) -> Duration {
        self.policy.step_timeout
    }
}
