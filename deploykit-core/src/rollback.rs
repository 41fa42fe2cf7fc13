//! Compensations as data, and the `Rollback` trait that carries them out.
//!
//! Every step that changes the world records, before it acts, the record that undoes
//! it. Records are plain serialisable values so a later process (`recover`) can read
//! them from the journal and finish an undo the deploying process never got to.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::backup::{Backup, BackupArtifact, ConfirmDestructive};
use crate::error::{Error, Result};
use crate::migrate::{AppliedSet, Migrator};
use crate::next_step::NextStep;
use crate::release::ReleaseId;
use crate::target::Target;

/// How to undo one step. Each is idempotent: running it twice changes nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Compensation {
    /// Undo `prepare`: remove the staged release.
    DiscardRelease {
        /// The release this run staged.
        release: ReleaseId,
    },
    /// Undo `activate`: make the previous release live again (or take the app
    /// offline if there was none).
    Reactivate {
        /// The release live before this run.
        previous: Option<ReleaseId>,
        /// The release this run activated.
        failed: ReleaseId,
    },
    /// Undo `migrate` under the `down` policy: run down scripts for what this run applied.
    RevertMigrations {
        /// Exactly the migrations this run planned to apply.
        applied: AppliedSet,
    },
    /// `migrate` under the `keep` policy: the schema stays; only a warning is recorded.
    KeepSchema {
        /// The migrations left in place.
        applied: AppliedSet,
    },
    /// Undo `migrate` under the `restore` policy: restore the run's backup (destructive).
    RestoreBackup {
        /// The backup taken by this run before migrating.
        artifact: BackupArtifact,
        /// When every planned migration was all-or-nothing: the plan. The restore
        /// then runs only if one of them is applied now, since otherwise the run
        /// changed no schema and a restore would only throw away the writes made
        /// since the backup. `None` (or an older journal): always restore.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        only_if_applied: Option<AppliedSet>,
    },
}

impl Compensation {
    /// One line for humans: logs, events, the final summary.
    pub fn describe(&self) -> String {
        match self {
            Compensation::DiscardRelease { release } => format!("discard staged release {release}"),
            Compensation::Reactivate {
                previous: Some(p),
                failed,
            } => {
                format!("reactivate {p} (replacing {failed})")
            }
            Compensation::Reactivate {
                previous: None,
                failed,
            } => {
                format!("take {failed} offline (first deploy: no previous release)")
            }
            Compensation::RevertMigrations { applied } => format!(
                "revert migrations {}",
                applied
                    .migrations
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Compensation::KeepSchema { applied } => format!(
                "keep schema changes of {} migration(s) (policy keep)",
                applied.migrations.len()
            ),
            Compensation::RestoreBackup { artifact, .. } => {
                format!("restore backup {}", artifact.path.display())
            }
        }
    }
}

/// Carries out compensation records.
///
/// # Why a trait, and how to extend it
///
/// The undo records are a closed set ([`Compensation`]) because `recover` must
/// be able to carry out any record a crashed run journaled, with nothing but the
/// environment's parts: each record names the part that undoes it. What varies is
/// *how* the undo is carried out, so `Rollback` is the seam for wrapping it
/// (tower-style): log or notify around each undo, page someone when one fails,
/// add a check after it. [`Pipeline::rollback`](crate::Pipeline::rollback) sets
/// the wrapper; a failed run and `recover` both use it. Delegate to
/// [`PartsRollback`] for the undo itself.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::{Arc, Mutex};
/// use deploykit_core::testing::{MemoryJournal, World};
/// use deploykit_core::{
///     async_trait, Compensation, Outcome, PartsRollback, Pipeline, Policy, Result, Rollback,
/// };
///
/// /// Records every undo it carries out, e.g. to post it to the team's chat.
/// struct Announced {
///     inner: PartsRollback,
///     said: Mutex<Vec<String>>,
/// }
///
/// #[async_trait]
/// impl Rollback for Announced {
///     async fn compensate(&self, record: &Compensation) -> Result<()> {
///         self.said.lock().unwrap().push(record.describe());
///         self.inner.compensate(record).await
///     }
/// }
///
/// let world = World::new();
/// let target = Arc::new(world.target());
/// let announced = Arc::new(Announced {
///     inner: PartsRollback { target: Some(target.clone()), ..Default::default() },
///     said: Mutex::default(),
/// });
/// let mut policy = Policy::default();
/// policy.health.attempts = 1;
/// let pipeline = Pipeline::new("staging")
///     .target(target)
///     .probe(Arc::new(world.probe()))
///     .policy(policy)
///     .rollback(announced.clone());
/// world.mark_unhealthy("v1");
/// let report = pipeline.run(&world.spec("v1"), &MemoryJournal::default()).await.unwrap();
/// assert_eq!(report.outcome, Outcome::RolledBack);
/// assert_eq!(
///     *announced.said.lock().unwrap(),
///     ["take v1 offline (first deploy: no previous release)", "discard staged release v1"]
/// );
/// # }
/// ```
#[async_trait]
pub trait Rollback: Send + Sync {
    /// Performs one undo. Must be idempotent.
    async fn compensate(&self, record: &Compensation) -> Result<()>;
}

/// The standard [`Rollback`]: dispatches each record to the part that made the change.
#[derive(Clone, Default)]
pub struct PartsRollback {
    /// Undoes prepare and activate.
    pub target: Option<Arc<dyn Target>>,
    /// Undoes migrate (`down`).
    pub migrator: Option<Arc<dyn Migrator>>,
    /// Undoes migrate (`restore`).
    pub backup: Option<Arc<dyn Backup>>,
}

impl std::fmt::Debug for PartsRollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartsRollback")
            .field("target", &self.target.is_some())
            .field("migrator", &self.migrator.is_some())
            .field("backup", &self.backup.is_some())
            .finish()
    }
}

