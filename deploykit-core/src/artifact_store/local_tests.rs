//! The local directory backend: names, 0600, checksums, partial files, disk full.

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
