//! Where backup artifacts live, shared by every [`Backup`](crate::Backup) backend
//! (pg_dump, SQLite `VACUUM INTO`, `docker exec … pg_dump`).
//!
//! # Why one store
//!
//! Every backend must keep the same promises: size and SHA-256 come from the same
//! pass that writes the bytes; nothing is ever buffered whole (dumps are large); a
//! metadata record next to the artifact says what it was taken for, and is written
//! *last*, so an artifact without it never lists as a backup; and a failure (disk
//! full, the dump tool dying, the bucket going away) leaves nothing that looks
//! valid. Writing that once here keeps the backends down to "produce a byte
//! stream" and "read it back".
//!
//! # Backends
//!
//! Like `object_store`, the store is one small interface ([`ArtifactBackend`])
//! with a module per backend, so the pipeline and the backup kinds never care
//! where bytes go:
//! - [`local`]: a directory on this machine (`.partial`, 0600, fsync, rename);
//! - `object` (feature `object-store`): an S3-compatible bucket or a filesystem
//!   through the `object_store` crate (multipart upload, aborted on failure), so
//!   backups outlive a thrown-away CI runner.
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

mod import;
pub mod local;
#[cfg(feature = "object-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "object-store")))]
pub mod object;
mod writer;

#[cfg(test)]
mod conformance;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::backup::{BackupArtifact, BackupRequest};
use crate::error::{Error, Result};
use crate::release::{utc_stamp, Commit, ReleaseId};

pub use local::{hash_file, LocalDir, METADATA_SUFFIX, PARTIAL_SUFFIX};
pub use writer::ArtifactWriter;

/// The bytes of a stored artifact, streamed.
pub type ArtifactReader = Box<dyn AsyncRead + Send + Unpin>;

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

/// Where artifacts are kept. Object-safe and small on purpose: everything else
/// (naming, hashing, metadata, validation) is [`ArtifactStore`]'s, written once.
#[async_trait]
pub trait ArtifactBackend: Send + Sync + fmt::Debug {
    /// Where artifacts live, for messages (`/var/backups/app`,
    /// `s3://bucket/prefix`); never credentials.
    fn location(&self) -> String;
    /// Starts writing the artifact `name` of environment `env`. `Ok(None)` when
    /// that name is taken. The artifact is invisible until the sink commits.
    async fn create(&self, env: &str, name: &str) -> Result<Option<Box<dyn ArtifactSink>>>;
    /// Every complete artifact: its path and metadata. Only those whose metadata
    /// exists, parses and matches the stored bytes' size are returned.
    async fn list(&self) -> Result<Vec<(PathBuf, ArtifactMetadata)>>;
    /// Streams the bytes of the artifact at `path`.
    async fn open(&self, path: &Path) -> Result<ArtifactReader>;
    /// Deletes the artifact at `path` and its metadata (metadata first, so it
    /// stops listing before its bytes go); already gone is fine.
    async fn remove(&self, path: &Path) -> Result<()>;
}

/// One artifact being written. Dropping it uncommitted must leave nothing that
/// lists (the backend cleans up what it can).
#[async_trait]
pub trait ArtifactSink: Send {
    /// Where the complete artifact will be ([`BackupArtifact::path`]).
    fn path(&self) -> &Path;
    /// Appends bytes.
    async fn write(&mut self, bytes: &[u8]) -> Result<()>;
    /// Makes the data durable, then writes `metadata` last. On error nothing of
    /// the artifact remains.
    async fn commit(&mut self, metadata: &ArtifactMetadata) -> Result<()>;
    /// Abandons the artifact, removing whatever was written.
    async fn abort(&mut self);
    /// A local file being written, when the backend has one (a scratch file
    /// placed next to it lands on the same disk).
    fn partial_path(&self) -> Option<&Path>;
}

/// A backend plus what every artifact in it shares: the file extension and the
/// database identity recorded in the metadata.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    backend: Arc<dyn ArtifactBackend>,
    ext: String,
    database_id: Option<String>,
}

impl ArtifactStore {
    /// A store in the local directory `dir` whose artifacts end in `.<ext>` (e.g.
    /// `dump`, `sql.gz`, `sqlite`). The directory is created on first use.
    pub fn new(dir: impl Into<PathBuf>, ext: impl Into<String>) -> Self {
        Self::on(Arc::new(LocalDir::new(dir)), ext)
    }

    /// A store on any backend whose artifacts end in `.<ext>`.
    pub fn on(backend: Arc<dyn ArtifactBackend>, ext: impl Into<String>) -> Self {
        Self {
            backend,
            ext: ext.into().trim_start_matches('.').to_string(),
            database_id: None,
        }
    }

