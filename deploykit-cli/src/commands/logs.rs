//! `deploykit logs`: the last lines the release's processes (or containers)
//! printed, read from the hosts, so nobody needs to SSH in to see them.

use std::path::Path;

use anyhow::Result;
use deploykit_core::{LogLines, ReleaseId};

use super::EnvContext;
use crate::cli::LogsArgs;
use crate::config::ConfigError;
use crate::exit;
use crate::render::Mode;

/// Prints the last `--lines` lines of `--release` (default: the live one).
pub async fn run(config: &Path, args: &LogsArgs, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &args.env, mode).await?;
    let result = read(&ctx, args).await;
    ctx.parts.close().await;
    let (release, logs) = result?;
    if mode == Mode::Json {
        crate::render::json::print_event(
            serde_json::json!({"event": "logs", "release": release, "logs": logs}),
        );
    } else if logs.is_empty() {
        println!("{}: no logs of {release} found", ctx.name);
    } else {
        println!("{}: the last lines of {release}", ctx.name);
        print!("{}", crate::render::logs::log_block(&logs));
    }
    Ok(exit::OK)
}

async fn read(ctx: &EnvContext, args: &LogsArgs) -> Result<(ReleaseId, Vec<LogLines>)> {
    let Some(target) = &ctx.parts.target else {
        return Err(ConfigError(format!("environment {} has no target", ctx.name)).into());
    };
    let release = match &args.release {
        Some(r) => ReleaseId::parse(r.clone())?,
        None => target.current().await?.ok_or_else(|| {
            ConfigError(format!(
                "environment {}: nothing is live; name a release with --release",
                ctx.name
            ))
        })?,
    };
    let logs = target
        .recent_logs(&release, args.lines)
        .await?
        .into_iter()
        .map(LogLines::redacted)
        .collect();
    Ok((release, logs))
}
