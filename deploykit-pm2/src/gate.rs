//! The health gate of a PM2 reload: a canary worker of the new release must stay
//! up for a window before the live workers are reloaded.
//!
//! `pm2 reload` replaces cluster workers one by one and retires each old one as
//! soon as its successor listens, healthy or not (pm2 #3078, #3429): a release
//! whose workers die a second after start takes every worker down between
//! restarts, and the app refuses connections until the undo reloads the old
//! release. Here one worker of the new release starts first, as its own PM2 app
//! ([`commands::canary_name`]) with `PORT=0`, so it takes no traffic while the
//! live workers keep serving; only when it has been up for
//! [`Pm2Config::reload_gate`] (judged as the PM2 probe judges, from the host's
//! clock and restart counts) are the live workers reloaded; then it is deleted.
//! A canary that dies is deleted, its last log lines going into the error, and
//! the live workers were never touched.

use std::sync::Arc;
use std::time::Duration;

use deploykit_core::{Error, HealthProbe, HealthStatus, ReleaseId, Result, Shell, ShellExt};

use crate::commands;
use crate::config::Pm2Config;
use crate::jlist;
use crate::layout::Layout;
use crate::ownership::{what_runs, Runs};
use crate::probe::Pm2Probe;

/// [`needless`]'s answer when every worker already runs the release.
const ALL_RUN: &str = "every worker already runs it";

/// Why a reload of `config.app` to `release` needs no canary, if it does not:
/// the gate is off, nothing runs yet (a first start serves no one), a worker is
/// not in cluster mode (a canary could not share its port), or every worker
/// already runs `release` (the undo of a failed canary, or a repeated activation).
/// Also whether a canary left by an interrupted run is listed.
async fn needless(
    shell: &dyn Shell,
    config: &Pm2Config,
    layout: &Layout,
    release: &ReleaseId,
) -> Result<(Option<&'static str>, bool)> {
    if config.reload_gate.is_none() {
        return Ok((Some("the reload gate is off"), false));
    }
    let out = shell
        .check("activate.gate", &commands::clocked_jlist(config))
        .await?;
    let snap = jlist::parse_snapshot(&out.stdout_text())
        .map_err(|e| Error::part("activate.gate", shell.location(), e))?;
    let leftover = snap
        .processes
        .iter()
        .any(|p| p.name == commands::canary_name(config));
    let live: Vec<_> = snap
        .processes
        .iter()
        .filter(|p| p.name == config.app)
        .collect();
    let why = |reason| Ok((Some(reason), leftover));
    if live.is_empty() {
        return why("nothing runs yet");
    }
    if live
        .iter()
        .any(|p| p.pm2_env.exec_mode.as_deref() != Some("cluster_mode"))
    {
        return why("not in cluster mode");
    }
    if live
        .iter()
        .all(|p| matches!(what_runs(layout, p), Runs::Release(r) if &r == release))
    {
        return why(ALL_RUN);
    }
    Ok((None, leftover))
}

/// Whether every worker of the app runs `release` (online or not), as after a
/// refused canary.
pub(crate) async fn all_run(
    shell: &dyn Shell,
    config: &Pm2Config,
    layout: &Layout,
    release: &ReleaseId,
) -> Result<bool> {
    let mut any = config.clone();
    any.reload_gate = Some(Duration::ZERO);
    Ok(needless(shell, &any, layout, release).await?.0 == Some(ALL_RUN))
}

/// Runs the canary of `release` (which `current` already points at) and judges
/// it, deleting it again when it fails. `Ok(true)` when it stayed up for the
/// window (the caller reloads, then [`retire`]s it); `Ok(false)` when no canary
/// was needed.
pub(crate) async fn canary(
    shell: &Arc<dyn Shell>,
    config: &Pm2Config,
    layout: &Layout,
    release: &ReleaseId,
) -> Result<bool> {
    let (Some(window), Some(start)) = (
        config.reload_gate,
        commands::start_canary(config, layout, release),
    ) else {
        return Ok(false);
    };
    let (why, leftover) = needless(shell.as_ref(), config, layout, release).await?;
    if leftover {
        // A canary left by an interrupted run is deleted, never reloaded.
        shell
            .check("activate.gate", &commands::delete_canary(config))
            .await?;
    }
    if why.is_some() {
        return Ok(false);
    }
    if let Err(e) = shell.check("activate.gate", &start).await {
        let _ = shell.run(&commands::delete_canary(config), None).await;
        return Err(
            e.with_hint("the live workers were not touched; the run's undo swaps `current` back")
        );
    }
    let (status, detail) = judge(shell, config, window).await;
    if status == HealthStatus::Healthy {
        return Ok(true);
    }
    let said = last_words(shell.as_ref(), config, release).await;
    let _ = shell.run(&commands::delete_canary(config), None).await;
    Err(Error::part(
        "activate.gate",
        shell.location(),
        format!(
            "the canary worker of {release} ({}) did not stay up for {} s: {detail}{said}",
            commands::canary_name(config),
            window.as_secs_f64()
        ),
    )
    .with_hint(format!(
        "the live workers were not reloaded and keep serving; the run's undo swaps `current` back. More of its output: `pm2 logs {} --lines 50` on the host",
        config.app
    )))
}

/// How many lines of each of the canary's log files its error carries.
const CANARY_LOG_LINES: usize = 10;

/// The failed canary's last log lines, redacted, as text to append to its error:
/// a release that dies at start fails here, before verify, so this is where the
/// operator learns why without SSH. Read before the canary is deleted, because
/// `pm2 jlist` is what says where its log files are. Empty when nothing could be
/// read (the error stands without it).
async fn last_words(shell: &dyn Shell, config: &Pm2Config, release: &ReleaseId) -> String {
    let mut as_canary = config.clone();
    as_canary.app = commands::canary_name(config);
    as_canary.extra_apps.clear();
    let Ok(logs) = crate::logs::recent(shell, &as_canary, release, CANARY_LOG_LINES).await else {
        return String::new();
    };
    let mut text = String::new();
    for log in logs.into_iter().map(deploykit_core::LogLines::redacted) {
        if log.lines.iter().all(|l| l.trim().is_empty()) {
            continue;
        }
        text.push_str(&format!("\n  {}:", log.source));
        for line in &log.lines {
            text.push_str(&format!("\n    {line}"));
        }
    }
    text
}

/// The PM2 probe's judgement of the canary: one worker, up for `window`.
async fn judge(
    shell: &Arc<dyn Shell>,
    config: &Pm2Config,
    window: Duration,
) -> (HealthStatus, String) {
    let mut as_canary = config.clone();
    as_canary.app = commands::canary_name(config);
    let report = Pm2Probe::new(shell.clone(), as_canary)
        .instances(1)
        .settle(window)
        .check()
        .await;
    (report.status, report.detail)
}

/// Deletes the canary once the live workers run the release.
pub(crate) async fn retire(shell: &dyn Shell, config: &Pm2Config) -> Result<()> {
    shell
        .check("activate.gate", &commands::delete_canary(config))
        .await
        .map(|_| ())
}
