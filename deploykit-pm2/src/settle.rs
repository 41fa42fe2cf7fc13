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
mod tests {
    use super::*;
    use crate::jlist::parse_snapshot;

    const SETTLE: Duration = Duration::from_secs(2);

    fn req(instances: Option<usize>) -> Requirement {
        Requirement {
            app: "web".into(),
            instances,
            settle: SETTLE,
            layout: None,
        }
    }

    /// A `clocked_jlist` output: the clock, then `(pm_id, status, restarts,
    /// pm_uptime)` per instance of `web`, plus an unrelated app.
    fn snap(clock: Option<u64>, procs: &[(u32, &str, u64, Option<u64>)]) -> Snapshot {
        let list: Vec<String> = procs
            .iter()
            .map(|(id, status, restarts, up)| {
                let up = up.map_or(String::new(), |u| format!(r#","pm_uptime":{u}"#));
                format!(
                    r#"{{"pid":{},"name":"web","pm_id":{id},"pm2_env":{{"status":"{status}","restart_time":{restarts}{up},"exec_mode":"cluster_mode"}}}}"#,
                    100 + id
                )
            })
            .chain(std::iter::once(
                r#"{"pid":9,"name":"other","pm_id":9,"pm2_env":{"status":"online","restart_time":0,"pm_uptime":1}}"#.to_string(),
            ))
            .collect();
        let clock = clock.map_or(String::new(), |c| format!("deploykit-clock-ms {c}\n"));
        parse_snapshot(&format!("{clock}[{}]", list.join(","))).unwrap()
    }

    const NOW: u64 = 1_795_695_753_000;

    #[test]
    fn instances_older_than_the_window_are_settled_at_once() {
        let s = snap(
            Some(NOW),
            &[
                (0, "online", 3, Some(NOW - 5_000)),
                (1, "online", 3, Some(NOW - 2_000)),
            ],
        );
        match judge(&req(Some(2)), None, Duration::ZERO, &s) {
            Verdict::Settled(d) => assert!(d.contains("youngest #1 up 2.0 s"), "{d}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fresh_reload_waits_only_the_rest_of_the_window() {
        let s = snap(
            Some(NOW),
            &[
                (0, "online", 4, Some(NOW - 1_200)),
                (1, "online", 4, Some(NOW - 300)),
            ],
        );
        assert_eq!(
            judge(&req(Some(2)), None, Duration::ZERO, &s),
            Verdict::Wait(Duration::from_millis(1_700))
        );
        // Looked again 1.7 s later, nothing restarted: settled.
        let later = snap(
            Some(NOW + 1_900),
            &[
                (0, "online", 4, Some(NOW - 1_200)),
                (1, "online", 4, Some(NOW - 300)),
            ],
        );
        assert!(matches!(
            judge(
                &req(Some(2)),
                Some(&s),
                Duration::from_millis(1_700),
                &later
            ),
            Verdict::Settled(_)
        ));
    }

    #[test]
    fn a_restart_between_snapshots_is_caught_even_when_online_in_both() {
        let first = snap(
            Some(NOW),
            &[
                (0, "online", 4, Some(NOW - 1_500)),
                (1, "online", 4, Some(NOW - 500)),
            ],
        );
        // #0 crashed a second after its start and PM2 restarted it.
        let second = snap(
            Some(NOW + 1_600),
            &[
                (0, "online", 5, Some(NOW + 1_000)),
                (1, "online", 4, Some(NOW - 500)),
            ],
        );
        match judge(
            &req(Some(2)),
            Some(&first),
            Duration::from_millis(1_500),
            &second,
        ) {
            Verdict::Unhealthy(d) => {
                assert!(d.contains("restarting"), "{d}");
                assert!(d.contains("[#0: 4, #1: 4] to [#0: 5, #1: 4]"), "{d}");
            }
            other => panic!("{other:?}"),
        }
        // A restart that PM2 did not count (e.g. after `pm2 reset`) still changes
        // the start time.
        let reset = snap(
            Some(NOW + 1_600),
            &[
                (0, "online", 4, Some(NOW + 1_000)),
                (1, "online", 4, Some(NOW - 500)),
            ],
        );
        assert!(matches!(
            judge(
                &req(Some(2)),
                Some(&first),
                Duration::from_millis(1_500),
                &reset
            ),
            Verdict::Unhealthy(_)
        ));
        // A replaced instance (new pm_id) too.
        let replaced = snap(
            Some(NOW + 1_600),
            &[
                (0, "online", 4, Some(NOW - 1_500)),
                (2, "online", 0, Some(NOW - 500)),
            ],
        );
        assert!(matches!(
            judge(
                &req(Some(2)),
                Some(&first),
                Duration::from_millis(1_500),
                &replaced
            ),
            Verdict::Unhealthy(_)
        ));
    }

    #[test]
    fn a_worker_that_keeps_dying_a_second_after_start_never_settles() {
        // Whenever it is looked at, the crash-looping instance is under 1 s old.
        for (clock, up) in [(NOW, NOW - 900), (NOW + 700, NOW + 400)] {
            let s = snap(
                Some(clock),
                &[
                    (0, "online", 7, Some(up)),
                    (1, "online", 2, Some(NOW - 9_000)),
                ],
            );
            assert!(matches!(
                judge(&req(None), None, Duration::ZERO, &s),
                Verdict::Wait(_)
            ));
        }
    }

    #[test]
    fn down_missing_or_too_few_instances_are_unhealthy_at_once() {
        let s = snap(
            Some(NOW),
            &[
                (0, "online", 0, Some(NOW - 9_000)),
                (1, "errored", 15, Some(NOW - 9_000)),
            ],
        );
        match judge(&req(None), None, Duration::ZERO, &s) {
            Verdict::Unhealthy(d) => assert_eq!(d, "not online: #1 errored"),
            other => panic!("{other:?}"),
        }
        let s = snap(Some(NOW), &[(0, "launching", 1, Some(NOW))]);
        assert!(matches!(
            judge(&req(None), None, Duration::ZERO, &s),
            Verdict::Unhealthy(_)
        ));
        let s = snap(Some(NOW), &[(0, "online", 0, Some(NOW - 9_000))]);
        assert_eq!(
            judge(&req(Some(2)), None, Duration::ZERO, &s),
            Verdict::Unhealthy("1 of 2 instances running".into())
        );
        let s = snap(Some(NOW), &[]);
        assert_eq!(
            judge(&req(None), None, Duration::ZERO, &s),
            Verdict::Unhealthy("no PM2 process named web".into())
        );
    }

    #[test]
    fn only_the_hosts_clock_counts_so_skew_does_not_matter() {
        // A host whose clock says 1970 (or any time far from ours): ages are its
        // clock minus its own start times.
        let s = snap(
            Some(60_000),
            &[
                (0, "online", 0, Some(50_000)),
                (1, "online", 0, Some(57_000)),
            ],
        );
        assert!(matches!(
            judge(&req(None), None, Duration::ZERO, &s),
            Verdict::Settled(_)
        ));
        // A start time ahead of the host's clock (the instance restarted while
        // `pm2 jlist` ran, after the clock was read): age unknown, full window.
        let s = snap(Some(NOW), &[(0, "online", 1, Some(NOW + 250))]);
        assert_eq!(
            judge(&req(None), None, Duration::ZERO, &s),
            Verdict::Wait(SETTLE)
        );
    }

    #[test]
    fn without_start_times_or_clock_only_a_full_quiet_window_counts() {
        for s in [
            snap(None, &[(0, "online", 1, Some(NOW - 9_000))]),
            snap(Some(NOW), &[(0, "online", 1, None)]),
        ] {
            assert_eq!(
                judge(&req(None), None, Duration::ZERO, &s),
                Verdict::Wait(SETTLE)
            );
            // Unchanged after half the window: wait the other half.
            assert_eq!(
                judge(&req(None), Some(&s), SETTLE / 2, &s),
                Verdict::Wait(SETTLE / 2)
            );
            // Unchanged across the whole window: settled (the old rule).
            assert!(matches!(
                judge(&req(None), Some(&s), SETTLE, &s),
                Verdict::Settled(_)
            ));
        }
    }
    #[test]
    fn every_worker_must_run_the_release_current_points_at() {
        let req = Requirement {
            layout: Some(Layout::new("/srv/web").unwrap()),
            ..req(Some(2))
        };
        let list = |procs: &[(&str, &str)]| -> String {
            procs
                .iter()
                .enumerate()
                .map(|(i, (cwd, release))| {
                    format!(
                        r#"{{"pid":{i},"name":"web","pm_id":{i},"pm2_env":{{"status":"online","restart_time":0,"pm_uptime":1,"pm_cwd":"{cwd}","pm_exec_path":"{cwd}/server.js","env":{{"DEPLOYKIT_RELEASE":"{release}"}}}}}}"#
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let judge_live = |live: &str, procs: &[(&str, &str)]| {
            let out = format!(
                "deploykit-clock-ms {NOW}\ndeploykit-current {live}\n[{}]",
                list(procs)
            );
            judge(&req, None, Duration::ZERO, &parse_snapshot(&out).unwrap())
        };
        let on = [("/srv/web/current", "r2"), ("/srv/web/current", "r2")];
        assert!(matches!(
            judge_live("releases/r2", &on),
            Verdict::Settled(_)
        ));
        // One worker kept the old release (a reload that did not reach it).
        match judge_live("releases/r2", &[on[0], ("/srv/web/current", "r1")]) {
            Verdict::Unhealthy(d) => {
                assert!(d.contains("live release r2"), "{d}");
                assert!(d.contains("#1 runs r1"), "{d}");
            }
            other => panic!("{other:?}"),
        }
        // Workers started by hand elsewhere serve old code while "online".
        match judge_live("releases/r2", &[("/home/u/app", ""), ("/home/u/app", "")]) {
            Verdict::Unhealthy(d) => assert!(d.contains("/home/u/app"), "{d}"),
            other => panic!("{other:?}"),
        }
        // A `current` that is no release link: nothing can be on the live release.
        assert!(matches!(
            judge_live("/elsewhere", &on),
            Verdict::Unhealthy(_)
        ));
        // No `current` at all (an adopted app put back): PM2's view only, without
        // the configured instance count.
        let one = [("/home/u/app", "")];
        assert!(matches!(judge_live("", &one), Verdict::Settled(_)));
        // Without the line (an older snapshot), only PM2's view is judged.
        let out = format!("deploykit-clock-ms {NOW}\n[{}]", list(&[on[0], ("/x", "")]));
        assert!(matches!(
            judge(&req, None, Duration::ZERO, &parse_snapshot(&out).unwrap()),
            Verdict::Settled(_)
        ));
    }
}
