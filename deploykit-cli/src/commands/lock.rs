//! `deploykit lock status|acquire|release`.

use std::path::Path;

use anyhow::Result;
use deploykit_core::{Liveness, LockHolder, StateStoreExt};

use super::EnvContext;
use crate::cli::{EnvArg, LockAcquireArgs, LockReleaseArgs};
use crate::exit;
use crate::render::Mode;

/// Who holds the lock.
pub async fn status(config: &Path, args: &EnvArg, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &args.env, mode).await?;
    let holder = ctx.lock().holder().await?;
    let text = match &holder {
        Some(h) => format!("{}: locked by {h}{}", ctx.name, liveness_note(h)),
        None => format!("{}: free", ctx.name),
    };
    super::say(
        mode,
        &text,
        serde_json::json!({"event": "lock", "env": ctx.name, "holder": holder, "stale": holder.as_ref().map(|h| h.is_stale())}),
    );
    Ok(exit::OK)
}

/// Freezes deploys: takes the lock as a person, with a message and no lease, so it
/// is never stale and holds until `lock release`. A held lock refuses it (exit 4)
/// as it refuses a deploy, after `--lock-wait` if given.
pub async fn acquire(config: &Path, args: &LockAcquireArgs, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &args.env, mode)
        .await?
        .wait_for_lock(&args.wait);
    let message = args.message.trim();
    if message.is_empty() {
        ctx.parts.close().await;
        return Err(crate::config::ConfigError(
            "lock acquire: --message must say why deploys are frozen".into(),
        )
        .into());
    }
    let freeze = LockHolder::freeze(&ctx.name, super::actor(), message);
    let taken = ctx.lock().acquire(&freeze).await;
    ctx.parts.close().await;
    taken?;
    super::say(
        mode,
        &format!(
            "{}: frozen: {freeze}. Deploys exit 4 until `deploykit lock release --env {}`",
            ctx.name, ctx.name
        ),
        serde_json::json!({"event": "lock", "frozen": true, "holder": freeze}),
    );
    Ok(exit::OK)
}

/// Releases a freeze or a stale lock, or any lock with `--force`. Never silently.
pub async fn release(config: &Path, args: &LockReleaseArgs, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &args.env, mode).await?;
    let lock = ctx.lock();
    let Some(holder) = lock.holder().await? else {
        super::say(
            mode,
            &format!("{}: not locked", ctx.name),
            serde_json::json!({"event": "lock", "released": false}),
        );
        return Ok(exit::OK);
    };
    let liveness = holder.liveness();
    match &liveness {
        // A freeze is a person's hold: lifting it is the point, no --force needed.
        Liveness::Alive(_) if holder.freeze => {}
        Liveness::Alive(why) if !args.force => {
            eprintln!(
                "{}: locked by {holder}, which is alive ({why}); not released. Wait for it to end; \
                 if you are sure its process is gone, use --force",
                ctx.name
            );
            return Ok(exit::LOCKED);
        }
        Liveness::Alive(why) => eprintln!(
            "{}: --force: releasing the lock of {holder}, which looks alive ({why})",
            ctx.name
        ),
        Liveness::Stale(_) => {}
    }
    if !ctx.store.unfinished().await?.is_empty() {
        eprintln!("warning: a run did not finish; run `deploykit recover --env {}` before deploying again", ctx.name);
    }
    // Only the holder just read is removed: if it changed meanwhile (renewed by a
    // run that came back, taken over by a recover), this fails and changes nothing.
    lock.replace(&holder, None).await?;
    super::say(
        mode,
        &format!(
            "{}: released the lock of {holder} ({})",
            ctx.name,
            liveness.reason()
        ),
        serde_json::json!({"event": "lock", "released": true, "holder": holder}),
    );
    Ok(exit::OK)
}

/// " (stale: why)" or " (alive: why)", or how to lift a freeze, for status lines.
pub fn liveness_note(holder: &deploykit_core::LockHolder) -> String {
    if holder.freeze {
        return format!(
            " (deploys are frozen; `deploykit lock release --env {}` lifts it)",
            holder.env
        );
    }
    match holder.liveness() {
        Liveness::Stale(why) => format!(" (stale: {why})"),
        Liveness::Alive(why) => format!(" (alive: {why})"),
    }
}
