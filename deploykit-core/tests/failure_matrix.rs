//! Every failure point, every way of failing: the world must end exactly all-old
//! (or, when an undo itself fails, be reported as such and then brought back to
//! all-old by `recover` once the cause is fixed).

mod common;

use common::*;
use deploykit_core::testing::{Fault, MemoryJournal};
use deploykit_core::{NextStep, Outcome, Phase};

/// Forward operations of a run, with the phase a failure there is reported in.
const FORWARD: &[(&str, u32, Phase)] = &[
    ("migrator.plan", 1, Phase::Preflight),
    ("target.prepare", 1, Phase::Prepare),
    ("backup.create", 1, Phase::Backup),
    ("backup.verify", 1, Phase::Backup),
    ("migrator.apply", 1, Phase::Migrate),
    ("migrator.apply", 2, Phase::Migrate), // the second migration: the first must be reverted
    ("target.activate", 1, Phase::Activate),
    ("probe.check", 1, Phase::Verify),
];

#[test]
fn every_forward_failure_ends_all_old() {
    for &(op, call, phase) in FORWARD {
        for fault in [Fault::Fail, Fault::Panic, Fault::Hang] {
            let s = scenario();
            if op == "probe.check" {
                // Fail every verify round; the re-check after rollback passes. A hang
                // uses up the whole deadline in round one, so only call 1 hangs.
                let rounds = if fault == Fault::Hang { 1 } else { 3 };
                for c in 1..=rounds {
                    s.world.faults.on_call(op, c, fault);
                }
            } else {
                s.world.faults.on_call(op, call, fault);
            }
            let report = runtime()
                .block_on(s.pipeline.run(&s.spec(), &MemoryJournal::default()))
                .unwrap();
            let case = format!("{op}#{call} {fault:?}");
            assert_eq!(report.outcome, Outcome::RolledBack, "{case}: {report:#?}");
            assert_eq!(report.failed_phase, Some(phase), "{case}");
            assert!(report.error.is_some(), "{case}");
            assert!(
                report.undone.iter().all(|u| u.error.is_none()),
                "{case}: {:?}",
                report.undone
            );
            assert_eq!(
                s.world.snapshot(),
                s.old,
                "{case}: world must be exactly all-old"
            );
            let holder = runtime()
                .block_on(deploykit_core::DeployLock::holder(s.lock.as_ref()))
                .unwrap();
            assert!(
                holder.is_none(),
                "{case}: lock released after a clean rollback"
            );
        }
    }
}

/// Undo operations, the failing run that needs them, and the undo named in the report.
const UNDO: &[(&str, u32, &str)] = &[
    ("target.activate", 2, "reactivate v1"),
    ("migrator.revert", 1, "revert migrations"),
    ("migrator.revert", 2, "revert migrations"),
    ("target.discard", 1, "discard staged release v2"),
];

#[test]
fn every_failing_undo_is_reported_then_recover_finishes_it() {
    for &(op, call, undo_name) in UNDO {
        for fault in [Fault::Fail, Fault::Panic, Fault::Hang] {
            let s = scenario();
            s.world.mark_unhealthy("v2");
            s.world.faults.on_call(op, call, fault);
            let journal = MemoryJournal::default();
            let rt = runtime();
            let report = rt.block_on(s.pipeline.run(&s.spec(), &journal)).unwrap();
            let case = format!("{op}#{call} {fault:?}");
            assert_eq!(
                report.outcome,
                Outcome::RollbackFailed,
                "{case}: {report:#?}"
            );
            let failed: Vec<_> = report.undone.iter().filter(|u| u.error.is_some()).collect();
            assert!(
                failed.iter().any(|u| u.undo.starts_with(undo_name)),
                "{case}: {:?}",
                report.undone
            );
            assert_eq!(
                report.undone.len(),
                3,
                "{case}: every undo is reported, not just up to the first failure"
            );
            if op != "target.discard" {
                let discard = report
                    .undone
                    .iter()
                    .find(|u| u.undo.starts_with("discard staged release v2"))
                    .unwrap();
                assert!(
                    discard.error.as_deref().unwrap().starts_with("deferred"),
                    "{case}: {discard:?}"
                );
                assert!(
                    s.world
                        .snapshot()
                        .releases
                        .iter()
                        .any(|r| r.as_str() == "v2"),
                    "{case}: kept for recover"
                );
            }
            assert!(
                matches!(
                    &report.next_step,
                    Some(NextStep::FinishUndo { env, .. }) if env == "staging"
                ),
                "{case}"
            );
            let holder = rt
                .block_on(deploykit_core::DeployLock::holder(s.lock.as_ref()))
                .unwrap();
            assert!(
                holder.is_some(),
                "{case}: the lock stays until the environment is consistent"
            );

            // The human fixes the cause; the next process recovers from the journal.
            s.world.faults.clear();
            let next = pipeline_for(&s.world, &s.lock, &s.sink, policy());
            let resumed = MemoryJournal::from_records(journal.snapshot());
            let recovered = rt.block_on(next.recover(&resumed)).unwrap();
            assert_eq!(
                recovered.outcome,
                Outcome::RolledBack,
                "{case}: {recovered:#?}"
            );
            assert_eq!(s.world.snapshot(), s.old, "{case}: recover ends all-old");
            assert!(rt
                .block_on(deploykit_core::DeployLock::holder(s.lock.as_ref()))
                .unwrap()
                .is_none());

            // Twice changes nothing more.
            let records = resumed.snapshot().len();
            let again = rt.block_on(next.recover(&resumed)).unwrap();
            assert_eq!(again.outcome, Outcome::RolledBack);
            assert!(again.undone.is_empty(), "{case}");
            assert_eq!(
                resumed.snapshot().len(),
                records,
                "{case}: a second recover writes nothing"
            );
            assert_eq!(s.world.snapshot(), s.old);
        }
    }
}

#[test]
fn an_unhealthy_old_release_after_rollback_is_rollback_failed_not_success() {
    let s = scenario();
    s.world.mark_unhealthy("v2");
    s.world.mark_unhealthy("v1");
    let report = runtime()
        .block_on(s.pipeline.run(&s.spec(), &MemoryJournal::default()))
        .unwrap();
    assert_eq!(report.outcome, Outcome::RollbackFailed);
    assert!(report
        .next
        .unwrap()
        .contains("previous release is not healthy"));
    assert_eq!(s.world.snapshot(), s.old, "everything was still undone");
}
