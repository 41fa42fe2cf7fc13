//! [`SqlMigrator`]: the one orchestrator of SQL file migrations, for every engine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::migrate::{AppliedSet, MigrationId, MigrationPlan, MigrationStatus, Migrator};
use crate::next_step::NextStep;
use crate::release::ReleaseSpec;

use super::driver::{Backend, Session};
use super::history::HistoryDialect;
use super::script_run::{down_runs_outside_transaction, run_script};
use super::source::MigrationFile;
use super::status::{compare, planned};

/// How a [`SqlMigrator`] behaves; the defaults are the safe choice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqlMigratorOptions {
    /// Which history table to keep.
    pub dialect: HistoryDialect,
    /// Plan even though applied files changed since (checksum drift). Explicit:
    /// the database no longer matches what the files say.
    pub allow_drift: bool,
    /// Apply the whole plan in one transaction (all or nothing) instead of one
    /// transaction per migration.
    pub single_transaction: bool,
    /// The release recorded in deploykit's history rows.
    pub release: Option<String>,
}

/// A [`Migrator`] over a directory of `<version>_<name>.sql` files (with optional
/// `<version>_<name>.down.sql`), on PostgreSQL ([`SqlMigrator::postgres`]) or
/// SQLite ([`SqlMigrator::sqlite`]).
///
/// Each migration runs in its own transaction together with its history row, so
/// a failing file leaves nothing behind and a crash can never record a step that
/// did not happen (or the reverse). Revert runs down scripts, newest first, for
/// exactly the given migrations that are applied now, and never only deletes
/// history rows.
#[derive(Clone)]
pub struct SqlMigrator {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) dir: PathBuf,
    pub(crate) options: SqlMigratorOptions,
    /// Set by [`SqlMigrator::from_commit`]: files come from that commit, not `dir`.
    pub(crate) commit: Option<Arc<super::origin::CommitSource>>,
    /// Set by [`SqlMigrator::from_release_commits`]: each call's release's commit.
    pub(crate) release_commits: bool,
}

impl std::fmt::Debug for SqlMigrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlMigrator")
            .field("database", &self.backend.location())
            .field("dir", &self.dir)
            .field("commit", &self.commit.as_ref().map(|c| c.commit()))
            .field("release_commits", &self.release_commits)
            .field("options", &self.options)
            .finish()
    }
}

impl SqlMigrator {
    /// Replaces the options. The history dialect is fixed by the constructor
    /// (it decides the backend's SQL), so `options.dialect` is ignored.
    pub fn with_options(mut self, options: SqlMigratorOptions) -> Self {
        let dialect = self.options.dialect;
        self.options = SqlMigratorOptions { dialect, ..options };
        self
    }

    /// Plans despite checksum drift (see [`SqlMigratorOptions::allow_drift`]).
    pub fn allow_drift(mut self, allow: bool) -> Self {
        self.options.allow_drift = allow;
        self
    }

    /// Applies the whole plan in one transaction.
    pub fn single_transaction(mut self, single: bool) -> Self {
        self.options.single_transaction = single;
        self
    }

    /// Records `release` in deploykit's history rows.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.options.release = Some(release.into());
        self
    }

    /// The migrations directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database, as shown in messages (no password).
    pub fn location(&self) -> &str {
        self.backend.location()
    }

    fn fail(&self, step: &str, message: impl Into<String>) -> Error {
        Error::part(step, self.backend.location(), message)
    }
}

async fn rollback(session: &mut Box<dyn Session>) {
    let _ = session.execute("ROLLBACK").await;
}

#[async_trait]
impl Migrator for SqlMigrator {
    async fn status(&self, release: Option<&ReleaseSpec>) -> Result<MigrationStatus> {
        let source = self.source(release)?;
        let files = self.files(source.as_deref())?;
        self.status_of(&files).await
    }

