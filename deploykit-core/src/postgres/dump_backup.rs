//! [`PgDumpBackup`]: `pg_dump` streamed through the [`ArtifactStore`], verified
//! with `pg_restore --list` (and optionally by restoring into a scratch database).
//! Every read of an artifact (checks, restore) streams it back from the store,
//! so a backup in object storage restores without a local copy.

use std::process::Stdio;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Connection, Row};
use tokio::io::{AsyncReadExt, BufReader};

use crate::artifact_store::{ArtifactBackend, ArtifactReader, ArtifactStore};
use crate::backup::{Backup, BackupArtifact, BackupRequest, ConfirmDestructive};
use crate::dump_compression::DumpCompression;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::shell::Cmd;

use super::conn::PgTarget;
use super::restore::{
    drops_for_tables_not_in, ident, pg_restore_script_cmd, psql_one_transaction_cmd,
    run_in_one_transaction, RestoreFailed,
};

mod restore_into;
mod verify;

/// How `pg_dump` writes the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpFormat {
    /// `pg_dump -Fc`: compressed, restorable selectively by `pg_restore`. (`.dump`)
    #[default]
    Custom,
    /// Plain SQL (with `--clean --if-exists`), gzip-compressed here: what the
    /// seeds' `pg_dump | gzip` produced, readable with `zcat`. (`.sql.gz`)
    PlainGzip,
}

impl DumpFormat {
    fn ext(self) -> &'static str {
        match self {
            DumpFormat::Custom => "dump",
            DumpFormat::PlainGzip => "sql.gz",
        }
    }
}

/// Backs up one PostgreSQL database by running the `pg_dump` binary.
///
/// Before dumping it checks that `pg_dump` exists and is not of an older major
/// version than the server (which `pg_dump` refuses, late), and connects once so
/// "connection refused" and "authentication failed" are reported as such.
#[derive(Debug, Clone)]
pub struct PgDumpBackup {
    target: PgTarget,
    store: ArtifactStore,
    format: DumpFormat,
    compression: DumpCompression,
    deep_verify: bool,
    bin_dir: Option<std::path::PathBuf>,
}

/// `pg_dump` arguments for `format` (the connection comes from the environment).
/// Plain dumps are gzipped here, so `pg_dump` itself writes them uncompressed.
pub(crate) fn pg_dump_cmd(
    program: String,
    format: DumpFormat,
    compression: DumpCompression,
) -> Cmd {
    let cmd = Cmd::new(program).arg("--no-password");
    match format {
        DumpFormat::Custom => cmd.args(["--format=custom".to_string(), compression.pg_dump_arg()]),
        DumpFormat::PlainGzip => cmd.args(["--format=plain", "--clean", "--if-exists"]),
    }
}

impl PgDumpBackup {
    /// Dumps the database at `url` into `dir` (custom format).
    pub fn new(url: &Secret, dir: impl Into<std::path::PathBuf>) -> Result<Self> {
        let target = PgTarget::parse(url)?;
        let dir = dir.into();
        Ok(Self {
            store: ArtifactStore::new(dir, DumpFormat::Custom.ext()).database_id(target.identity()),
            target,
            format: DumpFormat::Custom,
            compression: DumpCompression::default(),
            deep_verify: false,
            bin_dir: None,
        })
    }

    /// Uses another dump format.
    pub fn format(mut self, format: DumpFormat) -> Self {
        self.store = self.store.with_ext(format.ext());
        self.format = format;
        self
    }

    /// Keeps the artifacts in `backend` (e.g. an object store) instead of the
    /// local directory given to [`new`](Self::new).
    pub fn backend(mut self, backend: std::sync::Arc<dyn ArtifactBackend>) -> Self {
        self.store =
            ArtifactStore::on(backend, self.format.ext()).database_id(self.target.identity());
        self
    }

    /// Compresses the dump at `level` instead of the fast default
    /// ([`DumpCompression::FAST`]).
    pub fn compression(mut self, level: DumpCompression) -> Self {
        self.compression = level;
        self
    }

