//! `deploykit health`: the probes, once.

use std::path::Path;

use anyhow::Result;
use deploykit_core::{HealthDriver, HealthPolicy};

use super::EnvContext;
use crate::cli::EnvArg;
use crate::config::ConfigError;
use crate::exit;
use crate::render::Mode;

/// Runs every probe once; exit 0 only if all pass.
pub async fn run(config: &Path, args: &EnvArg, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &args.env, mode).await?;
    if ctx.parts.probes.is_empty() {
        return Err(
            ConfigError(format!("environment {} has no probes configured", ctx.name)).into(),
        );
    }
    let mut policy: HealthPolicy = ctx.env().policy.to_policy(false, None).health;
    policy.attempts = 1;
    let verdict = HealthDriver::new(ctx.parts.probes.clone(), policy)
        .run(&deploykit_core::Events::none())
        .await;
    if mode == Mode::Json {
        crate::render::json::print_event(
            serde_json::json!({"event": "health", "passed": verdict.passed, "reports": verdict.reports}),
        );
    } else {
        for r in &verdict.reports {
            println!(
                "  {:<40} {:<10} {:>6} ms  {}",
                r.probe,
                format!("{:?}", r.status),
                r.latency.as_millis(),
                r.detail
            );
        }
    }
    Ok(if verdict.passed {
        exit::OK
    } else {
        exit::FAILED
    })
}