    async fn plan(&self, release: Option<&ReleaseSpec>) -> Result<MigrationPlan> {
        let source = self.source(release)?;
        let files = self.files(source.as_deref())?;
        let status = self.status_of(&files).await?;
        if !status.drifted.is_empty() && !self.options.allow_drift {
            return Err(Error::Refused {
                reason: format!(
                    "applied migration(s) changed on disk since they ran on {}: {}",
                    self.backend.location(),
                    join(&status.drifted)
                ),
                next: "restore the files as applied (e.g. `git diff` them), or put the change in \
                       a new migration; to accept the edit, plan with drift allowed"
                    .into(),
            });
        }
        let pending: BTreeSet<&MigrationId> = status.pending.iter().collect();
        let todo: Vec<&MigrationFile> = files.iter().filter(|f| pending.contains(&f.id)).collect();
        Ok(MigrationPlan {
            migrations: todo.iter().map(|f| planned(f)).collect(),
            from_revision: None,
            origin: Some(self.origin_of(source.as_deref(), &todo)),
            release: release.cloned(),
        })
    }

    async fn apply(&self, plan: &MigrationPlan) -> Result<AppliedSet> {
        let source = self.source(plan.release.as_ref())?;
        let files = self.files(source.as_deref())?;
        let mut todo = Vec::new();
        for m in &plan.migrations {
            let file = files.iter().find(|f| f.id == m.id).ok_or_else(|| {
                self.fail(
                    "migrate.apply",
                    format!(
                        "{} is planned but its file is gone from {}",
                        m.id,
                        self.origin_name(source.as_deref())
                    ),
                )
            })?;
            todo.push(file);
        }
        let mut session = self.backend.open(true).await?;
        let result = self.apply_locked(&mut session, &todo).await;
        session.close().await;
        let origin = self.origin_of(source.as_deref(), &todo);
        result.map(|migrations| AppliedSet {
            migrations,
            revision_before: None,
            revision_after: None,
            origin: Some(origin),
            release: plan.release.clone(),
        })
    }

    async fn revert(&self, applied: &AppliedSet) -> Result<()> {
        // The down scripts a run journaled from the commit it deployed are the ones
        // to run: the files on disk may be another commit's by now, or gone. Without
        // a commit (a migrator over a plain directory) the directory decides, as
        // before, so a down script added or fixed there is what runs.
        let files = match &applied.origin {
            Some(origin) if origin.commit.is_some() && !origin.down_scripts.is_empty() => {
                super::origin::journaled(origin)
            }
            _ => {
                let source = self.source(applied.release.as_ref())?;
                self.files(source.as_deref())?
            }
        };
        let mut session = self.backend.open(true).await?;
        let result = self.revert_locked(&mut session, &files, applied).await;
        session.close().await;
        result
    }
}

impl SqlMigrator {
    async fn status_of(&self, files: &[MigrationFile]) -> Result<MigrationStatus> {
        let mut session = self.backend.open(false).await?;
        let rows = session.history().await;
        session.close().await;
        Ok(compare(files, &rows?, self.options.dialect))
    }
}

impl SqlMigrator {
    async fn apply_locked(
        &self,
        session: &mut Box<dyn Session>,
        todo: &[&MigrationFile],
    ) -> Result<Vec<MigrationId>> {
        session.ensure_history().await?;
        let recorded = self.recorded_versions(session).await?;
        let single = self.options.single_transaction;
        if single {
            if let Some(f) = todo.iter().find(|f| f.runs_outside_transaction()) {
                return Err(Error::Refused {
                    reason: format!(
                        "{} must run outside a transaction, but the plan is set to run in one",
                        f.file_name()
                    ),
                    next: "apply one transaction per migration, or move that statement to \
                           a plan of its own"
                        .into(),
                });
            }
        }
        if single {
            session
                .execute("BEGIN")
                .await
                .map_err(|e| self.fail("migrate.apply", format!("BEGIN failed: {}", e.message)))?;
        }
        let mut done = Vec::new();
        for file in todo {
            if recorded.contains(&self.options.dialect.version_key(&file.id.version)) {
                // Applied meanwhile (e.g. by a concurrent run that held the lock first).
                continue;
            }
            let outside = file.runs_outside_transaction();
            if !single && !outside {
                session.execute("BEGIN").await.map_err(|e| {
                    self.fail("migrate.apply", format!("BEGIN failed: {}", e.message))
                })?;
            }
            let started = Instant::now();
            let location = self.backend.location();
            if let Err(failure) =
                run_script(session, location, file, &file.up, "migrate.apply").await
            {
                if outside {
                    return Err(failure.outside_transaction(file));
                }
                let e = failure.error;
                rollback(session).await;
                let undone = if single {
                    "nothing of this plan was applied (one transaction, rolled back)".to_string()
                } else {
                    format!(
                        "nothing of {} was applied (its transaction was rolled back){}",
                        file.file_name(),
                        if done.is_empty() {
                            String::new()
                        } else {
                            format!("; already applied by this run: {}", join(&done))
                        }
                    )
                };
                return Err(e.with_hint(format!("{undone}; fix the migration and deploy again")));
            }
            let ms = started.elapsed().as_millis() as i64;
            if outside {
                // The history row still gets a transaction of its own.
                session.execute("BEGIN").await.map_err(|e| {
                    self.fail("migrate.apply", format!("BEGIN failed: {}", e.message))
                })?;
            }
            if let Err(e) = session
                .record(file, ms, self.options.release.as_deref())
                .await
            {
                rollback(session).await;
                return Err(e);
            }
            if !single {
                session.execute("COMMIT").await.map_err(|e| {
                    self.fail(
                        "migrate.apply",
                        format!("COMMIT of {} failed: {}", file.file_name(), e.message),
                    )
                })?;
            }
            done.push(file.id.clone());
        }
        if single {
            if let Err(e) = session.execute("COMMIT").await {
                rollback(session).await;
                return Err(self.fail("migrate.apply", format!("COMMIT failed: {}", e.message)));
            }
        }
        Ok(done)
    }

