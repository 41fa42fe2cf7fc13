//! The safeguards `migrate apply` and `migrate revert` share with a deploy: the
//! environment's deploy lock, the approval of a protected environment, the lint
//! refusal, and a `--run` that is a run id rather than a path.
//!
//! They change the same schema a deploy does, so without these a manual apply could
//! run in the middle of a deploy's migrate step, or put a destructive migration on
//! a protected database that `deploy` would have refused.

use anyhow::Result;
use deploykit_core::{DeployLock, Error, LockHolder, MigrationPlan, StateStoreExt};

use super::EnvContext;
use crate::config::{ConfigError, LoadedConfig};

/// Longest run id accepted: a time stamp, a counter and a release id.
const MAX_RUN_ID: usize = 160;

/// Refuses a protected environment without `--approve NAME`, like `deploy` does.
pub fn approval<'a>(
    ctx: &EnvContext,
    what: &str,
    approve: Option<&'a str>,
) -> Result<Option<&'a str>> {
    if !ctx.env().gates.approval {
        return Ok(approve);
    }
    match approve {
        Some(name) if !name.trim().is_empty() => Ok(Some(name)),
        _ => Err(ConfigError(format!(
            "environment {} is protected: pass --approve NAME to {what} (nothing was changed)",
            ctx.name
        ))
        .into()),
    }
}

/// Refuses a plan with lint findings that carry no allow marker, on a protected
/// environment: the same rule the deploy's preflight applies.
pub fn lint(ctx: &EnvContext, plan: &MigrationPlan) -> Result<()> {
    if !ctx.env().gates.approval {
        return Ok(());
    }
    let flagged: Vec<String> = plan
        .migrations
        .iter()
        .filter(|m| !m.findings.is_empty() && !m.allowed)
        .map(|m| {
            let rules: Vec<&str> = m.findings.iter().map(|f| f.rule.as_str()).collect();
            format!("{} ({})", m.id, rules.join(", "))
        })
        .collect();
    if flagged.is_empty() {
        return Ok(());
    }
    Err(Error::Refused {
        reason: format!(
            "protected environment {} refuses destructive migration(s) {}; nothing was changed",
            ctx.name,
            flagged.join("; ")
        ),
        next: "review them and add the allow marker to each file to proceed".into(),
    }
    .into())
}

/// A `--run` value: one run id as `history` prints it, never a path, so it can only
/// name a journal of this environment.
pub async fn run_records(
    loaded: &LoadedConfig,
    env: &str,
    run: &str,
) -> Result<Vec<deploykit_core::Record>> {
    deploykit_core::release::validate_name("run id", run, MAX_RUN_ID).map_err(|e| {
        ConfigError(format!(
            "--run: {e}; pass a run id as `deploykit history` shows it"
        ))
    })?;
    let config = loaded.env(env)?.clone();
    let opened = crate::state::open(loaded, env, &config, None).await?;
    let found = opened.store.run(run).await;
    opened.close().await;
    match found? {
        Some(r) => Ok(r.records),
        None => Err(ConfigError(format!(
            "environment {env} has no run {run}; see `deploykit history --env {env}`"
        ))
        .into()),
    }
}

/// Runs `work` holding the environment's deploy lock, and releases it after, also
/// when `work` failed. Held by someone else: [`Error::Locked`] (exit 4) and nothing
/// runs.
pub async fn locked<T, F>(ctx: &EnvContext, what: &str, work: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let lock = ctx.lock();
    let run_id = format!(
        "{what}-{}-{}",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        std::process::id()
    );
    let who = super::actor();
    lock.acquire(&LockHolder::this_process(&ctx.name, &run_id, who))
        .await?;
    let result = work.await;
    release(lock.as_ref(), &run_id, &ctx.name).await;
    result
}

async fn release(lock: &dyn DeployLock, run_id: &str, env: &str) {
    if let Err(e) = lock.release(run_id).await {
        eprintln!(
            "warning: releasing the deploy lock of {env} failed: {e}; check `deploykit lock status --env {env}`"
        );
    }
}
