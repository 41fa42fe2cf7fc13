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
mod tests {
    use super::*;
    use crate::artifact_store::ArtifactStore;
    use crate::backup::BackupRequest;
    use crate::release::{Commit, ReleaseId};
    use tokio::io::AsyncRead;

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
        let partial = w.partial_path().unwrap().to_path_buf();
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
        let partial = w.partial_path().unwrap().to_path_buf();
        assert!(partial.exists());
        assert!(w.copy_from(Broken).await.is_err());
        assert!(!partial.exists(), "a failed stream leaves no partial");
        assert!(
            w.write(b"more").await.is_err(),
            "a failed writer stays closed"
        );

        let w = store.begin(&request()).await.unwrap();
        let partial = w.partial_path().unwrap().to_path_buf();
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
