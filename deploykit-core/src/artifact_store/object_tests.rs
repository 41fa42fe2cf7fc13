//! What only the object-store backend must get right: what lists as valid, that
//! verify re-reads the store, that paths stay inside it, and that a store that is
//! down fails naming the store and never the credentials.

use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutPayload};

use super::{ObjectDir, ObjectStoreSpec};
use crate::artifact_store::conformance::request;
use crate::artifact_store::{ArtifactStore, ArtifactWriter};
use crate::secret::Secret;

fn in_memory() -> (Arc<InMemory>, ArtifactStore) {
    let mem = Arc::new(InMemory::new());
    let dir = ObjectDir::new(mem.clone(), "s3://b/backups", "backups");
    (mem, ArtifactStore::on(Arc::new(dir), "dump"))
}

async fn put(mem: &InMemory, key: &str, bytes: Vec<u8>) {
    mem.put(&Key::from(key), PutPayload::from(bytes))
        .await
        .unwrap();
}

async fn written(store: &ArtifactStore, env: &str, bytes: &[u8]) -> crate::BackupArtifact {
    let mut w: ArtifactWriter = store.begin(&request(env)).await.unwrap();
    w.write(bytes).await.unwrap();
    w.finish(Default::default()).await.unwrap()
}

#[tokio::test]
async fn only_data_with_metadata_naming_it_lists() {
    let (mem, store) = in_memory();
    let good = written(&store, "staging", b"dump bytes").await;
    assert_eq!(
        good.path.to_string_lossy(),
        format!(
            "s3://b/backups/staging/{}",
            good.path.file_name().unwrap().to_string_lossy()
        )
    );
    let meta = mem
        .get(&Key::from(format!(
            "backups/staging/{}.json",
            good.path.file_name().unwrap().to_string_lossy()
        )))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    // Data without metadata: an upload that never finished its last step.
    put(&mem, "backups/staging/orphan.dump", b"x".to_vec()).await;
    // Metadata without data.
    put(&mem, "backups/staging/gone.dump.json", meta.clone()).await;
    // Metadata that names another artifact, or another environment's prefix.
    put(&mem, "backups/staging/copy.dump", b"dump bytes".to_vec()).await;
    put(&mem, "backups/staging/copy.dump.json", meta.clone()).await;
    let name = good
        .path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    put(
        &mem,
        &format!("backups/production/{name}"),
        b"dump bytes".to_vec(),
    )
    .await;
    put(
        &mem,
        &format!("backups/production/{name}.json"),
        meta.clone(),
    )
    .await;
    // Unparseable metadata.
    put(&mem, "backups/staging/bad.dump", b"x".to_vec()).await;
    put(&mem, "backups/staging/bad.dump.json", b"{not json".to_vec()).await;
    // Outside the prefix.
    put(
        &mem,
        &format!("elsewhere/staging/{name}"),
        b"dump bytes".to_vec(),
    )
    .await;
    put(&mem, &format!("elsewhere/staging/{name}.json"), meta).await;

    assert_eq!(store.list().await.unwrap(), vec![good]);
}

#[tokio::test]
async fn verify_rehashes_what_the_store_holds() {
    let (mem, store) = in_memory();
    let a = written(&store, "staging", &[7u8; 4096]).await;
    store.verify(&a).await.unwrap();
    let key = format!(
        "backups/staging/{}",
        a.path.file_name().unwrap().to_string_lossy()
    );
    let mut corrupt = vec![7u8; 4096];
    corrupt[10] ^= 0xff;
    put(&mem, &key, corrupt).await;
    let err = store.verify(&a).await.unwrap_err().to_string();
    assert!(err.contains("sha256"), "{err}");
    put(&mem, &key, vec![7u8; 100]).await;
    let err = store.verify(&a).await.unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
}

#[tokio::test]
async fn paths_outside_the_store_are_refused() {
    let (_mem, store) = in_memory();
    let mut a = written(&store, "staging", b"x").await;
    for outside in [
        "/etc/passwd",
        "s3://b/backups/../secrets/x.dump",
        "s3://other/backups/staging/x.dump",
        "s3://b/backups/staging/deeper/x.dump",
    ] {
        a.path = outside.into();
        let err = store.open(&a).await.err().expect(outside).to_string();
        assert!(err.contains("not an artifact of this store"), "{err}");
        assert!(store.remove(&a).await.is_err(), "{outside}");
    }
}

#[tokio::test]
async fn a_store_that_is_down_fails_naming_it_and_not_the_credentials() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = ObjectStoreSpec {
        url: "s3://bucket/prefix".into(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: None,
        access_key_id: Some(Secret::new("AKIADEPLOYKITTEST42")),
        secret_access_key: Some(Secret::new("very-secret-access-key-value")),
    };
    let dir = ObjectDir::connect(&spec).unwrap();
    let debug = format!("{dir:?}");
    assert!(!debug.contains("very-secret-access-key-value"), "{debug}");
    let store = ArtifactStore::on(Arc::new(dir), "dump");
    let started = std::time::Instant::now();
    let err = store
        .begin(&request("staging"))
        .await
        .unwrap_err()
        .to_string();
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(err.contains("s3://bucket/prefix"), "{err}");
    assert!(err.contains("check that the store is reachable"), "{err}");
    assert!(!err.contains("AKIADEPLOYKITTEST42"), "{err}");
    assert!(!err.contains("very-secret-access-key-value"), "{err}");
    let err = store.list().await.unwrap_err().to_string();
    assert!(err.contains("s3://bucket/prefix"), "{err}");
}

#[test]
fn store_urls_are_checked() {
    for bad in [
        "ftp://x/y",
        "s3:///prefix",
        "file://relative/path",
        "/plain/path",
    ] {
        let spec = ObjectStoreSpec {
            url: bad.into(),
            ..Default::default()
        };
        let err = ObjectDir::connect(&spec).unwrap_err().to_string();
        assert!(err.contains("s3://bucket/prefix"), "{bad}: {err}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_filesystem_store_keeps_its_files_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let spec = ObjectStoreSpec {
        url: format!("file://{}", root.display()),
        ..Default::default()
    };
    let store = ArtifactStore::on(Arc::new(ObjectDir::connect(&spec).unwrap()), "dump");
    let a = written(&store, "staging", b"private rows").await;
    let name = a.path.file_name().unwrap().to_string_lossy().into_owned();
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(root.clone()), 0o700);
    assert_eq!(mode(root.join("staging").join(&name)), 0o600);
    assert_eq!(
        mode(root.join("staging").join(format!("{name}.json"))),
        0o600
    );
}
