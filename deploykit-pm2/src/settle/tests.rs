//! The settle judgement on `pm2 jlist` fixtures.

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
