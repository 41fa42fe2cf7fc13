//! `deploykit status`.

use std::path::Path;

use anyhow::Result;
use deploykit_core::{History, ReleaseId};

use super::EnvContext;
use crate::cli::EnvArg;
use crate::config::{Pm2Source, TargetConfig};
use crate::exit;
use crate::render::Mode;

/// Prints what is live, the lock, the last run and runs needing `recover`.
pub async fn run(config: &Path, args: &EnvArg, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &args.env, mode).await?;
    let live = match &ctx.parts.target {
        Some(t) => t.current().await?,
        None => None,
    };
    let artifact = live_artifact(&ctx, live.as_ref()).await;
    // With several services, what each one runs (one release when they agree).
    let mut services: Vec<(String, String)> = Vec::new();
    if let Some(all) = ctx.parts.compose.as_ref().and_then(|c| c.services.as_ref()) {
        for (service, container) in all.containers().await? {
            let state = container
                .map(|c| c.describe())
                .unwrap_or_else(|| "no container".into());
            services.push((service, state));
        }
    }
    let holder = ctx.lock().holder().await?;
    let runs = ctx.store.runs().await?;
    let history = History::from_runs(&runs);
    let last = history.runs.last().cloned();
    let unfinished: Vec<&str> = runs
        .iter()
        .filter(|r| r.is_unfinished())
        .map(|r| r.run_id.as_str())
        .collect();
    let migrations = match &ctx.parts.migrator {
        Some(m) => Some(m.status(None).await?),
        None => None,
    };
    if mode == Mode::Json {
        crate::render::json::print_event(
            serde_json::json!({"event": "status", "env": ctx.name, "live": live, "artifact": artifact, "lock": holder, "last_run": last,
                "unfinished_runs": unfinished, "migrations": migrations,
                "services": services.iter().map(|(s, c)| serde_json::json!({"service": s, "container": c})).collect::<Vec<_>>()}),
        );
        return Ok(exit::OK);
    }
    println!("{}", ctx.name);
    println!(
        "  live:      {}",
        live.map(|l| l.to_string())
            .unwrap_or_else(|| "nothing".into())
    );
    if let Some(a) = &artifact {
        println!("  artifact:  {a}");
    }
    for (service, state) in &services {
        println!("    {service}: {state}");
    }
    match &holder {
        Some(h) => println!("  lock:      held by {h}{}", super::lock::liveness_note(h)),
        None => println!("  lock:      free"),
    }
    match &last {
        Some(r) => println!(
            "  last run:  {} {} {}",
            r.release,
            r.outcome
                .map(|o| o.to_string())
                .unwrap_or_else(|| "unfinished".into()),
            r.started
        ),
        None => println!("  last run:  none"),
    }
    if let Some(m) = migrations {
        println!(
            "  migrations: {} applied, {} pending, {} missing, {} drifted",
            m.applied.len(),
            m.pending.len(),
            m.missing.len(),
            m.drifted.len()
        );
    }
    if !unfinished.is_empty() {
        println!(
            "  {} run(s) did not finish: run `deploykit recover --env {}`",
            unfinished.len(),
            ctx.name
        );
    }
    Ok(exit::OK)
}

/// For a PM2 target with `source = "artifact"`: the digest each host recorded
/// with the live release (one value when they agree, else `host: digest` each).
async fn live_artifact(ctx: &EnvContext, live: Option<&ReleaseId>) -> Option<String> {
    let (Some(TargetConfig::Pm2(pm2)), Some(live)) = (&ctx.env().target, live) else {
        return None;
    };
    if pm2.source != Pm2Source::Artifact {
        return None;
    }
    let layout = deploykit_pm2::Layout::new(&pm2.deploy_to).ok()?;
    let mut seen: Vec<(String, String)> = Vec::new();
    for (host, shell) in &ctx.parts.hosts {
        let digest =
            match deploykit_pm2::recorded_artifact(shell.shell().as_ref(), &layout, live).await {
                Ok(Some(d)) => d,
                Ok(None) => "none recorded".into(),
                Err(e) => format!("unknown ({e})"),
            };
        seen.push((host.clone(), digest));
    }
    let first = seen.first()?.1.clone();
    if seen.iter().all(|(_, d)| *d == first) {
        return Some(first);
    }
    Some(
        seen.iter()
            .map(|(h, d)| format!("{h}: {d}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}
