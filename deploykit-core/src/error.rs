//! The one error type every part returns.
//!
//! Variants carry the context a human needs to act: where (host, step), what (the
//! command or message, already redacted) and what to do next. Adapters keep their own
//! private error enums and convert into [`Error::Part`], keeping theirs as its
//! `source`. Code that decides (retry, which hint) asks [`Error::kind`], never the
//! message's words.
//!
//! Where the next action is one of the embedder's commands (recover, release the
//! lock, list backups…) the error carries it as a [`NextStep`]
//! ([`Error::next_step`]): `Display` says it without naming a program, and a program
//! words it with its own commands ([`Error::worded`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::lock::LockHolder;
use crate::next_step::NextStep;

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
    #[error("{step} failed on {location}: {message}{}", hint_suffix(.hint, .next_step))]
    Part {
        /// The step that failed, e.g. `activate` or `backup.verify`.
        step: String,
        /// Where it ran: a host, a database, an engine.
        location: String,
        /// What happened, already redacted; may hold a command's output tail.
        message: String,
        /// What a human should do next, when the part knows. (`Box<str>`, like the
        /// boxed step, so every `Result` stays small.)
        hint: Option<Box<str>>,
        /// The next action as data, when it is one a program words with its own
        /// commands (recover, deploy again…); said after `hint`.
        next_step: Option<Box<NextStep>>,
        /// What kind of failure it is, for code that decides (retry, hints).
        kind: ErrorKind,
        /// The underlying error, when there is one (an adapter's own error, an
        /// I/O error); its text is already in `message`.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
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

    /// Like [`Error::Refused`], when the way on is one of the embedder's commands
    /// (recover, check the status…): the step is data, so the program that talks
    /// to the human words it ([`Error::worded`]); `Display` says it plainly.
    #[error("refused: {reason}; next: {next}")]
    RefusedUntil {
        /// Why it stopped.
        reason: String,
        /// What the user must do before going on.
        next: NextStep,
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

    /// Another deploy holds the environment's lock. When it looks stale, its next
    /// step is [`NextStep::ReleaseStaleLock`].
    #[error("environment {env} is locked by {holder}{}", stale_suffix(env, *.stale))]
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
    /// script or undo can know exactly what to remove. Its next step is
    /// [`NextStep::Recover`] after removing them.
    #[error("{message}; {migration} runs outside a transaction, so these of its statements stay applied: {}; next: {}", .remains.join("; "), partly_applied_step())]
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

/// What kind of failure an [`Error`] is: what code decides on (whether to retry,
/// which hint to give), so no decision depends on an error message's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A value had the wrong shape; nothing was changed.
    Invalid,
    /// A rule or a human said no before anything changed.
    Refused,
    /// The network or a server was briefly unavailable; trying again soon may work.
    Transient,
    /// A step did not finish within its deadline.
    Timeout,
    /// A disk (or quota) was full.
    DiskFull,
    /// Something that should exist does not.
    NotFound,
    /// Another deploy holds the lock.
    Locked,
    /// The journal could not be written or read.
    Journal,
    /// A migration failed part-way and left statements applied.
    PartlyApplied,
    /// A part panicked.
    Panicked,
    /// Any other failure.
    Failed,
}

fn hint_suffix(hint: &Option<Box<str>>, step: &Option<Box<NextStep>>) -> String {
    match (hint, step) {
        (Some(h), Some(s)) => format!("; next: {h}; {s}"),
        (Some(h), None) => format!("; next: {h}"),
        (None, Some(s)) => format!("; next: {s}"),
        (None, None) => String::new(),
    }
}

fn stale_suffix(env: &str, stale: bool) -> String {
    if stale {
        format!(
            " (the lock looks stale: its holder is gone or its lease expired; {})",
            stale_lock_step(env)
        )
    } else {
        String::new()
    }
}

fn stale_lock_step(env: &str) -> NextStep {
    NextStep::ReleaseStaleLock {
        env: env.to_string(),
    }
}

fn partly_applied_step() -> NextStep {
    NextStep::Recover {
        env: None,
        first: Some("remove them by hand (or finish the migration by hand)".into()),
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
            next_step: None,
            kind: ErrorKind::Failed,
            source: None,
        }
    }

    /// What kind of failure this is; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::Part { kind, .. } => *kind,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Policy { .. } | Error::Refused { .. } | Error::RefusedUntil { .. } => {
                ErrorKind::Refused
            }
            Error::Panicked { .. } => ErrorKind::Panicked,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::Journal { .. } => ErrorKind::Journal,
            Error::PartlyApplied { .. } => ErrorKind::PartlyApplied,
            Error::Io { source, .. } => io_kind(source),
        }
    }

    /// Sets the kind of a part failure; other variants have a fixed kind.
    pub fn with_kind(mut self, new: ErrorKind) -> Self {
        if let Error::Part { kind, .. } = &mut self {
            *kind = new;
        }
        self
    }

    /// Keeps `cause` as the source of a part failure (its text stays in the
    /// message); other variants are unchanged.
    pub fn with_source(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let Error::Part { source, .. } = &mut self {
            *source = Some(Box::new(cause));
        }
        self
    }

    /// Adds (or replaces) the "what next" of a part failure; other variants are unchanged.
    pub fn with_hint(mut self, next: impl Into<String>) -> Self {
        if let Error::Part { hint, .. } = &mut self {
            *hint = Some(next.into().into_boxed_str());
        }
        self
    }

    /// Sets the next step of a part failure (said after its hint, if any); other
    /// variants are unchanged.
    pub fn with_next_step(mut self, step: NextStep) -> Self {
        if let Error::Part { next_step, .. } = &mut self {
            *next_step = Some(Box::new(step));
        }
        self
    }

    /// The next action a human must take, as data, when it is one a program
    /// words with its own commands; `Display` says it without naming a program.
    pub fn next_step(&self) -> Option<NextStep> {
        match self {
            Error::Part { next_step, .. } => next_step.as_deref().cloned(),
            Error::RefusedUntil { next, .. } => Some(next.clone()),
            Error::Locked { env, stale, .. } => stale.then(|| stale_lock_step(env)),
            Error::PartlyApplied { .. } => Some(partly_applied_step()),
            _ => None,
        }
    }

    /// This error's text with its next step worded by `words` (a program's own
    /// commands) instead of plainly; the same as `to_string()` without a step.
    pub fn worded(&self, words: &dyn Fn(&NextStep) -> String) -> String {
        let text = self.to_string();
        match self.next_step() {
            Some(step) => text.replacen(&step.to_string(), &words(&step), 1),
            None => text,
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

/// The kind of a local I/O failure, from the OS's own code.
pub(crate) fn io_kind(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as Io;
    match e.kind() {
        Io::StorageFull | Io::QuotaExceeded => ErrorKind::DiskFull,
        Io::NotFound => ErrorKind::NotFound,
        Io::TimedOut => ErrorKind::Timeout,
        Io::ConnectionRefused | Io::ConnectionReset | Io::ConnectionAborted | Io::Interrupted => {
            ErrorKind::Transient
        }
        // ENOSPC and EDQUOT, for errors built from a raw code on older std.
        _ if matches!(e.raw_os_error(), Some(28) | Some(122)) => ErrorKind::DiskFull,
        _ => ErrorKind::Failed,
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
