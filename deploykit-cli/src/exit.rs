//! Exit codes: the contract scripts and CI read.

use deploykit_core::{Error, ErrorKind, Outcome, Phase, RunReport};

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
///
/// Kept at 4 rather than sysexits' 75 (EX_TEMPFAIL): 4 is the documented contract
/// since the first release, and CI retry loops already test for it.
pub const LOCKED: u8 = 4;
/// Refused before any change: a gate (a missing approval, a declined prompt), a
/// preflight or policy check (lint in a protected environment, drift, a stale
/// backup), or a rollback/restore that cannot proceed. Nothing was changed, so
/// fixing the cause and running again is safe; unlike 1, no run failed.
pub const REFUSED: u8 = 5;

/// The exit code of a finished run: a run stopped by a refusal in preflight changed
/// nothing and exits [`REFUSED`], not as a failed run.
pub fn for_report(report: &RunReport) -> u8 {
    let refused_in_preflight = report.failed_phase == Some(Phase::Preflight)
        && report
            .failure
            .as_ref()
            .is_some_and(|f| f.kind() == ErrorKind::Refused);
    if report.outcome == Outcome::RolledBack && refused_in_preflight {
        return REFUSED;
    }
    for_outcome(report.outcome)
}

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
        Some(e) if e.kind() == ErrorKind::Refused => REFUSED,
        _ => FAILED,
    }
}
