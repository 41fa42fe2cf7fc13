//! deploykit-core: the traits and the transactional pipeline behind deploykit.
//!
//! A deploy backs up the database, applies migrations, ships the new release to a
//! target and verifies its health. Every step that changes the world first writes to
//! the run's [journal] *how to undo itself* (a [`Compensation`]), so on any
//! failure — or after the deploying process is killed, via [`Pipeline::recover`] —
//! the steps already done are undone newest first, and the environment ends either
//! fully on the new release or fully back on the old one.
//!
//! # Why these traits
//!
//! Each part is a small object-safe trait ([`Backup`], [`Migrator`], [`Target`],
//! [`HealthProbe`], [`Rollback`]) so adapters (PM2 over SSH, Docker Compose,
//! PostgreSQL) stay independent, and so in-memory twins (feature `testing`) can
//! prove the pipeline's guarantees at every failure point without servers.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use deploykit_core::{Pipeline, Outcome, testing::{World, MemoryJournal}};
//!
//! let world = World::new();
//! let pipeline = Pipeline::new("staging")
//!     .target(Arc::new(world.target()))
//!     .migrator(Arc::new(world.migrator()))
//!     .backup(Arc::new(world.backup()))
//!     .probe(Arc::new(world.probe()));
//! world.add_migration("0001", "create_users", true);
//! let report = pipeline.run(&world.spec("v1"), &MemoryJournal::default()).await.unwrap();
//! assert_eq!(report.outcome, Outcome::Succeeded);
//! assert_eq!(world.snapshot().live.unwrap().as_str(), "v1");
//! # }
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod artifact_store;
pub mod backup;
pub mod backup_scope;
pub mod command_migrator;
pub mod commit_tree;
mod compensate;
pub mod dump_compression;
pub mod durable;
mod duration_ms;
pub mod error;
mod error_chain;
pub mod event;
mod file_lock;
pub mod fleet;
pub mod gate;
pub mod health;
pub mod health_driver;
pub mod history;
pub mod hook;
pub mod host_lock;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod journal;
mod journal_rules;
pub mod lease;
pub mod local_target;
pub mod lock;
pub mod lock_wait;
pub mod logs;
pub mod migrate;
pub mod next_step;
pub mod phase;
pub mod pipeline;
pub mod policy;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
pub mod private_fs;
pub mod release;
pub mod report;
pub mod revisions;
pub mod rollback;
pub mod secret;
pub mod shell;
#[cfg(feature = "sql-migrations")]
#[cfg_attr(docsrs, doc(cfg(feature = "sql-migrations")))]
pub mod sql_migrations;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
pub mod state_store;
pub mod target;
pub mod tcp;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

/// Re-exported so an embedder implements deploykit's async traits with the same
/// macro version core uses, without a dependency of its own.
pub use async_trait::async_trait;
pub use backup::{Backup, BackupArtifact, BackupExt, BackupRequest, ConfirmDestructive};
pub use backup_scope::{BackupScope, Ownership, ScopedListing};
pub use commit_tree::CommitTree;
pub use compensate::run_release;
pub use dump_compression::DumpCompression;
pub use error::{Error, ErrorKind, Result};
pub use event::{CollectingSink, Event, EventSink, Events};
pub use fleet::{Fleet, Rollout};
pub use gate::{ApprovalGate, ApprovalRequest, PreApproved};
pub use health::{HealthProbe, HealthReport, HealthStatus};
pub use health_driver::{HealthDriver, HealthPolicy, HealthVerdict};
pub use history::{History, RunSummary};
pub use hook::{Hook, HookPlace, HookPoint, HookRun, HookRunner, Hooks, ShellHookRunner};
pub use host_lock::HostLock;
pub use journal::{FileJournal, JournalDir, JournalStore, Outcome, Record};
pub use lease::LeaseTiming;
pub use local_target::LocalTarget;
pub use lock::{DeployLock, FileLock, Lease, Liveness, LockHolder};
pub use lock_wait::{wait_while_held, LockWait, WaitingLock};
pub use logs::LogLines;
pub use migrate::{
    AppliedSet, DownScript, LintFinding, MigrationId, MigrationOrigin, MigrationPlan,
    MigrationStatus, Migrator, PlannedMigration,
};
pub use next_step::{NextStep, NextStepWords};
pub use phase::Phase;
pub use pipeline::Pipeline;
pub use policy::{MigrationFailurePolicy, Policy};
pub use release::{Commit, ReleaseId, ReleaseSpec};
pub use report::{RunFailure, RunReport, UndoResult};
pub use rollback::{Compensation, PartsRollback, Rollback};
pub use secret::{redact, Secret};
pub use shell::{Cmd, LocalShell, Shell, ShellExt};
pub use state_store::{HostStore, LocalStore, StateStore, StateStoreExt, StoredRun};
pub use target::{Target, TargetExt};

/// Compile-time proof that every part stays usable as `Arc<dyn …>`.
#[allow(dead_code, clippy::too_many_arguments)]
fn _object_safe(
    _: Box<dyn Backup>,
    _: Box<dyn Migrator>,
    _: Box<dyn Target>,
    _: Box<dyn HealthProbe>,
    _: Box<dyn Rollback>,
    _: Box<dyn DeployLock>,
    _: Box<dyn JournalStore>,
    _: Box<dyn StateStore>,
    _: Box<dyn ApprovalGate>,
    _: Box<dyn EventSink>,
) {
}
