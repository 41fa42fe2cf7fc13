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
    /// Only a human can move the run on: do `first` (when given), then recover
    /// the environment to finish what is owed. `env` is `None` where the part
    /// that failed does not know it (an SSH connection, a migration file); a
    /// program that does fills it in with [`NextStep::in_env`].
    Recover {
        /// The environment to recover, when known.
        env: Option<String>,
        /// What to fix by hand before recovering.
        first: Option<String>,
    },
    /// A command may or may not have run, or the hosts disagree: do `first`, then
    /// deploy again, or recover the environment if a run is unfinished.
    DeployAgainOrRecover {
        /// The environment, when known.
        env: Option<String>,
        /// What to check or fix first.
        first: String,
    },
    /// The environment's lock looks stale (its holder is gone or its lease ran
    /// out): check the journal, recover `env`, then release its lock.
    ReleaseStaleLock {
        /// The locked environment.
        env: String,
    },
    /// Someone else released the lock while this process held it: check the
    /// status of `env` before going on.
    CheckStatus {
        /// The environment.
        env: String,
    },
    /// The backup named is not one of the store's: pick one the store lists.
    PickListedBackup {
        /// The environment whose backups to list, when known.
        env: Option<String>,
    },
    /// A backup store could not be reached or refused the request: check its
    /// settings; listing the environment's backups tests the store.
    CheckBackupStore {
        /// The store.
        url: String,
        /// The environment, when known.
        env: Option<String>,
        /// Nothing was recorded (a backup being taken): run again afterwards.
        run_again: bool,
    },
    /// A backup's file does not match its recorded size or checksum: verify it,
    /// and take a new backup instead.
    VerifyBackup {
        /// The environment the backup belongs to.
        env: String,
        /// The backup's path.
        path: String,
    },
    /// A restore was given a backup of another environment (or database): pick
    /// one of `env`'s own, or say on purpose which environment it comes from.
    PickOwnBackup {
        /// The environment being restored.
        env: String,
        /// The environment the backup was taken in, when recorded.
        from: Option<String>,
    },
}

impl NextStep {
    /// The same step, naming `env` where it did not know its environment: the
    /// pipeline (and a program running for one environment) fills it in, so the
    /// human is told which environment to act on.
    pub fn in_env(mut self, env: &str) -> Self {
        match &mut self {
            NextStep::Recover { env: e, .. }
            | NextStep::DeployAgainOrRecover { env: e, .. }
            | NextStep::PickListedBackup { env: e }
            | NextStep::CheckBackupStore { env: e, .. }
                if e.is_none() =>
            {
                *e = Some(env.to_string());
            }
            _ => {}
        }
        self
    }
}

/// "environment X", or "the environment" when it is not known.
fn which(env: &Option<String>) -> String {
    match env {
        Some(env) => format!("environment {env}"),
        None => "the environment".into(),
    }
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
            NextStep::Recover { env, first } => match first {
                Some(first) => write!(f, "{first}, then recover {}", which(env)),
                None => write!(f, "recover {}", which(env)),
            },
            NextStep::DeployAgainOrRecover { env, first } => write!(
                f,
                "{first}, then deploy again, or recover {} to finish an interrupted run",
                which(env)
            ),
            NextStep::ReleaseStaleLock { env } => write!(
                f,
                "check the journal, recover environment {env}, then release its lock"
            ),
            NextStep::CheckStatus { env } => {
                write!(f, "check the status of environment {env} before going on")
            }
            NextStep::PickListedBackup { env } => {
                write!(f, "pick a backup the store lists for {}", which(env))
            }
            NextStep::CheckBackupStore {
                url,
                env,
                run_again,
            } => {
                write!(
                    f,
                    "check that the store is reachable and the bucket exists, and the backup's endpoint, \
                     region and credentials for {url} (listing the backups of {} tests the store)",
                    which(env)
                )?;
                if *run_again {
                    write!(f, "; then run again (no backup was recorded)")?;
                }
                Ok(())
            }
            NextStep::VerifyBackup { env, path } => write!(
                f,
                "verify the backup {path} of environment {env}; take a new backup instead"
            ),
            NextStep::PickOwnBackup { env, from } => {
                write!(
                    f,
                    "pick one of {env}'s own backups, or, to load that environment's data into {env} on purpose, "
                )?;
                match from {
                    Some(from) => write!(f, "say it comes from environment {from}"),
                    None => write!(f, "say which environment it comes from"),
                }
            }
        }
    }
}
