//! The contract every [`StateStore`] must keep, as plain async functions: the
//! in-memory twin, the local files and the host store (over a local shell and
//! over the rig's real sshd) all run it. Panics on the first broken promise.

use time::OffsetDateTime;

use crate::journal::{Outcome, Record};
use crate::lock::LockHolder;
use crate::phase::Phase;
use crate::release::{Commit, ReleaseId};
use crate::state_store::{StateStore, StateStoreExt};

fn started(run_id: &str) -> Record {
    Record::RunStarted {
        run_id: run_id.into(),
        env: "staging".into(),
        release: ReleaseId::parse("rel-1").unwrap(),
        commit: Commit::parse("abc1234").unwrap(),
        branch: None,
        previous: None,
        who: "ci".into(),
        message: None,
        at: OffsetDateTime::UNIX_EPOCH,
    }
}

fn intent(seq: u32) -> Record {
    Record::Intent {
        seq,
        phase: Phase::Prepare,
        undo: None,
        at: OffsetDateTime::UNIX_EPOCH,
    }
}

fn finished(outcome: Outcome) -> Record {
    Record::RunFinished {
        outcome,
        failed_phase: None,
        error: None,
        next: None,
        at: OffsetDateTime::UNIX_EPOCH,
    }
}

/// Journals round-trip, list oldest first with their records, know which runs
/// are unfinished, see what another writer appended, refuse a second end; the
/// lock admits one holder. `store` must be empty.
pub async fn state_store_contract(store: &dyn StateStore) {
    assert!(
        store.runs().await.expect("runs").is_empty(),
        "a new store is empty"
    );
    let b = store
        .journal("20260102T000000Z-b")
        .await
        .expect("journal b");
    b.append(&started("20260102T000000Z-b"))
        .await
        .expect("append");
    b.append(&intent(1)).await.expect("append");
    let a = store
        .journal("20260101T000000Z-a")
        .await
        .expect("journal a");
    a.append(&started("20260101T000000Z-a"))
        .await
        .expect("append");
    a.append(&finished(Outcome::Succeeded))
        .await
        .expect("append");

    let runs = store.runs().await.expect("runs");
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(
        ids,
        ["20260101T000000Z-a", "20260102T000000Z-b"],
        "oldest first"
    );
    assert_eq!(
        runs[1].records,
        vec![started("20260102T000000Z-b"), intent(1)]
    );
    let todo = store.unfinished().await.expect("unfinished");
    assert_eq!(todo.len(), 1);
    assert_eq!(todo[0].run_id, "20260102T000000Z-b");

    // A second process (a recover) opens the same journal and ends the run; the
    // first one's next append sees that end and is refused.
    let recover = store.journal("20260102T000000Z-b").await.expect("reopen");
    assert_eq!(recover.records().await.expect("records").len(), 2);
    recover
        .append(&finished(Outcome::RolledBack))
        .await
        .expect("recover ends the run");
    let err = b
        .append(&finished(Outcome::Succeeded))
        .await
        .expect_err("a second end is refused");
    assert!(err.to_string().contains("journal"), "{err}");
    assert!(b.append(&intent(2)).await.is_err(), "no step after the end");
    assert!(store.unfinished().await.expect("unfinished").is_empty());
    assert_eq!(
        store
            .run("20260102T000000Z-b")
            .await
            .expect("run")
            .expect("listed")
            .records
            .len(),
        3
    );

    let lock = store.lock();
    let first = LockHolder::this_process("staging", "run-1", "ana");
    lock.acquire(&first).await.expect("acquire");
    let err = lock
        .acquire(&LockHolder::this_process("staging", "run-2", "bo"))
        .await
        .expect_err("one holder at a time");
    assert!(err.to_string().contains("run-1"), "{err}");
    assert_eq!(
        lock.holder().await.expect("holder").expect("held").run_id,
        "run-1"
    );
    lock.release("run-1").await.expect("release");
    assert!(lock.holder().await.expect("holder").is_none());
}
