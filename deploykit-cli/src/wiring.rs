//! From an environment's config to the parts of a pipeline. The only place that
//! knows which adapter implements which `kind`.

use std::sync::Arc;

use std::path::PathBuf;

use deploykit_core::sql_migrations::{HistoryDialect, SqlMigrator};
use deploykit_core::sqlite::VacuumIntoBackup;
use deploykit_core::{Backup, HealthProbe, Migrator, Secret, Target};

use crate::config::{
    BackupConfig, Dialect, Environment, LoadedConfig, MigrationsConfig, ProbeConfig, TargetConfig,
};
use crate::local_target::LocalTarget;

/// The parts of one environment, ready to go into a pipeline.
#[derive(Default)]
pub struct Parts {
    /// Where releases go.
    pub target: Option<Arc<dyn Target>>,
    /// The local target, when that is the kind (the demo stops its app at the end).
    pub local: Option<Arc<LocalTarget>>,
    /// How backups are taken.
    pub backup: Option<Arc<dyn Backup>>,
    /// How migrations are applied.
    pub migrator: Option<Arc<dyn Migrator>>,
    /// Health probes.
    pub probes: Vec<Arc<dyn HealthProbe>>,
}

/// A config that names something this build cannot do.
#[derive(Debug)]
pub struct WiringError(pub String);

impl std::fmt::Display for WiringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WiringError {}

/// Builds the environment's parts.
pub async fn parts(
    loaded: &LoadedConfig,
    name: &str,
    env: &Environment,
) -> Result<Parts, WiringError> {
    let mut parts = Parts::default();
    match &env.target {
        None => {}
        Some(TargetConfig::Local {
            deploy_to,
            repo,
            build,
            start,
            port,
        }) => {
            let t = Arc::new(LocalTarget::new(
                loaded.resolve(deploy_to),
                loaded.resolve(repo),
                build.clone(),
                start.clone(),
                *port,
            ));
            parts.local = Some(t.clone());
            parts.target = Some(t);
        }
        Some(other) => {
            return Err(WiringError(format!(
                "environment {name}: target kind {:?} is not wired into this build yet",
                kind_name(other)
            )))
        }
    }
    let database = env
        .database
        .as_ref()
        .map(|d| Database::parse(name, d.url.expose()))
        .transpose()?;
    if let Some(backup) = &env.backup {
        parts.backup = Some(backup_part(loaded, name, backup, database.as_ref())?);
    }
    if let Some(migrations) = &env.migrations {
        parts.migrator = Some(migrator_part(loaded, name, migrations, database.as_ref())?);
    }
    for probe in &env.probes {
        parts
            .probes
            .push(probe_part(name, probe, database.as_ref())?);
    }
    Ok(parts)
}

/// Which database an environment's `database.url` names.
enum Database {
    /// `sqlite://path` (or `sqlite:path`).
    Sqlite(PathBuf),
    /// `postgres://…` / `postgresql://…`, kept secret.
    Postgres(Secret),
}

impl Database {
    fn parse(env: &str, url: &str) -> Result<Self, WiringError> {
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

fn needs_db<'a>(
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

fn not_wired(env: &str, what: &str) -> WiringError {
    WiringError(format!(
        "environment {env}: {what} is not wired into this build yet"
    ))
}

fn backup_part(
    loaded: &LoadedConfig,
    env: &str,
    backup: &BackupConfig,
    db: Option<&Database>,
) -> Result<Arc<dyn Backup>, WiringError> {
    match backup {
        BackupConfig::Sqlite { dir, .. } => match needs_db(env, "backup kind sqlite", db)? {
            Database::Sqlite(path) => Ok(Arc::new(VacuumIntoBackup::new(
                loaded.resolve(path),
                loaded.resolve(dir),
            ))),
            Database::Postgres(_) => Err(WiringError(format!(
                "environment {env}: backup kind sqlite needs a sqlite:// database"
            ))),
        },
        BackupConfig::PgDump { .. } => Err(not_wired(env, "backup kind pg_dump")),
        BackupConfig::ComposeExec { .. } => Err(not_wired(env, "backup kind compose_exec")),
    }
}

fn migrator_part(
    loaded: &LoadedConfig,
    env: &str,
    migrations: &MigrationsConfig,
    db: Option<&Database>,
) -> Result<Arc<dyn Migrator>, WiringError> {
    match migrations {
        MigrationsConfig::Sql { dir, dialect } => {
            let dialect = match dialect {
                Dialect::Deploykit => HistoryDialect::Deploykit,
                Dialect::Supabase => HistoryDialect::Supabase,
                Dialect::Sqlx => HistoryDialect::Sqlx,
            };
            match needs_db(env, "migrations kind sql", db)? {
                Database::Sqlite(path) => SqlMigrator::sqlite_with_dialect(
                    loaded.resolve(path),
                    loaded.resolve(dir),
                    dialect,
                )
                .map(|m| Arc::new(m) as Arc<dyn Migrator>)
                .map_err(|e| WiringError(format!("environment {env}: {e}"))),
                Database::Postgres(_) => Err(not_wired(env, "migrations on postgres")),
            }
        }
        MigrationsConfig::Command { .. } => Err(not_wired(env, "migrations kind command")),
        MigrationsConfig::ComposeRun { .. } => Err(not_wired(env, "migrations kind compose_run")),
    }
}

fn probe_part(
    env: &str,
    probe: &ProbeConfig,
    _db: Option<&Database>,
) -> Result<Arc<dyn HealthProbe>, WiringError> {
    Err(not_wired(env, &format!("probe {probe:?}")))
}

fn kind_name(t: &TargetConfig) -> &'static str {
    match t {
        TargetConfig::Local { .. } => "local",
        TargetConfig::Pm2(_) => "pm2",
        TargetConfig::Compose(_) => "compose",
    }
}
