//! A crash after every journal record — forward, and in the middle of an undo —
//! followed by `recover` in a new process: the world ends all-old or all-new, with
//! every row written before the deploy still there.

mod common;

use common::*;
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{DeployLock, NextStep, Outcome, Record};

fn records_of_a_full_run(unhealthy: bool) -> usize {
    let s = scenario();
    if unhealthy {
        s.world.mark_unhealthy("v2");
    }
    let journal = MemoryJournal::default();
    runtime()
        .block_on(s.pipeline.run(&s.spec(), &journal))
        .unwrap();
    journal.snapshot().len()
}

fn crash_at_every_record(unhealthy: bool) -> usize {
    let total = records_of_a_full_run(unhealthy);
    assert!(total > 10, "a full run writes many records ({total})");
    for k in 1..total {
        let s = scenario();
        if unhealthy {
            s.world.mark_unhealthy("v2");
        }
        let rt = runtime();
        let crashing = MemoryJournal::crashing_after(k);
        let report = rt.block_on(s.pipeline.run(&s.spec(), &crashing)).unwrap();
        let case = format!("crash after record {k} of {total} (unhealthy: {unhealthy})");
        assert_eq!(report.outcome, Outcome::Interrupted, "{case}: {report:#?}");
        assert!(
            matches!(
                &report.next_step,
                Some(NextStep::RecoverAfterJournalFailure { env, .. }) if env == "staging"
            ),
            "{case}"
        );
        assert_eq!(crashing.snapshot().len(), k, "{case}");

        let next = pipeline_for(&s.world, &s.lock, &s.sink, policy());
        let journal = MemoryJournal::from_records(crashing.snapshot());
        let recovered = rt.block_on(next.recover(&journal)).unwrap();
        let world = s.world.snapshot();
        let committed = crashing.snapshot().iter().any(|r| {
            matches!(
                r,
                Record::Intent {
                    phase: deploykit_core::Phase::Commit,
                    ..
                }
            )
        });
        match recovered.outcome {
            Outcome::Succeeded => {
                assert!(
                    committed && !unhealthy,
                    "{case}: only a committed run may recover forward"
                );
                assert_eq!(world.live, s.new_state().live, "{case}");
                assert_eq!(world.applied, s.new_state().applied, "{case}");
            }
            Outcome::RolledBack => assert_eq!(world, s.old, "{case}: recover must end all-old"),
            other => panic!("{case}: recover ended {other}: {recovered:#?}"),
        }
        assert_eq!(
            world.rows, s.old.rows,
            "{case}: rows written before the deploy survive"
        );
        assert!(
            rt.block_on(s.lock.holder()).unwrap().is_none(),
            "{case}: lock released by recover"
        );
        let len = journal.snapshot().len();
        let again = rt.block_on(next.recover(&journal)).unwrap();
        assert_eq!(again.outcome, recovered.outcome, "{case}");
        assert_eq!(
            journal.snapshot().len(),
            len,
            "{case}: recover is idempotent"
        );
        assert_eq!(s.world.snapshot(), world, "{case}");
    }
    total
}

#[test]
fn crash_after_every_record_of_a_successful_run() {
    crash_at_every_record(false);
}

#[test]
fn crash_after_every_record_of_a_run_that_rolls_back() {
    crash_at_every_record(true);
}

#[test]
fn crash_during_a_file_journal_write_is_recovered_from_the_torn_file() {
    let s = scenario();
    s.world.mark_unhealthy("v2");
    let dir = tempfile::tempdir().unwrap();
    let jd = deploykit_core::JournalDir::new(dir.path());
    let rt = runtime();
    // The process dies after 7 records, half-way through writing the 8th.
    let crashing = MemoryJournal::crashing_after(7);
    rt.block_on(s.pipeline.run(&s.spec(), &crashing)).unwrap();
    let path = jd.path_of("run-1");
    let mut text: String = crashing
        .snapshot()
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    text.push_str(r#"{"record":"intent","seq":9,"ph"#);
    std::fs::write(&path, text).unwrap();
    assert_eq!(jd.unfinished().unwrap(), vec![path.clone()]);

    let journal = deploykit_core::FileJournal::open(&path).unwrap();
    let next = pipeline_for(&s.world, &s.lock, &s.sink, policy());
    let recovered = rt.block_on(next.recover(&journal)).unwrap();
    assert_eq!(recovered.outcome, Outcome::RolledBack);
    assert_eq!(s.world.snapshot(), s.old);
    assert!(
        jd.unfinished().unwrap().is_empty(),
        "the journal now records the end"
    );
}

#[test]
fn recover_refuses_a_journal_of_another_environment() {
    let s = scenario();
    let crashing = MemoryJournal::crashing_after(3);
    runtime()
        .block_on(s.pipeline.run(&s.spec(), &crashing))
        .unwrap();
    let other = deploykit_core::Pipeline::new("production");
    let err = runtime()
        .block_on(other.recover(&MemoryJournal::from_records(crashing.snapshot())))
        .unwrap_err();
    assert!(
        err.to_string().contains("recover environment staging"),
        "{err}"
    );
}
