//! `deploykit recover`: finish every run of the environment that did not end.

use std::path::Path;

use anyhow::Result;
use deploykit_core::{Liveness, Outcome, StateStoreExt};

use super::EnvContext;
use crate::cli::RecoverArgs;
use crate::exit;
use crate::render::Mode;

/// Recovers each unfinished run (and each whose undo failed), oldest first.
pub async fn run(config: &Path, args: &RecoverArgs, mode: Mode) -> Result<u8> {
    // Parts are bound to no release: each undo names the release it concerns (the
    // journal's applied sets; older journals, the run's `run_started`), so the parts
    // are built before any journal is read.
    let ctx = EnvContext::open(config, &args.env, mode)
        .await?
        .wait_for_lock(&args.wait);
    if let (Some(wait), false) = (ctx.lock_wait, args.force) {
        // Wait for a live holder (a deploy still running) before reading what is
        // left to recover: it may finish its own run meanwhile.
        let waited = deploykit_core::wait_while_held(
            ctx.store.lock().as_ref(),
            &args.env,
            wait,
            &ctx.events(),
        )
        .await;
        if let Err(e) = waited {
            ctx.parts.close().await;
            return Err(e.into());
        }
    }
    let todo = ctx.store.unfinished().await;
    let leftover = match &todo {
        Ok(t) if t.is_empty() => release_leftover_lock(ctx.store.as_ref(), &args.env).await,
        _ => Ok(None),
    };
    let result = recover_each(&ctx, args, todo, leftover).await;
    ctx.parts.close().await;
    result
}

async fn recover_each(
    ctx: &EnvContext,
    args: &RecoverArgs,
    todo: deploykit_core::Result<Vec<deploykit_core::StoredRun>>,
    leftover: deploykit_core::Result<Option<String>>,
) -> Result<u8> {
    let mode = ctx.mode;
    let todo = todo?;
    if let Some(released) = leftover? {
        super::say(
            mode,
            &released,
            serde_json::json!({"event": "lock_released", "message": released}),
        );
    }
    if todo.is_empty() {
        super::say(
            mode,
            &format!("{}: nothing to recover", args.env),
            serde_json::json!({"event": "outcome", "recovered": 0}),
        );
        return Ok(exit::OK);
    }
    let mut code = exit::OK;
    for run in todo {
        if let Some(code) = refuse_live_holder(ctx, args).await? {
            return Ok(code);
        }
        let journal = ctx.store.journal(&run.run_id).await?;
        let report = ctx
            .pipeline(None)
            .recover_with(journal.as_ref(), args.force)
            .await?;
        mode.finish(&report);
        code = code.max(match report.outcome {
            Outcome::Succeeded | Outcome::RolledBack => exit::OK,
            other => exit::for_outcome(other),
        });
    }
    Ok(code)
}

/// Recover never acts on a run whose process is alive: it would undo a deploy that
/// is still going. Refuses (exit 4) unless `--force`, which says whom it overrides.
/// The pipeline checks again when it takes the lock, so a race is refused too.
async fn refuse_live_holder(ctx: &EnvContext, args: &RecoverArgs) -> Result<Option<u8>> {
    let Some(holder) = ctx.lock().holder().await? else {
        return Ok(None);
    };
    if let Liveness::Alive(why) = holder.liveness() {
        if !args.force {
            eprintln!(
                "{}: not recovering: the lock is held by {holder}, which is alive ({why}). \
                 Recover would undo a deploy that is still running; wait for it to end \
                 (`deploykit status --env {0}`). If you are sure its process is gone, \
                 re-run with --force",
                args.env
            );
            return Ok(Some(exit::LOCKED));
        }
        eprintln!(
            "{}: --force: overriding the lock of {holder}, which looks alive ({why})",
            args.env
        );
    }
    Ok(None)
}

/// With no run left to recover, a lock can still be held: its run was killed after
/// journaling its end (or before its first record) and before releasing the lock.
/// Nothing would ever release it, and every later deploy would be refused; so a
/// holder that is gone (its lease expired, or its process here is dead) is released
/// here, compare-and-swap, saying whose it was. A live holder is left alone: it may
/// be between journaling its end and releasing.
async fn release_leftover_lock(
    store: &dyn deploykit_core::StateStore,
    env: &str,
) -> deploykit_core::Result<Option<String>> {
    let lock = store.lock();
    let Some(holder) = lock.holder().await? else {
        return Ok(None);
    };
    match holder.liveness() {
        Liveness::Stale(why) => {
            lock.replace(&holder, None).await?;
            Ok(Some(format!(
                "{env}: released the lock left by {holder}: that run has nothing left to \
                 recover, and {why}"
            )))
        }
        Liveness::Alive(_) if holder.freeze => {
            eprintln!(
                "{env}: deploys are frozen ({holder}); recover leaves a freeze alone: \
                 `deploykit lock release --env {env}` lifts it"
            );
            Ok(None)
        }
        Liveness::Alive(why) => {
            eprintln!(
                "{env}: the lock is held by {holder}, which is alive ({why}); it has nothing \
                 to recover and should release the lock itself"
            );
            Ok(None)
        }
    }
}
