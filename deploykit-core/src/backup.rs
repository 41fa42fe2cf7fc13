//! The `Backup` trait: a verified copy of the database taken before anything changes.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::backup_scope::{BackupScope, Ownership, ScopedListing};
use crate::error::Result;
use crate::release::{Commit, ReleaseId};

/// What a backup is being taken for; recorded in the artifact's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRequest {
    /// The environment, e.g. `production`; part of the file name.
    pub env: String,
    /// The release about to be deployed.
    pub release: ReleaseId,
    /// Its commit.
    pub commit: Commit,
    /// Its branch, when known.
    pub branch: Option<String>,
}

/// A finished, checksummed backup: enough to verify and restore it later, even from
/// another process reading the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupArtifact {
    /// Where the artifact lives (a local path, or a path on the backup's own host).
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the artifact's bytes.
    pub sha256: String,
    /// When the backup finished.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// The release it was taken for.
    pub release: ReleaseId,
    /// That release's commit.
    pub commit: Commit,
    /// The environment it was taken in, as its metadata records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Which database it holds (see [`Backup::database_id`]); `None` for artifacts
    /// written before deploykit recorded it, which are therefore never pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_id: Option<String>,
}

/// Proof that the caller means to overwrite live data. Restores take one so a
/// destructive call cannot happen by accident (e.g. a defaulted boolean).
#[derive(Debug, Clone, Copy)]
pub struct ConfirmDestructive(());

impl ConfirmDestructive {
    /// The caller confirms that restoring replaces the database's current contents.
    pub fn i_understand_this_replaces_live_data() -> Self {
        ConfirmDestructive(())
    }
}

/// Takes, checks and restores database backups.
///
/// Implementations must never leave a partial artifact that looks complete: `create`
/// either returns a verified artifact or an error, and `list` shows only complete ones.
///
/// # Example
///
/// Copies of a (pretend) database kept in memory; a real backend writes files or
/// objects, but keeps the same promises: `create` returns only a checksummed
/// artifact, `verify` re-checks it, `restore` takes a [`ConfirmDestructive`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> deploykit_core::Result<()> {
/// use std::sync::Mutex;
/// use deploykit_core::{
///     async_trait, Backup, BackupArtifact, BackupRequest, ConfirmDestructive, Error, Result,
/// };
///
/// struct Snapshots {
///     db: Mutex<String>,
///     kept: Mutex<Vec<(BackupArtifact, String)>>,
/// }
///
/// fn sha256(data: &str) -> String {
///     hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data))
/// }
///
/// impl Snapshots {
///     fn copy_of(&self, artifact: &BackupArtifact) -> Result<String> {
///         let kept = self.kept.lock().unwrap();
///         match kept.iter().find(|(a, _)| a == artifact) {
///             Some((_, copy)) if sha256(copy) == artifact.sha256 => Ok(copy.clone()),
///             _ => Err(Error::part("backup.verify", "memory", "missing or damaged")),
///         }
///     }
/// }
///
/// #[async_trait]
/// impl Backup for Snapshots {
///     async fn create(&self, request: &BackupRequest) -> Result<BackupArtifact> {
///         let copy = self.db.lock().unwrap().clone();
///         let n = self.kept.lock().unwrap().len();
///         let artifact = BackupArtifact {
///             path: format!("memory/{}-{n}", request.release).into(),
///             size: copy.len() as u64,
///             sha256: sha256(&copy),
///             created: time::OffsetDateTime::now_utc(),
///             release: request.release.clone(),
///             commit: request.commit.clone(),
///             env: Some(request.env.clone()),
///             database_id: Some(self.database_id()),
///         };
///         self.kept.lock().unwrap().push((artifact.clone(), copy));
///         Ok(artifact)
///     }
///     async fn verify(&self, artifact: &BackupArtifact) -> Result<()> {
///         self.copy_of(artifact).map(|_| ())
///     }
///     async fn restore(&self, artifact: &BackupArtifact, _: ConfirmDestructive) -> Result<()> {
///         *self.db.lock().unwrap() = self.copy_of(artifact)?;
///         Ok(())
///     }
///     async fn list(&self) -> Result<Vec<BackupArtifact>> {
///         Ok(self.kept.lock().unwrap().iter().map(|(a, _)| a.clone()).collect())
///     }
///     async fn remove(&self, artifact: &BackupArtifact) -> Result<()> {
///         self.kept.lock().unwrap().retain(|(a, _)| a != artifact);
///         Ok(())
///     }
///     fn database_id(&self) -> String {
///         "memory:app".into()
///     }
/// }
///
/// let backup = Snapshots { db: Mutex::new("users: ana".into()), kept: Mutex::default() };
/// let spec = deploykit_core::testing::World::new().spec("v1");
/// let request = BackupRequest {
///     env: "staging".into(),
///     release: spec.id,
///     commit: spec.commit,
///     branch: None,
/// };
/// let artifact = backup.create(&request).await?;
/// backup.verify(&artifact).await?;
/// *backup.db.lock().unwrap() = "users: (dropped by a bad migration)".into();
/// let confirm = ConfirmDestructive::i_understand_this_replaces_live_data();
/// backup.restore(&artifact, confirm).await?;
/// assert_eq!(*backup.db.lock().unwrap(), "users: ana");
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Backup: Send + Sync {
    /// Takes a new backup and returns it once it is complete and checksummed.
    async fn create(&self, request: &BackupRequest) -> Result<BackupArtifact>;
    /// Checks the artifact is intact and readable (size, checksum, format).
    async fn verify(&self, artifact: &BackupArtifact) -> Result<()>;
    /// Replaces the live database's contents with the artifact's.
    async fn restore(&self, artifact: &BackupArtifact, confirm: ConfirmDestructive) -> Result<()>;
    /// Complete artifacts, oldest first.
    async fn list(&self) -> Result<Vec<BackupArtifact>>;
    /// Deletes one artifact (and its metadata).
    async fn remove(&self, artifact: &BackupArtifact) -> Result<()>;
    /// Which database this backend copies: engine, host, port and name, never
    /// credentials. Recorded in every artifact, so environments (or apps) sharing a
    /// backup directory never prune or restore each other's data by mistake.
    fn database_id(&self) -> String;
}

