//! [`LocalDir`]: artifacts in a directory on this machine — today's default, and
//! what the demo and the unit tests use.
//!
//! An artifact is written as `<name>.partial` (mode 0600: dumps hold user data),
//! fsynced, renamed to its final name, and only then gets its `<name>.json`
//! metadata (itself written as `.partial`, fsynced and renamed). A crash at any
//! point leaves either nothing or a file without metadata, which never lists.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ArtifactBackend, ArtifactMetadata, ArtifactReader, ArtifactSink};
use crate::error::{Error, Result};

/// Suffix of an artifact still being written; never listed, never verified.
pub const PARTIAL_SUFFIX: &str = ".partial";
/// Suffix of the metadata file written next to a complete artifact.
pub const METADATA_SUFFIX: &str = ".json";

/// A local directory of artifacts (flat: `<dir>/<env>-<time>-<commit>.<ext>`).
#[derive(Debug, Clone)]
pub struct LocalDir {
    dir: PathBuf,
}

impl LocalDir {
    /// Artifacts in `dir`, created (0700) on first write.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn read_metadata(path: &Path) -> Result<ArtifactMetadata> {
        let meta_path = append_suffix(path, METADATA_SUFFIX);
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
}

#[async_trait]
impl ArtifactBackend for LocalDir {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    async fn create(&self, _env: &str, name: &str) -> Result<Option<Box<dyn ArtifactSink>>> {
        crate::private_fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("create backup directory", &self.dir, e))?;
        let path = self.dir.join(name);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(None);
        }
        let partial = append_suffix(&path, PARTIAL_SUFFIX);
        match open_private_new(&partial).await {
            Ok(file) => Ok(Some(Box::new(LocalSink {
                path,
                partial,
                file: Some(file),
                done: false,
            }))),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(write_error(&partial, e)),
        }
    }

    async fn list(&self) -> Result<Vec<(PathBuf, ArtifactMetadata)>> {
        let mut out = Vec::new();
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list backup directory", &self.dir, e)),
        };
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| Error::io("list backup directory", &self.dir, e))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(PARTIAL_SUFFIX) || name.ends_with(METADATA_SUFFIX) {
                continue;
            }
            let path = entry.path();
            // No metadata: never finished (or not ours); not a usable artifact.
            if let Ok(meta) = Self::read_metadata(&path).await {
                out.push((path, meta));
            }
        }
        Ok(out)
    }

    async fn open(&self, path: &Path) -> Result<ArtifactReader> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io("open backup", path, e))?;
        Ok(Box::new(file))
    }

    async fn remove(&self, path: &Path) -> Result<()> {
        for path in [
            append_suffix(path, METADATA_SUFFIX),
            path.to_path_buf(),
            append_suffix(path, PARTIAL_SUFFIX),
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

/// An artifact being written to `<name>.partial`.
#[derive(Debug)]
struct LocalSink {
    path: PathBuf,
    partial: PathBuf,
    file: Option<tokio::fs::File>,
    done: bool,
}

#[async_trait]
impl ArtifactSink for LocalSink {
    fn path(&self) -> &Path {
        &self.path
    }

    fn partial_path(&self) -> Option<&Path> {
        Some(&self.partial)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.file.as_mut().ok_or_else(|| closed(&self.partial))?;
        file.write_all(bytes)
            .await
            .map_err(|e| write_error(&self.partial, e))
    }

    /// fsync, rename `.partial` to its final name, then write the metadata and
    /// fsync the directory.
    async fn commit(&mut self, meta: &ArtifactMetadata) -> Result<()> {
        let mut file = self.file.take().ok_or_else(|| closed(&self.partial))?;
        file.flush()
            .await
            .map_err(|e| write_error(&self.partial, e))?;
        file.sync_all()
            .await
            .map_err(|e| write_error(&self.partial, e))?;
        drop(file);
        tokio::fs::rename(&self.partial, &self.path)
            .await
            .map_err(|e| Error::io("rename finished backup", &self.path, e))?;
        let meta_path = append_suffix(&self.path, METADATA_SUFFIX);
        let meta_tmp = append_suffix(&meta_path, PARTIAL_SUFFIX);
        let json = serde_json::to_vec_pretty(meta).expect("metadata serialises");
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
            self.done = true;
            return Err(write_error(&meta_path, e));
        }
        self.done = true;
        Ok(())
    }

    async fn abort(&mut self) {
        self.file = None;
        if !self.done {
            let _ = tokio::fs::remove_file(&self.partial).await;
            self.done = true;
        }
    }
}

impl Drop for LocalSink {
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
pub(crate) fn write_error(path: &Path, e: std::io::Error) -> Error {
    let at = path.display().to_string();
    if is_disk_full(&e) {
        Error::part(
            "backup.create",
            at,
            format!("disk full while writing the backup ({e}); the partial file was removed"),
        )
        .with_hint("free space in the backup directory (or prune old backups) and run again")
        .with_kind(crate::error::ErrorKind::DiskFull)
        .with_source(e)
    } else {
        let kind = crate::error::io_kind(&e);
        Error::part(
            "backup.create",
            at,
            format!("writing the backup failed: {e}"),
        )
        .with_kind(kind)
        .with_source(e)
    }
}

/// True for "no space left on device" (and quota exceeded), from the OS's code.
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    crate::error::io_kind(e) == crate::error::ErrorKind::DiskFull
}

fn closed(path: &Path) -> Error {
    Error::part(
        "backup.create",
        path.display().to_string(),
        "the artifact was already finished or abandoned",
    )
}

pub(crate) fn append_suffix(path: &Path, suffix: &str) -> PathBuf {
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
#[path = "local_tests.rs"]
mod tests;
