//! The promises every [`ArtifactBackend`] keeps, as plain `async fn`s each backend
//! runs (the local directory, object_store's `InMemory` and `LocalFileSystem`).

use std::sync::Arc;

use tokio::io::AsyncReadExt;

use super::{ArtifactStore, LocalDir};
use crate::backup::BackupRequest;
use crate::release::{Commit, ReleaseId};

pub(super) fn request(env: &str) -> BackupRequest {
    BackupRequest {
        env: env.into(),
        release: ReleaseId::parse("20261126T100000Z-abc1234").unwrap(),
        commit: Commit::parse("abc1234def5678").unwrap(),
        branch: Some("main".into()),
    }
}

/// Written, listed, verified, read back, removed.
pub(super) async fn round_trip(store: &ArtifactStore) {
    let mut w = store.begin(&request("staging")).await.unwrap();
    w.write(b"hello ").await.unwrap();
    w.copy_from(&b"world"[..]).await.unwrap();
    assert!(store.list().await.unwrap().is_empty(), "unfinished lists");
    let mut extra = serde_json::Map::new();
    extra.insert("pg_dump_version".into(), "15.18".into());
    let a = w.finish(extra).await.unwrap();
    assert_eq!(a.size, 11);
    assert_eq!(
        a.sha256,
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    let name = a.path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("staging-") && name.ends_with("Z-abc1234.dump"),
        "{name}"
    );
    assert_eq!(store.list().await.unwrap(), vec![a.clone()]);
    store.verify(&a).await.unwrap();
    let meta = store.metadata(&a.path).await.unwrap();
    assert_eq!(meta.extra["pg_dump_version"], "15.18");
    let mut back = Vec::new();
    store
        .open(&a)
        .await
        .unwrap()
        .read_to_end(&mut back)
        .await
        .unwrap();
    assert_eq!(back, b"hello world");
    // Another extension in the same store is not this store's.
    assert!(store.with_ext("sqlite").list().await.unwrap().is_empty());
    store.remove(&a).await.unwrap();
    store.remove(&a).await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
    assert!(
        store.verify(&a).await.is_err(),
        "a removed artifact verifies"
    );
}

/// Abandoned, dropped, failed or empty artifacts never list; a multi-part
/// artifact dropped mid-way (the process dying) leaves nothing valid either.
pub(super) async fn failures_list_nothing(store: &ArtifactStore) {
    let mut w = store.begin(&request("staging")).await.unwrap();
    w.write(&vec![1u8; 9 * 1024 * 1024]).await.unwrap();
    w.abort().await;

    let mut w = store.begin(&request("staging")).await.unwrap();
    for _ in 0..3 {
        w.write(&vec![2u8; 6 * 1024 * 1024]).await.unwrap();
    }
    drop(w);

    struct Broken;
    impl tokio::io::AsyncRead for Broken {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::Error::other("pipe broke")))
        }
    }
    let mut w = store.begin(&request("staging")).await.unwrap();
    w.write(b"some bytes").await.unwrap();
    assert!(w.copy_from(Broken).await.is_err());
    assert!(
        w.write(b"more").await.is_err(),
        "a failed writer stays closed"
    );

    let w = store.begin(&request("staging")).await.unwrap();
    let err = w.finish(Default::default()).await.unwrap_err().to_string();
    assert!(err.contains("no bytes"), "{err}");

    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(store.list().await.unwrap().is_empty());
}

/// Same-second backups get distinct names; environments are kept apart; list is
/// oldest first.
pub(super) async fn environments_and_names(store: &ArtifactStore) {
    let mut made = Vec::new();
    for env in ["staging", "staging", "production"] {
        let mut w = store.begin(&request(env)).await.unwrap();
        w.write(env.as_bytes()).await.unwrap();
        made.push(w.finish(Default::default()).await.unwrap());
    }
    assert_ne!(made[0].path, made[1].path);
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.windows(2).all(|w| w[0].created <= w[1].created));
    store.remove(&made[0]).await.unwrap();
    let left: Vec<_> = store.list().await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().any(|a| a.env.as_deref() == Some("production")));
}

async fn all(store: ArtifactStore) {
    round_trip(&store).await;
    failures_list_nothing(&store).await;
    environments_and_names(&store).await;
}

#[tokio::test]
async fn local_dir_conforms() {
    let dir = tempfile::tempdir().unwrap();
    all(ArtifactStore::on(
        Arc::new(LocalDir::new(dir.path())),
        "dump",
    ))
    .await;
}

#[cfg(feature = "object-store")]
#[tokio::test]
async fn in_memory_object_store_conforms() {
    use super::object::ObjectDir;
    let mem = Arc::new(object_store::memory::InMemory::new());
    all(ArtifactStore::on(
        Arc::new(ObjectDir::new(mem, "mem://b/backups", "backups")),
        "dump",
    ))
    .await;
}

#[cfg(feature = "object-store")]
#[tokio::test]
async fn filesystem_object_store_conforms() {
    use super::object::{ObjectDir, ObjectStoreSpec};
    let dir = tempfile::tempdir().unwrap();
    let spec = ObjectStoreSpec {
        url: format!("file://{}/store", dir.path().display()),
        ..Default::default()
    };
    all(ArtifactStore::on(
        Arc::new(ObjectDir::connect(&spec).unwrap()),
        "dump",
    ))
    .await;
}