#[async_trait]
impl Rollback for PartsRollback {
    async fn compensate(&self, record: &Compensation) -> Result<()> {
        let missing = |part: &str| Error::RefusedUntil {
            reason: format!(
                "the journal asks to {} but no {part} is configured",
                record.describe()
            ),
            next: NextStep::Recover {
                env: None,
                first: Some(format!("configure the {part} of this environment")),
            },
        };
        match record {
            Compensation::DiscardRelease { release } => {
                let target = self.target.as_ref().ok_or_else(|| missing("target"))?;
                if target.current().await?.as_ref() == Some(release) {
                    // Still live (activate's undo failed): never delete what serves traffic.
                    return Err(Error::RefusedUntil {
                        reason: format!("release {release} is still live, so it was not discarded"),
                        next: NextStep::Recover {
                            env: None,
                            first: Some("make the previous release live".into()),
                        },
                    });
                }
                target.discard(release).await
            }
            Compensation::Reactivate { previous, .. } => {
                let target = self.target.as_ref().ok_or_else(|| missing("target"))?;
                target.activate(previous.as_ref()).await
            }
            Compensation::RevertMigrations { applied } => {
                let migrator = self.migrator.as_ref().ok_or_else(|| missing("migrator"))?;
                migrator.revert(applied).await
            }
            Compensation::KeepSchema { .. } => Ok(()),
            Compensation::RestoreBackup {
                artifact,
                only_if_applied,
            } => {
                if let (Some(planned), Some(migrator)) = (only_if_applied, &self.migrator) {
                    if !schema_changed(migrator.as_ref(), planned).await? {
                        return Ok(());
                    }
                }
                let backup = self.backup.as_ref().ok_or_else(|| missing("backup"))?;
                backup.verify(artifact).await?;
                backup
                    .restore(
                        artifact,
                        ConfirmDestructive::i_understand_this_replaces_live_data(),
                    )
                    .await
            }
        }
    }
}

/// True when any migration of `planned` is applied now. The plan's migrations
/// are all-or-nothing, so none applied means the schema is as the backup left it.
async fn schema_changed(migrator: &dyn Migrator, planned: &AppliedSet) -> Result<bool> {
    let status = migrator.status(planned.release.as_ref()).await?;
    Ok(planned
        .migrations
        .iter()
        .any(|m| status.applied.contains(m) || status.drifted.contains(m)))
}
