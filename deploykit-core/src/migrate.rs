//! The `Migrator` trait: schema changes that can be planned, applied and undone.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::release::{Commit, ReleaseSpec};

/// One migration, named as its file or tool names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MigrationId {
    /// The sortable version, e.g. `20251102140530`.
    pub version: String,
    /// The human part of the name, e.g. `add_bookings`.
    pub name: String,
}

impl std::fmt::Display for MigrationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.version, self.name)
    }
}

/// Where the database stands against the migrations on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationStatus {
    /// Applied and present on disk with the same content.
    pub applied: Vec<MigrationId>,
    /// On disk, not applied yet.
    pub pending: Vec<MigrationId>,
    /// Recorded as applied but no longer on disk.
    pub missing: Vec<MigrationId>,
    /// Applied, but the file changed since (checksum drift).
    pub drifted: Vec<MigrationId>,
}

/// A lint finding on a planned migration, e.g. `DROP COLUMN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintFinding {
    /// Short rule name, e.g. `drop-column`.
    pub rule: String,
    /// What was found and why it is risky.
    pub message: String,
}

/// One migration the plan would apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMigration {
    /// Which migration.
    pub id: MigrationId,
    /// It has a down script (or the tool can go back past it).
    pub reversible: bool,
    /// Risky statements found by the lint.
    pub findings: Vec<LintFinding>,
    /// The file carries an explicit marker allowing its findings.
    pub allowed: bool,
    /// It runs inside a transaction, so a failure leaves nothing of it behind.
    /// False when that is not known (SQL marked to run outside a transaction,
    /// external tools): a failure may then leave part of it applied.
    #[serde(default)]
    pub all_or_nothing: bool,
}

/// The migrations a run would apply, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationPlan {
    /// In application order.
    pub migrations: Vec<PlannedMigration>,
    /// Tool-specific revision the database is at now (command migrators), if known.
    pub from_revision: Option<String>,
    /// Where the planned migrations were read from and their down scripts, for
    /// migrators that read files (see [`MigrationOrigin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<MigrationOrigin>,
    /// The release it was planned for: `apply` reads that release's files and runs
    /// its tool, so plan and apply cannot disagree about which release they mean.
    /// `None`: the migrator's own directory or live tool, outside any release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseSpec>,
}

impl MigrationPlan {
    /// True when there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }

    /// The set a successful apply of this whole plan would produce; also what an
    /// interrupted apply may have produced part of, so revert is given this set.
    pub fn as_applied(&self) -> AppliedSet {
        AppliedSet {
            migrations: self.migrations.iter().map(|m| m.id.clone()).collect(),
            revision_before: self.from_revision.clone(),
            revision_after: None,
            origin: self.origin.clone(),
            release: self.release.clone(),
        }
    }

    /// True when every planned migration is all-or-nothing: then, after a failed
    /// apply, the migrations recorded as applied are exactly what changed the
    /// schema.
    pub fn all_or_nothing(&self) -> bool {
        self.migrations.iter().all(|m| m.all_or_nothing)
    }
}

/// Where a run's migrations came from, and what undoes each of them.
///
/// Journaled with the run's undo, so `recover` (or `migrate revert --run`) reverts
/// exactly the migrations that run applied with the down scripts of the commit it
/// deployed, even after the checkout has moved to another commit or lost the files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationOrigin {
    /// The commit the files were read from; `None` when they came from a directory.
    pub commit: Option<Commit>,
    /// The down script of each planned migration as read then; `None` if it had none.
    pub down_scripts: Vec<DownScript>,
}

/// The down script of one migration, as the deployed commit has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownScript {
    /// Which migration it undoes.
    pub id: MigrationId,
    /// The script; `None` when the migration has no down script.
    pub sql: Option<String>,
}

