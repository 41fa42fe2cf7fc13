//! Past runs read back from their journals, and the delivery metrics people ask of
//! them: deployment frequency, change-failure rate, mean time to restore.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::journal::{read_records, JournalDir, Outcome, Record};
use crate::phase::Phase;
use crate::release::{Commit, ReleaseId};

/// One run, as its journal tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// Environment.
    pub env: String,
    /// Release deployed.
    pub release: ReleaseId,
    /// Its commit.
    pub commit: Commit,
    /// Release live before.
    pub previous: Option<ReleaseId>,
    /// Who started it.
    pub who: String,
    /// Who approved it, if gated.
    pub approver: Option<String>,
    /// Why it was made (`deploy --message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// When it ended (`None`: unfinished, needs `recover`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished: Option<OffsetDateTime>,
    /// How it ended (`None`: unfinished).
    pub outcome: Option<Outcome>,
    /// The phase that failed.
    pub failed_phase: Option<Phase>,
    /// When the failure was recorded (start of the time to restore).
    #[serde(with = "time::serde::rfc3339::option")]
    pub failed_at: Option<OffsetDateTime>,
}

impl RunSummary {
    /// Reads one journal file.
    pub fn from_journal(path: &Path) -> Result<Option<Self>> {
        Ok(Self::from_records(&read_records(path)?))
    }

    /// Summarises records; `None` if they do not start a run.
    pub fn from_records(records: &[Record]) -> Option<Self> {
        let Some(Record::RunStarted {
            run_id,
            env,
            release,
            commit,
            previous,
            who,
            message,
            at,
            ..
        }) = records.first()
        else {
            return None;
        };
        let mut s = RunSummary {
            run_id: run_id.clone(),
            env: env.clone(),
            release: release.clone(),
            commit: commit.clone(),
            previous: previous.clone(),
            who: who.clone(),
            approver: None,
            message: message.clone(),
            started: *at,
            finished: None,
            outcome: None,
            failed_phase: None,
            failed_at: None,
        };
        for r in records {
            match r {
                Record::Approved { approver, .. } => s.approver = Some(approver.clone()),
                Record::Outcome {
                    phase,
                    error: Some(_),
                    at,
                    ..
                } if s.failed_at.is_none() => {
                    s.failed_phase = Some(*phase);
                    s.failed_at = Some(*at);
                }
                Record::RunFinished {
                    outcome,
                    failed_phase,
                    at,
                    ..
                } => {
                    s.outcome = Some(*outcome);
                    s.finished = Some(*at);
                    if s.failed_phase.is_none() {
                        s.failed_phase = *failed_phase;
                        if failed_phase.is_some() {
                            s.failed_at = Some(*at);
                        }
                    }
                }
                _ => {}
            }
        }
        Some(s)
    }

    /// Time from start to end, if it ended.
    pub fn duration(&self) -> Option<Duration> {
        self.finished
            .map(|f| (f - self.started).try_into().unwrap_or_default())
    }

    /// A failed change: rolled back, or needing a human.
    pub fn is_failure(&self) -> bool {
        matches!(
            self.outcome,
            Some(Outcome::RolledBack | Outcome::RollbackFailed)
        )
    }
}

/// Runs of one environment, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The runs.
    pub runs: Vec<RunSummary>,
}

impl History {
    /// The history of `runs` (as a [`StateStore`](crate::StateStore) lists them).
    pub fn from_runs(runs: &[crate::state_store::StoredRun]) -> Self {
        let mut runs: Vec<RunSummary> = runs
            .iter()
            .filter_map(|r| RunSummary::from_records(&r.records))
            .collect();
        runs.sort_by_key(|r| r.started);
        Self { runs }
    }

    /// Reads every journal in `dir`.
    pub fn load(dir: &JournalDir) -> Result<Self> {
        let mut runs = Vec::new();
        for path in dir.runs()? {
            if let Some(s) = RunSummary::from_journal(&path)? {
                runs.push(s);
            }
        }
        runs.sort_by_key(|r| r.started);
        Ok(Self { runs })
    }

