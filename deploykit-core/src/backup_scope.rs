//! Whose backups are whose, when several environments (or apps) share one backup
//! directory.
//!
//! # Why
//!
//! Staging and production configured with the same `dir = "backups"` used to see
//! one pile of files: staging's rotation deleted production's backups, and a
//! restore in production would load staging's data. Every artifact's metadata
//! records the environment and the database it was taken from; listing, pruning
//! and restoring look at that, never at the directory alone.

use std::path::PathBuf;

use crate::backup::BackupArtifact;
use crate::compensate::owed_undos;
use crate::error::{Error, Result};
use crate::next_step::NextStep;
use crate::rollback::Compensation;
use crate::state_store::{StateStore, StateStoreExt};

/// One environment's claim on a backup store: its name and the database its
/// backend copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupScope {
    /// The environment.
    pub env: String,
    /// The database identity (see [`crate::Backup::database_id`]).
    pub database_id: String,
}

/// How an artifact relates to a [`BackupScope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Taken in this environment from this database.
    Own,
    /// Taken in this environment by a version that did not record the database:
    /// listed (with a note) and restorable, never pruned automatically.
    Unrecorded,
    /// Another environment's, or another database's.
    Foreign,
}

/// An environment's view of a shared store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopedListing {
    /// Its own artifacts, oldest first.
    pub own: Vec<BackupArtifact>,
    /// Its environment's artifacts without a recorded database, oldest first.
    pub unrecorded: Vec<BackupArtifact>,
    /// How many artifacts in the store belong to other environments or databases.
    pub foreign: usize,
}

impl BackupScope {
    /// The scope of `env` backing up the database `database_id`.
    pub fn new(env: impl Into<String>, database_id: impl Into<String>) -> Self {
        Self {
            env: env.into(),
            database_id: database_id.into(),
        }
    }

    /// Whether `artifact` is this scope's, judged from its recorded metadata.
    pub fn ownership(&self, artifact: &BackupArtifact) -> Ownership {
        let env_ok = artifact.env.as_deref() == Some(self.env.as_str());
        match artifact.database_id.as_deref() {
            Some(db) if env_ok && db == self.database_id => Ownership::Own,
            None if env_ok => Ownership::Unrecorded,
            _ => Ownership::Foreign,
        }
    }

    /// Refuses to restore another environment's or database's artifact unless
    /// `from_env` names the environment it was taken in: loading staging's data
    /// into production must be a deliberate act, never a mistyped file name.
    pub fn admit_restore(&self, artifact: &BackupArtifact, from_env: Option<&str>) -> Result<()> {
        if self.ownership(artifact) != Ownership::Foreign {
            return Ok(());
        }
        let taken_in = artifact
            .env
            .as_deref()
            .unwrap_or("an unrecorded environment");
        let taken_from = artifact
            .database_id
            .as_deref()
            .unwrap_or("an unrecorded database");
        if artifact.env.is_some() && from_env == artifact.env.as_deref() {
            return Ok(());
        }
        Err(Error::RefusedUntil {
            reason: format!(
                "{} was taken in {taken_in} from {taken_from}, not in {} from {}; nothing was restored",
                artifact.path.display(),
                self.env,
                self.database_id
            ),
            next: NextStep::PickOwnBackup {
                env: self.env.clone(),
                from: artifact.env.clone(),
            },
        })
    }
}

/// Backups that an unfinished run's undo still needs: the artifact of every owed
/// `restore` compensation in the journals under `journals`. Pruning must keep
/// them, or a later `recover` would have nothing to restore from.
pub async fn backups_pending_undo(journals: &dyn StateStore) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for run in journals.unfinished().await? {
        for (_, undo) in owed_undos(&run.records) {
            if let Compensation::RestoreBackup { artifact, .. } = undo {
                out.push(artifact.path);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{Commit, ReleaseId};
    use time::OffsetDateTime;

    fn artifact(env: Option<&str>, db: Option<&str>) -> BackupArtifact {
        BackupArtifact {
            path: "/b/x.dump".into(),
            size: 1,
            sha256: "00".into(),
            created: OffsetDateTime::UNIX_EPOCH,
            release: ReleaseId::parse("r1").unwrap(),
            commit: Commit::parse("abc1234").unwrap(),
            env: env.map(String::from),
            database_id: db.map(String::from),
        }
    }

    #[test]
    fn ownership_needs_both_env_and_database() {
        let scope = BackupScope::new("production", "postgres://db:5432/shop");
        let own = artifact(Some("production"), Some("postgres://db:5432/shop"));
        assert_eq!(scope.ownership(&own), Ownership::Own);
        let other_env = artifact(Some("staging"), Some("postgres://db:5432/shop"));
        assert_eq!(scope.ownership(&other_env), Ownership::Foreign);
        let other_db = artifact(Some("production"), Some("postgres://db:5432/crm"));
        assert_eq!(scope.ownership(&other_db), Ownership::Foreign);
        let old = artifact(Some("production"), None);
        assert_eq!(scope.ownership(&old), Ownership::Unrecorded);
        let old_other = artifact(Some("staging"), None);
        assert_eq!(scope.ownership(&old_other), Ownership::Foreign);
        assert_eq!(scope.ownership(&artifact(None, None)), Ownership::Foreign);
    }

    #[test]
    fn restoring_foreign_data_needs_the_source_env_named() {
        let scope = BackupScope::new("production", "postgres://db:5432/shop");
        let staging = artifact(Some("staging"), Some("postgres://db:5432/shop_staging"));
        let refused = scope.admit_restore(&staging, None).unwrap_err();
        assert_eq!(
            refused.next_step(),
            Some(NextStep::PickOwnBackup {
                env: "production".into(),
                from: Some("staging".into()),
            })
        );
        let err = refused.to_string();
        assert!(err.contains("taken in staging"), "{err}");
        assert!(
            err.contains("say it comes from environment staging"),
            "{err}"
        );
        assert!(scope.admit_restore(&staging, Some("qa")).is_err());
        scope.admit_restore(&staging, Some("staging")).unwrap();
        scope
            .admit_restore(&artifact(Some("production"), None), None)
            .unwrap();
    }
}
