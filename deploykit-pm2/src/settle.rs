//! The PM2 probe's judgement, kept pure so every case is a test on `pm2 jlist`
//! fixtures: is the app up, and has every instance stayed up for the settle window?
//!
//! "No instance restarted during the last `settle`" is the same as "every instance
//! has been up (`pm_uptime`) for at least `settle`": PM2 resets `pm_uptime` on a
//! crash restart and on a reload alike. So the window is counted from when the
//! workers started, not from when the probe did: a reload that finished a while ago
//! needs no waiting at all, a fresh one only the rest of the window.
//!
//! Ages are the host's clock minus the host's `pm_uptime` (see
//! [`commands::clocked_jlist`](crate::commands::clocked_jlist)); this machine's
//! clock is never compared with the host's. Between two snapshots the identity of
//! every instance (`pm_id`, restart count, `pm_uptime`) must not change: an
//! instance that crashed and came back in between is caught even if it looks
//! online in both. Where an age is unknown (no `pm_uptime`, no clock, or a clock
//! behind `pm_uptime`), only the time waited between unchanged snapshots counts,
//! which is the old rule: no restarts across a full window.

use std::time::Duration;

use crate::jlist::{Pm2Process, Snapshot};
use crate::layout::Layout;
use crate::ownership::{what_runs, Runs};

/// What the probe requires of the app.
#[derive(Debug, Clone)]
pub(crate) struct Requirement {
    /// The PM2 app name.
    pub(crate) app: String,
    /// At least this many instances, when set.
    pub(crate) instances: Option<usize>,
    /// How long every instance must have been up.
    pub(crate) settle: Duration,
    /// The app's layout: when set, every instance must run the release `current`
    /// points at (online is not enough: a reload that kept old workers, or workers
    /// started by hand elsewhere, serve old code while PM2 says online).
    pub(crate) layout: Option<Layout>,
}

/// The judgement of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not healthy; why.
    Unhealthy(String),
    /// Every instance online and up for the whole window; a summary.
    Settled(String),
    /// Online so far, but some instance is younger than the window: look again
    /// after this long.
    Wait(Duration),
}

/// One instance's identity: changes whenever PM2 restarts it.
fn identity(p: &Pm2Process) -> (u32, u64, Option<u64>) {
    (p.pm_id, p.pm2_env.restart_time, p.pm2_env.pm_uptime)
}

fn identities(procs: &[&Pm2Process]) -> Vec<(u32, u64, Option<u64>)> {
    let mut ids: Vec<_> = procs.iter().map(|p| identity(p)).collect();
    ids.sort();
    ids
}

fn app_processes<'a>(req: &Requirement, snap: &'a Snapshot) -> Vec<&'a Pm2Process> {
    snap.processes
        .iter()
        .filter(|p| p.name == req.app)
        .collect()
}

/// How long `p` has been up by the host's clock, when both times are known and
/// consistent.
fn age(snap: &Snapshot, p: &Pm2Process) -> Option<Duration> {
    let (now, up) = (snap.clock_ms?, p.pm2_env.pm_uptime?);
    now.checked_sub(up).map(Duration::from_millis)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Why not every instance runs the release `current` points at, if so. Only
/// judged when the requirement has a layout and the snapshot says where `current`
/// points.
fn off_release(req: &Requirement, snap: &Snapshot, procs: &[&Pm2Process]) -> Option<String> {
    let (layout, live) = (req.layout.as_ref()?, snap.live.as_deref()?);
    if live.is_empty() {
        return None;
    }
    let Some(live) = Layout::parse_link_target(live) else {
        return Some(format!(
            "{} is not a link to a release ({:?}), so no worker can be on the live release",
            layout.current().display(),
            live
        ));
    };
    let off: Vec<String> = procs
        .iter()
        .filter_map(|p| match what_runs(layout, p) {
            Runs::Release(r) if r == live => None,
            Runs::Release(r) => Some(format!("#{} runs {r}", p.pm_id)),
            Runs::Unknown(why) => Some(format!("#{}: {why}", p.pm_id)),
            Runs::NotOurs(path) => Some(format!(
                "#{} runs from {path}, which deploykit did not start",
                p.pm_id
            )),
        })
        .collect();
    (!off.is_empty()).then(|| {
        format!(
            "not every worker runs the live release {live}: {}",
            off.join(", ")
        )
    })
}

/// Judges `snap`, taken after `waited` of waiting since `earlier` (the probe's
/// first snapshot of this check, if this is not it).
pub(crate) fn judge(
    req: &Requirement,
    earlier: Option<&Snapshot>,
    waited: Duration,
    snap: &Snapshot,
) -> Verdict {
    let procs = app_processes(req, snap);
    if procs.is_empty() {
        return Verdict::Unhealthy(format!("no PM2 process named {}", req.app));
    }
    let down: Vec<String> = procs
        .iter()
        .filter(|p| !p.online())
        .map(|p| format!("#{} {}", p.pm_id, p.pm2_env.status))
        .collect();
    if !down.is_empty() {
        return Verdict::Unhealthy(format!("not online: {}", down.join(", ")));
    }
    // No `current` link (the adopted app a first deploy's undo put back): what runs
    // is not a deploykit release, so neither the release nor the configured
    // instance count applies; PM2's view of it still does.
    let unlinked = snap.live.as_deref() == Some("");
    if let Some(n) = req.instances.filter(|_| !unlinked) {
        if procs.len() < n {
            return Verdict::Unhealthy(format!("{} of {n} instances running", procs.len()));
        }
    }
    if let Some(problem) = off_release(req, snap, &procs) {
        return Verdict::Unhealthy(problem);
    }
    if let Some(earlier) = earlier {
        let before = identities(&app_processes(req, earlier));
        let after = identities(&procs);
        if before != after {
            let show = |ids: &[(u32, u64, Option<u64>)]| {
                ids.iter()
                    .map(|(id, restarts, _)| format!("#{id}: {restarts}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Verdict::Unhealthy(format!(
                "restarting: instances restarted within {} (restart counts went from [{}] to [{}])",
                secs(waited),
                show(&before),
                show(&after)
            ));
        }
    }
    // Up at least since the earlier snapshot (unchanged identities), and by the
    // host's clock where it can tell.
    let since_earlier = if earlier.is_some() {
        waited
    } else {
        Duration::ZERO
    };
    let youngest = procs
        .iter()
        .map(|p| (p, age(snap, p).unwrap_or_default().max(since_earlier)))
        .min_by_key(|(_, a)| *a)
        .expect("at least one process");
    if youngest.1 >= req.settle {
        return Verdict::Settled(format!(
            "{} instance(s) online, none restarted in the last {} (youngest #{} up {})",
            procs.len(),
            secs(req.settle),
            youngest.0.pm_id,
            secs(youngest.1)
        ));
    }
    Verdict::Wait(req.settle - youngest.1)
}

#[cfg(test)]
mod tests;
