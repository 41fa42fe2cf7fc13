//! Copying artifacts between stores, keeping their names and metadata: how
//! existing local backups move into object storage (`deploykit backup push`).

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::ArtifactStore;
use crate::backup::BackupArtifact;
use crate::error::{Error, Result};
use crate::next_step::NextStep;

impl ArtifactStore {
    /// Copies `artifact` of `from` into this store under the same name, with the
    /// same metadata (taken when, for which release, from which database), so it
    /// lists, prunes and restores as if it had been taken here. The bytes are
    /// re-hashed on the way: one that does not match its recorded size and
    /// SHA-256 is not copied (the partial copy is aborted). `Ok(None)` when this
    /// store already holds an artifact of that name.
    pub async fn import(
        &self,
        from: &ArtifactStore,
        artifact: &BackupArtifact,
    ) -> Result<Option<BackupArtifact>> {
        let meta = from.metadata(&artifact.path).await?;
        let Some(mut sink) = self.backend.create(&meta.env, &meta.file).await? else {
            return Ok(None);
        };
        let mut reader = from.open(artifact).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    sink.abort().await;
                    return Err(Error::io("read backup", &artifact.path, e));
                }
            };
            if let Err(e) = sink.write(&buf[..n]).await {
                sink.abort().await;
                return Err(e);
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let sha256 = hex::encode(hasher.finalize());
        if size != meta.size || sha256 != meta.sha256 {
            sink.abort().await;
            return Err(Error::part(
                "backup.push",
                artifact.path.display().to_string(),
                format!(
                    "the file does not match its metadata ({size} bytes, sha256 {sha256}; \
                     {} bytes, sha256 {} recorded), so it was not copied",
                    meta.size, meta.sha256
                ),
            )
            .with_next_step(NextStep::VerifyBackup {
                env: meta.env.clone(),
                path: artifact.path.display().to_string(),
            }));
        }
        if let Err(e) = sink.commit(&meta).await {
            sink.abort().await;
            return Err(e);
        }
        Ok(Some(BackupArtifact {
            path: sink.path().to_path_buf(),
            ..artifact.clone()
        }))
    }
}

#[cfg(all(test, feature = "object-store"))]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::artifact_store::conformance::request;
    use crate::artifact_store::object::ObjectDir;

    #[tokio::test]
    async fn local_backups_move_with_their_names_and_metadata_and_bad_ones_stay_behind() {
        let dir = tempfile::tempdir().unwrap();
        let local = ArtifactStore::new(dir.path(), "dump").database_id("postgres://db/x");
        let mem = Arc::new(object_store::memory::InMemory::new());
        let remote = ArtifactStore::on(Arc::new(ObjectDir::new(mem, "s3://b/p", "p")), "dump");
        let mut made = Vec::new();
        for bytes in [&b"first"[..], b"second"] {
            let mut w = local.begin(&request("staging")).await.unwrap();
            w.write(bytes).await.unwrap();
            made.push(w.finish(Default::default()).await.unwrap());
        }
        let copied = remote.import(&local, &made[0]).await.unwrap().unwrap();
        assert_eq!(copied.path.file_name(), made[0].path.file_name());
        assert_eq!(copied.sha256, made[0].sha256);
        assert_eq!(remote.list().await.unwrap(), vec![copied.clone()]);
        remote.verify(&copied).await.unwrap();
        let meta = remote.metadata(&copied.path).await.unwrap();
        assert_eq!(meta.database_id.as_deref(), Some("postgres://db/x"));
        assert!(remote.import(&local, &made[0]).await.unwrap().is_none());

        std::fs::write(&made[1].path, b"SECOND").unwrap();
        let err = remote
            .import(&local, &made[1])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not match"), "{err}");
        assert_eq!(remote.list().await.unwrap().len(), 1, "a bad copy lists");
    }
}
