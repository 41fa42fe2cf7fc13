//! The database, how it is backed up, and how its migrations run.

use std::path::PathBuf;

use deploykit_core::{DumpCompression, Secret};
use serde::{Deserialize, Serialize};

/// The database.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://path`; usually `${DATABASE_URL}`.
    pub url: Secret,
}

/// How backups are taken.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackupConfig {
    /// `pg_dump` from this machine against `database.url`.
    PgDump {
        /// Artifact directory (relative to the config file); or set `store`.
        #[serde(default)]
        dir: Option<PathBuf>,
        /// Object store instead of `dir`: `s3://bucket/prefix` or `file:///path`.
        /// Backups then outlive the machine that deploys (a CI runner).
        #[serde(default)]
        store: Option<String>,
        /// An S3-compatible server's endpoint (`https://…`); AWS when unset.
        #[serde(default)]
        endpoint: Option<String>,
        /// The bucket's region.
        #[serde(default)]
        region: Option<String>,
        /// S3 access key id, usually `${VAR}`; `AWS_ACCESS_KEY_ID` when unset.
        #[serde(default)]
        access_key_id: Option<Secret>,
        /// S3 secret access key, usually `${VAR}`; `AWS_SECRET_ACCESS_KEY` when unset.
        #[serde(default)]
        secret_access_key: Option<Secret>,
        /// Backups kept.
        #[serde(default = "default_keep_backups")]
        keep: usize,
        /// `custom` (pg_dump -Fc) or `plain_gzip`.
        #[serde(default)]
        format: DumpFormat,
        /// zlib level 0–9; 1 (fast) by default, since migrations wait for the dump.
        #[serde(default)]
        compression: DumpCompression,
    },
    /// `pg_dump` inside the stack's database container.
    ComposeExec {
        /// The database service.
        service: String,
        /// Database name inside the container.
        database: String,
        /// Database user inside the container.
        user: String,
        /// Artifact directory (relative to the config file); or set `store`.
        #[serde(default)]
        dir: Option<PathBuf>,
        /// Object store instead of `dir`: `s3://bucket/prefix` or `file:///path`.
        /// Backups then outlive the machine that deploys (a CI runner).
        #[serde(default)]
        store: Option<String>,
        /// An S3-compatible server's endpoint (`https://…`); AWS when unset.
        #[serde(default)]
        endpoint: Option<String>,
        /// The bucket's region.
        #[serde(default)]
        region: Option<String>,
        /// S3 access key id, usually `${VAR}`; `AWS_ACCESS_KEY_ID` when unset.
        #[serde(default)]
        access_key_id: Option<Secret>,
        /// S3 secret access key, usually `${VAR}`; `AWS_SECRET_ACCESS_KEY` when unset.
        #[serde(default)]
        secret_access_key: Option<Secret>,
        /// Backups kept.
        #[serde(default = "default_keep_backups")]
        keep: usize,
        /// zlib level 0–9; 1 (fast) by default, since migrations wait for the dump.
        #[serde(default)]
        compression: DumpCompression,
    },
    /// `VACUUM INTO` for SQLite databases.
    Sqlite {
        /// Artifact directory.
        dir: PathBuf,
        /// Backups kept.
        #[serde(default = "default_keep_backups")]
        keep: usize,
    },
}

fn default_base_revision() -> String {
    "base".into()
}

fn default_dot() -> PathBuf {
    PathBuf::from(".")
}

fn default_keep_backups() -> usize {
    7
}

/// pg_dump output formats.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DumpFormat {
    /// `pg_dump -Fc`.
    #[default]
    Custom,
    /// Plain SQL, gzipped.
    PlainGzip,
}

/// How migrations are applied.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MigrationsConfig {
    /// A directory of `<version>_<name>.sql` (+ `.down.sql`) files.
    Sql {
        /// The directory (relative to the config file).
        dir: PathBuf,
        /// History table dialect: `deploykit`, `supabase` or `sqlx`.
        #[serde(default)]
        dialect: Dialect,
    },
    /// The app's own tool, run on this machine (e.g. prisma, alembic).
    Command {
        /// Applies pending migrations, e.g. `["alembic", "upgrade", "head"]`.
        up: Vec<String>,
        /// Prints the current revision, e.g. `["alembic", "current"]`.
        current: Vec<String>,
        /// Goes back to a revision (`{revision}` is replaced), e.g.
        /// `["alembic", "downgrade", "{revision}"]`.
        down: Vec<String>,
        /// The revision meaning "nothing applied" (alembic: `base`).
        #[serde(default = "default_base_revision")]
        base_revision: String,
        /// Directory the commands run in (relative to the config file).
        #[serde(default = "default_dot")]
        dir: PathBuf,
    },
    /// The app's own tool, in a one-off container of the new image.
    ComposeRun {
        /// The compose service the one-off container runs as (default: the
        /// target's service; Compose v1 with host networking needs a separate one).
        service: Option<String>,
        /// Applies pending migrations.
        up: Vec<String>,
        /// Prints the current revision (first word of the last output line).
        current: Option<Vec<String>>,
        /// Goes back to a revision (`{revision}` is replaced).
        down: Option<Vec<String>>,
    },
}

/// History table dialects of the SQL migrator.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// deploykit's own table (checksums, release, timings).
    #[default]
    Deploykit,
    /// `supabase_migrations.schema_migrations`, as the Supabase CLI writes it.
    Supabase,
    /// `_sqlx_migrations`, as sqlx writes it.
    Sqlx,
}
