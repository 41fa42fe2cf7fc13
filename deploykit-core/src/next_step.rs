//! What a human should do after a run that did not end cleanly, as data.
//!
//! The library knows the situation (which environment, what is left, who finished
//! the run); only the program a human types knows how its commands are spelled. So
//! core returns a [`NextStep`], and whoever talks to the human words it: the CLI
//! with its own commands, an embedder with its own. The wording is given to the
//! pipeline as [`NextStepWords`] because the journal records what the human was
//! told; without one, [`NextStep`]'s `Display` says it without naming a program.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::journal::Outcome;

/// The next action a human must take, with what it needs to name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NextStep {
    /// The journal could not be written, so the run stopped where it was: fix the
    /// cause, then recover `env` to finish the undo.
    RecoverAfterJournalFailure {
        /// The environment to recover.
        env: String,
    },
    /// Some undos failed (`failures` lists them): the environment is neither old nor
    /// new and keeps its lock; fix the cause, then recover `env`.
    FinishUndo {
        /// The environment to recover.
        env: String,
        /// Each failed undo with its error.
        failures: String,
    },
    /// Everything was undone, but the previous release is not healthy; the lock is
    /// kept until recovering `env` succeeds.
    PreviousUnhealthy {
        /// The environment to recover.
        env: String,
        /// What the probes said.
        failures: String,
    },
    /// A migration run outside a transaction left statements that no undo removes
    /// (`residue` names them and what to do); the lock is kept until recovering
    /// `env` succeeds.
    RemoveResidue {
        /// The environment to recover.
        env: String,
        /// The partly-applied migration's error, naming what stays applied.
        residue: String,
        /// A further step owed at the same time (a failed undo, say).
        also: Option<Box<NextStep>>,
    },
    /// Another process (a forced recover) finished this run as `outcome` while it
    /// was still going: check the environment's status before deploying again.
    FinishedElsewhere {
        /// The environment.
        env: String,
        /// How the other process finished it.
        outcome: Outcome,
    },
    /// Another process took this run's lock before it ended, so the run neither
    /// committed nor undid anything: check the status, recover if unfinished.
    LockTakenOver {
        /// The environment.
        env: String,
    },
    /// A journal of environment `env` was given to another environment's recover.
    RecoverOtherEnv {
        /// The journal's own environment.
        env: String,
    },
}

/// How a program words a [`NextStep`] for its humans (the CLI names its commands).
pub type NextStepWords = Arc<dyn Fn(&NextStep) -> String + Send + Sync>;

/// The wording used when the embedder gives none: [`NextStep`]'s `Display`.
pub fn plain_words() -> NextStepWords {
    Arc::new(|step: &NextStep| step.to_string())
}

impl fmt::Display for NextStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextStep::RecoverAfterJournalFailure { env } => write!(
                f,
                "the journal could not be written, so the run stopped where it was; fix the cause, then recover environment {env} to finish the undo"
            ),
            NextStep::FinishUndo { env, failures } => write!(
                f,
                "the undo did not complete ({failures}). The environment is neither fully old nor fully new and the \
                 lock is kept; fix the cause, then recover environment {env}"
            ),
            NextStep::PreviousUnhealthy { env, failures } => write!(
                f,
                "everything this run did was undone, but the previous release is not healthy: {failures}. \
                 Investigate the app and its dependencies; the lock is kept until recovering environment {env} succeeds"
            ),
            NextStep::RemoveResidue { env, residue, also } => match also {
                Some(also) => write!(f, "{residue}; also: {also}"),
                None => write!(
                    f,
                    "{residue}. The lock is kept until recovering environment {env} succeeds"
                ),
            },
            NextStep::FinishedElsewhere { env, outcome } => write!(
                f,
                "another process (a forced recover) finished this run as {outcome} while it was still going; \
                 check the status of environment {env} before deploying again"
            ),
            NextStep::LockTakenOver { env } => write!(
                f,
                "another process took this run's lock (a forced recover or a lock release) before it ended, \
                 so this run neither committed nor undid anything; check the status of environment {env} and \
                 recover it if the run is still unfinished"
            ),
            NextStep::RecoverOtherEnv { env } => write!(f, "recover environment {env}"),
        }
    }
}
