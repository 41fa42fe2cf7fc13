//! `deploykit lock status|release`.

use std::path::Path;

use anyhow::Result;

use super::EnvContext;
use crate::cli::{EnvArg, LockReleaseArgs};
use crate::exit;
use crate::render::Mode;

/// Who holds the lock.
pub async fn status(config: &Path, args: &EnvArg, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &args.env, mode).await?;
    let holder = ctx.lock().holder().await?;
    let text = match &holder {
        Some(h) => format!(
            "{}: locked by {h}{}",
            ctx.name,
            if h.is_stale() {
                " (stale: its process is gone)"
            } else {
                ""
            }
        ),
        None => format!("{}: free", ctx.name),
    };
    super::say(
        mode,
        &text,
        serde_json::json!({"event": "lock", "env": ctx.name, "holder": holder, "stale": holder.as_ref().map(|h| h.is_stale())}),
    );
    Ok(exit::OK)
}

/// Releases a stale lock, or any lock with `--force`. Never silently.
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
    if !holder.is_stale() && !args.force {
        eprintln!(
            "{}: locked by {holder}, whose process looks alive; not released. If you are sure no deploy runs, use --force",
            ctx.name
        );
        return Ok(exit::LOCKED);
    }
    if !ctx.journals().unfinished()?.is_empty() {
        eprintln!("warning: a run did not finish; run `deploykit recover --env {}` before deploying again", ctx.name);
    }
    // Releasing as the holder's run is the explicit, human-confirmed override.
    lock.release(&holder.run_id).await?;
    super::say(
        mode,
        &format!("{}: released the lock of {holder}", ctx.name),
        serde_json::json!({"event": "lock", "released": true, "holder": holder}),
    );
    Ok(exit::OK)
}
