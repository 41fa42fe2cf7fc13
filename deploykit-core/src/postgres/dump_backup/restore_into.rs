//! Loading a dump into a database, in one transaction: the restore itself, and
//! the deep check's scratch copy.

use super::*;

impl PgDumpBackup {
    /// Restores `artifact` into the database `target` (custom or plain), all in
    /// one transaction: dropping the tables the backup does not hold, then the
    /// dump itself. A failure anywhere leaves the database as it was.
    pub(super) async fn restore_into(
        &self,
        target: &PgTarget,
        artifact: &BackupArtifact,
    ) -> Result<()> {
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
    pub(super) async fn tables_in_dump(
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
}