    /// The versions in the history table, as the dialect compares them.
    async fn recorded_versions(&self, session: &mut Box<dyn Session>) -> Result<BTreeSet<String>> {
        Ok(session
            .history()
            .await?
            .into_iter()
            .map(|r| self.options.dialect.version_key(&r.version))
            .collect())
    }

    async fn revert_locked(
        &self,
        session: &mut Box<dyn Session>,
        files: &[MigrationFile],
        applied: &AppliedSet,
    ) -> Result<()> {
        let recorded = self.recorded_versions(session).await?;
        let dialect = self.options.dialect;
        let targets: Vec<&MigrationId> = applied
            .migrations
            .iter()
            .rev()
            .filter(|m| recorded.contains(&dialect.version_key(&m.version)))
            .collect();
        // Say what cannot be reverted before reverting anything.
        let mut scripts = Vec::new();
        let mut irreversible = Vec::new();
        for id in &targets {
            match files.iter().find(|f| &&f.id == id) {
                Some(f) if f.down.is_some() => scripts.push(f),
                _ => irreversible.push((*id).clone()),
            }
        }
        if !irreversible.is_empty() {
            return Err(Error::Refused {
                reason: format!(
                    "no down script for {} on {}; nothing was reverted",
                    join(&irreversible),
                    self.backend.location()
                ),
                next: "add the missing <version>_<name>.down.sql file(s), or undo with the \
                       `keep` or `restore` policy"
                    .into(),
            });
        }
        for file in scripts {
            let down = file.down.as_deref().unwrap_or_default();
            // Like an up script, a down script may need to run outside a transaction
            // (`DROP INDEX CONCURRENTLY`); its history row still gets one.
            let outside = down_runs_outside_transaction(down);
            if !outside {
                session.execute("BEGIN").await.map_err(|e| {
                    self.fail("migrate.revert", format!("BEGIN failed: {}", e.message))
                })?;
            }
            if let Err(failure) = run_script(
                session,
                self.backend.location(),
                file,
                down,
                "migrate.revert",
            )
            .await
            {
                if outside {
                    return Err(failure.outside_transaction_down(file));
                }
                rollback(session).await;
                return Err(failure
                    .error
                    .with_hint(format!(
                        "the down script of {} failed and was rolled back",
                        file.id
                    ))
                    .with_next_step(NextStep::Recover {
                        env: None,
                        first: Some("fix it".into()),
                    }));
            }
            if outside {
                session.execute("BEGIN").await.map_err(|e| {
                    self.fail("migrate.revert", format!("BEGIN failed: {}", e.message))
                })?;
            }
            if let Err(e) = session.unrecord(&file.id).await {
                rollback(session).await;
                return Err(e);
            }
            session.execute("COMMIT").await.map_err(|e| {
                self.fail(
                    "migrate.revert",
                    format!("COMMIT of the revert of {} failed: {}", file.id, e.message),
                )
            })?;
        }
        Ok(())
    }
}

fn join(ids: &[MigrationId]) -> String {
    ids.iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
