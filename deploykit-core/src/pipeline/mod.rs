//! The transactional run: preflight → (prepare ∥ backup) → migrate → activate →
//! verify → commit, undoing what was done when any step fails.
//!
//! One concept per file: `builder` assembles a pipeline, `forward` runs the steps,
//! `preflight` holds the policy checks (pure functions over data), `step` journals
//! each side effect, `finish` ends a run (commit, undo, interrupted), `recover`
//! finishes a run another process left, and `run_lock` holds the environment's lock.

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use crate::backup::Backup;
use crate::error::{Error, Result};
use crate::event::{Event, Events};
use crate::gate::ApprovalGate;
use crate::health::HealthProbe;
use crate::journal::{JournalStore, Record};
use crate::lease::{LeaseKeeper, LeaseTiming};
use crate::lock::DeployLock;
use crate::migrate::Migrator;
use crate::next_step::{NextStep, NextStepWords};
use crate::phase::Phase;
use crate::policy::Policy;
use crate::release::ReleaseSpec;
use crate::report::{PhaseTiming, RunReport};
use crate::rollback::Rollback;
use crate::state_store::StateStore;
use crate::target::Target;

mod builder;
mod debug;
mod failure_logs;
mod finish;
mod forward;
pub(crate) mod guard;
mod hooks;
mod preflight;
mod recover;
mod run_lock;
mod step;

/// One environment's deploy: its parts, its rules and where it reports.
///
/// Every part is optional, so the same pipeline runs "migrations only", "code only" or
/// the full sequence; phases without a part are skipped.
#[derive(Clone)]
pub struct Pipeline {
    env: String,
    who: String,
    /// Why this run (shown to whoever meets its lock, and kept in its journal).
    message: Option<String>,
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
    /// How next steps are worded for humans (the CLI names its commands).
    words: NextStepWords,
    /// The operator's commands at points of the run (`hooks.rs`).
    hooks: Option<crate::hook::Hooks>,
    /// What the release is staged from, journaled with the prepare step.
    staged_from: Option<String>,
}

/// Why the run stopped going forward.
enum Stop {
    /// A step failed: undo and report.
    Failed { phase: Phase, error: Error },
    /// The journal could not be written: touch nothing more; `recover` finishes.
    Interrupted { error: String },
}

/// State shared by the steps of one run.
struct RunState<'a> {
    journal: &'a dyn JournalStore,
    /// The environment's other journals, when known: their pending undos keep
    /// their backups from being pruned.
    journals: Option<&'a dyn StateStore>,
    seq: AtomicU32,
    phases: Mutex<Vec<PhaseTiming>>,
    /// Renews the lock's lease while the run works (`None` without a lock).
    keeper: Option<LeaseKeeper>,
}

impl Pipeline {
    /// The environment's name.
    pub fn env(&self) -> &str {
        &self.env
    }

    /// Tells the report's reader what to do next: as data, and worded.
    fn advise(&self, report: &mut RunReport, step: Option<NextStep>) {
        report.next = step.as_ref().map(|s| (self.words)(s));
        report.next_step = step;
    }

    /// An error's text for the report and the journal: its next step (if any)
    /// worded like the run's own, naming this environment.
    fn word(&self, error: &Error) -> String {
        error.worded(&|step: &NextStep| (self.words)(&step.clone().in_env(&self.env)))
    }

    /// How long a single step may take (from the policy).
    pub fn step_timeout(&self) -> Duration {
        self.policy.step_timeout
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
            message: self.message.clone(),
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
            seq: AtomicU32::new(0),
            phases: Mutex::new(Vec::new()),
            keeper,
        };
        let mut report = RunReport::started(run_id, &self.env, &spec.id, previous.as_ref());
        match self
            .forward(&state, spec, previous.as_ref(), &mut report)
            .await
        {
            Ok(()) => {
                self.commit(&state, spec, previous.as_ref(), &mut report)
                    .await
            }
            Err(Stop::Interrupted { error }) => self.interrupted(&mut report, error),
            Err(Stop::Failed { phase, error }) => {
                self.undo_and_finish(&state, previous.as_ref(), phase, error, &mut report)
                    .await;
            }
        }
        self.settle_lock(state.keeper.as_ref(), state.journal, &mut report)
            .await;
        report.phases = state.phases.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok(report)
    }
}
