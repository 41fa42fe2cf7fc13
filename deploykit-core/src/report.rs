//! What a run (or a recovery) tells its caller at the end.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backup::BackupArtifact;
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
    /// What a human must do next, if anything.
    pub next: Option<String>,
    /// Who approved, for protected environments.
    pub approver: Option<String>,
    /// The backup this run took.
    pub backup: Option<BackupArtifact>,
    /// The migrations this run applied (and kept, if it succeeded).
    pub applied: Option<AppliedSet>,
    /// Phase timings in the order phases ended.
    pub phases: Vec<PhaseTiming>,
}
