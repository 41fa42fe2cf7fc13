//! What a release is staged from (an artifact's digest) is journaled with the
//! prepare step, so the record says which bytes went out.

mod common;

use common::*;
use deploykit_core::testing::MemoryJournal;
use deploykit_core::*;

fn prepare_detail(journal: &MemoryJournal) -> Option<String> {
    journal.snapshot().into_iter().find_map(|r| match r {
        Record::Outcome {
            phase: Phase::Prepare,
            detail,
            ..
        } => detail,
        _ => None,
    })
}

#[tokio::test(start_paused = true)]
async fn the_prepare_outcome_names_what_the_release_was_staged_from() {
    let s = scenario();
    let spec = s.spec();
    let journal = MemoryJournal::default();
    let pipeline = s.pipeline.staged_from("artifact sha256:ab12");
    let report = pipeline.run(&spec, &journal).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert_eq!(
        prepare_detail(&journal).as_deref(),
        Some(format!("staged {} from artifact sha256:ab12", spec.id).as_str())
    );

    // Without it, as before: the commit is in the run's first record.
    let s = scenario();
    let journal = MemoryJournal::default();
    s.pipeline.run(&s.spec(), &journal).await.unwrap();
    assert_eq!(
        prepare_detail(&journal),
        Some(format!("staged {}", s.spec().id))
    );
}
