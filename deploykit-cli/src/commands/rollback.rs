//! `deploykit rollback`: make a kept release live again through the same
//! transactional pipeline (lock, journal, verify, undo on failure).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use deploykit_core::{
    Commit, Error, Events, History, Outcome, Pipeline, PreApproved, ReleaseId, ReleaseSpec,
};

use super::EnvContext;
use crate::cli::RollbackArgs;
use crate::config::{ConfigError, TargetConfig};
use crate::exit;
use crate::render::Mode;

/// Re-activates `--to` (or the release live before the last successful deploy).
pub async fn run(config: &Path, args: &RollbackArgs, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &args.env, mode)
        .await?
        .wait_for_lock(&args.wait);
    let Some(target) = ctx.parts.target.clone() else {
        return Err(ConfigError(format!(
            "environment {} has no target to roll back",
            ctx.name
        ))
        .into());
    };
    let history = History::from_runs(&ctx.store.runs().await?);
    let to = match &args.to {
        Some(r) => ReleaseId::parse(r.clone())?,
        None => {
            // Rollback is for when the live release is broken or gone: when
            // nothing (or something unrecorded) runs, the journals still say what
            // was live before the last good run.
            let current = target.current().await?;
            history
                .rollback_to(current.as_ref())
                .ok_or_else(|| Error::Refused {
                    reason: match &current {
                        Some(live) => format!(
                            "no earlier release is recorded before {live}, which is live now"
                        ),
                        None => "nothing is live and no successful run recorded an earlier release"
                            .into(),
                    },
                    next: "pass --to RELEASE (see `deploykit history`), or deploy a commit".into(),
                })?
        }
    };
    if !target.list().await?.contains(&to) {
        let reason = format!("release {to} is no longer staged on the target (pruned?)");
        // A `--to` naming no staged release is a usage error; the release the
        // journals name being gone means the rollback cannot proceed: a failed run.
        if args.to.is_some() {
            return Err(ConfigError(format!("{reason}; deploy its commit instead")).into());
        }
        return Err(Error::Refused {
            reason,
            next: "deploy its commit instead".into(),
        }
        .into());
    }
    let commit = history
        .runs
        .iter()
        .find(|r| r.release == to)
        .map(|r| r.commit.clone())
        .unwrap_or(Commit::parse("unknown")?);
    let env = ctx.env();
    trust_if_verified(&ctx, &history, &to);
    // Code only: migrations of newer releases stay (revert them with `migrate revert --run`).
    let mut pipeline = Pipeline::new(&ctx.name)
        .who(super::actor())
        .message(args.message.clone())
        .next_step_words(crate::render::next_step::words())
        .target(target)
        .policy(env.policy.to_policy(env.gates.approval, None))
        .lock(ctx.lock())
        .events(Events::none().with(mode.sink()));
    for p in &ctx.parts.probes {
        pipeline = pipeline.probe(p.clone());
    }
    if let Some(a) = &args.approve {
        pipeline = pipeline.gate(Arc::new(PreApproved(a.clone())));
    }
    if let Some(hooks) = crate::hook_runner::hooks(&ctx.loaded, env, &ctx.parts) {
        pipeline = pipeline.hooks(hooks);
    }
    let spec = ReleaseSpec {
        id: to,
        commit,
        branch: None,
    };
    let report = pipeline.run_in(ctx.store.as_ref(), &spec).await;
    ctx.parts.close().await;
    let report = report?;
    mode.finish(&report);
    crate::notify::announce(env, &report).await;
    Ok(exit::for_report(&report))
}

/// A release a run verified on these hosts (the journals say it succeeded) goes
/// live without the reload gate's canary, unless the target sets
/// `rollback_canary = true`: its code already served here, and a rollback is
/// usually run while the live release is failing. Verify and the undo still
/// guard it (docs/CONFIG.md, "The reload is health-gated").
fn trust_if_verified(ctx: &EnvContext, history: &History, to: &ReleaseId) {
    let canary = match &ctx.env().target {
        Some(TargetConfig::Pm2(pm2)) => pm2.rollback_canary,
        _ => return,
    };
    let verified = history
        .runs
        .iter()
        .any(|r| &r.release == to && r.outcome == Some(Outcome::Succeeded));
    if verified && !canary {
        for t in &ctx.parts.pm2 {
            t.trust(to);
        }
    }
}
