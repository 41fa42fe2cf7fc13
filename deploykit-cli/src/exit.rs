//! Exit codes: the contract scripts and CI read.

use deploykit_core::{Error, Outcome};

use crate::config::ConfigError;
use crate::wiring::WiringError;

/// The run succeeded (or the command did what was asked).
pub const OK: u8 = 0;
/// The deploy failed and was rolled back; or a command failed and changed nothing.
pub const FAILED: u8 = 1;
/// Bad usage or config: nothing was attempted.
pub const USAGE: u8 = 2;
/// The rollback failed or the run was interrupted: a human is needed.
pub const HUMAN_NEEDED: u8 = 3;
/// The environment is locked by another deploy.
pub const LOCKED: u8 = 4;

/// The exit code of a finished run.
pub fn for_outcome(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Succeeded => OK,
        Outcome::RolledBack => FAILED,
        Outcome::RollbackFailed | Outcome::Interrupted => HUMAN_NEEDED,
    }
}

/// The exit code of an error that stopped a command before (or instead of) a run.
pub fn for_error(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<ConfigError>().is_some() || err.downcast_ref::<WiringError>().is_some() {
        return USAGE;
    }
    match err.downcast_ref::<Error>() {
        Some(Error::Locked { .. }) => LOCKED,
        Some(Error::Invalid { .. }) => USAGE,
        _ => FAILED,
    }
}
