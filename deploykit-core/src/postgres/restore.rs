//! Restoring a pg_dump artifact in one transaction.
//!
//! # Why one transaction
//!
//! A restore must bring the schema back to the backup's, so tables created after
//! the backup (e.g. by the migration being undone) are dropped too; `pg_restore
//! --clean` only drops what the dump holds. Dropping those tables first, on their
//! own, and then running `pg_restore --single-transaction` lost them for good
//! whenever the restore then failed. Here the drops and the dump's SQL (the custom
//! format rendered by `pg_restore --file=-`, or the plain script) go into one
//! `psql --single-transaction` session: it commits only after its input ends, and
//! input ends only when every byte of the dump was fed. On any failure psql is
//! killed before that, so the server rolls everything back.

use std::collections::BTreeSet;
use std::process::Stdio;

use sqlx::{Connection, Row};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::shell::Cmd;

use super::conn::PgTarget;

/// `psql` reading a script from stdin, all in one transaction, stopping at the
/// first error (the connection comes from the environment).
pub(crate) fn psql_one_transaction_cmd(program: String, database: &str) -> Cmd {
    Cmd::new(program).args([
        "--no-password",
        "--quiet",
        "--no-psqlrc",
        "--single-transaction",
        "--set",
        "ON_ERROR_STOP=1",
        "--dbname",
        database,
    ])
}

/// `pg_restore` rendering a custom-format archive read from stdin as SQL on stdout, dropping what
/// it recreates. No `--single-transaction`: its `COMMIT` would end psql's
/// transaction early.
pub(crate) fn pg_restore_script_cmd(program: String) -> Cmd {
    // No file argument: the archive is streamed in on stdin from the artifact
    // store, wherever it lives.
    Cmd::new(program).args(["--clean", "--if-exists", "--no-owner", "--file=-"])
}

/// `DROP TABLE` statements for the tables of `target` in the dump's schemas that
/// the dump does not hold. Reads only; the drops run inside the restore.
pub(crate) async fn drops_for_tables_not_in(
    target: &PgTarget,
    in_dump: &BTreeSet<(String, String)>,
) -> Result<String> {
    let schemas: BTreeSet<&String> = in_dump.iter().map(|(s, _)| s).collect();
    let mut conn = target.connect("backup.restore").await?;
    let rows = sqlx::query(
        "SELECT schemaname::text, tablename::text FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| Error::part("backup.restore", target.location(), e.to_string()))?;
    let _ = conn.close().await;
    let mut sql = String::new();
    for r in rows {
        let (schema, table): (String, String) = (r.get(0), r.get(1));
        if schemas.contains(&schema) && !in_dump.contains(&(schema.clone(), table.clone())) {
            sql.push_str(&format!(
                "DROP TABLE IF EXISTS {}.{} CASCADE;\n",
                ident(&schema),
                ident(&table)
            ));
        }
    }
    Ok(sql)
}

/// Quotes an SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Why a restore failed; nothing of it was committed.
pub(crate) struct RestoreFailed {
    /// The tool that failed.
    pub(crate) tool: &'static str,
    /// Its exit status, if it exited.
    pub(crate) status: Option<i32>,
    /// Its stderr (and what went wrong feeding it).
    pub(crate) stderr: String,
}

/// Runs `psql` (see [`psql_one_transaction_cmd`]) with `prelude` then the bytes of
/// `script` on stdin. `script_done` is awaited after the script's end: if it
/// reports the script's producer failed, psql is killed before it can commit.
pub(crate) async fn run_in_one_transaction<R, F>(
    psql: &Cmd,
    prelude: &str,
    mut script: R,
    script_done: F,
) -> std::result::Result<(), RestoreFailed>
where
    R: AsyncRead + Unpin,
    F: std::future::Future<Output = std::result::Result<(), RestoreFailed>>,
{
    let mut child = spawn_psql(psql).map_err(|e| RestoreFailed {
        tool: "psql",
        status: None,
        stderr: format!("cannot start `{psql}`: {e}"),
    })?;
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let mut stdin = child.stdin.take().expect("piped stdin");
    let fed = async {
        stdin.write_all(prelude.as_bytes()).await?;
        tokio::io::copy(&mut script, &mut stdin).await?;
        stdin.flush().await
    }
    .await;
    let produced = script_done.await;
    if fed.is_err() || produced.is_err() {
        // Input has not ended, so psql has not committed: killing it rolls back.
        let _ = child.start_kill();
        let status = child.wait().await.ok().and_then(|s| s.code());
        let psql_said = stderr_task.await.unwrap_or_default();
        drop(stdin);
        return Err(match produced {
            Err(mut failed) => {
                failed.stderr.push_str(&psql_said);
                failed
            }
            Ok(()) => RestoreFailed {
                tool: "psql",
                status,
                stderr: if psql_said.trim().is_empty() {
                    format!(
                        "feeding psql failed: {}",
                        fed.err().map(|e| e.to_string()).unwrap_or_default()
                    )
                } else {
                    psql_said
                },
            },
        });
    }
    drop(stdin);
    let status = child.wait().await.map_err(|e| RestoreFailed {
        tool: "psql",
        status: None,
        stderr: e.to_string(),
    })?;
    let psql_said = stderr_task.await.unwrap_or_default();
    if !status.success() {
        return Err(RestoreFailed {
            tool: "psql",
            status: status.code(),
            stderr: psql_said,
        });
    }
    Ok(())
}

fn spawn_psql(cmd: &Cmd) -> std::io::Result<tokio::process::Child> {
    let mut c = tokio::process::Command::new(&cmd.program);
    c.args(&cmd.args)
        .stdin(Stdio::piped())
        // Query results (`SELECT setval…`) are not needed, and an unread pipe
        // would stall psql on a large dump.
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in &cmd.env {
        c.env(k, v.expose());
    }
    c.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_rendered_without_a_transaction_of_its_own() {
        let r = pg_restore_script_cmd("pg_restore".into());
        assert_eq!(
            r.args.last().unwrap(),
            "--file=-",
            "the archive comes on stdin"
        );
        assert!(!r.args.contains(&"--single-transaction".to_string()));
        let p = psql_one_transaction_cmd("psql".into(), "shop");
        assert!(p.args.contains(&"--single-transaction".to_string()));
        assert!(p.args.contains(&"ON_ERROR_STOP=1".to_string()));
    }
}
