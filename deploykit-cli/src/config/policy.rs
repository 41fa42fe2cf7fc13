//! The run's rules (timeouts, health, backups before migrations) and its gates.

use std::time::Duration;

use deploykit_core::{HealthPolicy, MigrationFailurePolicy, Policy};
use serde::{Deserialize, Serialize};

/// The run's rules; absent keys keep core's safe defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Total seconds verification may take.
    pub health_deadline_secs: Option<u64>,
    /// Verification rounds.
    pub health_attempts: Option<u32>,
    /// Seconds between rounds.
    pub health_interval_secs: Option<u64>,
    /// Count `degraded` as passing.
    pub accept_degraded: Option<bool>,
    /// Migrations need a backup younger than this.
    pub backup_max_age_minutes: Option<u64>,
    /// Migrate without a fresh backup (explicit, recorded).
    pub waive_backup: Option<bool>,
    /// `down`, `keep` or `restore`.
    pub migration_failure: Option<MigrationFailurePolicy>,
    /// Seconds any single step may take.
    pub step_timeout_secs: Option<u64>,
    /// Releases kept.
    pub keep_releases: Option<usize>,
}

impl PolicyConfig {
    /// Core's policy with this file's overrides.
    pub fn to_policy(&self, protected: bool, keep_backups: Option<usize>) -> Policy {
        let d = Policy::default();
        let h = HealthPolicy::default();
        Policy::default()
            .health(HealthPolicy {
                deadline: self
                    .health_deadline_secs
                    .map(Duration::from_secs)
                    .unwrap_or(h.deadline),
                attempts: self.health_attempts.unwrap_or(h.attempts),
                interval: self
                    .health_interval_secs
                    .map(Duration::from_secs)
                    .unwrap_or(h.interval),
                accept_degraded: self.accept_degraded.unwrap_or(h.accept_degraded),
            })
            .backup_max_age(
                self.backup_max_age_minutes
                    .map(|m| Duration::from_secs(m * 60))
                    .unwrap_or(d.backup_max_age),
            )
            .waive_backup(self.waive_backup.unwrap_or(false))
            .migration_failure(self.migration_failure.unwrap_or_default())
            .protected(protected)
            .step_timeout(
                self.step_timeout_secs
                    .map(Duration::from_secs)
                    .unwrap_or(d.step_timeout),
            )
            .keep_releases(self.keep_releases.unwrap_or(d.keep_releases))
            .keep_backups(keep_backups.unwrap_or(d.keep_backups))
    }
}

/// Gates.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatesConfig {
    /// The environment is protected: deploys need `--approve NAME`, and lint
    /// findings need an allow marker.
    #[serde(default)]
    pub approval: bool,
}
