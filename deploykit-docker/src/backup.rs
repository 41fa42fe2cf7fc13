//! [`ExecPgDumpBackup`]: `pg_dump` inside the database service's container.
//!
//! The seeds run `docker exec <db> pg_dump … > file` and carry on with a warning when
//! it fails. Here the dump runs through an engine exec without a TTY (so the custom
//! format's binary bytes stay intact), its stdout is streamed into the core
//! [`ArtifactStore`] (`.partial`, 0600, SHA-256 in the same pass, rename, metadata),
//! and a stopped container or a non-zero `pg_dump` is an error that stops the run.

use std::path::PathBuf;

use async_trait::async_trait;
use deploykit_core::artifact_store::{ArtifactBackend, ArtifactReader, ArtifactStore};
use deploykit_core::{
    redact, Backup, BackupArtifact, BackupRequest, ConfirmDestructive, DumpCompression, Error,
    Result, Secret,
};
use tokio::io::AsyncReadExt;

use crate::engine::{ByteStream, ContainerState, Engine, ExecOutput};

/// The first bytes of every `pg_dump --format=custom` file.
const CUSTOM_FORMAT_MAGIC: &[u8] = b"PGDMP";

/// Backs up (and restores) a PostgreSQL database living in a Compose service, by
/// running `pg_dump`/`pg_restore` inside that service's container.
pub struct ExecPgDumpBackup {
    engine: Engine,
    project: String,
    service: String,
    database: String,
    user: String,
    password: Option<Secret>,
    compression: DumpCompression,
    store: ArtifactStore,
}

impl std::fmt::Debug for ExecPgDumpBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecPgDumpBackup")
            .field("engine", &self.engine)
            .field("project", &self.project)
            .field("service", &self.service)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl ExecPgDumpBackup {
    /// Dumps `database` as `user` from the container of `service` in compose
    /// `project` into artifacts under `dir`.
    pub fn new(
        engine: Engine,
        project: &str,
        service: &str,
        database: &str,
        user: &str,
        dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            engine,
            project: project.to_string(),
            service: service.to_string(),
            database: database.to_string(),
            user: user.to_string(),
            password: None,
            compression: DumpCompression::default(),
            store: ArtifactStore::new(dir, "dump")
                .database_id(compose_identity(project, service, database)),
        }
    }

    /// The password, passed to the tools as `PGPASSWORD` inside the exec (never in
    /// argv, never in output).
    pub fn password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// Keeps the artifacts in `backend` (e.g. an object store, so they outlive
    /// the machine that deployed) instead of the local directory.
    pub fn backend(mut self, backend: std::sync::Arc<dyn ArtifactBackend>) -> Self {
        self.store = ArtifactStore::on(backend, "dump").database_id(compose_identity(
            &self.project,
            &self.service,
            &self.database,
        ));
        self
    }

    /// Compresses the dump at `level` instead of the fast default
    /// ([`DumpCompression::FAST`]).
    pub fn compression(mut self, level: DumpCompression) -> Self {
        self.compression = level;
        self
    }

    fn dump_argv(&self) -> Vec<String> {
        pg_dump_argv(&self.user, &self.database, self.compression)
    }

    fn restore_argv(&self) -> Vec<String> {
        pg_restore_argv(&self.user, &self.database)
    }

    fn env(&self) -> Vec<String> {
        match &self.password {
            Some(p) => vec![format!("PGPASSWORD={}", p.expose())],
            None => Vec::new(),
        }
    }

    fn where_(&self) -> String {
        format!(
            "database {} in {}/{} on {}",
            self.database,
            self.project,
            self.service,
            self.engine.location()
        )
    }

    async fn running_container(&self, step: &str) -> Result<ContainerState> {
        match self
            .engine
            .service_container(&self.project, &self.service)
            .await?
        {
            Some(c) if c.status == "running" => Ok(c),
            Some(c) => Err(Error::part(
                step,
                self.where_(),
                format!("the database container is not running: {}", c.describe()),
            )
            .with_hint("start the database service; nothing was changed")),
            None => Err(
                Error::part(step, self.where_(), "the database service has no container")
                    .with_hint("check the compose project and service names; nothing was changed"),
            ),
        }
    }

    fn failed(&self, step: &str, tool: &str, out: &ExecOutput) -> Error {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let secrets: Vec<&Secret> = self.password.iter().collect();
        Error::part(
            step,
            self.where_(),
            redact(
                &format!(
                    "{tool} exited with status {}\n---- stderr (last lines) ----\n{}\n----",
                    out.exit_code,
                    tail.join("\n")
                ),
                &secrets,
            ),
        )
    }
}

