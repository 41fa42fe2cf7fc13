//! Which database an environment's `database.url` names, for the parts that need one.

use std::path::PathBuf;

use deploykit_core::Secret;

use super::WiringError;

/// Which database an environment's `database.url` names.
pub(super) enum Database {
    /// `sqlite://path` (or `sqlite:path`).
    Sqlite(PathBuf),
    /// `postgres://…` / `postgresql://…`, kept secret.
    Postgres(Secret),
}

impl Database {
    pub(super) fn parse(env: &str, url: &str) -> Result<Self, WiringError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(Secret::new(url)));
        }
        Err(WiringError(format!(
            "environment {env}: database.url must start with postgres://, postgresql:// or sqlite:// (got {}://…)",
            url.split("://").next().unwrap_or("?")
        )))
    }
}

pub(super) fn needs_db<'a>(
    env: &str,
    what: &str,
    db: Option<&'a Database>,
) -> Result<&'a Database, WiringError> {
    db.ok_or_else(|| {
        WiringError(format!(
            "environment {env}: {what} needs [environments.{env}.database] url"
        ))
    })
}
