//! When verify fails, the new release's last log lines are read before the undo
//! (while it still runs), put in the report and an event, and redacted.

mod common;

use common::*;
use deploykit_core::testing::MemoryJournal;
use deploykit_core::*;

#[tokio::test(start_paused = true)]
async fn failed_verify_reports_the_new_releases_logs_read_before_the_undo() {
    let s = scenario();
    s.world.mark_unhealthy("v2");
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    let lines: Vec<&String> = report.logs.iter().flat_map(|l| &l.lines).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cannot reach the database")),
        "read while v2 still ran: {report:?}"
    );
    let events = s.sink.events();
    let logs_at = events
        .iter()
        .position(|e| matches!(e, Event::ReleaseLogs { release, .. } if release == "v2"))
        .expect("a release_logs event");
    let undo_at = events
        .iter()
        .position(|e| matches!(e, Event::Compensating { .. }))
        .expect("an undo");
    assert!(logs_at < undo_at, "logs before the undo: {events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_healthy_run_reads_no_logs() {
    let s = scenario();
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert!(report.logs.is_empty());
    assert!(!s
        .sink
        .events()
        .iter()
        .any(|e| matches!(e, Event::ReleaseLogs { .. })));
}

#[test]
fn logs_lose_deploykits_secrets_before_anyone_sees_them() {
    let l = LogLines {
        source: "web1: web[0] stdout".into(),
        lines: vec!["connecting to postgres://app:hunter2hunter2@db/app".into()],
    }
    .redacted();
    assert!(!l.lines[0].contains("hunter2hunter2"), "{:?}", l.lines);
    assert!(l.lines[0].contains("postgres://app:"), "{:?}", l.lines);
}
