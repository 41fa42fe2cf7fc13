//! The journal after a crash or a second writer: torn lines, directory sync, one end.

use std::fs::OpenOptions;
use std::io::Write;

use time::OffsetDateTime;

use super::*;

use super::tests::{intent, started};

#[tokio::test]
async fn a_torn_last_line_ending_in_a_brace_does_not_block_the_journal_after_recover_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r1.jsonl");
    let j = FileJournal::open(&path).unwrap();
    j.append(&started()).await.unwrap();
    drop(j);
    // Killed mid-write of an intent whose undo object had just closed.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(br#"{"record":"intent","seq":1,"phase":"prepare","undo":{"discard_release":{}}"#)
        .unwrap();
    drop(f);
    assert_eq!(read_records(&path).unwrap(), vec![started()]);
    // `recover` appends to it: the journal must stay readable for status and recover.
    let j = FileJournal::open(&path).unwrap();
    j.append(&intent(2)).await.unwrap();
    assert_eq!(read_records(&path).unwrap(), vec![started(), intent(2)]);
    let jd = JournalDir::new(dir.path());
    assert_eq!(jd.unfinished().unwrap(), vec![path]);
}

#[test]
fn a_corrupt_line_in_the_middle_stays_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r1.jsonl");
    let good = serde_json::to_string(&started()).unwrap();
    std::fs::write(&path, format!("{good}\n{{\"record\":\"bogus\"}}\n{good}\n")).unwrap();
    let err = read_records(&path).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[tokio::test]
async fn creating_a_journal_syncs_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let jd = JournalDir::new(dir.path().join("staging"));
    crate::durable::synced::take();
    let j = jd.create("r1").unwrap();
    j.append(&started()).await.unwrap();
    j.append(&intent(1)).await.unwrap();
    let synced = crate::durable::synced::take();
    assert_eq!(
        synced,
        vec![dir.path().join("staging")],
        "once, on creation"
    );
}

#[tokio::test]
async fn a_journal_gets_one_end_even_from_two_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r1.jsonl");
    let run = FileJournal::open(&path).unwrap();
    run.append(&started()).await.unwrap();
    run.append(&intent(1)).await.unwrap();
    // A second process (recover) finishes the run…
    let recover = FileJournal::open(&path).unwrap();
    recover
        .append(&finished(Outcome::RolledBack))
        .await
        .unwrap();
    // …so the live run's own end, and any further step, are refused.
    let err = run.append(&finished(Outcome::Succeeded)).await.unwrap_err();
    assert!(
        err.to_string().contains("already finished as rolled_back"),
        "{err}"
    );
    assert!(run.append(&intent(2)).await.is_err());
    let ends = read_records(&path)
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r, Record::RunFinished { .. }))
        .count();
    assert_eq!(ends, 1);
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
