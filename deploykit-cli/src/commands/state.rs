//! `deploykit state import`: move an environment's existing local state (journals
//! under `state_dir`) into the store its config names (on the host), so history,
//! status, rollback and recover from any machine see the runs deployed before.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use deploykit_core::{FileLock, LocalStore};

use crate::cli::EnvArg;
use crate::config::{self, ConfigError};
use crate::exit;
use crate::render::Mode;
use crate::state::{self, StoreChoice};

/// Copies every local run journal the environment's store does not have yet.
/// Idempotent: runs already there are skipped, never overwritten.
pub async fn import(config_path: &Path, args: &EnvArg, mode: Mode) -> Result<u8> {
    let loaded = config::load(config_path)?;
    let env = loaded.env(&args.env)?.clone();
    if state::choice(&args.env, &env)? == StoreChoice::Local {
        return Err(ConfigError(format!(
            "environment {}: its state store is local (state_dir) already; nothing to import",
            args.env
        ))
        .into());
    }
    let local = LocalStore::new(
        loaded.journals(&args.env),
        Arc::new(FileLock::new(
            loaded
                .state_dir()
                .join("locks")
                .join(format!("{}.lock", args.env)),
        )),
    );
    let opened = state::open(&loaded, &args.env, &env, None).await?;
    let result = deploykit_core::state_store::import(&local, opened.store.as_ref()).await;
    let location = opened.store.location();
    opened.close().await;
    let (copied, skipped) = result?;
    super::say(
        mode,
        &format!(
            "{}: imported {} run(s) into {location}; {} already there, skipped",
            args.env,
            copied.len(),
            skipped.len()
        ),
        serde_json::json!({"event": "state_import", "env": args.env, "store": location,
            "imported": copied, "skipped": skipped}),
    );
    Ok(exit::OK)
}
