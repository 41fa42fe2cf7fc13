//! The recorded state the in-memory twins share: what is live, what is staged,
//! which migrations are applied, which rows exist, which backups were taken.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::backup::BackupArtifact;
use crate::migrate::{LintFinding, MigrationId};
use crate::release::{Commit, ReleaseId, ReleaseSpec};

use super::faults::Faults;
use super::parts::{MemoryBackup, MemoryMigrator, MemoryProbe, MemoryTarget};

/// The observable state of the world: what "all-old" and "all-new" are compared on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The live release.
    pub live: Option<ReleaseId>,
    /// Staged releases.
    pub releases: BTreeSet<ReleaseId>,
    /// Applied migrations, in order.
    pub applied: Vec<MigrationId>,
    /// The application's data.
    pub rows: Vec<String>,
}

/// A migration "on disk" in the twin world.
#[derive(Debug, Clone)]
pub(crate) struct MemoryMigration {
    pub(crate) id: MigrationId,
    pub(crate) reversible: bool,
    pub(crate) findings: Vec<LintFinding>,
    pub(crate) allowed: bool,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) live: Option<ReleaseId>,
    pub(crate) releases: BTreeSet<ReleaseId>,
    pub(crate) available: Vec<MemoryMigration>,
    pub(crate) applied: Vec<MigrationId>,
    pub(crate) rows: Vec<String>,
    pub(crate) backups: Vec<(BackupArtifact, Vec<MigrationId>, Vec<String>)>,
    pub(crate) unhealthy: BTreeSet<ReleaseId>,
}

/// One shared world and its fault script; hands out twins bound to it.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub(crate) state: Arc<Mutex<State>>,
    /// The fault script every twin of this world consults.
    pub faults: Arc<Faults>,
}

impl World {
    /// An empty world: nothing live, no migrations, no data.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A target twin.
    pub fn target(&self) -> MemoryTarget {
        MemoryTarget {
            world: self.clone(),
        }
    }

    /// A migrator twin.
    pub fn migrator(&self) -> MemoryMigrator {
        MemoryMigrator {
            world: self.clone(),
        }
    }

    /// A backup twin.
    pub fn backup(&self) -> MemoryBackup {
        MemoryBackup {
            world: self.clone(),
        }
    }

    /// A probe twin: healthy while a release is live and not marked unhealthy.
    pub fn probe(&self) -> MemoryProbe {
        MemoryProbe {
            world: self.clone(),
        }
    }

    /// A release spec for `id` (commit `abc1234`).
    pub fn spec(&self, id: &str) -> ReleaseSpec {
        ReleaseSpec {
            id: ReleaseId::parse(id).expect("valid test release id"),
            commit: Commit::parse("abc1234").expect("valid commit"),
            branch: Some("main".into()),
        }
    }

    /// Puts a migration on "disk"; `reversible` says whether it has a down script.
    pub fn add_migration(&self, version: &str, name: &str, reversible: bool) {
        let id = MigrationId {
            version: version.into(),
            name: name.into(),
        };
        self.state().available.push(MemoryMigration {
            id,
            reversible,
            findings: Vec::new(),
            allowed: false,
        });
    }

    /// Puts a reversible migration on "disk" that the lint flags with `rule`;
    /// `allowed` says whether the file carries the allow marker.
    pub fn add_flagged_migration(&self, version: &str, name: &str, rule: &str, allowed: bool) {
        let id = MigrationId {
            version: version.into(),
            name: name.into(),
        };
        let finding = LintFinding {
            rule: rule.into(),
            message: format!("{rule} found"),
        };
        self.state().available.push(MemoryMigration {
            id,
            reversible: true,
            findings: vec![finding],
            allowed,
        });
    }

    /// Marks every migration on "disk" as applied, as if an earlier deploy ran them.
    pub fn apply_all_migrations(&self) {
        let mut s = self.state();
        s.applied = s.available.iter().map(|m| m.id.clone()).collect();
    }

    /// Stages and activates `release` directly, as if an earlier deploy had.
    pub fn set_live(&self, release: &str) {
        let id = ReleaseId::parse(release).expect("valid id");
        let mut s = self.state();
        s.releases.insert(id.clone());
        s.live = Some(id);
    }

    /// Writes a row of application data.
    pub fn add_row(&self, row: &str) {
        self.state().rows.push(row.into());
    }

    /// Makes the probe report `release` unhealthy whenever it is live.
    pub fn mark_unhealthy(&self, release: &str) {
        self.state()
            .unhealthy
            .insert(ReleaseId::parse(release).expect("valid id"));
    }

    /// The observable state now.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.state();
        Snapshot {
            live: s.live.clone(),
            releases: s.releases.clone(),
            applied: s.applied.clone(),
            rows: s.rows.clone(),
        }
    }

    /// Backups taken so far.
    pub fn backups(&self) -> Vec<BackupArtifact> {
        self.state().backups.iter().map(|b| b.0.clone()).collect()
    }
}