    /// Also verifies by restoring into a scratch database and comparing its
    /// table list and row counts with the source (slow; needs CREATEDB).
    pub fn deep_verify(mut self, deep: bool) -> Self {
        self.deep_verify = deep;
        self
    }

    /// Looks for `pg_dump`, `pg_restore` and `psql` in `dir` instead of `PATH`
    /// (e.g. `/usr/lib/postgresql/16/bin` for a newer server).
    pub fn bin_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// The artifact store this backup writes to.
    pub fn store(&self) -> &ArtifactStore {
        &self.store
    }

    fn program(&self, name: &str) -> String {
        match &self.bin_dir {
            Some(d) => d.join(name).to_string_lossy().into_owned(),
            None => name.to_string(),
        }
    }

    fn fail(&self, step: &str, message: impl Into<String>) -> Error {
        Error::part(
            step,
            self.target.location(),
            self.target.redact(&message.into()),
        )
    }

    /// `pg_dump --version`'s full version and major, or a clear "not installed".
    async fn tool_version(&self, name: &str) -> Result<(String, u32)> {
        let program = self.program(name);
        let out = tokio::process::Command::new(&program)
            .arg("--version")
            .output()
            .await
            .map_err(|e| {
                let err = self.fail("backup.preflight", format!("cannot run `{program}`: {e}"));
                if e.kind() == std::io::ErrorKind::NotFound {
                    err.with_hint(format!(
                        "install the PostgreSQL client tools ({name}), e.g. `apt-get install \
                         postgresql-client`, matching the server's major version or newer"
                    ))
                } else {
                    err
                }
            })?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let version = text
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .unwrap_or("")
            .to_string();
        let major = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| {
                self.fail(
                    "backup.preflight",
                    format!("cannot read the version of `{program}`: {text:?}"),
                )
            })?;
        Ok((version, major))
    }

    /// The server's version string and major.
    async fn server_version(&self) -> Result<(String, u32)> {
        let mut conn = self.target.connect("backup.preflight").await?;
        let row = sqlx::query(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|e| self.fail("backup.preflight", e.to_string()))?;
        let _ = conn.close().await;
        let version: String = row.get(0);
        let num: i32 = row.get(1);
        Ok((version, (num / 10000) as u32))
    }

    /// The error for a failed `pg_dump`/`pg_restore`, classified from its stderr.
    fn tool_failed(&self, step: &str, tool: &str, status: Option<i32>, stderr: &str) -> Error {
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let tail = tail.join("\n");
        let hint = if stderr.contains("Connection refused") {
            "is PostgreSQL running and listening on that host and port?"
        } else if stderr.contains("password authentication failed")
            || stderr.contains("no password supplied")
        {
            "check the user and password in the database URL (the password is not shown)"
        } else if stderr.contains("server version mismatch") {
            "install pg_dump of the server's major version or newer"
        } else if stderr.contains("No space left") {
            "free space in the backup directory (or prune old backups) and run again"
        } else {
            "read the tool's output above"
        };
        self.fail(
            step,
            format!(
                "`{tool}` exited with status {}\n---- output (last lines) ----\n{}\n----",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "signal".into()),
                tail.trim_end()
            ),
        )
        .with_hint(hint)
    }

    async fn run_pg_dump(&self, request: &BackupRequest) -> Result<BackupArtifact> {
        let (dump_version, dump_major) = self.tool_version("pg_dump").await?;
        let (server_version, server_major) = self.server_version().await?;
        if dump_major < server_major {
            return Err(self
                .fail(
                    "backup.preflight",
                    format!(
                        "pg_dump {dump_version} is older than the server ({server_version}); \
                     pg_dump cannot dump a newer server"
                    ),
                )
                .with_hint(format!(
                    "install postgresql-client-{server_major} and point the backup at its bin dir"
                )));
        }
        let cmd = self.target.libpq(pg_dump_cmd(
            self.program("pg_dump"),
            self.format,
            self.compression,
        ));
        // The store first: one that is down or missing fails before pg_dump runs.
        let mut writer = self.store.begin(request).await?;
        let mut child = spawn(&cmd, Stdio::null())
            .map_err(|e| self.fail("backup.create", format!("cannot start `{cmd}`: {e}")))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr_task = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let copied = match self.format {
            DumpFormat::Custom => writer.copy_from(stdout).await,
            DumpFormat::PlainGzip => {
                let gz = async_compression::tokio::bufread::GzipEncoder::with_quality(
                    BufReader::new(stdout),
                    async_compression::Level::Precise(i32::from(self.compression.level())),
                );
                writer.copy_from(gz).await
            }
        };
        if let Err(e) = copied {
            let _ = child.kill().await;
            return Err(e);
        }
        let status = child
            .wait()
            .await
            .map_err(|e| self.fail("backup.create", format!("waiting for pg_dump: {e}")))?;
        let stderr = stderr_task.await.unwrap_or_default();
        if !status.success() {
            writer.abort().await;
            return Err(self.tool_failed("backup.create", "pg_dump", status.code(), &stderr));
        }
        let mut extra = serde_json::Map::new();
        extra.insert("engine".into(), "postgres".into());
        extra.insert("database".into(), self.target.location().into());
        extra.insert(
            "format".into(),
            serde_json::to_value(self.format).unwrap_or_default(),
        );
        extra.insert("compression".into(), u8::from(self.compression).into());
        extra.insert("pg_dump_version".into(), dump_version.into());
        extra.insert("server_version".into(), server_version.into());
        writer.finish(extra).await
    }
}