/// Conveniences built only from [`Backup`]'s required methods, so every backend gets
/// them with the same behaviour. Not meant to be implemented by hand.
///
/// Several environments may share one backup directory, so everything here is
/// scoped by the environment and database recorded in each artifact
/// ([`BackupScope`]).
#[async_trait]
pub trait BackupExt: Backup {
    /// This environment's view of the store: its own artifacts, those of its
    /// environment written before the database was recorded, and how many belong
    /// to others.
    async fn list_scoped(&self, env: &str) -> Result<ScopedListing> {
        let scope = BackupScope::new(env, self.database_id());
        let mut listing = ScopedListing::default();
        for artifact in self.list().await? {
            match scope.ownership(&artifact) {
                Ownership::Own => listing.own.push(artifact),
                Ownership::Unrecorded => listing.unrecorded.push(artifact),
                Ownership::Foreign => listing.foreign += 1,
            }
        }
        Ok(listing)
    }

    /// Keeps the newest `keep` of this environment's own artifacts and never
    /// removes one listed in `protect` (e.g. the backup a running deploy, or a
    /// pending undo, depends on). Artifacts of other environments or databases,
    /// and those without a recorded database, are never touched. Returns what was
    /// removed.
    async fn prune(
        &self,
        env: &str,
        keep: usize,
        protect: &[PathBuf],
    ) -> Result<Vec<BackupArtifact>> {
        let mut own = self.list_scoped(env).await?.own;
        own.sort_by_key(|a| a.created);
        let excess = own.len().saturating_sub(keep);
        let mut removed = Vec::new();
        for artifact in own.into_iter().take(excess) {
            if protect.contains(&artifact.path) {
                continue;
            }
            self.remove(&artifact).await?;
            removed.push(artifact);
        }
        Ok(removed)
    }

    /// The newest artifact of this environment (its own, or one of its
    /// environment without a recorded database), if any.
    async fn latest(&self, env: &str) -> Result<Option<BackupArtifact>> {
        let listing = self.list_scoped(env).await?;
        Ok(listing
            .own
            .into_iter()
            .chain(listing.unrecorded)
            .max_by_key(|a| a.created))
    }
}

impl<T: Backup + ?Sized> BackupExt for T {}
