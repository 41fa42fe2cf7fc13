//! The one error type every part returns.
//!
//! Variants carry the context a human needs to act: where (host, step), what (the
//! command or message, already redacted) and what to do next. Adapters keep their own
//! private error enums and convert into [`Error::Part`].

use std::path::PathBuf;
use std::time::Duration;

use crate::lock::LockHolder;

/// Convenient alias used throughout deploykit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a deploy, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value supplied by the user does not have the required shape; nothing was changed.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What kind of value it was (release id, service name, path…).
        what: &'static str,
        /// The offending value, shortened.
        value: String,
        /// Why it was refused.
        reason: String,
    },

    /// A part (target, migrator, backup, probe) failed doing its work.
    #[error("{step} failed on {location}: {message}{}", hint_suffix(.hint))]
    Part {
        /// The step that failed, e.g. `activate` or `backup.verify`.
        step: String,
        /// Where it ran: a host, a database, an engine.
        location: String,
        /// What happened, already redacted; may hold a command's output tail.
        message: String,
        /// What a human should do next, when the part knows.
        hint: Option<String>,
    },

    /// A step did not finish within its deadline.
    #[error("{step} did not finish within {after:?} on {location}")]
    Timeout {
        /// The step that hung.
        step: String,
        /// Where it ran.
        location: String,
        /// The deadline that passed.
        after: Duration,
    },

    /// A policy refused to go on, e.g. migrations without a fresh backup.
    #[error("refused: {reason}; next: {next}")]
    Refused {
        /// Why the run stopped.
        reason: String,
        /// What the user can do about it.
        next: String,
    },

    /// A rule of this environment (its policy, or the state it found) stopped the
    /// run before the step it guards changed anything; the reason says what to do.
    #[error("{reason}")]
    Policy {
        /// Why, and what to do about it.
        reason: String,
    },

    /// A part panicked; the run treats it like a failure of that step.
    #[error("{step} panicked: {message}")]
    Panicked {
        /// The step whose part panicked.
        step: String,
        /// The panic's message.
        message: String,
    },

    /// Another deploy holds the environment's lock.
    #[error("environment {env} is locked by {holder}{}", if *.stale { " (the lock looks stale: its holder is gone or its lease expired; check the journal, run `deploykit recover`, then `deploykit lock release`)" } else { "" })]
    Locked {
        /// The environment asked for.
        env: String,
        /// Who holds it.
        holder: Box<LockHolder>,
        /// The holder is gone: its process died on this machine, its lease
        /// expired, or the lock file is unreadable.
        stale: bool,
    },

    /// The journal could not be written or read: the run stops touching the world.
    #[error("journal {path}: {message}")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A migration that runs outside a transaction failed part-way: the statements
    /// before the failing one stay applied, it is not recorded, and no down
    /// script or undo can know exactly what to remove.
    #[error("{message}; {migration} runs outside a transaction, so these of its statements stay applied: {}; next: remove them by hand (or finish the migration by hand), then run `deploykit recover`", .remains.join("; "))]
    PartlyApplied {
        /// The migration (file name).
        migration: String,
        /// The statements that ran before the failure (first lines, shortened).
        remains: Vec<String>,
        /// The failure itself, with step and location.
        message: String,
    },

    /// A local file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    match hint {
        Some(h) => format!("; next: {h}"),
        None => String::new(),
    }
}

impl Error {
    /// Shorthand for a part failure without a hint.
    pub fn part(
        step: impl Into<String>,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Part {
            step: step.into(),
            location: location.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// Adds (or replaces) the "what next" of a part failure; other variants are unchanged.
    pub fn with_hint(self, next: impl Into<String>) -> Self {
        match self {
            Error::Part {
                step,
                location,
                message,
                ..
            } => Error::Part {
                step,
                location,
                message,
                hint: Some(next.into()),
            },
            other => other,
        }
    }

    /// Wraps an I/O error with the action and path it happened on.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
