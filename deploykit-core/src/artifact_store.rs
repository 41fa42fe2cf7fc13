//! A local directory of backup artifacts, shared by every [`Backup`](crate::Backup)
//! backend (pg_dump, SQLite `VACUUM INTO`, `docker exec … pg_dump`).
//!
//! # Why one store
//!
//! Every backend must keep the same promises: an artifact is written as
//! `<name>.partial` and renamed only once it is complete, fsynced and checksummed;
//! size and SHA-256 come from the same pass that writes the bytes; the file is
//! readable by its owner only (mode 0600: dumps hold user data); a metadata JSON
//! next to it records what it was taken for; and a failure (disk full, the dump
//! tool dying) leaves nothing that looks valid. Writing that once here keeps the
//! backends down to "produce a byte stream".
//!
//! ```no_run
//! # async fn demo(request: &deploykit_core::BackupRequest) -> deploykit_core::Result<()> {
//! use deploykit_core::artifact_store::ArtifactStore;
//!
//! let store = ArtifactStore::new("/var/backups/app", "dump");
//! let mut writer = store.begin(request).await?;
//! writer.write(b"...dump bytes...").await?;
//! let artifact = writer.finish(serde_json::Map::new()).await?;
//! store.verify(&artifact).await?;
//! # Ok(()) }
//! ```

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::backup::{BackupArtifact, BackupRequest};
use crate::error::{Error, Result};
use crate::release::{Commit, ReleaseId};

/// Suffix of an artifact still being written; never listed, never verified.
pub const PARTIAL_SUFFIX: &str = ".partial";
/// Suffix of the metadata file written next to a complete artifact.
pub const METADATA_SUFFIX: &str = ".json";

/// What is recorded next to an artifact: enough for a human (or another process) to
/// know what the file is without opening it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactMetadata {
    /// The environment it was taken in.
    pub env: String,
    /// The release about to be deployed when it was taken.
    pub release: ReleaseId,
    /// That release's commit.
    pub commit: Commit,
    /// Its branch, when known.
    pub branch: Option<String>,
    /// When writing started.
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// When the artifact was complete.
    #[serde(with = "time::serde::rfc3339")]
    pub finished: OffsetDateTime,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the artifact.
    pub sha256: String,
    /// The artifact's file name (relative to the store).
    pub file: String,
    /// Which database it holds (engine, host, port, name; no credentials). Missing
    /// in metadata written by older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_id: Option<String>,
    /// Backend-specific facts (pg_dump and server versions, format, compression).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A directory holding complete artifacts (`<env>-<UTC time>-<commit>.<ext>`) and
/// their metadata.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    dir: PathBuf,
    ext: String,
    database_id: Option<String>,
}

