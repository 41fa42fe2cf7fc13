//! Assembling a pipeline: every part is optional and set by its own method, so an
//! embedder names only what its environment has.

use super::*;

impl Pipeline {
    /// An empty pipeline for `env` with the default (safe) policy.
    ///
    /// Who deploys is an input ([`who`](Self::who)), not read from the process
    /// environment: a library cannot know which variable names its caller's user.
    pub fn new(env: impl Into<String>) -> Self {
        Self {
            env: env.into(),
            who: "unknown".into(),
            message: None,
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
            words: crate::next_step::plain_words(),
            hooks: None,
            staged_from: None,
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

    /// How next steps are worded in reports and the journal: a program names its
    /// own commands here (without it, they are described without naming any).
    pub fn next_step_words(mut self, words: NextStepWords) -> Self {
        self.words = words;
        self
    }

    /// The operator's hooks and their runner (see [`crate::hook`]).
    pub fn hooks(mut self, hooks: crate::hook::Hooks) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// What this run's release is made from, beyond its commit (e.g. `artifact
    /// sha256:…` for a tarball built once): journaled in the prepare step's
    /// outcome, so the record says which bytes went out.
    pub fn staged_from(mut self, what: impl Into<String>) -> Self {
        self.staged_from = Some(what.into());
        self
    }

    /// Who is deploying, for the lock and the journal (`unknown` until set).
    pub fn who(mut self, who: impl Into<String>) -> Self {
        self.who = who.into();
        self
    }

    /// Why this run is made, in the deployer's words (`None`, or blank: silent).
    /// It rides on the run's lock, so whoever is refused or waits reads it, and
    /// in the run's journal, so history shows it after the machine is gone. A URL
    /// password or masked secret typed into it is removed first.
    pub fn message(mut self, message: Option<String>) -> Self {
        self.message = message
            .map(|m| crate::lock::one_line(&crate::secret::redact(&m, &[])))
            .filter(|m| !m.trim().is_empty());
        self
    }
}
