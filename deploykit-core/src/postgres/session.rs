//! The PostgreSQL session behind [`SqlMigrator::postgres`](crate::sql_migrations::SqlMigrator::postgres):
//! one connection holding an advisory lock, speaking one history dialect.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgDatabaseError};
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::error::{Error, Result};
use crate::migrate::MigrationId;
use crate::sql_migrations::history::{sqlx_description, HistoryRow, Recorded};
use crate::sql_migrations::source::MigrationFile;
use crate::sql_migrations::{Backend, HistoryDialect, ServerError, Session};

use super::conn::PgTarget;

/// The advisory-lock key deploykit's migrations take (per database):
/// the first 8 bytes of SHA-256("deploykit:migrate").
pub const MIGRATION_LOCK_KEY: i64 = 0x6465_706c_6f79_6b69;

/// How long `apply`/`revert` wait for another migration run to finish.
const LOCK_WAIT: Duration = Duration::from_secs(120);

pub(crate) struct PgBackend {
    pub(crate) target: PgTarget,
    pub(crate) dialect: HistoryDialect,
}

#[async_trait]
impl Backend for PgBackend {
    fn location(&self) -> &str {
        self.target.location()
    }

    async fn open(&self, lock: bool) -> Result<Box<dyn Session>> {
        let mut conn = self.target.connect("migrate.connect").await?;
        if lock {
            let deadline = tokio::time::Instant::now() + LOCK_WAIT;
            loop {
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(MIGRATION_LOCK_KEY)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| {
                        Error::part("migrate.lock", self.target.location(), e.to_string())
                    })?;
                if got {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    let _ = conn.close().await;
                    return Err(Error::part(
                        "migrate.lock",
                        self.target.location(),
                        format!("another migration run held the advisory lock for {LOCK_WAIT:?}"),
                    )
                    .with_hint(
                        "check pg_locks for the session holding it (locktype advisory) and \
                         wait for it to finish",
                    ));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(Box::new(PgSession {
            conn,
            locked: lock,
            dialect: self.dialect,
            location: self.target.location().to_string(),
        }))
    }
}

struct PgSession {
    conn: PgConnection,
    locked: bool,
    dialect: HistoryDialect,
    location: String,
}

impl PgSession {
    fn fail(&self, what: &str, e: sqlx::Error) -> Error {
        Error::part(
            "migrate.history",
            &self.location,
            format!("{what} {}: {e}", self.dialect.table()),
        )
    }
}

#[async_trait]
impl Session for PgSession {
    async fn ensure_history(&mut self) -> Result<()> {
        let ddl = match self.dialect {
            // Exactly the Supabase CLI's statements, so its own checks find the table
            // as they expect it.
            HistoryDialect::Supabase => {
                "CREATE SCHEMA IF NOT EXISTS supabase_migrations;
                 CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY);
                 ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[];
                 ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text;"
            }
            HistoryDialect::Sqlx => {
                "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
                    version BIGINT PRIMARY KEY,
                    description TEXT NOT NULL,
                    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
                    success BOOLEAN NOT NULL,
                    checksum BYTEA NOT NULL,
                    execution_time BIGINT NOT NULL
                );"
            }
            HistoryDialect::Deploykit => {
                "CREATE TABLE IF NOT EXISTS deploykit_migrations (
                    version text PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    execution_ms bigint NOT NULL,
                    release text
                );"
            }
        };
        sqlx::raw_sql(ddl)
            .execute(&mut self.conn)
            .await
            .map_err(|e| self.fail("creating", e))?;
        Ok(())
    }

    async fn history(&mut self) -> Result<Vec<HistoryRow>> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(self.dialect.table())
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| self.fail("reading", e))?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows = match self.dialect {
            HistoryDialect::Supabase => sqlx::query(
                "SELECT version, coalesce(name, '') AS name, statements \
                 FROM supabase_migrations.schema_migrations",
            )
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| self.fail("reading", e))?
            .into_iter()
            .map(|r| HistoryRow {
                version: r.get(0),
                name: r.get(1),
                recorded: match r.get::<Option<Vec<String>>, _>(2) {
                    Some(s) => Recorded::Statements(s),
                    None => Recorded::Nothing,
                },
            })
            .collect(),
            HistoryDialect::Sqlx => sqlx::query(
                "SELECT version, description, checksum FROM _sqlx_migrations WHERE success",
            )
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| self.fail("reading", e))?
            .into_iter()
            .map(|r| HistoryRow {
                version: r.get::<i64, _>(0).to_string(),
                name: r.get::<String, _>(1).replace(' ', "_"),
                recorded: Recorded::Sha384(r.get(2)),
            })
            .collect(),
            HistoryDialect::Deploykit => {
                sqlx::query("SELECT version, name, checksum FROM deploykit_migrations")
                    .fetch_all(&mut self.conn)
                    .await
                    .map_err(|e| self.fail("reading", e))?
                    .into_iter()
                    .map(|r| HistoryRow {
                        version: r.get(0),
                        name: r.get(1),
                        recorded: Recorded::Sha256(r.get(2)),
                    })
                    .collect()
            }
        };
        Ok(rows)
    }

    async fn execute(&mut self, sql: &str) -> std::result::Result<(), ServerError> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(|e| match e.as_database_error() {
                Some(db) => {
                    let pg = db.try_downcast_ref::<PgDatabaseError>();
                    let mut message = db.message().to_string();
                    if let Some(detail) = pg.and_then(|p| p.detail()) {
                        message.push_str(&format!(" ({detail})"));
                    }
                    let position = pg.and_then(|p| match p.position() {
                        Some(sqlx::postgres::PgErrorPosition::Original(n)) => Some(n),
                        _ => None,
                    });
                    ServerError { message, position }
                }
                None => ServerError {
                    message: e.to_string(),
                    position: None,
                },
            })
    }

    async fn record(
        &mut self,
        file: &MigrationFile,
        execution_ms: i64,
        release: Option<&str>,
    ) -> Result<()> {
        let result = match self.dialect {
            HistoryDialect::Supabase => {
                let statements: Vec<String> =
                    file.statements().into_iter().map(|s| s.sql).collect();
                sqlx::query(
                    "INSERT INTO supabase_migrations.schema_migrations(version, name, statements) \
                     VALUES($1, $2, $3)",
                )
                .bind(&file.id.version)
                .bind(&file.id.name)
                .bind(statements)
                .execute(&mut self.conn)
                .await
            }
            HistoryDialect::Sqlx => {
                let version: i64 = file.id.version.parse().map_err(|_| {
                    Error::part(
                        "migrate.history",
                        &self.location,
                        format!("sqlx history needs numeric versions; {} is not", file.id),
                    )
                })?;
                sqlx::query(
                    "INSERT INTO _sqlx_migrations \
                     (version, description, success, checksum, execution_time) \
                     VALUES ($1, $2, TRUE, $3, $4)",
                )
                .bind(version)
                .bind(sqlx_description(&file.id.name))
                .bind(file.sqlx_checksum())
                .bind(execution_ms.saturating_mul(1_000_000))
                .execute(&mut self.conn)
                .await
            }
            HistoryDialect::Deploykit => {
                sqlx::query(
                    "INSERT INTO deploykit_migrations \
                     (version, name, checksum, execution_ms, release) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&file.id.version)
                .bind(&file.id.name)
                .bind(file.checksum())
                .bind(execution_ms)
                .bind(release)
                .execute(&mut self.conn)
                .await
            }
        };
        result.map(|_| ()).map_err(|e| self.fail("writing", e))
    }

    async fn unrecord(&mut self, id: &MigrationId) -> Result<()> {
        let result = match self.dialect {
            HistoryDialect::Supabase => {
                sqlx::query("DELETE FROM supabase_migrations.schema_migrations WHERE version = $1")
                    .bind(&id.version)
                    .execute(&mut self.conn)
                    .await
            }
            HistoryDialect::Sqlx => {
                sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
                    .bind(id.version.parse::<i64>().unwrap_or(i64::MIN))
                    .execute(&mut self.conn)
                    .await
            }
            HistoryDialect::Deploykit => {
                sqlx::query("DELETE FROM deploykit_migrations WHERE version = $1")
                    .bind(&id.version)
                    .execute(&mut self.conn)
                    .await
            }
        };
        result.map(|_| ()).map_err(|e| self.fail("writing", e))
    }

    async fn close(mut self: Box<Self>) {
        if self.locked {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK_KEY)
                .execute(&mut self.conn)
                .await;
        }
        let _ = self.conn.close().await;
    }
}
