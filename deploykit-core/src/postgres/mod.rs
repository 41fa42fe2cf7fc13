//! PostgreSQL parts (feature `postgres`): verified `pg_dump` backups, the SQL
//! migrator speaking the Supabase, sqlx or deploykit history table, and a health
//! probe (latency, required tables, row-level security).
//!
//! Connection URLs are [`Secret`]s: external tools get them split into libpq
//! environment variables (never argv), and errors never show the password.

mod conn;
mod dump_backup;
mod probe;
mod restore;
mod session;

pub use conn::PgTarget;
pub use dump_backup::{DumpFormat, PgDumpBackup};
pub use probe::PgHealthProbe;
pub use session::MIGRATION_LOCK_KEY;

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Result;
use crate::secret::Secret;
use crate::sql_migrations::{HistoryDialect, SqlMigrator, SqlMigratorOptions};

impl SqlMigrator {
    /// A migrator for the PostgreSQL database at `url`, reading migrations from
    /// `dir` and keeping the `dialect` history table. Apply and revert hold a
    /// PostgreSQL advisory lock ([`MIGRATION_LOCK_KEY`]).
    pub fn postgres(
        url: &Secret,
        dir: impl Into<PathBuf>,
        dialect: HistoryDialect,
    ) -> Result<Self> {
        let target = PgTarget::parse(url)?;
        Ok(Self {
            backend: Arc::new(session::PgBackend { target, dialect }),
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
