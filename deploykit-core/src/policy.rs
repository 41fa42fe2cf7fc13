//! The rules a run follows; defaults are the safe choice.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::health_driver::HealthPolicy;

/// What to do with the schema when a run that migrated has to be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationFailurePolicy {
    /// Run the down scripts of exactly the migrations this run applied. A plan with a
    /// migration that has no down script is refused before anything changes.
    #[default]
    Down,
    /// Leave the schema as migrated and roll back only the code (the new schema must
    /// be compatible with the old code); recorded as a warning.
    Keep,
    /// Restore this run's backup: destructive (loses writes made since), so only
    /// when configured explicitly.
    Restore,
}

/// The rules of one environment's runs.
///
/// Non-exhaustive so a new rule is not a breaking change: start from
/// `Policy::default()` (the safe choice) and change what differs with the
/// setters, e.g. `Policy::default().keep_backups(5)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Policy {
    /// Verification rules.
    pub health: HealthPolicy,
    /// Migrations need a backup younger than this (the seeds' 10 minutes).
    #[serde(with = "crate::duration_ms")]
    pub backup_max_age: Duration,
    /// Migrate without a fresh backup. Explicit, recorded, never the default.
    pub waive_backup: bool,
    /// What undoing a migration means.
    pub migration_failure: MigrationFailurePolicy,
    /// Needs an approval before anything changes, and refuses lint findings
    /// without an allow marker.
    pub protected: bool,
    /// Any single step longer than this fails (and is undone).
    #[serde(with = "crate::duration_ms")]
    pub step_timeout: Duration,
    /// Releases kept by the commit phase's prune.
    pub keep_releases: usize,
    /// Backups kept by the commit phase's prune.
    pub keep_backups: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            health: HealthPolicy::default(),
            backup_max_age: Duration::from_secs(10 * 60),
            waive_backup: false,
            migration_failure: MigrationFailurePolicy::Down,
            protected: false,
            step_timeout: Duration::from_secs(30 * 60),
            keep_releases: 5,
            keep_backups: 7,
        }
    }
}

impl Policy {
    /// Sets the verification rules.
    pub fn health(mut self, health: HealthPolicy) -> Self {
        self.health = health;
        self
    }

    /// Sets how fresh a backup migrations need.
    pub fn backup_max_age(mut self, backup_max_age: Duration) -> Self {
        self.backup_max_age = backup_max_age;
        self
    }

    /// Migrates without a fresh backup when `true` (explicit, recorded).
    pub fn waive_backup(mut self, waive_backup: bool) -> Self {
        self.waive_backup = waive_backup;
        self
    }

    /// Sets what undoing a migration means.
    pub fn migration_failure(mut self, migration_failure: MigrationFailurePolicy) -> Self {
        self.migration_failure = migration_failure;
        self
    }

    /// Marks the environment protected (approval, lint findings refused).
    pub fn protected(mut self, protected: bool) -> Self {
        self.protected = protected;
        self
    }

    /// Sets the longest a single step may take.
    pub fn step_timeout(mut self, step_timeout: Duration) -> Self {
        self.step_timeout = step_timeout;
        self
    }

    /// Sets how many releases the commit phase keeps.
    pub fn keep_releases(mut self, keep_releases: usize) -> Self {
        self.keep_releases = keep_releases;
        self
    }

    /// Sets how many backups the commit phase keeps.
    pub fn keep_backups(mut self, keep_backups: usize) -> Self {
        self.keep_backups = keep_backups;
        self
    }
}
