//! The state store becomes unwritable (its host unreachable) after every record
//! of a run: the run performs no side effect it did not journal first. It either
//! never starts (nothing changed) or ends `interrupted` naming `recover`; once the
//! store is back, `recover` from a fresh process (reading the store) ends all-old
//! or all-new.

mod common;

use common::*;
use deploykit_core::testing::{MemoryStateStore, Snapshot};
use deploykit_core::{DeployLock, NextStep, Outcome, Phase, Record, StateStore, StateStoreExt};

fn intents(records: &[Record], phase: Phase) -> usize {
    records
        .iter()
        .filter(|r| matches!(r, Record::Intent { phase: p, .. } if *p == phase))
        .count()
}

fn records_of_a_full_run(unhealthy: bool) -> usize {
    let s = scenario();
    if unhealthy {
        s.world.mark_unhealthy("v2");
    }
    let store = MemoryStateStore::new();
    let rt = runtime();
    rt.block_on(s.pipeline.run_in(&store, &s.spec())).unwrap();
    let runs = rt.block_on(store.runs()).unwrap();
    assert_eq!(runs.len(), 1);
    runs[0].records.len()
}

/// Nothing the journal does not announce happened to the world.
fn only_journaled_effects(case: &str, records: &[Record], old: &Snapshot, now: &Snapshot) {
    if intents(records, Phase::Prepare) == 0 {
        assert_eq!(
            now.releases, old.releases,
            "{case}: staged without an intent"
        );
    }
    if intents(records, Phase::Migrate) == 0 {
        assert_eq!(
            now.applied, old.applied,
            "{case}: migrated without an intent"
        );
    }
    if intents(records, Phase::Activate) == 0 {
        assert_eq!(now.live, old.live, "{case}: activated without an intent");
    }
}

fn store_down_after_every_record(unhealthy: bool) {
    let total = records_of_a_full_run(unhealthy);
    assert!(total > 10, "a full run writes many records ({total})");
    for k in 0..total {
        let s = scenario();
        if unhealthy {
            s.world.mark_unhealthy("v2");
        }
        let rt = runtime();
        let store = MemoryStateStore::failing_after(k);
        let case = format!("store down after record {k} of {total} (unhealthy: {unhealthy})");
        let result = rt.block_on(s.pipeline.run_in(&store, &s.spec()));
        let runs = rt.block_on(store.runs()).unwrap();
        if k == 0 {
            let err = result.expect_err(&case);
            assert!(err.to_string().contains("memory-host"), "{case}: {err}");
            assert_eq!(s.world.snapshot(), s.old, "{case}: nothing changed");
            assert!(runs.is_empty(), "{case}");
            assert!(rt.block_on(s.lock.holder()).unwrap().is_none(), "{case}");
            continue;
        }
        let report = result.unwrap();
        assert_eq!(report.outcome, Outcome::Interrupted, "{case}: {report:#?}");
        assert!(
            report.error.as_deref().unwrap().contains("memory-host"),
            "{case}: the error names where the state lives"
        );
        assert!(
            matches!(
                &report.next_step,
                Some(NextStep::RecoverAfterJournalFailure { env, .. }) if env == "staging"
            ),
            "{case}"
        );
        assert_eq!(runs.len(), 1, "{case}");
        assert_eq!(runs[0].records.len(), k, "{case}");
        only_journaled_effects(&case, &runs[0].records, &s.old, &s.world.snapshot());

        store.heal();
        let next = pipeline_for(&s.world, &s.lock, &s.sink, policy());
        let todo = rt.block_on(store.unfinished()).unwrap();
        assert_eq!(
            todo.len(),
            1,
            "{case}: the store lists the run as unfinished"
        );
        let journal = rt.block_on(store.journal(&todo[0].run_id)).unwrap();
        let recovered = rt.block_on(next.recover(journal.as_ref())).unwrap();
        let world = s.world.snapshot();
        match recovered.outcome {
            Outcome::Succeeded => {
                assert!(!unhealthy, "{case}: only a healthy run may recover forward");
                assert_eq!(world.live, s.new_state().live, "{case}");
                assert_eq!(world.applied, s.new_state().applied, "{case}");
            }
            Outcome::RolledBack => assert_eq!(world, s.old, "{case}: recover must end all-old"),
            other => panic!("{case}: recover ended {other}: {recovered:#?}"),
        }
        assert!(
            rt.block_on(store.unfinished()).unwrap().is_empty(),
            "{case}"
        );
        assert!(rt.block_on(s.lock.holder()).unwrap().is_none(), "{case}");
    }
}

#[test]
fn store_down_after_every_record_of_a_successful_run() {
    store_down_after_every_record(false);
}

#[test]
fn store_down_after_every_record_of_a_run_that_rolls_back() {
    store_down_after_every_record(true);
}
