//! Checking a dump: readable by `pg_restore` (or a `pg_dump` script), and with a
//! deep check, restored into a scratch database with the same tables and rows.

use super::*;

impl PgDumpBackup {
    /// Reads the artifact with `pg_restore --list` (custom) or by decompressing it
    /// and checking it is a `pg_dump` script (plain + gzip).
    pub(super) async fn check_readable(&self, artifact: &BackupArtifact) -> Result<()> {
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

    /// `pg_restore --list` of the archive, streamed in from the store on stdin.
    /// pg_restore stops reading after the table of contents, so a broken pipe
    /// while feeding it is expected; any other read error is the store's.
    pub(super) async fn list_archive(
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

    /// Restores the artifact into a scratch database and compares its tables and
    /// row counts with the source's.
    pub(super) async fn deep_check(&self, artifact: &BackupArtifact) -> Result<()> {
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