/// Streams `archive` into the child's stdin on its own task. A broken pipe
/// (the tool read what it needed and exited) is not an error.
fn feed(
    child: &mut tokio::process::Child,
    mut archive: ArtifactReader,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let mut stdin = child.stdin.take().expect("piped stdin");
    tokio::spawn(async move {
        let copied = tokio::io::copy(&mut archive, &mut stdin).await;
        drop(stdin);
        match copied {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(e),
        }
    })
}

fn spawn(cmd: &Cmd, stdin: Stdio) -> std::io::Result<tokio::process::Child> {
    let mut c = tokio::process::Command::new(&cmd.program);
    c.args(&cmd.args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in &cmd.env {
        c.env(k, v.expose());
    }
    c.spawn()
}

#[async_trait]
impl Backup for PgDumpBackup {
    async fn create(&self, request: &BackupRequest) -> Result<BackupArtifact> {
        let artifact = self.run_pg_dump(request).await?;
        Ok(artifact)
    }

    async fn verify(&self, artifact: &BackupArtifact) -> Result<()> {
        self.store.verify(artifact).await?;
        self.check_readable(artifact).await?;
        if self.deep_verify {
            self.deep_check(artifact).await?;
        }
        Ok(())
    }

    async fn restore(&self, artifact: &BackupArtifact, _confirm: ConfirmDestructive) -> Result<()> {
        self.store.verify(artifact).await?;
        self.check_readable(artifact).await?;
        self.restore_into(&self.target, artifact).await
    }

    async fn list(&self) -> Result<Vec<BackupArtifact>> {
        self.store.list().await
    }

    async fn remove(&self, artifact: &BackupArtifact) -> Result<()> {
        self.store.remove(artifact).await
    }

    fn database_id(&self) -> String {
        self.target.identity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_argv_without_credentials() {
        let c = pg_dump_cmd("pg_dump".into(), DumpFormat::Custom, DumpCompression::FAST);
        assert_eq!(c.args, ["--no-password", "--format=custom", "--compress=1"]);
        let level = DumpCompression::new(6).unwrap();
        let c = pg_dump_cmd("pg_dump".into(), DumpFormat::Custom, level);
        assert_eq!(c.args, ["--no-password", "--format=custom", "--compress=6"]);
        let c = pg_dump_cmd("pg_dump".into(), DumpFormat::PlainGzip, level);
        assert_eq!(
            c.args,
            ["--no-password", "--format=plain", "--clean", "--if-exists"]
        );
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
    }
}
