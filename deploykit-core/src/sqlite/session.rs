//! The SQLite session behind [`SqlMigrator::sqlite`](crate::sql_migrations::SqlMigrator::sqlite).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};

use crate::error::{Error, Result};
use crate::migrate::MigrationId;
use crate::sql_migrations::history::{sqlx_description, HistoryRow, Recorded};
use crate::sql_migrations::source::MigrationFile;
use crate::sql_migrations::{Backend, HistoryDialect, ServerError, Session};

pub(crate) struct SqliteBackend {
    path: PathBuf,
    location: String,
    dialect: HistoryDialect,
}

impl SqliteBackend {
    pub(crate) fn new(path: PathBuf, dialect: HistoryDialect) -> Self {
        Self {
            location: format!("sqlite {}", path.display()),
            path,
            dialect,
        }
    }
}

/// Opens `path` read-write (creating it), waiting up to 30 s on a busy database.
pub(crate) async fn connect(path: &std::path::Path, location: &str) -> Result<SqliteConnection> {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| {
            Error::part(
                "sqlite.connect",
                location,
                format!("cannot open the database: {e}"),
            )
            .with_hint("check the path exists and is writable by this user")
        })
}

#[async_trait]
impl Backend for SqliteBackend {
    fn location(&self) -> &str {
        &self.location
    }

    async fn open(&self, _lock: bool) -> Result<Box<dyn Session>> {
        // SQLite serialises writers itself (each migration's transaction takes the
        // write lock); concurrent runs are kept apart by the deploy lock.
        let conn = connect(&self.path, &self.location).await?;
        Ok(Box::new(SqliteSession {
            conn,
            dialect: self.dialect,
            location: self.location.clone(),
        }))
    }
}

struct SqliteSession {
    conn: SqliteConnection,
    dialect: HistoryDialect,
    location: String,
}

impl SqliteSession {
    fn fail(&self, what: &str, e: sqlx::Error) -> Error {
        Error::part(
            "migrate.history",
            &self.location,
            format!("{what} {}: {e}", self.dialect.table()),
        )
    }

    async fn table_exists(&mut self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind(self.dialect.table())
        .fetch_one(&mut self.conn)
        .await
        .map_err(|e| self.fail("reading", e))?;
        Ok(n > 0)
    }
}

#[async_trait]
impl Session for SqliteSession {
    async fn ensure_history(&mut self) -> Result<()> {
        let ddl = match self.dialect {
            HistoryDialect::Sqlx => {
                "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
                    version BIGINT PRIMARY KEY,
                    description TEXT NOT NULL,
                    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
                    success BOOLEAN NOT NULL,
                    checksum BLOB NOT NULL,
                    execution_time BIGINT NOT NULL
                )"
            }
            _ => {
                "CREATE TABLE IF NOT EXISTS deploykit_migrations (
                    version TEXT PRIMARY KEY,
                    name TEXT NOT NULL,
                    checksum TEXT NOT NULL,
                    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                    execution_ms INTEGER NOT NULL,
                    release TEXT
                )"
            }
        };
        sqlx::raw_sql(ddl)
            .execute(&mut self.conn)
            .await
            .map_err(|e| self.fail("creating", e))?;
        Ok(())
    }

    async fn history(&mut self) -> Result<Vec<HistoryRow>> {
        if !self.table_exists().await? {
            return Ok(Vec::new());
        }
        let rows = match self.dialect {
            HistoryDialect::Sqlx => sqlx::query(
                "SELECT version, description, checksum FROM _sqlx_migrations \
                 WHERE success ORDER BY version",
            )
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| self.fail("reading", e))?
            .into_iter()
            .map(|r| HistoryRow {
                version: r.get::<i64, _>(0).to_string(),
                name: r.get::<String, _>(1).replace(' ', "_"),
                recorded: Recorded::Sha384(r.get::<Vec<u8>, _>(2)),
            })
            .collect(),
            _ => sqlx::query("SELECT version, name, checksum FROM deploykit_migrations")
                .fetch_all(&mut self.conn)
                .await
                .map_err(|e| self.fail("reading", e))?
                .into_iter()
                .map(|r| HistoryRow {
                    version: r.get(0),
                    name: r.get(1),
                    recorded: Recorded::Sha256(r.get(2)),
                })
                .collect(),
        };
        Ok(rows)
    }

    async fn execute(&mut self, sql: &str) -> std::result::Result<(), ServerError> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(|e| ServerError {
                message: match e.as_database_error() {
                    Some(db) => db.message().to_string(),
                    None => e.to_string(),
                },
                position: None,
            })
    }

    async fn record(
        &mut self,
        file: &MigrationFile,
        execution_ms: i64,
        release: Option<&str>,
    ) -> Result<()> {
        let result = match self.dialect {
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
                     VALUES (?, ?, TRUE, ?, ?)",
                )
                .bind(version)
                .bind(sqlx_description(&file.id.name))
                .bind(file.sqlx_checksum())
                .bind(execution_ms.saturating_mul(1_000_000))
                .execute(&mut self.conn)
                .await
            }
            _ => {
                sqlx::query(
                    "INSERT INTO deploykit_migrations \
                     (version, name, checksum, execution_ms, release) VALUES (?, ?, ?, ?, ?)",
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
            HistoryDialect::Sqlx => {
                sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
                    .bind(id.version.parse::<i64>().unwrap_or(i64::MIN))
                    .execute(&mut self.conn)
                    .await
            }
            _ => {
                sqlx::query("DELETE FROM deploykit_migrations WHERE version = ?")
                    .bind(&id.version)
                    .execute(&mut self.conn)
                    .await
            }
        };
        result.map(|_| ()).map_err(|e| self.fail("writing", e))
    }

    async fn close(self: Box<Self>) {
        let _ = self.conn.close().await;
    }
}
