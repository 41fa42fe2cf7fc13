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

use crate::commit_tree::CommitTree;
use crate::error::Result;
use crate::migrate::{
    AppliedSet, MigrationId, MigrationPlan, MigrationStatus, Migrator, PlannedMigration,
};
use crate::release::ReleaseSpec;
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
    /// Set by [`CommandMigrator::from_release_commits`].
    release_commits: bool,
}

/// The commands for one call, and the exported tree they run in (removed when
/// the call ends).
struct CallCommands {
    commands: MigrationCommands,
    _tree: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for CommandMigrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandMigrator")
            .field("host", &self.shell.location())
            .field("commands", &self.commands)
            .field("release_commits", &self.release_commits)
            .finish()
    }
}

impl CommandMigrator {
    /// A migrator running `commands` through `shell`.
    pub fn new(shell: Arc<dyn Shell>, commands: MigrationCommands) -> Self {
        Self {
            shell,
            commands,
            release_commits: false,
        }
    }

    /// Runs the tool, for a call about a release, in an exported tree of that
    /// release's commit instead of the checkout: the tool reads its migrations from
    /// its working directory, which must be the deployed commit's. A command's
    /// working directory (on this machine, in the checkout) names where in the
    /// repository to run it. Calls without a release run in the checkout.
    pub fn from_release_commits(mut self) -> Self {
        self.release_commits = true;
        self
    }

    /// The tool's current revision.
    pub async fn current(&self) -> Result<Option<String>> {
        current_with(self.shell.as_ref(), &self.commands).await
    }

    /// The commands for a call about `release`: in an export of its commit when
    /// this migrator reads release commits (see [`Self::from_release_commits`]).
    fn commands_for(&self, release: Option<&ReleaseSpec>) -> Result<CallCommands> {
        let (Some(spec), true) = (release, self.release_commits) else {
            return Ok(CallCommands {
                commands: self.commands.clone(),
                _tree: None,
            });
        };
        let Some(dir) = self.commands.up.cwd.clone() else {
            return Ok(CallCommands {
                commands: self.commands.clone(),
                _tree: None,
            });
        };
        let tree = CommitTree::open(&dir, spec.commit.clone())?;
        let rel = tree.relative(&dir)?;
        let export = tempfile::Builder::new()
            .prefix("deploykit-commit-")
            .tempdir()
            .map_err(|e| {
                crate::error::Error::io("export the deployed commit", std::env::temp_dir(), e)
            })?;
        tree.export_to(export.path())?;
        let into = export.path().join(rel);
        let rebase = |cmd: &Cmd| -> Cmd {
            let mut cmd = cmd.clone();
            if let Some(cwd) = &cmd.cwd {
                if let Ok(rest) = cwd.strip_prefix(&dir) {
                    cmd.cwd = Some(into.join(rest));
                }
            }
            cmd
        };
        let c = &self.commands;
        Ok(CallCommands {
            commands: MigrationCommands {
                up: rebase(&c.up),
                current: rebase(&c.current),
                down_to: rebase(&c.down_to),
                pending: c.pending.as_ref().map(rebase),
                base_revision: c.base_revision.clone(),
            },
            _tree: Some(export),
        })
    }

    async fn pending(&self, commands: &MigrationCommands) -> Result<Vec<MigrationId>> {
        match &commands.pending {
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
                name: commands.up.to_string(),
            }]),
        }
    }
}

async fn current_with(shell: &dyn Shell, commands: &MigrationCommands) -> Result<Option<String>> {
    revisions::current(&ShellRunner(shell), "migrate.current", &commands.current).await
}

fn revision_commands(commands: &MigrationCommands) -> RevisionCommands {
    RevisionCommands {
        current: commands.current.clone(),
        down_to: commands.down_to.clone(),
        base_revision: commands.base_revision.clone(),
    }
}

#[async_trait]
impl Migrator for CommandMigrator {
    async fn status(&self, release: Option<&ReleaseSpec>) -> Result<MigrationStatus> {
        let call = self.commands_for(release)?;
        let current = current_with(self.shell.as_ref(), &call.commands).await?;
        let pending = if call.commands.pending.is_some() {
            self.pending(&call.commands).await?
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

    async fn plan(&self, release: Option<&ReleaseSpec>) -> Result<MigrationPlan> {
        let call = self.commands_for(release)?;
        let from_revision = current_with(self.shell.as_ref(), &call.commands).await?;
        let migrations = self
            .pending(&call.commands)
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
            release: release.cloned(),
        })
    }

    async fn apply(&self, plan: &MigrationPlan) -> Result<AppliedSet> {
        let call = self.commands_for(plan.release.as_ref())?;
        let before = current_with(self.shell.as_ref(), &call.commands).await?;
        self.shell
            .check("migrate.apply", &call.commands.up)
            .await
            .map_err(|e| {
                e.with_hint(format!(
                    "the tool may have applied part of the plan; the run's undo goes back to \
                     revision {}",
                    before.as_deref().unwrap_or("(none)")
                ))
            })?;
        let after = current_with(self.shell.as_ref(), &call.commands).await?;
        Ok(AppliedSet {
            migrations: plan.migrations.iter().map(|m| m.id.clone()).collect(),
            revision_before: before,
            revision_after: after,
            origin: None,
            release: plan.release.clone(),
        })
    }

    async fn revert(&self, applied: &AppliedSet) -> Result<()> {
        let call = self.commands_for(applied.release.as_ref())?;
        revisions::revert_to(
            &ShellRunner(self.shell.as_ref()),
            &revision_commands(&call.commands),
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
