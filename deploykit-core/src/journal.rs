//! The run journal: an append-only record of intents and outcomes, written before
//! and after every side effect, so a later process knows exactly what was done.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::phase::Phase;
use crate::release::{Commit, ReleaseId};
use crate::rollback::Compensation;

mod file_journal;
mod journal_dir;

pub use file_journal::FileJournal;
pub use journal_dir::JournalDir;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new release is live and healthy.
    Succeeded,
    /// The run failed and everything it did was undone; the old release is healthy.
    RolledBack,
    /// The run failed and the undo did not complete: a human is needed.
    RollbackFailed,
    /// The run stopped mid-way (journal unwritable, process killed): run `recover`.
    Interrupted,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled_back",
            Outcome::RollbackFailed => "rollback_failed",
            Outcome::Interrupted => "interrupted",
        })
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Record {
    /// The run began (always the first record).
    RunStarted {
        /// The run's id.
        run_id: String,
        /// Environment.
        env: String,
        /// Release being deployed.
        release: ReleaseId,
        /// Its commit.
        commit: Commit,
        /// Its branch, if known.
        branch: Option<String>,
        /// The release live before the run.
        previous: Option<ReleaseId>,
        /// Who started it.
        who: String,
        /// Why, in the deployer's words (`deploy --message`); shown by history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A protected environment's gate approved the run.
    Approved {
        /// Who approved.
        approver: String,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A step is about to change the world; `undo` reverses it even if it stops half-way.
    Intent {
        /// The step's sequence number in this run (its key for later records).
        seq: u32,
        /// The phase it belongs to.
        phase: Phase,
        /// How to undo it, if it needs undoing.
        undo: Option<Compensation>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A step finished (`error` is set if it failed).
    Outcome {
        /// The intent's sequence number.
        seq: u32,
        /// The phase.
        phase: Phase,
        /// Its error, redacted, if it failed.
        error: Option<String>,
        /// A short result summary (artifact path, migrations applied…).
        detail: Option<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// An undo is about to run for the intent `seq`.
    UndoIntent {
        /// The intent being undone.
        seq: u32,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// An undo finished (`error` is set if it failed).
    UndoOutcome {
        /// The intent undone.
        seq: u32,
        /// Its error, if it failed.
        error: Option<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A hook ran in one place: what it was and how it ended. Hooks owe no undo,
    /// so this is a record of what happened, not an intent.
    Hook {
        /// Its point (`pre_deploy`, `post_activate`, …).
        point: crate::hook::HookPoint,
        /// Its command, quoted for humans.
        command: String,
        /// Where it ran.
        location: String,
        /// Its exit status, if it exited.
        status: Option<i32>,
        /// Why it failed (non-zero exit, timeout), redacted.
        error: Option<String>,
        /// When it ended.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The run ended (always the last record of a finished run).
    RunFinished {
        /// How.
        outcome: Outcome,
        /// The step that failed, if any.
        failed_phase: Option<Phase>,
        /// Its error, redacted.
        error: Option<String>,
        /// What a human must do next.
        next: Option<String>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// Where a run's records go: a file here ([`FileJournal`]), a file on the
/// environment's host over SSH ([`HostJournal`](crate::state_store::HostJournal)),
/// or the testing twin, which can stop accepting records at any point to simulate
/// a crash there. Async, because a remote append is a round trip.
#[async_trait]
pub trait JournalStore: Send + Sync {
    /// Appends one record durably before returning.
    async fn append(&self, record: &Record) -> Result<()>;
    /// Every record so far, in order.
    async fn records(&self) -> Result<Vec<Record>>;
}

/// `record` with its free text (errors, details, next steps) redacted: they hold
/// command lines and tool output. The data an undo needs is kept as it is.
pub(crate) fn redacted(record: &Record) -> Record {
    let r = |t: &Option<String>| t.as_deref().map(|t| crate::secret::redact(t, &[]));
    let mut record = record.clone();
    match &mut record {
        Record::Outcome { error, detail, .. } => {
            *error = r(error);
            *detail = r(detail);
        }
        Record::UndoOutcome { error, .. } => *error = r(error),
        Record::Hook { error, command, .. } => {
            *error = r(error);
            *command = crate::secret::redact(command, &[]);
        }
        Record::RunFinished { error, next, .. } => {
            *error = r(error);
            *next = r(next);
        }
        _ => {}
    }
    record
}

/// Reads a journal file. A torn line (a crash mid-write) is skipped: the record it
/// held was never acknowledged, so nothing relied on it. Any other unreadable line
/// is an error, because silently dropping a record could lose an undo.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Journal {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    parse_records(&text, || path.to_path_buf())
}

/// Parses a journal's text (see [`read_records`]); `path` names it in errors.
pub fn parse_records(text: &str, path: impl Fn() -> PathBuf) -> Result<Vec<Record>> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut records = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            // A torn record is one without its newline: the last line, or one a later
            // append started a fresh line after.
            Err(_) if i + 1 == lines.len() || !line.ends_with('}') => continue,
            Err(e) => {
                return Err(Error::Journal {
                    path: path(),
                    message: format!("line {} is not a journal record: {e}", i + 1),
                })
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A run's first record (shared with `crash_tests`).
    pub(super) fn started() -> Record {
        Record::RunStarted {
            run_id: "r1".into(),
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

    /// A step's intent with no undo (shared with `crash_tests`).
    pub(super) fn intent(seq: u32) -> Record {
        Record::Intent {
            seq,
            phase: Phase::Prepare,
            undo: None,
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn records_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let j = FileJournal::open(dir.path().join("r1.jsonl")).unwrap();
        j.append(&started()).await.unwrap();
        j.append(&intent(1)).await.unwrap();
        assert_eq!(j.records().await.unwrap(), vec![started(), intent(1)]);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn journals_and_their_directories_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let jd = JournalDir::new(dir.path().join("journal").join("prod"));
        jd.create("r1").unwrap().append(&started()).await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&jd.path_of("r1")), 0o600);
        assert_eq!(mode(&dir.path().join("journal")), 0o700);
        assert_eq!(mode(&dir.path().join("journal/prod")), 0o700);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_tolerated_and_later_appends_start_a_fresh_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r1.jsonl");
        let j = FileJournal::open(&path).unwrap();
        j.append(&started()).await.unwrap();
        drop(j);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(br#"{"record":"intent","seq":1,"pha"#).unwrap();
        drop(f);
        assert_eq!(read_records(&path).unwrap(), vec![started()]);
        let j = FileJournal::open(&path).unwrap();
        j.append(&intent(2)).await.unwrap();
        assert_eq!(read_records(&path).unwrap(), vec![started(), intent(2)]);
    }

    #[test]
    fn a_corrupt_complete_line_is_an_error_not_silently_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r1.jsonl");
        std::fs::write(&path, "{\"record\":\"bogus\"}\n{\"record\":\"bogus\"}\n").unwrap();
        let err = read_records(&path).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[tokio::test]
    async fn unfinished_lists_runs_without_an_end() {
        let dir = tempfile::tempdir().unwrap();
        let jd = JournalDir::new(dir.path());
        jd.create("a").unwrap().append(&started()).await.unwrap();
        let b = jd.create("b").unwrap();
        b.append(&started()).await.unwrap();
        b.append(&Record::RunFinished {
            outcome: Outcome::Succeeded,
            failed_phase: None,
            error: None,
            next: None,
            at: OffsetDateTime::UNIX_EPOCH,
        })
        .await
        .unwrap();
        assert_eq!(jd.unfinished().unwrap(), vec![jd.path_of("a")]);
        assert_eq!(jd.runs().unwrap().len(), 2);
        let c = jd.create("c").unwrap();
        c.append(&started()).await.unwrap();
        c.append(&Record::RunFinished {
            outcome: Outcome::RollbackFailed,
            failed_phase: None,
            error: None,
            next: None,
            at: OffsetDateTime::UNIX_EPOCH,
        })
        .await
        .unwrap();
        assert_eq!(
            jd.unfinished().unwrap(),
            vec![jd.path_of("a"), jd.path_of("c")],
            "a failed undo still needs recover"
        );
    }
}

#[cfg(test)]
#[path = "journal_crash_tests.rs"]
mod crash_tests;
