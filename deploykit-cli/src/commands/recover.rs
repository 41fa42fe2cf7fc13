//! `deploykit recover`: finish every run of the environment that did not end.

use std::path::Path;

use anyhow::Result;
use deploykit_core::{FileJournal, Outcome};

use super::EnvContext;
use crate::cli::EnvArg;
use crate::exit;
use crate::render::Mode;

/// Recovers each unfinished run (and each whose undo failed), oldest first.
pub async fn run(config: &Path, args: &EnvArg, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &args.env, mode).await?;
    let journals = ctx.journals();
    let mut todo = journals.unfinished()?;
    for path in journals.runs()? {
        let records = deploykit_core::journal::read_records(&path)?;
        let last = records.iter().rev().find_map(|r| match r {
            deploykit_core::Record::RunFinished { outcome, .. } => Some(*outcome),
            _ => None,
        });
        if last == Some(Outcome::RollbackFailed) && !todo.contains(&path) {
            todo.push(path);
        }
    }
    todo.sort();
    if todo.is_empty() {
        super::say(
            mode,
            &format!("{}: nothing to recover", ctx.name),
            serde_json::json!({"event": "outcome", "recovered": 0}),
        );
        return Ok(exit::OK);
    }
    let pipeline = ctx.pipeline(None);
    let mut code = exit::OK;
    for path in todo {
        let journal = FileJournal::open(&path)?;
        let report = pipeline.recover(&journal).await;
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                ctx.parts.close().await;
                return Err(e.into());
            }
        };
        mode.finish(&report);
        code = code.max(match report.outcome {
            Outcome::Succeeded | Outcome::RolledBack => exit::OK,
            other => exit::for_outcome(other),
        });
    }
    ctx.parts.close().await;
    Ok(code)
}
