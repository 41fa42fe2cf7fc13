//! `deploykit recover`: finish every run of the environment that did not end.

use std::path::Path;

use anyhow::Result;
use deploykit_core::{FileJournal, Outcome, ReleaseSpec};

use super::EnvContext;
use crate::cli::EnvArg;
use crate::exit;
use crate::render::Mode;

/// Recovers each unfinished run (and each whose undo failed), oldest first.
pub async fn run(config: &Path, args: &EnvArg, mode: Mode) -> Result<u8> {
    // Only the journals are needed to know what to do: connect to hosts per run below.
    let loaded = crate::config::load(config)?;
    loaded.env(&args.env)?;
    let todo = loaded.journals(&args.env).unfinished()?;
    if todo.is_empty() {
        super::say(
            mode,
            &format!("{}: nothing to recover", args.env),
            serde_json::json!({"event": "outcome", "recovered": 0}),
        );
        return Ok(exit::OK);
    }
    let mut code = exit::OK;
    for path in todo {
        // Each run's parts are built for the release it was deploying: migrators that
        // run in a one-off container of that release's image (compose_run) can only
        // revert its migrations with that image, and migration files are read from
        // that release's commit, not from wherever the checkout is now.
        let release = run_release(&path)?;
        let ctx = EnvContext::open_for(config, &args.env, mode, release.as_ref()).await?;
        let journal = FileJournal::open(&path)?;
        let report = ctx.pipeline(None).recover(&journal).await;
        ctx.parts.close().await;
        let report = report?;
        mode.finish(&report);
        code = code.max(match report.outcome {
            Outcome::Succeeded | Outcome::RolledBack => exit::OK,
            other => exit::for_outcome(other),
        });
    }
    Ok(code)
}

/// The release (and commit) a journaled run was deploying (from its first record).
fn run_release(path: &Path) -> Result<Option<ReleaseSpec>> {
    Ok(deploykit_core::journal::read_records(path)?
        .into_iter()
        .find_map(|r| match r {
            deploykit_core::Record::RunStarted {
                release,
                commit,
                branch,
                ..
            } => Some(ReleaseSpec {
                id: release,
                commit,
                branch,
            }),
            _ => None,
        }))
}
