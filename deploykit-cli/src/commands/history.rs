//! `deploykit history`.

use std::path::Path;

use anyhow::Result;
use deploykit_core::History;
use time::OffsetDateTime;

use crate::cli::HistoryArgs;
use crate::config;
use crate::exit;
use crate::render::Mode;

/// Lists runs of the last N days with delivery metrics.
pub async fn run(config_path: &Path, args: &HistoryArgs, mode: Mode) -> Result<u8> {
    let loaded = config::load(config_path)?;
    let env = loaded.env(&args.env)?.clone();
    let opened = crate::state::open(&loaded, &args.env, &env, None).await?;
    let runs = opened.store.runs().await;
    opened.close().await;
    print(&History::from_runs(&runs?), &args.env, args.days, mode);
    Ok(exit::OK)
}

/// Prints a history (shared with `demo`).
pub fn print(all: &History, env: &str, days: u32, mode: Mode) {
    let since = OffsetDateTime::now_utc() - time::Duration::days(i64::from(days));
    let h = all.since(since);
    let mttr = h.mean_time_to_restore();
    if mode == Mode::Json {
        crate::render::json::print_event(
            serde_json::json!({"event": "history", "env": env, "days": days, "runs": h.runs,
                "deployment_frequency_per_day": h.deployment_frequency(days),
                "change_failure_rate": h.change_failure_rate(),
                "mean_time_to_restore_ms": mttr.map(|d| d.as_millis() as u64)}),
        );
        return;
    }
    println!("History of {env}, last {days} day(s):");
    println!(
        "  {:<20} {:<28} {:<16} {:>8}  {:<10} {:<10} message",
        "started (UTC)", "release", "outcome", "time", "failed in", "approver"
    );
    for r in &h.runs {
        let started = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            r.started.year(),
            u8::from(r.started.month()),
            r.started.day(),
            r.started.hour(),
            r.started.minute(),
            r.started.second()
        );
        println!(
            "  {:<20} {:<28} {:<16} {:>7.1}s  {:<10} {:<10} {}",
            started,
            r.release.as_str(),
            r.outcome
                .map(|o| o.to_string())
                .unwrap_or_else(|| "unfinished".into()),
            r.duration().map(|d| d.as_secs_f64()).unwrap_or(0.0),
            r.failed_phase.map(|p| p.to_string()).unwrap_or_default(),
            r.approver.as_deref().unwrap_or(""),
            r.message.as_deref().unwrap_or("")
        );
    }
    println!(
        "  deployment frequency: {:.2}/day   change-failure rate: {:.0}%   mean time to restore: {}",
        h.deployment_frequency(days),
        h.change_failure_rate() * 100.0,
        mttr.map(|d| format!("{:.1}s", d.as_secs_f64())).unwrap_or_else(|| "n/a".into())
    );
}
