//! A failed run hands its caller the typed error, not only its text: the kind and
//! the source chain survive the pipeline.

mod common;

use common::*;
use deploykit_core::testing::{Fault, MemoryJournal};
use deploykit_core::*;

#[tokio::test(start_paused = true)]
async fn a_failed_step_s_error_keeps_its_kind_in_the_report() {
    let s = scenario();
    s.world.faults.on_call("target.activate", 1, Fault::Hang);
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    let failure = report.failure.as_ref().expect("the typed error is kept");
    assert_eq!(failure.kind(), ErrorKind::Timeout);
    assert_eq!(Some(failure.to_string()), report.error);
}

#[tokio::test(start_paused = true)]
async fn a_clean_run_has_no_failure() {
    let s = scenario();
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert!(report.failure.is_none());
}
