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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
