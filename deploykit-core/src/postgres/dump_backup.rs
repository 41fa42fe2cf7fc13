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

    /// Reads the artifact with `pg_restore --list` (custom) or by decompressing it
    /// and checking it is a `pg_dump` script (plain + gzip).
    async fn check_readable(&self, artifact: &BackupArtifact) -> Result<()> {
        match self.format {
            DumpFormat::Custom => {
                let out = self.list_archive("backup.verify", artifact).await?;
                let stderr = String::from_utf8_lossy(&out.stderr);
                if !out.status.success() || out.stdout.is_empty() {
                    return Err(self
                        .tool_failed(
                            "backup.verify",
                            "pg_restore --list",
                            out.status.code(),
                            &stderr,
                        )
                        .with_hint("do not restore from this artifact; take a new backup"));
                }
                Ok(())
            }
            DumpFormat::PlainGzip => {
                let file = self.store.open(artifact).await?;
                let mut decoder =
                    async_compression::tokio::bufread::GzipDecoder::new(BufReader::new(file));
                let mut head = vec![0u8; 4096];
                let mut sink = vec![0u8; 256 * 1024];
                let mut n_head = 0;
                loop {
                    let buf = if n_head < head.len() {
                        &mut head[n_head..]
                    } else {
                        &mut sink[..]
                    };
                    match decoder.read(buf).await {
                        Ok(0) => break,
                        Ok(n) => {
                            if n_head < head.len() {
                                n_head += n;
                            }
                        }
                        Err(e) => {
                            return Err(self.fail(
                                "backup.verify",
                                format!(
                                    "{} is not a valid gzip stream: {e}",
                                    artifact.path.display()
                                ),
                            ))
                        }
                    }
                }
                let head = String::from_utf8_lossy(&head[..n_head]);
                if !head.contains("PostgreSQL database dump") {
                    return Err(self.fail(
                        "backup.verify",
                        format!(
                            "{} does not look like a pg_dump script",
                            artifact.path.display()
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Restores `artifact` into the database `target` (custom or plain), all in
    /// one transaction: dropping the tables the backup does not hold, then the
    /// dump itself. A failure anywhere leaves the database as it was.
    async fn restore_into(&self, target: &PgTarget, artifact: &BackupArtifact) -> Result<()> {
        let in_dump = self.tables_in_dump(artifact).await?;
        let drops = drops_for_tables_not_in(target, &in_dump).await?;
        let psql = target.libpq(psql_one_transaction_cmd(
            self.program("psql"),
            target.database(),
        ));
        let result = match self.format {
            DumpFormat::Custom => {
                let cmd = pg_restore_script_cmd(self.program("pg_restore"));
                let archive = self.store.open(artifact).await?;
                let mut child = spawn(&cmd, Stdio::piped()).map_err(|e| {
                    self.fail("backup.restore", format!("cannot start `{cmd}`: {e}"))
                })?;
                let fed = feed(&mut child, archive);
                let stdout = child.stdout.take().expect("piped stdout");
                let mut stderr = child.stderr.take().expect("piped stderr");
                // Read concurrently, so a chatty pg_restore never stalls on a full pipe.
                let said = tokio::spawn(async move {
                    let mut said = String::new();
                    let _ = stderr.read_to_string(&mut said).await;
                    said
                });
                let done = async move {
                    let status = child.wait().await;
                    let said = said.await.unwrap_or_default();
                    if let Ok(Err(e)) = fed.await {
                        return Err(RestoreFailed {
                            tool: "pg_restore (reading the backup from its store)",
                            status: None,
                            stderr: format!("{e}\n{said}"),
                        });
                    }
                    match status {
                        Ok(s) if s.success() => Ok(()),
                        Ok(s) => Err(RestoreFailed {
                            tool: "pg_restore",
                            status: s.code(),
                            stderr: said,
                        }),
                        Err(e) => Err(RestoreFailed {
                            tool: "pg_restore",
                            status: None,
                            stderr: e.to_string(),
                        }),
                    }
                };
                run_in_one_transaction(&psql, &drops, stdout, done).await
            }
            DumpFormat::PlainGzip => {
                let file = self.store.open(artifact).await?;
                let decoder =
                    async_compression::tokio::bufread::GzipDecoder::new(BufReader::new(file));
                run_in_one_transaction(&psql, &drops, decoder, async { Ok(()) }).await
            }
        };
        result.map_err(|f| {
            self.tool_failed("backup.restore", f.tool, f.status, &f.stderr)
                .with_hint(
                    "the restore ran in one transaction and was rolled back, so the database \
                     is unchanged; fix the cause (see the output above) and restore again",
                )
        })
    }

    /// The `(schema, table)` pairs an artifact creates.
    async fn tables_in_dump(
        &self,
        artifact: &BackupArtifact,
    ) -> Result<std::collections::BTreeSet<(String, String)>> {
        let mut in_dump = std::collections::BTreeSet::new();
        match self.format {
            DumpFormat::Custom => {
                let out = self.list_archive("backup.restore", artifact).await?;
                let list = String::from_utf8_lossy(&out.stdout);
                for line in list.lines().filter(|l| !l.starts_with(';')) {
                    // "215; 1259 16386 TABLE public users deploykit"
                    let words: Vec<&str> = line.split_whitespace().collect();
                    if words.get(3) == Some(&"TABLE")
                        && words.get(4) != Some(&"DATA")
                        && words.len() >= 6
                    {
                        in_dump.insert((words[4].to_string(), words[5].to_string()));
                    }
                }
            }
            DumpFormat::PlainGzip => {
                use tokio::io::AsyncBufReadExt;
                let file = self.store.open(artifact).await?;
                let decoder =
                    async_compression::tokio::bufread::GzipDecoder::new(BufReader::new(file));
                let mut lines = BufReader::new(decoder).lines();
                while let Some(line) = lines
                    .next_line()
                    .await
                    .map_err(|e| self.fail("backup.restore", e.to_string()))?
                {
                    if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                        let name = rest.split_whitespace().next().unwrap_or("");
                        if let Some((schema, table)) = name.split_once('.') {
                            in_dump.insert((
                                schema.trim_matches('"').to_string(),
                                table.trim_matches('"').to_string(),
                            ));
                        }
                    }
                }
            }
        }
        Ok(in_dump)
    }

    /// `pg_restore --list` of the archive, streamed in from the store on stdin.
    /// pg_restore stops reading after the table of contents, so a broken pipe
    /// while feeding it is expected; any other read error is the store's.
    async fn list_archive(
        &self,
        step: &str,
        artifact: &BackupArtifact,
    ) -> Result<std::process::Output> {
        let program = self.program("pg_restore");
        let archive = self.store.open(artifact).await?;
        let mut child = tokio::process::Command::new(&program)
            .arg("--list")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.fail(step, format!("cannot run `{program}`: {e}")))?;
        let fed = feed(&mut child, archive);
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| self.fail(step, format!("waiting for `{program}`: {e}")))?;
        if let Ok(Err(e)) = fed.await {
            return Err(self.fail(
                step,
                format!(
                    "reading {} from its store failed: {e}",
                    artifact.path.display()
                ),
            ));
        }
        Ok(out)
    }

    async fn deep_check(&self, artifact: &BackupArtifact) -> Result<()> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let scratch = format!(
            "deploykit_verify_{}_{}_{nanos}",
            &artifact.sha256[..8.min(artifact.sha256.len())],
            std::process::id()
        );
        let mut admin = self.target.connect("backup.verify").await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE {}",
            ident(&scratch)
        )))
        .execute(&mut admin)
        .await
        .map_err(|e| {
            self.fail(
                "backup.verify",
                format!("cannot create scratch database {scratch}: {e}"),
            )
            .with_hint("deep verify needs a role with CREATEDB; or turn it off")
        })?;
        let scratch_target = self.target.with_database(&scratch);
        let result = async {
            self.restore_into(&scratch_target, artifact).await?;
            let source = table_counts(&self.target).await?;
            let restored = table_counts(&scratch_target).await?;
            if source != restored {
                let diff: Vec<String> = source
                    .iter()
                    .filter(|s| !restored.contains(s))
                    .map(|(t, n)| format!("{t}: {n} rows in source"))
                    .chain(
                        restored
                            .iter()
                            .filter(|r| !source.contains(r))
                            .map(|(t, n)| format!("{t}: {n} rows restored")),
                    )
                    .collect();
                return Err(self.fail(
                    "backup.verify",
                    format!("restored copy differs from the source: {}", diff.join("; ")),
                ));
            }
            Ok(())
        }
        .await;
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(&scratch));
        let _ = sqlx::raw_sql(AssertSqlSafe(drop)).execute(&mut admin).await;
        let _ = admin.close().await;
        result
    }
}

/// Every user table with its exact row count, sorted.
async fn table_counts(target: &PgTarget) -> Result<Vec<(String, i64)>> {
    let mut conn = target.connect("backup.verify").await?;
    let tables: Vec<(String, String)> = sqlx::query(
        "SELECT schemaname::text, tablename::text FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| Error::part("backup.verify", target.location(), e.to_string()))?
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let mut out = Vec::new();
    for (schema, table) in tables {
        let sql = format!("SELECT count(*) FROM {}.{}", ident(&schema), ident(&table));
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| Error::part("backup.verify", target.location(), e.to_string()))?;
        out.push((format!("{schema}.{table}"), n));
    }
    let _ = conn.close().await;
    Ok(out)
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
