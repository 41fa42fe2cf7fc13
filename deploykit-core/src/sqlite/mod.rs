//! SQLite parts (feature `sqlite`, bundled SQLite via sqlx): the SQL migrator and
//! a `VACUUM INTO` backup. The embedded default: no server to run, so small apps
//! and the CLI demo get transactional deploys with nothing else installed.

mod session;
mod vacuum_backup;

pub use vacuum_backup::VacuumIntoBackup;

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sql_migrations::{HistoryDialect, SqlMigrator, SqlMigratorOptions};

impl SqlMigrator {
    /// A migrator for the SQLite database file `database` (created if missing),
    /// reading migrations from `dir`, keeping deploykit's history table.
    pub fn sqlite(database: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        Self {
            backend: Arc::new(session::SqliteBackend::new(
                database.into(),
                HistoryDialect::Deploykit,
            )),
            dir: dir.into(),
            commit: None,
            release_commits: false,
            options: SqlMigratorOptions::default(),
        }
    }

    /// Like [`SqlMigrator::sqlite`] with another history dialect (`deploykit` or
    /// `sqlx`; Supabase's history lives in a PostgreSQL schema and is refused).
    pub fn sqlite_with_dialect(
        database: impl Into<PathBuf>,
        dir: impl Into<PathBuf>,
        dialect: HistoryDialect,
    ) -> Result<Self> {
        if dialect == HistoryDialect::Supabase {
            return Err(Error::Invalid {
                what: "history dialect",
                value: "supabase".into(),
                reason: "Supabase keeps its history in a PostgreSQL schema; use `deploykit` or \
                         `sqlx` on SQLite"
                    .into(),
            });
        }
        let database = database.into();
        Ok(Self {
            backend: Arc::new(session::SqliteBackend::new(database, dialect)),
            dir: dir.into(),
            commit: None,
            release_commits: false,
            options: SqlMigratorOptions {
                dialect,
                ..SqlMigratorOptions::default()
            },
        })
    }
}