impl ArtifactStore {
    /// A store in `dir` whose artifacts end in `.<ext>` (e.g. `dump`, `sql.gz`,
    /// `sqlite`). The directory is created on first use.
    pub fn new(dir: impl Into<PathBuf>, ext: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            ext: ext.into().trim_start_matches('.').to_string(),
            database_id: None,
        }
    }

    /// Records `id` (see [`crate::Backup::database_id`]) in every artifact's
    /// metadata, so a directory shared by several environments or databases
    /// still knows whose each file is.
    pub fn database_id(mut self, id: impl Into<String>) -> Self {
        self.database_id = Some(id.into());
        self
    }

    /// The database identity recorded in new artifacts, if set.
    pub fn recorded_database_id(&self) -> Option<&str> {
        self.database_id.as_deref()
    }

    /// The directory artifacts live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file name extension of this store's artifacts (without the dot).
    pub fn ext(&self) -> &str {
        &self.ext
    }

    /// Where the metadata of `artifact_path` lives.
    pub fn metadata_path(artifact_path: &Path) -> PathBuf {
        append_suffix(artifact_path, METADATA_SUFFIX)
    }

    /// Starts a new artifact for `request`. Bytes go to `<name>.partial` (mode 0600)
    /// until [`ArtifactWriter::finish`]; dropping the writer unfinished removes it.
    pub async fn begin(&self, request: &BackupRequest) -> Result<ArtifactWriter> {
        crate::release::validate_name("environment", &request.env, 64)?;
        crate::private_fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("create backup directory", &self.dir, e))?;
        let started = OffsetDateTime::now_utc();
        let stem = format!(
            "{}-{}-{}",
            request.env,
            utc_stamp(started),
            request.commit.short()
        );
        // Two backups in the same second get a counter rather than overwriting.
        for n in 0u32..1000 {
            let name = if n == 0 {
                format!("{stem}.{}", self.ext)
            } else {
                format!("{stem}-{n}.{}", self.ext)
            };
            let path = self.dir.join(&name);
            if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                continue;
            }
            let partial = append_suffix(&path, PARTIAL_SUFFIX);
            match open_private_new(&partial).await {
                Ok(file) => {
                    return Ok(ArtifactWriter {
                        path,
                        partial,
                        file: Some(file),
                        hasher: Sha256::new(),
                        size: 0,
                        started,
                        request: request.clone(),
                        database_id: self.database_id.clone(),
                        done: false,
                    })
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(write_error(&partial, e)),
            }
        }
        Err(Error::part(
            "backup.create",
            self.dir.display().to_string(),
            format!("could not find a free artifact name for {stem}"),
        ))
    }

    /// Checks that `artifact` exists with the recorded size and SHA-256.
    pub async fn verify(&self, artifact: &BackupArtifact) -> Result<()> {
        let at = artifact.path.display().to_string();
        let fail = |message: String| {
            Error::part("backup.verify", &at, message)
                .with_hint("do not restore from this artifact; take a new backup")
        };
        if artifact.size == 0 {
            return Err(fail("the artifact is empty".into()));
        }
        let (size, sha256) = hash_file(&artifact.path).await?;
        if size != artifact.size {
            return Err(fail(format!(
                "size is {size} bytes, {} were recorded (truncated or appended to)",
                artifact.size
            )));
        }
        if sha256 != artifact.sha256 {
            return Err(fail(format!(
                "sha256 is {sha256}, {} was recorded (the file was modified or corrupted)",
                artifact.sha256
            )));
        }
        Ok(())
    }

    /// Complete artifacts (those with metadata; `.partial` files are ignored),
    /// oldest first.
    pub async fn list(&self) -> Result<Vec<BackupArtifact>> {
        let mut out = Vec::new();
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list backup directory", &self.dir, e)),
        };
        let suffix = format!(".{}", self.ext);
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| Error::io("list backup directory", &self.dir, e))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(&suffix) {
                continue;
            }
            let path = entry.path();
            match self.metadata(&path).await {
                Ok(meta) => out.push(BackupArtifact {
                    path,
                    size: meta.size,
                    sha256: meta.sha256,
                    created: meta.finished,
                    release: meta.release,
                    commit: meta.commit,
                    env: Some(meta.env),
                    database_id: meta.database_id,
                }),
                // No metadata: never finished (or not ours); not a usable artifact.
                Err(_) => continue,
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.path.cmp(&b.path)));
        Ok(out)
    }

    /// The metadata recorded for the artifact at `path`.
    pub async fn metadata(&self, path: &Path) -> Result<ArtifactMetadata> {
        let meta_path = Self::metadata_path(path);
        let text = tokio::fs::read(&meta_path)
            .await
            .map_err(|e| Error::io("read backup metadata", &meta_path, e))?;
        serde_json::from_slice(&text).map_err(|e| {
            Error::part(
                "backup.metadata",
                meta_path.display().to_string(),
                format!("unreadable metadata: {e}"),
            )
        })
    }

    /// Deletes an artifact and its metadata; already gone is fine.
    pub async fn remove(&self, artifact: &BackupArtifact) -> Result<()> {
        for path in [
            Self::metadata_path(&artifact.path),
            artifact.path.clone(),
            append_suffix(&artifact.path, PARTIAL_SUFFIX),
        ] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove backup", path, e)),
            }
        }
        Ok(())
    }
}

/// An artifact being written. Every byte passes through the SHA-256 hasher on its
/// way to `<name>.partial`. Dropping it without [`finish`](Self::finish) — or any
/// write error — removes the partial file.
#[derive(Debug)]
pub struct ArtifactWriter {
    path: PathBuf,
    partial: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    size: u64,
    started: OffsetDateTime,
    request: BackupRequest,
    database_id: Option<String>,
    done: bool,
}

