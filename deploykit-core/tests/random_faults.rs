//! Property: under any script of faults, a run ends all-new, all-old, or reports
//! that it did not — and then `recover`, once the faults are gone, ends all-old.

mod common;

use common::*;
use deploykit_core::testing::{Fault, MemoryJournal};
use deploykit_core::Outcome;
use proptest::prelude::*;

const OPS: &[&str] = &[
    "target.prepare",
    "target.activate",
    "target.discard",
    "backup.create",
    "backup.verify",
    "migrator.plan",
    "migrator.apply",
    "migrator.revert",
    "probe.check",
];

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![Just(Fault::Fail), Just(Fault::Hang), Just(Fault::Panic)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_fault_script_ends_all_old_or_all_new(
        script in proptest::collection::vec((0..OPS.len(), 1u32..4, fault()), 0..5),
        crash_at in proptest::option::of(1usize..40),
        unhealthy in any::<bool>(),
    ) {
        let s = scenario();
        if unhealthy {
            s.world.mark_unhealthy("v2");
        }
        for (op, call, f) in &script {
            s.world.faults.on_call(OPS[*op], *call, *f);
        }
        let journal = match crash_at {
            Some(k) => MemoryJournal::crashing_after(k),
            None => MemoryJournal::default(),
        };
        let rt = runtime();
        let report = rt.block_on(s.pipeline.run(&s.spec(), &journal)).unwrap();
        match report.outcome {
            Outcome::Succeeded => {
                prop_assert!(!unhealthy);
                prop_assert_eq!(s.world.snapshot(), s.new_state());
            }
            Outcome::RolledBack => prop_assert_eq!(s.world.snapshot(), s.old.clone()),
            Outcome::RollbackFailed | Outcome::Interrupted => {
                prop_assert!(report.next.as_deref().unwrap_or("").contains("recover"));
                s.world.faults.clear();
                let next = pipeline_for(&s.world, &s.lock, &s.sink, policy());
                let resumed = MemoryJournal::from_records(journal.snapshot());
                let recovered = rt.block_on(next.recover(&resumed)).unwrap();
                match recovered.outcome {
                    Outcome::Succeeded => prop_assert_eq!(s.world.snapshot().live, s.new_state().live),
                    Outcome::RolledBack => prop_assert_eq!(s.world.snapshot(), s.old.clone()),
                    other => prop_assert!(false, "recover ended {}: {:?}", other, recovered),
                }
            }
        }
        prop_assert_eq!(s.world.snapshot().rows, s.old.rows);
    }
}