/// `pg_dump` in custom format: compressed, and restorable table by table.
pub fn pg_dump_argv(user: &str, database: &str, compression: DumpCompression) -> Vec<String> {
    [
        "pg_dump",
        "--format=custom",
        &compression.pg_dump_arg(),
        "--no-owner",
        "--username",
        user,
        "--dbname",
        database,
    ]
    .map(String::from)
    .to_vec()
}

/// `pg_restore` reading the dump on stdin, dropping what it recreates, in one
/// transaction so a failing restore leaves the database as it was.
pub fn pg_restore_argv(user: &str, database: &str) -> Vec<String> {
    [
        "pg_restore",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "--username",
        user,
        "--dbname",
        database,
    ]
    .map(String::from)
    .to_vec()
}

fn file_chunks(file: ArtifactReader) -> ByteStream {
    Box::pin(futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }))
}

#[async_trait]
impl Backup for ExecPgDumpBackup {
    async fn create(&self, request: &BackupRequest) -> Result<BackupArtifact> {
        let container = self.running_container("backup.create").await?;
        // The store before the dump: one that is down fails before pg_dump runs.
        let mut writer = self.store.begin(request).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        let (argv, env) = (self.dump_argv(), self.env());
        let exec = self
            .engine
            .exec_streaming(&container.id, &argv, &env, None, tx);
        let store = async {
            while let Some(chunk) = rx.recv().await {
                writer.write(&chunk).await?;
            }
            Ok::<(), Error>(())
        };
        let (exec, stored) = futures::join!(exec, store);
        stored?;
        let out = exec?;
        if out.exit_code != 0 {
            writer.abort().await;
            return Err(self
                .failed("backup.create", "pg_dump", &out)
                .with_hint("fix the dump (see stderr); migrations do not run without a backup"));
        }
        let mut extra = serde_json::Map::new();
        extra.insert("tool".into(), "pg_dump (docker exec)".into());
        extra.insert("format".into(), "custom".into());
        extra.insert("database".into(), self.database.clone().into());
        extra.insert(
            "compose_service".into(),
            format!("{}/{}", self.project, self.service).into(),
        );
        extra.insert("container_image".into(), container.image.clone().into());
        writer.finish(extra).await
    }

    async fn verify(&self, artifact: &BackupArtifact) -> Result<()> {
        self.store.verify(artifact).await?;
        let mut head = [0u8; 5];
        let mut f = self.store.open(artifact).await?;
        f.read_exact(&mut head)
            .await
            .map_err(|e| Error::io("read backup", &artifact.path, e))?;
        if head != CUSTOM_FORMAT_MAGIC {
            return Err(Error::part(
                "backup.verify",
                artifact.path.display().to_string(),
                "not a pg_dump custom-format archive (bad header)",
            )
            .with_hint("do not restore from this artifact; take a new backup"));
        }
        Ok(())
    }

    async fn restore(&self, artifact: &BackupArtifact, _confirm: ConfirmDestructive) -> Result<()> {
        self.verify(artifact).await?;
        let container = self.running_container("backup.restore").await?;
        let file = self.store.open(artifact).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        let drain = async { while rx.recv().await.is_some() {} };
        let (argv, env) = (self.restore_argv(), self.env());
        let exec =
            self.engine
                .exec_streaming(&container.id, &argv, &env, Some(file_chunks(file)), tx);
        let (out, ()) = futures::join!(exec, drain);
        let out = out?;
        if out.exit_code != 0 {
            return Err(self
                .failed("backup.restore", "pg_restore", &out)
                .with_hint("the restore ran in one transaction, so the database is unchanged; fix the cause and restore again"));
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<BackupArtifact>> {
        self.store.list().await
    }

    async fn remove(&self, artifact: &BackupArtifact) -> Result<()> {
        self.store.remove(artifact).await
    }

    fn database_id(&self) -> String {
        compose_identity(&self.project, &self.service, &self.database)
    }
}

/// `compose://<project>/<service>/<database>`: which database a Compose backup
/// holds (no user, no password), so stacks sharing a backup directory tell
/// their artifacts apart.
fn compose_identity(project: &str, service: &str, database: &str) -> String {
    format!("compose://{project}/{service}/{database}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn dump_and_restore_are_argv_with_no_password() {
        assert_eq!(
            pg_dump_argv("crm_user", "crm db", DumpCompression::FAST).join(" "),
            "pg_dump --format=custom --compress=1 --no-owner --username crm_user --dbname crm db"
        );
        let restore = pg_restore_argv("u", "d");
        assert!(restore.contains(&"--single-transaction".to_string()));
        assert!(restore.contains(&"--clean".to_string()));
    }

    #[tokio::test]
    async fn file_chunks_yield_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let chunks: Vec<Vec<u8>> =
            file_chunks(Box::new(tokio::fs::File::open(&path).await.unwrap()))
                .map(|c| c.unwrap())
                .collect()
                .await;
        assert!(chunks.len() > 1);
        assert_eq!(chunks.concat(), data);
    }
}
