//! An environment's `backup` table as a [`Backup`] part.

use std::path::PathBuf;
use std::sync::Arc;

use deploykit_core::artifact_store::object::{ObjectDir, ObjectStoreSpec};
use deploykit_core::artifact_store::ArtifactBackend;
use deploykit_core::postgres::{DumpFormat as PgDumpFormat, PgDumpBackup};
use deploykit_core::sqlite::VacuumIntoBackup;
use deploykit_core::Backup;

use crate::config::{BackupConfig, BackupPlace, DumpFormat, LoadedConfig};
use deploykit_docker::ExecPgDumpBackup;

use super::{needs_db, ComposeStack, Database, WiringError};

pub(super) fn backup_part(
    loaded: &LoadedConfig,
    env: &str,
    backup: &BackupConfig,
    db: Option<&Database>,
    compose: Option<&ComposeStack>,
) -> Result<Arc<dyn Backup>, WiringError> {
    let wrap = |e: deploykit_core::Error| WiringError(format!("environment {env}: {e}"));
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
        BackupConfig::PgDump {
            format,
            compression,
            ..
        } => match needs_db(env, "backup kind pg_dump", db)? {
            Database::Postgres(url) => {
                let format = match format {
                    DumpFormat::Custom => PgDumpFormat::Custom,
                    DumpFormat::PlainGzip => PgDumpFormat::PlainGzip,
                };
                let (dir, store) = backup_place(loaded, env, backup)?;
                let mut part = PgDumpBackup::new(url, dir)
                    .map_err(wrap)?
                    .format(format)
                    .compression(*compression);
                if let Some(store) = store {
                    part = part.backend(store);
                }
                Ok(Arc::new(part))
            }
            Database::Sqlite(_) => Err(WiringError(format!(
                "environment {env}: backup kind pg_dump needs a postgres:// database"
            ))),
        },
        BackupConfig::ComposeExec {
            service,
            database,
            user,
            compression,
            ..
        } => {
            let stack = compose.ok_or_else(|| {
                WiringError(format!(
                    "environment {env}: backup kind compose_exec needs a compose target"
                ))
            })?;
            let (dir, store) = backup_place(loaded, env, backup)?;
            let mut part = ExecPgDumpBackup::new(
                stack.engine.clone(),
                &stack.project.name,
                service,
                database,
                user,
                dir,
            )
            .compression(*compression);
            if let Some(store) = store {
                part = part.backend(store);
            }
            Ok(Arc::new(part))
        }
    }
}

/// The local directory of a backup (resolved against the config file), and its
/// object store when `store` is set (the directory is then unused).
pub(crate) fn backup_place(
    loaded: &LoadedConfig,
    env: &str,
    backup: &BackupConfig,
) -> Result<(PathBuf, Option<Arc<dyn ArtifactBackend>>), WiringError> {
    match backup
        .place()
        .map_err(|e| WiringError(format!("environment {env}: backup: {e}")))?
    {
        BackupPlace::Dir(dir) => Ok((loaded.resolve(&dir), None)),
        BackupPlace::Store {
            url,
            endpoint,
            region,
            access_key_id,
            secret_access_key,
        } => {
            let spec = ObjectStoreSpec {
                url,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
            };
            let store = ObjectDir::connect(&spec)
                .map_err(|e| WiringError(format!("environment {env}: {e}")))?;
            Ok((PathBuf::new(), Some(Arc::new(store))))
        }
    }
}