    /// The same backend for artifacts ending in `.<ext>` instead.
    pub fn with_ext(&self, ext: impl Into<String>) -> Self {
        Self {
            ext: ext.into().trim_start_matches('.').to_string(),
            ..self.clone()
        }
    }

    /// Records `id` (see [`crate::Backup::database_id`]) in every artifact's
    /// metadata, so a store shared by several environments or databases still
    /// knows whose each artifact is.
    pub fn database_id(mut self, id: impl Into<String>) -> Self {
        self.database_id = Some(id.into());
        self
    }

    /// The database identity recorded in new artifacts, if set.
    pub fn recorded_database_id(&self) -> Option<&str> {
        self.database_id.as_deref()
    }

    /// Where artifacts live, for messages.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// The file name extension of this store's artifacts (without the dot).
    pub fn ext(&self) -> &str {
        &self.ext
    }

    /// Where the metadata of a local `artifact_path` lives.
    pub fn metadata_path(artifact_path: &Path) -> PathBuf {
        local::append_suffix(artifact_path, METADATA_SUFFIX)
    }

    /// Starts a new artifact for `request`, named `<env>-<UTC time>-<commit>.<ext>`.
    /// Nothing lists until [`ArtifactWriter::finish`]; dropping the writer
    /// unfinished removes what was written.
    pub async fn begin(&self, request: &BackupRequest) -> Result<ArtifactWriter> {
        crate::release::validate_name("environment", &request.env, 64)?;
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
            if let Some(sink) = self.backend.create(&request.env, &name).await? {
                return Ok(ArtifactWriter::new(
                    sink,
                    started,
                    request.clone(),
                    self.database_id.clone(),
                ));
            }
        }
        Err(Error::part(
            "backup.create",
            self.location(),
            format!("could not find a free artifact name for {stem}"),
        ))
    }

    /// Checks that `artifact` exists with the recorded size and SHA-256, reading
    /// it back from the store.
    pub async fn verify(&self, artifact: &BackupArtifact) -> Result<()> {
        let at = artifact.path.display().to_string();
        let fail = |message: String| {
            Error::part("backup.verify", &at, message)
                .with_hint("do not restore from this artifact; take a new backup")
        };
        if artifact.size == 0 {
            return Err(fail("the artifact is empty".into()));
        }
        let reader = self.backend.open(&artifact.path).await?;
        let (size, sha256) = hash_reader(reader, &artifact.path).await?;
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

    /// Complete artifacts of this store's extension (those with matching
    /// metadata; partial uploads and strays are ignored), oldest first.
    pub async fn list(&self) -> Result<Vec<BackupArtifact>> {
        let suffix = format!(".{}", self.ext);
        let mut out: Vec<BackupArtifact> = self
            .backend
            .list()
            .await?
            .into_iter()
            .filter(|(path, _)| path.to_string_lossy().ends_with(&suffix))
            .map(|(path, meta)| BackupArtifact {
                path,
                size: meta.size,
                sha256: meta.sha256,
                created: meta.finished,
                release: meta.release,
                commit: meta.commit,
                env: Some(meta.env),
                database_id: meta.database_id,
            })
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.path.cmp(&b.path)));
        Ok(out)
    }

    /// The metadata recorded for the artifact at `path`.
    pub async fn metadata(&self, path: &Path) -> Result<ArtifactMetadata> {
        self.backend
            .list()
            .await?
            .into_iter()
            .find(|(p, _)| p == path)
            .map(|(_, meta)| meta)
            .ok_or_else(|| {
                Error::part(
                    "backup.metadata",
                    path.display().to_string(),
                    "no complete artifact with metadata is stored there",
                )
            })
    }

    /// Streams the artifact's bytes back from the store (for restore and checks).
    pub async fn open(&self, artifact: &BackupArtifact) -> Result<ArtifactReader> {
        self.backend.open(&artifact.path).await
    }

    /// Deletes an artifact and its metadata; already gone is fine.
    pub async fn remove(&self, artifact: &BackupArtifact) -> Result<()> {
        self.backend.remove(&artifact.path).await
    }
}

/// Size and lowercase hex SHA-256 of a stream, read in one pass.
pub async fn hash_reader(mut reader: ArtifactReader, at: &Path) -> Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| Error::io("read backup", at, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod obj_safe {
    fn _backend(_: Box<dyn super::ArtifactBackend>) {}
    fn _sink(_: Box<dyn super::ArtifactSink>) {}
}
