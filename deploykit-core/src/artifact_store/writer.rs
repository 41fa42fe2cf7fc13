//! [`ArtifactWriter`]: hashes every byte on its way to a backend's sink and writes
//! the metadata last, whatever the backend.

use std::path::Path;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{ArtifactMetadata, ArtifactSink};
use crate::backup::{BackupArtifact, BackupRequest};
use crate::error::{Error, Result};

/// An artifact being written. Every byte passes through the SHA-256 hasher on its
/// way to the backend. Dropping it without [`finish`](Self::finish) — or any
/// write error — removes what was written (a local partial file, or an
/// unfinished multipart upload).
pub struct ArtifactWriter {
    sink: Option<Box<dyn ArtifactSink>>,
    hasher: Sha256,
    size: u64,
    started: OffsetDateTime,
    request: BackupRequest,
    database_id: Option<String>,
    path: std::path::PathBuf,
}

impl std::fmt::Debug for ArtifactWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactWriter")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl ArtifactWriter {
    pub(super) fn new(
        sink: Box<dyn ArtifactSink>,
        started: OffsetDateTime,
        request: BackupRequest,
        database_id: Option<String>,
    ) -> Self {
        Self {
            path: sink.path().to_path_buf(),
            sink: Some(sink),
            hasher: Sha256::new(),
            size: 0,
            started,
            request,
            database_id,
        }
    }

    /// Where the complete artifact will be.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The local file bytes are written to until the artifact is complete, when
    /// the backend writes one (the local directory does; object stores do not).
    pub fn partial_path(&self) -> Option<&Path> {
        self.sink.as_ref().and_then(|s| s.partial_path())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `bytes`. On error what was written is removed.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let sink = self.sink.as_mut().ok_or_else(|| closed(&self.path))?;
        if let Err(e) = sink.write(bytes).await {
            self.discard().await;
            return Err(e);
        }
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Copies everything `reader` yields into the artifact; returns the bytes copied.
    /// A read error (e.g. the dump tool's pipe breaking) removes what was written.
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
                        self.path.display().to_string(),
                        format!("reading the backup stream failed: {e}"),
                    ));
                }
            };
            self.write(&buf[..n]).await?;
            total += n as u64;
        }
        Ok(total)
    }

    /// Completes the artifact: the data is made durable, then the metadata (with
    /// `extra` backend facts) is written last. Only then does the artifact show
    /// up in [`ArtifactStore::list`](super::ArtifactStore::list).
    pub async fn finish(
        mut self,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<BackupArtifact> {
        let mut sink = self.sink.take().ok_or_else(|| closed(&self.path))?;
        if self.size == 0 {
            sink.abort().await;
            return Err(Error::part(
                "backup.create",
                self.path.display().to_string(),
                "the backup produced no bytes",
            )
            .with_hint("check the backup tool's output and the database connection"));
        }
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let finished = OffsetDateTime::now_utc();
        let file = self
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
            file,
            database_id: self.database_id.clone(),
            extra,
        };
        if let Err(e) = sink.commit(&meta).await {
            sink.abort().await;
            return Err(e);
        }
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

    /// Abandons the artifact, removing what was written.
    pub async fn abort(mut self) {
        self.discard().await;
    }

    async fn discard(&mut self) {
        if let Some(mut sink) = self.sink.take() {
            sink.abort().await;
        }
    }
}

fn closed(path: &Path) -> Error {
    Error::part(
        "backup.create",
        path.display().to_string(),
        "the artifact was already finished or abandoned",
    )
}
