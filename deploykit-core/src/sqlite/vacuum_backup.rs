//! [`VacuumIntoBackup`]: SQLite backups with `VACUUM INTO`, stored through the
//! shared [`ArtifactStore`].

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::artifact_store::ArtifactStore;
use crate::backup::{Backup, BackupArtifact, BackupRequest, ConfirmDestructive};
use crate::error::{Error, Result};

use super::session::connect;

/// Backs up a SQLite database file with `VACUUM INTO` (a consistent, compacted
/// copy taken while the app keeps running), then streams it through the
/// artifact store (checksum, 0600, metadata).
///
/// Restore replaces the database file atomically (rename); the app should be
/// restarted afterwards so it does not keep the old file open.
#[derive(Debug, Clone)]
pub struct VacuumIntoBackup {
    database: PathBuf,
    store: ArtifactStore,
    location: String,
}

impl VacuumIntoBackup {
    /// Backs up `database` into artifacts (`*.sqlite`) under `dir`.
    pub fn new(database: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        let database = database.into();
        Self {
            location: format!("sqlite {}", database.display()),
            store: ArtifactStore::new(dir, "sqlite").database_id(sqlite_identity(&database)),
            database,
        }
    }

    /// The artifact store this backup writes to.
    pub fn store(&self) -> &ArtifactStore {
        &self.store
    }

    fn fail(&self, step: &str, message: impl Into<String>) -> Error {
        Error::part(step, &self.location, message)
    }

    async fn integrity_check(&self, path: &Path) -> Result<()> {
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(true)
            .connect()
            .await
            .map_err(|e| {
                self.fail(
                    "backup.verify",
                    format!("cannot open {}: {e}", path.display()),
                )
            })?;
        let result: std::result::Result<String, sqlx::Error> =
            sqlx::query_scalar("PRAGMA integrity_check")
                .fetch_one(&mut conn)
                .await;
        let _ = conn.close().await;
        match result {
            Ok(s) if s == "ok" => Ok(()),
            Ok(s) => Err(self.fail(
                "backup.verify",
                format!("{} fails SQLite's integrity check: {s}", path.display()),
            )),
            Err(e) => Err(self.fail(
                "backup.verify",
                format!("{} is not a readable SQLite database: {e}", path.display()),
            )),
        }
    }
}

#[async_trait]
impl Backup for VacuumIntoBackup {
    async fn create(&self, request: &BackupRequest) -> Result<BackupArtifact> {
        let mut writer = self.store.begin(request).await?;
        // VACUUM INTO needs a path that does not exist yet; it is written next to
        // the partial artifact, then streamed through the hasher.
        let scratch = match writer.partial_path() {
            Some(partial) => PathBuf::from(format!("{}.vacuum", partial.display())),
            None => std::env::temp_dir().join(format!(
                "deploykit-{}-{}.vacuum",
                std::process::id(),
                writer
                    .path()
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )),
        };
        let _ = tokio::fs::remove_file(&scratch).await;
        let mut conn = connect(&self.database, &self.location).await?;
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&mut conn)
            .await
            .unwrap_or_default();
        let vacuum = sqlx::query("VACUUM INTO ?")
            .bind(scratch.to_string_lossy().into_owned())
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        if let Err(e) = vacuum {
            let _ = tokio::fs::remove_file(&scratch).await;
            let disk_full = is_disk_full(&e);
            let err = self.fail("backup.create", format!("VACUUM INTO failed: {e}"));
            return Err(if disk_full {
                err.with_kind(crate::error::ErrorKind::DiskFull)
                    .with_hint("free space in the backup directory (or prune old backups)")
            } else {
                err
            });
        }
        let copied = async {
            let file = tokio::fs::File::open(&scratch)
                .await
                .map_err(|e| Error::io("open vacuum copy", &scratch, e))?;
            writer.copy_from(file).await?;
            let mut extra = serde_json::Map::new();
            extra.insert("engine".into(), "sqlite".into());
            extra.insert("format".into(), "sqlite database (VACUUM INTO)".into());
            extra.insert("sqlite_version".into(), version.into());
            writer.finish(extra).await
        }
        .await;
        let _ = tokio::fs::remove_file(&scratch).await;
        copied
    }

    async fn verify(&self, artifact: &BackupArtifact) -> Result<()> {
        self.store.verify(artifact).await?;
        self.integrity_check(&artifact.path).await
    }

    async fn restore(&self, artifact: &BackupArtifact, _confirm: ConfirmDestructive) -> Result<()> {
        self.verify(artifact).await?;
        let tmp = PathBuf::from(format!("{}.restoring", self.database.display()));
        tokio::fs::copy(&artifact.path, &tmp)
            .await
            .map_err(|e| Error::io("copy backup for restore", &tmp, e))?;
        // Keep the live file's permissions (the artifact is 0600).
        if let Ok(meta) = tokio::fs::metadata(&self.database).await {
            let _ = tokio::fs::set_permissions(&tmp, meta.permissions()).await;
        }
        if let Ok(f) = tokio::fs::File::open(&tmp).await {
            let _ = f.sync_all().await;
        }
        // Old WAL/shared-memory files belong to the replaced database.
        for suffix in ["-wal", "-shm", "-journal"] {
            let _ = tokio::fs::remove_file(format!("{}{suffix}", self.database.display())).await;
        }
        tokio::fs::rename(&tmp, &self.database)
            .await
            .map_err(|e| Error::io("replace database with backup", &self.database, e))?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<BackupArtifact>> {
        self.store.list().await
    }

    async fn remove(&self, artifact: &BackupArtifact) -> Result<()> {
        self.store.remove(artifact).await
    }

    fn database_id(&self) -> String {
        sqlite_identity(&self.database)
    }
}

/// `sqlite://<absolute path>`: the same file named two ways is one database.
fn sqlite_identity(database: &Path) -> String {
    let absolute = std::fs::canonicalize(database)
        .or_else(|_| std::path::absolute(database))
        .unwrap_or_else(|_| database.to_path_buf());
    format!("sqlite://{}", absolute.display())
}

/// Whether SQLite failed because the disk (or quota) was full: SQLite's own result
/// code (`SQLITE_FULL`, 13, in the low byte of an extended code) or the OS's.
fn is_disk_full(e: &sqlx::Error) -> bool {
    const SQLITE_FULL: i32 = 13;
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| c & 0xff == SQLITE_FULL),
        sqlx::Error::Io(io) => crate::error::io_kind(io) == crate::error::ErrorKind::DiskFull,
        _ => false,
    }
}

#[cfg(test)]
mod disk_full_tests {
    use super::*;

    #[tokio::test]
    async fn disk_full_is_told_by_sqlites_code_not_by_the_word_full() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v BLOB)")
            .execute(&mut conn)
            .await
            .unwrap();
        // The table's pages are all the database may have: the next row is "disk full".
        sqlx::query("PRAGMA max_page_count = 2")
            .execute(&mut conn)
            .await
            .unwrap();
        let full = sqlx::query("INSERT INTO t VALUES (zeroblob(1000000))")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(is_disk_full(&full), "{full}");
        let worded = sqlx::query("SELECT * FROM full_table")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(!is_disk_full(&worded), "{worded}");
    }
}