/// What one run applied: exactly what its undo reverts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedSet {
    /// In the order they were applied.
    pub migrations: Vec<MigrationId>,
    /// Tool-specific revision before the run (where `revert` goes back to).
    pub revision_before: Option<String>,
    /// Tool-specific revision after the run.
    pub revision_after: Option<String>,
    /// Where the migrations came from and their down scripts, when the migrator
    /// reads files; when they came from a commit, revert runs these rather than
    /// whatever is on disk by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<MigrationOrigin>,
    /// The release whose files or tool applied the set, so `revert` (in `recover`,
    /// after a crash, by another process) uses that release's down scripts, tool
    /// or image. Journals written before this field existed lack it: recovery
    /// fills it in from the run's `run_started` record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseSpec>,
}

/// Plans, applies and reverts schema migrations.
///
/// A migrator is built once per environment and bound to no release: each call
/// that reads migrations or runs the tool is told which release it concerns.
/// `status` and `plan` take it (`None`: the migrator's own directory, or the tool
/// as it runs now), the plan carries it to `apply`, and the applied set carries it
/// to `revert`, so an undo runs the files or tool of the release that applied.
///
/// `revert` must be idempotent and tolerate a set only partly applied: it reverts,
/// newest first, exactly those migrations of the set that are applied now. That is
/// what lets a later process finish an undo after a crash.
///
/// # Example
///
/// A migrator with one reversible migration, its schema state a flag: `revert`
/// undoes exactly what `apply` reported, and does nothing when that is undone
/// already, as the conformance suite checks (feature `testing`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use deploykit_core::{
///     async_trait, AppliedSet, MigrationId, MigrationPlan, MigrationStatus, Migrator,
///     PlannedMigration, ReleaseSpec, Result,
/// };
///
/// #[derive(Default)]
/// struct OneTable(AtomicBool);
///
/// fn id() -> MigrationId {
///     MigrationId { version: "0001".into(), name: "create_users".into() }
/// }
///
/// #[async_trait]
/// impl Migrator for OneTable {
///     async fn status(&self, _release: Option<&ReleaseSpec>) -> Result<MigrationStatus> {
///         let (applied, pending) = if self.0.load(Ordering::SeqCst) {
///             (vec![id()], vec![])
///         } else {
///             (vec![], vec![id()])
///         };
///         Ok(MigrationStatus { applied, pending, ..Default::default() })
///     }
///     async fn plan(&self, release: Option<&ReleaseSpec>) -> Result<MigrationPlan> {
///         let pending = self.status(release).await?.pending;
///         let migrations = pending
///             .into_iter()
///             .map(|id| PlannedMigration {
///                 id,
///                 reversible: true,
///                 findings: vec![],
///                 allowed: false,
///                 all_or_nothing: true,
///             })
///             .collect();
///         Ok(MigrationPlan { migrations, release: release.cloned(), ..Default::default() })
///     }
///     async fn apply(&self, plan: &MigrationPlan) -> Result<AppliedSet> {
///         self.0.store(true, Ordering::SeqCst); // CREATE TABLE users …
///         Ok(plan.as_applied())
///     }
///     async fn revert(&self, applied: &AppliedSet) -> Result<()> {
///         if applied.migrations.contains(&id()) {
///             self.0.store(false, Ordering::SeqCst); // DROP TABLE users
///         }
///         Ok(())
///     }
/// }
///
/// deploykit_core::testing::conformance::migrator_contract(&OneTable::default()).await;
/// # }
/// ```
#[async_trait]
pub trait Migrator: Send + Sync {
    /// Applied, pending, missing and drifted migrations, against `release`'s files.
    async fn status(&self, release: Option<&ReleaseSpec>) -> Result<MigrationStatus>;
    /// The pending migrations of `release` with lint findings; refuses on drift.
    /// The plan records `release` ([`MigrationPlan::release`]).
    async fn plan(&self, release: Option<&ReleaseSpec>) -> Result<MigrationPlan>;
    /// Applies the plan in order, with the files or tool of the release it was
    /// planned for, stopping at the first failure (which leaves nothing of the
    /// failing migration behind). The set records that release.
    async fn apply(&self, plan: &MigrationPlan) -> Result<AppliedSet>;
    /// Reverts the migrations of `applied` that are currently applied, newest first,
    /// with the files or tool of the release that applied them
    /// ([`AppliedSet::release`]).
    async fn revert(&self, applied: &AppliedSet) -> Result<()>;
}
