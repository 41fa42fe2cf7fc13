//! The `Backup` trait: a verified copy of the database taken before anything changes.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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
}

/// Conveniences built only from [`Backup`]'s required methods, so every backend gets
/// them with the same behaviour. Not meant to be implemented by hand.
#[async_trait]
pub trait BackupExt: Backup {
    /// Keeps the newest `keep` artifacts and never removes one listed in `protect`
    /// (e.g. the backup a running deploy depends on). Returns what was removed.
    async fn prune(&self, keep: usize, protect: &[PathBuf]) -> Result<Vec<BackupArtifact>> {
        let mut all = self.list().await?;
        all.sort_by_key(|a| a.created);
        let excess = all.len().saturating_sub(keep);
        let mut removed = Vec::new();
        for artifact in all.into_iter().take(excess) {
            if protect.contains(&artifact.path) {
                continue;
            }
            self.remove(&artifact).await?;
            removed.push(artifact);
        }
        Ok(removed)
    }

    /// The newest complete artifact, if any.
    async fn latest(&self) -> Result<Option<BackupArtifact>> {
        let all = self.list().await?;
        Ok(all.into_iter().max_by_key(|a| a.created))
    }
}

impl<T: Backup + ?Sized> BackupExt for T {}