impl ArtifactWriter {
    /// Where the complete artifact will be.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where bytes are written until the artifact is complete.
    pub fn partial_path(&self) -> &Path {
        &self.partial
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `bytes`. On error the partial file is removed.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.file.as_mut().ok_or_else(|| closed(&self.partial))?;
        if let Err(e) = file.write_all(bytes).await {
            let err = write_error(&self.partial, e);
            self.discard().await;
            return Err(err);
        }
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Copies everything `reader` yields into the artifact; returns the bytes copied.
    /// A read error (e.g. the dump tool's pipe breaking) removes the partial file.
    pub async fn copy_from<R: AsyncRead + Unpin>(&mut self, mut reader: R) -> Result<u64> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    self.discard().await;
                    return Err(Error::part(
                        "backup.create",
                        self.partial.display().to_string(),
                        format!("reading the backup stream failed: {e}"),
                    ));
                }
            };
            self.write(&buf[..n]).await?;
            total += n as u64;
        }
        Ok(total)
    }

    /// Completes the artifact: fsync, rename `.partial` to its final name, fsync
    /// the directory, then write the metadata (with `extra` backend facts). Only
    /// then does the artifact show up in [`ArtifactStore::list`].
    pub async fn finish(
        mut self,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<BackupArtifact> {
        match self.finish_inner(extra).await {
            Ok(a) => Ok(a),
            Err(e) => {
                self.discard().await;
                Err(e)
            }
        }
    }

    async fn finish_inner(
        &mut self,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<BackupArtifact> {
        let mut file = self.file.take().ok_or_else(|| closed(&self.partial))?;
        file.flush()
            .await
            .map_err(|e| write_error(&self.partial, e))?;
        file.sync_all()
            .await
            .map_err(|e| write_error(&self.partial, e))?;
        drop(file);
        if self.size == 0 {
            return Err(Error::part(
                "backup.create",
                self.partial.display().to_string(),
                "the backup produced no bytes",
            )
            .with_hint("check the backup tool's output and the database connection"));
        }
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let finished = OffsetDateTime::now_utc();
        tokio::fs::rename(&self.partial, &self.path)
            .await
            .map_err(|e| Error::io("rename finished backup", &self.path, e))?;
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let meta = ArtifactMetadata {
            env: self.request.env.clone(),
            release: self.request.release.clone(),
            commit: self.request.commit.clone(),
            branch: self.request.branch.clone(),
            started: self.started,
            finished,
            size: self.size,
            sha256: sha256.clone(),
            file: file_name,
            database_id: self.database_id.clone(),
            extra,
        };
        let meta_path = ArtifactStore::metadata_path(&self.path);
        let meta_tmp = append_suffix(&meta_path, PARTIAL_SUFFIX);
        let json = serde_json::to_vec_pretty(&meta).expect("metadata serialises");
        let write_meta = async {
            let mut f = open_private_new(&meta_tmp).await?;
            f.write_all(&json).await?;
            f.sync_all().await?;
            drop(f);
            tokio::fs::rename(&meta_tmp, &meta_path).await?;
            if let Some(dir) = self.path.parent() {
                if let Ok(d) = tokio::fs::File::open(dir).await {
                    let _ = d.sync_all().await;
                }
            }
            Ok::<(), std::io::Error>(())
        };
        if let Err(e) = write_meta.await {
            let _ = tokio::fs::remove_file(&meta_tmp).await;
            // Without metadata the artifact is not listed; remove it so nothing
            // half-finished stays around.
            let _ = tokio::fs::remove_file(&self.path).await;
            return Err(write_error(&meta_path, e));
        }
        self.done = true;
        Ok(BackupArtifact {
            path: self.path.clone(),
            size: self.size,
            sha256,
            created: finished,
            release: self.request.release.clone(),
            commit: self.request.commit.clone(),
            env: Some(self.request.env.clone()),
            database_id: self.database_id.clone(),
        })
    }

    /// Abandons the artifact, removing the partial file.
    pub async fn abort(mut self) {
        self.discard().await;
    }

    async fn discard(&mut self) {
        self.file = None;
        if !self.done {
            let _ = tokio::fs::remove_file(&self.partial).await;
            self.done = true;
        }
    }
}

impl Drop for ArtifactWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Size and lowercase hex SHA-256 of a file, read in one streaming pass.
pub async fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io("open backup", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| Error::io("read backup", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// A write failure, with the next step spelled out for a full disk.
pub fn write_error(path: &Path, e: std::io::Error) -> Error {
    let at = path.display().to_string();
    if is_disk_full(&e) {
        Error::part(
            "backup.create",
            at,
            format!("disk full while writing the backup ({e}); the partial file was removed"),
        )
        .with_hint("free space in the backup directory (or prune old backups) and run again")
    } else {
        Error::part(
            "backup.create",
            at,
            format!("writing the backup failed: {e}"),
        )
    }
}

/// True for "no space left on device" (and quota exceeded).
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || matches!(e.raw_os_error(), Some(28) | Some(122))
}

fn closed(path: &Path) -> Error {
    Error::part(
        "backup.create",
        path.display().to_string(),
        "the artifact was already finished or abandoned",
    )
}

fn utc_stamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn append_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

async fn open_private_new(path: &Path) -> std::io::Result<tokio::fs::File> {
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> BackupRequest {
        BackupRequest {
            env: "staging".into(),
            release: ReleaseId::parse("20261126T100000Z-abc1234").unwrap(),
            commit: Commit::parse("abc1234def5678").unwrap(),
            branch: Some("main".into()),
        }
    }

    #[tokio::test]
    async fn finished_artifact_is_named_private_checksummed_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path(), "dump");
        let mut w = store.begin(&request()).await.unwrap();
        let partial = w.partial_path().to_path_buf();
        assert!(partial.to_string_lossy().ends_with(".dump.partial"));
        w.write(b"hello ").await.unwrap();
        w.copy_from(&b"world"[..]).await.unwrap();
        assert!(
            store.list().await.unwrap().is_empty(),
            "unfinished is not listed"
        );
        let mut extra = serde_json::Map::new();
        extra.insert("pg_dump_version".into(), "15.18".into());
        let a = w.finish(extra).await.unwrap();

        let name = a.path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("staging-"), "{name}");
        assert!(name.ends_with("Z-abc1234.dump"), "{name}");
        assert!(!partial.exists());
        assert_eq!(a.size, 11);
        assert_eq!(
            a.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&a.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let meta = store.metadata(&a.path).await.unwrap();
        assert_eq!(meta.size, 11);
        assert_eq!(meta.branch.as_deref(), Some("main"));
        assert_eq!(meta.extra["pg_dump_version"], "15.18");
        assert!(meta.finished >= meta.started);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(ArtifactStore::metadata_path(&a.path)).unwrap())
                .unwrap();
        for key in [
            "release",
            "commit",
            "branch",
            "started",
            "finished",
            "size",
            "sha256",
            "pg_dump_version",
        ] {
            assert!(json.get(key).is_some(), "metadata lacks {key}: {json}");
        }
        assert_eq!(store.list().await.unwrap(), vec![a.clone()]);
        store.verify(&a).await.unwrap();
    }

    #[tokio::test]
    async fn verify_catches_truncation_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path(), "dump");
        let mut w = store.begin(&request()).await.unwrap();
        w.write(&[7u8; 4096]).await.unwrap();
        let a = w.finish(Default::default()).await.unwrap();

        let bytes = std::fs::read(&a.path).unwrap();
        std::fs::write(&a.path, &bytes[..100]).unwrap();
        let err = store.verify(&a).await.unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");

        let mut corrupt = bytes.clone();
        corrupt[10] ^= 0xff;
        std::fs::write(&a.path, &corrupt).unwrap();
        let err = store.verify(&a).await.unwrap_err().to_string();
        assert!(err.contains("sha256"), "{err}");

        std::fs::remove_file(&a.path).unwrap();
        assert!(store.verify(&a).await.is_err());
    }

    #[tokio::test]
    async fn failures_leave_no_partial_file() {
        struct Broken;
        impl AsyncRead for Broken {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Err(std::io::Error::other("pipe broke")))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path(), "dump");

        let mut w = store.begin(&request()).await.unwrap();
        w.write(b"some bytes").await.unwrap();
        let partial = w.partial_path().to_path_buf();
        assert!(partial.exists());
        assert!(w.copy_from(Broken).await.is_err());
        assert!(!partial.exists(), "a failed stream leaves no partial");
        assert!(
            w.write(b"more").await.is_err(),
            "a failed writer stays closed"
        );

        let w = store.begin(&request()).await.unwrap();
        let partial = w.partial_path().to_path_buf();
        drop(w);
        assert!(!partial.exists(), "dropping unfinished removes the partial");

        let w = store.begin(&request()).await.unwrap();
        let err = w.finish(Default::default()).await.unwrap_err().to_string();
        assert!(err.contains("no bytes"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn disk_full_is_recognised_and_says_what_next() {
        let e = std::io::Error::from_raw_os_error(28);
        assert!(is_disk_full(&e));
        let err = write_error(Path::new("/b/x.dump.partial"), e).to_string();
        assert!(err.contains("disk full"), "{err}");
        assert!(err.contains("free space"), "{err}");
        assert!(!is_disk_full(&std::io::Error::other("x")));
    }

    #[tokio::test]
    async fn list_is_oldest_first_ignores_strays_and_remove_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path(), "dump");
        let mut made = Vec::new();
        for i in 0..3u8 {
            let mut w = store.begin(&request()).await.unwrap();
            w.write(&[i; 10]).await.unwrap();
            made.push(w.finish(Default::default()).await.unwrap());
        }
        std::fs::write(dir.path().join("stray.dump.partial"), b"x").unwrap();
        std::fs::write(dir.path().join("nometa.dump"), b"x").unwrap();
        let names: std::collections::HashSet<_> = made.iter().map(|a| a.path.clone()).collect();
        assert_eq!(names.len(), 3, "same-second backups get distinct names");
        let listed = store.list().await.unwrap();
        assert_eq!(listed.len(), 3);
        assert!(listed.windows(2).all(|w| w[0].created <= w[1].created));
        store.remove(&made[0]).await.unwrap();
        store.remove(&made[0]).await.unwrap();
        assert!(!ArtifactStore::metadata_path(&made[0].path).exists());
        assert_eq!(store.list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn invalid_env_is_refused_before_touching_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path().join("b"), "dump");
        let mut r = request();
        r.env = "../etc".into();
        assert!(store.begin(&r).await.is_err());
        assert!(!dir.path().join("b").exists());
    }
}
