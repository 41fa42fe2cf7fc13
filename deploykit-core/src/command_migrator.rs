//! [`CommandMigrator`]: a [`Migrator`] that drives a migration tool's own CLI
//! (`prisma migrate deploy`, `alembic upgrade head`, …) through a [`Shell`].
//!
//! # Why revisions
//!
//! Such tools keep their own history, so deploykit records the tool's revision
//! before and after a run ([`AppliedSet::revision_before`]/`revision_after`) and
//! reverts by asking the tool to go back to exactly the revision it was at —
//! never "one step back", which undoes the wrong thing when the run applied two
//! migrations or none.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::migrate::{
    AppliedSet, MigrationId, MigrationPlan, MigrationStatus, Migrator, PlannedMigration,
};
use crate::revisions::{self, RevisionCommands, RevisionRunner};
use crate::shell::{Cmd, Shell, ShellExt};

pub use crate::revisions::REVISION_PLACEHOLDER;

/// The commands of one migration tool, as argument vectors.
#[derive(Debug, Clone)]
pub struct MigrationCommands {
    /// Applies every pending migration, e.g. `alembic upgrade head`.
    pub up: Cmd,
    /// Prints the current revision (first word of the last non-empty line;
    /// nothing when none), e.g. `alembic current`.
    pub current: Cmd,
    /// Goes back to a revision; one argument is [`REVISION_PLACEHOLDER`], e.g.
    /// `alembic downgrade {revision}`.
    pub down_to: Cmd,
    /// Prints pending migrations one per line, if the tool can; without it every
    /// plan holds one step "run `up`" (tools' `up` is idempotent).
    pub pending: Option<Cmd>,
    /// The revision meaning "nothing applied" for `down_to` (alembic: `base`), used
    /// when the database had no revision before the run.
    pub base_revision: Option<String>,
}

impl MigrationCommands {
    /// Alembic: `alembic upgrade head`, `alembic current`, `alembic downgrade <rev>`,
    /// base revision `base`, run in `dir`.
    pub fn alembic(dir: impl Into<std::path::PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            up: Cmd::new("alembic").args(["upgrade", "head"]).cwd(&dir),
            current: Cmd::new("alembic").arg("current").cwd(&dir),
            down_to: Cmd::new("alembic")
                .args(["downgrade", REVISION_PLACEHOLDER])
                .cwd(&dir),
            pending: None,
            base_revision: Some("base".into()),
        }
    }
}

/// Drives a migration tool's CLI; see the module docs.
#[derive(Clone)]
pub struct CommandMigrator {
    shell: Arc<dyn Shell>,
    commands: MigrationCommands,
}

impl std::fmt::Debug for CommandMigrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandMigrator")
            .field("host", &self.shell.location())
            .field("commands", &self.commands)
            .finish()
    }
}

impl CommandMigrator {
    /// A migrator running `commands` through `shell`.
    pub fn new(shell: Arc<dyn Shell>, commands: MigrationCommands) -> Self {
        Self { shell, commands }
    }

    /// The tool's current revision.
    pub async fn current(&self) -> Result<Option<String>> {
        revisions::current(
            &ShellRunner(self.shell.as_ref()),
            "migrate.current",
            &self.commands.current,
        )
        .await
    }

    fn revision_commands(&self) -> RevisionCommands {
        RevisionCommands {
            current: self.commands.current.clone(),
            down_to: self.commands.down_to.clone(),
            base_revision: self.commands.base_revision.clone(),
        }
    }

    async fn pending(&self) -> Result<Vec<MigrationId>> {
        match &self.commands.pending {
            Some(cmd) => {
                let out = self.shell.check("migrate.status", cmd).await?;
                Ok(out
                    .stdout_text()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| MigrationId {
                        version: l.split_whitespace().next().unwrap_or(l).to_string(),
                        name: l.split_whitespace().skip(1).collect::<Vec<_>>().join("_"),
                    })
                    .collect())
            }
            None => Ok(vec![MigrationId {
                version: "up".into(),
                name: self.commands.up.to_string(),
            }]),
        }
    }
}

#[async_trait]
impl Migrator for CommandMigrator {
    async fn status(&self) -> Result<MigrationStatus> {
        let current = self.current().await?;
        let pending = if self.commands.pending.is_some() {
            self.pending().await?
        } else {
            Vec::new()
        };
        Ok(MigrationStatus {
            applied: current
                .map(|rev| {
                    vec![MigrationId {
                        version: rev,
                        name: "current".into(),
                    }]
                })
                .unwrap_or_default(),
            pending,
            missing: Vec::new(),
            drifted: Vec::new(),
        })
    }

    async fn plan(&self) -> Result<MigrationPlan> {
        let from_revision = self.current().await?;
        let migrations = self
            .pending()
            .await?
            .into_iter()
            .map(|id| PlannedMigration {
                id,
                reversible: true,
                findings: Vec::new(),
                allowed: false,
                all_or_nothing: false,
            })
            .collect();
        Ok(MigrationPlan {
            migrations,
            from_revision,
            origin: None,
        })
    }

    async fn apply(&self, plan: &MigrationPlan) -> Result<AppliedSet> {
        let before = self.current().await?;
        self.shell
            .check("migrate.apply", &self.commands.up)
            .await
            .map_err(|e| {
                e.with_hint(format!(
                    "the tool may have applied part of the plan; the run's undo goes back to \
                     revision {}",
                    before.as_deref().unwrap_or("(none)")
                ))
            })?;
        let after = self.current().await?;
        Ok(AppliedSet {
            migrations: plan.migrations.iter().map(|m| m.id.clone()).collect(),
            revision_before: before,
            revision_after: after,
            origin: None,
        })
    }

    async fn revert(&self, applied: &AppliedSet) -> Result<()> {
        revisions::revert_to(
            &ShellRunner(self.shell.as_ref()),
            &self.revision_commands(),
            applied.revision_before.as_deref(),
        )
        .await
    }
}

/// The tool runs on the host behind a shell.
struct ShellRunner<'a>(&'a dyn Shell);

#[async_trait]
impl RevisionRunner for ShellRunner<'_> {
    fn location(&self) -> String {
        self.0.location().to_string()
    }

    async fn read(&self, step: &str, cmd: &Cmd) -> Result<Option<String>> {
        Ok(Some(self.0.check(step, cmd).await?.stdout_text()))
    }

    async fn run(&self, step: &str, cmd: &Cmd) -> Result<()> {
        self.0.check(step, cmd).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alembic_commands_are_data() {
        let c = MigrationCommands::alembic("/srv/app");
        assert_eq!(
            c.down_to.to_string(),
            "cd /srv/app && alembic downgrade '{revision}'"
        );
        assert_eq!(c.current.to_string(), "cd /srv/app && alembic current");
        assert_eq!(c.base_revision.as_deref(), Some("base"));
    }
}
