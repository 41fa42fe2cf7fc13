//! Which commit `migrate status|plan|apply|revert` read migrations from.
//!
//! A deploy reads migrations from the commit it deploys (`CommitTree`); the
//! standalone migrate commands must agree with it, or `migrate apply` puts an
//! uncommitted file on the database that no release contains. So they read
//! `--ref` (default HEAD), resolved as `deploy --ref` is, and `migrate revert --run`
//! reads the commit that run deployed, as `recover` does. A project that is not in a
//! git repository has no commit: its directory is read as it is, as before.

use std::path::Path;

use anyhow::Result;
use deploykit_core::shell::{Cmd, LocalShell, ShellExt};
use deploykit_core::{CommitTree, ReleaseId, ReleaseSpec};

use super::deploy::{resolve_commit, source_repo};
use crate::config::{ConfigError, LoadedConfig, MigrationsConfig};

/// The release whose commit `migrate status|plan|apply` read, or `None` to read the
/// directory (no git repository, or migrations that need no files: `compose_run`
/// has no image outside a deploy). Warns about uncommitted files it ignores.
pub async fn for_ref(
    loaded: &LoadedConfig,
    env: &str,
    git_ref: Option<&str>,
) -> Result<Option<ReleaseSpec>> {
    let environment = loaded.env(env)?;
    let dir = match &environment.migrations {
        Some(MigrationsConfig::Sql { dir, .. } | MigrationsConfig::Command { dir, .. }) => {
            loaded.resolve(dir)
        }
        _ => return Ok(None),
    };
    let repo = source_repo(loaded, environment);
    if CommitTree::repository_of(&repo).is_err() {
        return match git_ref {
            None => Ok(None),
            Some(r) => Err(ConfigError(format!(
                "--ref {r}: {} is not in a git repository; run without --ref to read the \
                 migrations directory as it is",
                repo.display()
            ))
            .into()),
        };
    }
    let commit = resolve_commit(&repo, git_ref.unwrap_or("HEAD")).await?;
    let ignored = uncommitted(&dir).await;
    if !ignored.is_empty() {
        eprintln!(
            "warning: uncommitted files in {} are ignored (migrations are read from commit {}): {}",
            dir.display(),
            commit.short(),
            ignored.join(", ")
        );
    }
    Ok(Some(ReleaseSpec {
        id: ReleaseId::parse("migrate")?,
        commit,
        branch: None,
    }))
}

/// Modified, added, deleted and untracked files under `dir` (paths relative to the
/// repository). Best effort: a failing `git status` only loses the warning.
async fn uncommitted(dir: &Path) -> Vec<String> {
    let cmd = Cmd::new("git").arg("-C").arg(dir.to_string_lossy()).args([
        "status",
        "--porcelain",
        "-z",
        "--untracked-files=all",
        "--",
        ".",
    ]);
    let Ok(out) = LocalShell::new()
        .check("list uncommitted migrations", &cmd)
        .await
    else {
        return Vec::new();
    };
    // `XY path\0`, and a rename's source path as one more `\0`-ended entry.
    let text = out.stdout_text();
    let mut files = Vec::new();
    let mut entries = text.split('\0').filter(|e| !e.is_empty());
    while let Some(entry) = entries.next() {
        let (status, path) = entry.split_at(entry.len().min(3));
        files.push(path.to_string());
        if status.starts_with('R') || status.starts_with('C') {
            entries.next();
        }
    }
    files
}

/// The release whose commit `migrate revert --run` reads: the one the run at `path`
/// deployed (its `RunStarted` record), so a command migrator runs that commit's tool
/// and SQL down scripts are that commit's, as `recover` does. `None` outside a git
/// repository: the directory is read as it is, as before.
pub fn for_run(
    loaded: &LoadedConfig,
    env: &str,
    records: &[deploykit_core::Record],
) -> Result<Option<ReleaseSpec>> {
    let repo = source_repo(loaded, loaded.env(env)?);
    if CommitTree::repository_of(&repo).is_err() {
        return Ok(None);
    }
    Ok(deploykit_core::run_release(records))
}
