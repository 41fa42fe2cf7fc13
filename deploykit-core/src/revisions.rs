//! Migration tools that keep their own history (alembic, prisma, goose…): the one
//! algorithm that reads their revision and goes back to exactly the revision a run
//! started from, over any [`RevisionRunner`].
//!
//! Two runners use it: core's [`CommandMigrator`](crate::command_migrator::CommandMigrator)
//! runs the tool through a host's [`Shell`](crate::Shell), and deploykit-docker's
//! `ComposeRunMigrator` runs it in a one-off container of the release's image. Where
//! the command runs differs; how a revision is read, what `{revision}` means and when
//! a revert is done or refused must not.

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::next_step::NextStep;
use crate::shell::Cmd;

/// The argument of a "go back to" command replaced by the target revision (as a
/// whole argument: values are data, never parsed by a shell).
pub const REVISION_PLACEHOLDER: &str = "{revision}";

/// Runs a tool's commands somewhere: a host's shell, a one-off container.
#[async_trait]
pub trait RevisionRunner: Send + Sync {
    /// Where the tool runs, for messages (a host, `project/service on host`).
    fn location(&self) -> String;

    /// Runs `cmd` and returns its stdout, or `None` when there is nowhere to run
    /// it yet (e.g. neither the release's image nor a live container exists): then
    /// the database is taken to have no revision.
    async fn read(&self, step: &str, cmd: &Cmd) -> Result<Option<String>>;

    /// Runs `cmd`, which must run: an error when it cannot.
    async fn run(&self, step: &str, cmd: &Cmd) -> Result<()>;

    /// What a human should do when the tool exited 0 but did not go back to the
    /// revision asked for (fix it by hand, then recover what the undo left).
    /// `started_at` is where the database was before.
    fn revert_mismatch_step(&self, _started_at: &str) -> NextStep {
        NextStep::Recover {
            env: None,
            first: Some("check the tool's history and downgrade scripts by hand".into()),
        }
    }
}

/// A tool's revision commands: how to read the revision and how to go back.
#[derive(Debug, Clone)]
pub struct RevisionCommands {
    /// Prints the current revision: the first word of the last non-empty line,
    /// nothing when none (e.g. `alembic current` prints `ae1027a6acf (head)`).
    pub current: Cmd,
    /// Goes back to a revision; one argument is [`REVISION_PLACEHOLDER`].
    pub down_to: Cmd,
    /// The revision meaning "nothing applied" (alembic: `base`), used when the
    /// database had no revision before the run.
    pub base_revision: Option<String>,
}

/// The tool's current revision, read with `cmd` through `runner`.
pub async fn current(runner: &dyn RevisionRunner, step: &str, cmd: &Cmd) -> Result<Option<String>> {
    Ok(runner
        .read(step, cmd)
        .await?
        .and_then(|out| parse_revision(&out)))
}

/// Takes the database back to `before` (the revision recorded before the run),
/// and only if it is not there already: a revert is idempotent. A revision of
/// `None` means the base revision. The revision the tool reports afterwards is
/// what counts, not its exit status (an older tool can exit 0 without going back).
pub async fn revert_to(
    runner: &dyn RevisionRunner,
    commands: &RevisionCommands,
    before: Option<&str>,
) -> Result<()> {
    let step = "migrate.revert";
    let base = commands.base_revision.as_deref();
    let now = current(runner, step, &commands.current).await?;
    let target = before.or(base);
    if now.as_deref().or(base) == target {
        return Ok(());
    }
    let Some(target) = target else {
        return Err(Error::Refused {
            reason: format!(
                "the database had no revision before the run and the tool has no base \
                 revision configured; it is at {} now on {}",
                now.as_deref().unwrap_or("(none)"),
                runner.location()
            ),
            next: "configure base_revision for this tool, or undo with the `restore` policy".into(),
        });
    };
    runner
        .run(step, &down_to_cmd(&commands.down_to, target))
        .await?;
    let after = current(runner, step, &commands.current).await?;
    if after.as_deref().or(base) != Some(target) {
        return Err(Error::part(
            step,
            runner.location(),
            format!(
                "asked the tool to go back to {target}, but it reports {}",
                after.as_deref().unwrap_or("(none)")
            ),
        )
        .with_next_step(runner.revert_mismatch_step(now.as_deref().unwrap_or("(none)"))));
    }
    Ok(())
}

/// The `down_to` command for `revision`.
fn down_to_cmd(template: &Cmd, revision: &str) -> Cmd {
    let mut cmd = template.clone();
    for a in &mut cmd.args {
        if a == REVISION_PLACEHOLDER {
            *a = revision.to_string();
        }
    }
    cmd
}

/// The revision in a `current` command's output: first word of the last
/// non-empty line, or `None` when there is none.
fn parse_revision(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .and_then(|l| l.split_whitespace().next())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_is_replaced_as_a_whole_argument_only() {
        let template = Cmd::new("alembic")
            .args(["downgrade", REVISION_PLACEHOLDER, "x{revision}"])
            .cwd("/srv/app");
        assert_eq!(
            down_to_cmd(&template, "ae1027a6acf").args,
            ["downgrade", "ae1027a6acf", "x{revision}"]
        );
        let template = Cmd::new("alembic")
            .args(["downgrade", REVISION_PLACEHOLDER])
            .cwd("/srv/app");
        assert_eq!(
            down_to_cmd(&template, "ae1027a6acf").to_string(),
            "cd /srv/app && alembic downgrade ae1027a6acf"
        );
        assert_eq!(
            down_to_cmd(&template, "x; rm -rf /").to_shell(),
            "cd /srv/app && alembic downgrade 'x; rm -rf /'"
        );
    }

    #[test]
    fn a_revision_is_the_first_word_of_the_last_line() {
        assert_eq!(
            parse_revision("INFO  [alembic] Context\nae1027a6acf (head)\n"),
            Some("ae1027a6acf".into())
        );
        assert_eq!(parse_revision("\n  \n"), None);
    }
}
