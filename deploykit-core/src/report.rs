//! What a run (or a recovery) tells its caller at the end.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backup::BackupArtifact;
use crate::error::Error;
use crate::journal::Outcome;
use crate::migrate::AppliedSet;
use crate::phase::Phase;
use crate::release::ReleaseId;

/// The result of one undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoResult {
    /// The undo, described for humans.
    pub undo: String,
    /// Its error, if it failed.
    pub error: Option<String>,
}

/// How long one phase took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTiming {
    /// Which phase.
    pub phase: Phase,
    /// How long.
    #[serde(with = "crate::duration_ms")]
    pub elapsed: Duration,
    /// Whether it succeeded.
    pub ok: bool,
}

/// Everything a caller needs after a run: the outcome, what failed, what was undone,
/// and what a human must do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunReport {
    /// The run's id (its journal's name).
    pub run_id: String,
    /// Environment.
    pub env: String,
    /// The release deployed.
    pub release: ReleaseId,
    /// The release live before.
    pub previous: Option<ReleaseId>,
    /// How it ended.
    pub outcome: Outcome,
    /// The phase that failed, if any.
    pub failed_phase: Option<Phase>,
    /// Its error, redacted.
    pub error: Option<String>,
    /// Every undo that ran, in the order it ran.
    pub undone: Vec<UndoResult>,
    /// What a human must do next, if anything, worded for them (see
    /// [`NextStepWords`](crate::NextStepWords)).
    pub next: Option<String>,
    /// The same next step as data, for programs that word it themselves. `None`
    /// in reports rebuilt from a journal, which keeps only the words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<crate::next_step::NextStep>,
    /// Who approved, for protected environments.
    pub approver: Option<String>,
    /// The backup this run took.
    pub backup: Option<BackupArtifact>,
    /// The migrations this run applied (and kept, if it succeeded).
    pub applied: Option<AppliedSet>,
    /// Phase timings in the order phases ended.
    pub phases: Vec<PhaseTiming>,
    /// When verify failed: the last lines the new release printed, per source,
    /// read before the undo (redacted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<crate::logs::LogLines>,
    /// The error that stopped the run, typed: its [`kind`](Error::kind) and its
    /// source chain, for code that decides on it. `error` holds its text. `None`
    /// when nothing failed, and in reports rebuilt from a journal (`recover` of an
    /// earlier run), which keeps only the text.
    #[serde(skip)]
    pub failure: Option<RunFailure>,
}

/// The typed error of a failed run, shared so a [`RunReport`] stays cheap to clone.
/// Two failures are equal when their kind and text are.
#[derive(Debug, Clone)]
pub struct RunFailure(Arc<Error>);

impl RunFailure {
    /// Keeps `error` as a run's failure.
    pub fn new(error: Error) -> Self {
        Self(Arc::new(error))
    }

    /// The error itself.
    pub fn error(&self) -> &Error {
        &self.0
    }
}

impl std::ops::Deref for RunFailure {
    type Target = Error;

    fn deref(&self) -> &Error {
        &self.0
    }
}

impl PartialEq for RunFailure {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl Eq for RunFailure {}

impl RunReport {
    /// The report of a run that has just started: succeeded until a step says
    /// otherwise. Built here only, so every report starts the same way.
    pub(crate) fn started(
        run_id: &str,
        env: &str,
        release: &ReleaseId,
        previous: Option<&ReleaseId>,
    ) -> Self {
        RunReport {
            run_id: run_id.to_string(),
            env: env.to_string(),
            release: release.clone(),
            previous: previous.cloned(),
            outcome: Outcome::Succeeded,
            failed_phase: None,
            error: None,
            undone: Vec::new(),
            next: None,
            next_step: None,
            approver: None,
            backup: None,
            applied: None,
            phases: Vec::new(),
            logs: Vec::new(),
            failure: None,
        }
    }
}