    /// Only the runs started at or after `since`.
    pub fn since(&self, since: OffsetDateTime) -> Self {
        Self {
            runs: self
                .runs
                .iter()
                .filter(|r| r.started >= since)
                .cloned()
                .collect(),
        }
    }

    /// The release a plain `rollback` goes back to: the one that was live before
    /// the last successful run that made `live` live. When nothing is live (the
    /// release died or was stopped) or what is live is no recorded run's release
    /// (started by hand, switched by hand), the journals still know the answer: the
    /// release that was live before the last successful run. `None` when no
    /// successful run recorded an earlier release.
    pub fn rollback_to(&self, live: Option<&ReleaseId>) -> Option<ReleaseId> {
        let succeeded = || {
            self.runs
                .iter()
                .rev()
                .filter(|r| r.outcome == Some(Outcome::Succeeded))
        };
        match live.and_then(|l| succeeded().find(|r| &r.release == l)) {
            Some(run) => run.previous.clone(),
            None => succeeded().next().and_then(|r| r.previous.clone()),
        }
    }

    /// Successful deploys per day over `days`.
    pub fn deployment_frequency(&self, days: u32) -> f64 {
        let ok = self
            .runs
            .iter()
            .filter(|r| r.outcome == Some(Outcome::Succeeded))
            .count();
        ok as f64 / f64::from(days.max(1))
    }

    /// Failed changes over finished runs (0 when there are none).
    pub fn change_failure_rate(&self) -> f64 {
        let finished = self.runs.iter().filter(|r| r.outcome.is_some()).count();
        if finished == 0 {
            return 0.0;
        }
        self.runs.iter().filter(|r| r.is_failure()).count() as f64 / finished as f64
    }

    /// Mean time from a failure being recorded to the old release being back
    /// (rolled-back runs only; a failed undo has not restored anything).
    pub fn mean_time_to_restore(&self) -> Option<Duration> {
        let times: Vec<Duration> = self
            .runs
            .iter()
            .filter(|r| r.outcome == Some(Outcome::RolledBack))
            .filter_map(|r| Some((r.finished? - r.failed_at?).try_into().unwrap_or_default()))
            .collect();
        if times.is_empty() {
            return None;
        }
        Some(times.iter().sum::<Duration>() / times.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: i64, release: &str, previous: Option<&str>, outcome: Outcome) -> RunSummary {
        let at = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(n);
        RunSummary {
            run_id: format!("run-{n}"),
            env: "e".into(),
            release: ReleaseId::parse(release).unwrap(),
            commit: Commit::parse("abc1234").unwrap(),
            previous: previous.map(|p| ReleaseId::parse(p).unwrap()),
            who: "t".into(),
            approver: None,
            message: None,
            started: at,
            finished: Some(at),
            outcome: Some(outcome),
            failed_phase: None,
            failed_at: None,
        }
    }

    #[test]
    fn rollback_goes_to_the_release_before_the_last_good_run_even_when_nothing_is_live() {
        let id = |s: &str| ReleaseId::parse(s).unwrap();
        let history = History {
            runs: vec![
                run(1, "v1", None, Outcome::Succeeded),
                run(2, "v4", Some("v1"), Outcome::Succeeded),
                run(3, "v5", Some("v4"), Outcome::RolledBack),
            ],
        };
        // What runs is recorded: the release before it.
        assert_eq!(history.rollback_to(Some(&id("v4"))), Some(id("v1")));
        // Nothing runs (the container was stopped), or something unrecorded does:
        // the release before the last successful run, from its journal.
        assert_eq!(history.rollback_to(None), Some(id("v1")));
        assert_eq!(history.rollback_to(Some(&id("by-hand"))), Some(id("v1")));
        // The first deploy had nothing before it.
        assert_eq!(history.rollback_to(Some(&id("v1"))), None);
        assert_eq!(History::default().rollback_to(None), None);
    }
}
