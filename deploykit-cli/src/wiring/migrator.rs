//! An environment's `migrations` table as a [`Migrator`] part.

use std::sync::Arc;

use deploykit_core::command_migrator::{CommandMigrator, MigrationCommands};
use deploykit_core::sql_migrations::{HistoryDialect, SqlMigrator};
use deploykit_core::{Cmd, CommitTree, LocalShell, Migrator};

use crate::config::{Dialect, LoadedConfig, MigrationsConfig};
use deploykit_docker::ComposeRunMigrator;

use super::{needs_db, ComposeStack, Database, WiringError};

pub(super) fn migrator_part(
    loaded: &LoadedConfig,
    env: &str,
    migrations: &MigrationsConfig,
    db: Option<&Database>,
    compose: Option<&ComposeStack>,
) -> Result<Option<Arc<dyn Migrator>>, WiringError> {
    let wrap = |e: deploykit_core::Error| WiringError(format!("environment {env}: {e}"));
    // In a git repository, each call reads the commit of the release it concerns;
    // outside one there is no commit, and the directory is read as it is.
    let in_repository = |path: &std::path::Path| CommitTree::repository_of(path).is_ok();
    match migrations {
        MigrationsConfig::Sql { dir, dialect } => {
            let dialect = match dialect {
                Dialect::Deploykit => HistoryDialect::Deploykit,
                Dialect::Supabase => HistoryDialect::Supabase,
                Dialect::Sqlx => HistoryDialect::Sqlx,
            };
            let mut migrator = match needs_db(env, "migrations kind sql", db)? {
                Database::Sqlite(path) => SqlMigrator::sqlite_with_dialect(
                    loaded.resolve(path),
                    loaded.resolve(dir),
                    dialect,
                )
                .map_err(wrap)?,
                Database::Postgres(url) => {
                    SqlMigrator::postgres(url, loaded.resolve(dir), dialect).map_err(wrap)?
                }
            };
            if in_repository(&loaded.resolve(dir)) {
                migrator = migrator.from_release_commits();
            }
            migrator = migrator.allow_drift(loaded.accept_drift);
            Ok(Some(Arc::new(migrator)))
        }
        MigrationsConfig::Command {
            up,
            current,
            down,
            base_revision,
            dir,
        } => {
            let dir = loaded.resolve(dir);
            let cmd = |what: &str, argv: &[String]| -> Result<Cmd, WiringError> {
                let (program, args) = argv.split_first().ok_or_else(|| {
                    WiringError(format!("environment {env}: migrations.{what} is empty"))
                })?;
                Ok(Cmd::new(program).args(args.iter().cloned()).cwd(&dir))
            };
            let commands = MigrationCommands {
                up: cmd("up", up)?,
                current: cmd("current", current)?,
                down_to: cmd("down", down)?,
                pending: None,
                base_revision: Some(base_revision.clone()),
            };
            // The tool reads its migrations from its working directory: each call
            // runs it in an export of the deployed commit, not in the checkout.
            let mut migrator = CommandMigrator::new(Arc::new(LocalShell::new()), commands);
            if in_repository(&dir) {
                migrator = migrator.from_release_commits();
            }
            Ok(Some(Arc::new(migrator)))
        }
        MigrationsConfig::ComposeRun {
            service,
            up,
            current,
            down,
        } => {
            let stack = compose.ok_or_else(|| {
                WiringError(format!(
                    "environment {env}: migrations kind compose_run needs a compose target"
                ))
            })?;
            // The one-off container runs the image of the release each call concerns.
            let mut m = ComposeRunMigrator::new(&stack.target, up.clone());
            if let Some(service) = service {
                m = m.run_service(service).map_err(wrap)?;
            }
            if let Some(current) = current {
                m = m.revision_command(current.clone());
            }
            if let Some(down) = down {
                m = m.revert_command(down.clone());
            }
            Ok(Some(Arc::new(m)))
        }
    }
}
