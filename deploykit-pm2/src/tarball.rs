//! A release tarball built once (in CI, or by a local build command) and shipped
//! to every host: its path on the deploying machine and the SHA-256 the hosts
//! check before unpacking it.

use std::path::{Path, PathBuf};

use deploykit_core::{Error, Result};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// How much of the tarball is read (and sent to a host) at a time: the digest
/// and the upload never hold the whole file in memory.
pub(crate) const CHUNK: usize = 8 * 1024 * 1024;

/// A gzipped tarball of one release and its SHA-256, computed once per deploy.
///
/// Every host gets the bytes whose digest this holds: each host hashes what it
/// received (`sha256sum`) and refuses to unpack anything else, so a file rewritten
/// during the deploy or damaged on the way never becomes a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tarball {
    path: PathBuf,
    sha256: String,
    size: u64,
}

impl Tarball {
    /// Reads `path` once, in chunks, and computes its SHA-256.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Error::io("reading artifact", &path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| Error::io("reading artifact", &path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(Self {
            path,
            sha256: hex::encode(hasher.finalize()),
            size,
        })
    }

    /// A tarball whose digest is already known (recorded by CI next to the file).
    /// `sha256` must be 64 hex digits; it is what every host checks against.
    pub fn with_digest(path: impl Into<PathBuf>, sha256: &str) -> Result<Self> {
        let path = path.into();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid {
                what: "artifact sha256",
                value: sha256.chars().take(80).collect(),
                reason: "expected 64 hex digits".into(),
            });
        }
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io("reading artifact", &path, e))?
            .len();
        Ok(Self {
            path,
            sha256: sha256.to_ascii_lowercase(),
            size,
        })
    }

    /// The file on the deploying machine.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its SHA-256, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Its size in bytes, when the digest was taken.
    pub fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_digest_is_sha256_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.tar.gz");
        std::fs::write(&file, b"abc").unwrap();
        let t = Tarball::open(&file).await.unwrap();
        assert_eq!(
            t.sha256(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(t.size(), 3);
        let err = Tarball::open(dir.path().join("missing.tar.gz"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.tar.gz"), "{err}");
        assert!(Tarball::with_digest(&file, "abc").is_err());
        assert!(Tarball::with_digest(&file, &"A".repeat(64)).is_ok());
    }
}
