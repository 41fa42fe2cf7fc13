//! The phases of a run, in order.

use serde::{Deserialize, Serialize};

/// One phase of a deploy. Prepare and backup run concurrently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Lock, gates, plan checks; changes nothing.
    Preflight,
    /// Stage the release next to the live one.
    Prepare,
    /// Take a verified backup.
    Backup,
    /// Apply pending migrations.
    Migrate,
    /// Switch traffic to the new release.
    Activate,
    /// Run the health probes.
    Verify,
    /// Mark done, prune, release the lock.
    Commit,
    /// Undo what was done, newest first.
    Compensate,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Phase::Preflight => "preflight",
            Phase::Prepare => "prepare",
            Phase::Backup => "backup",
            Phase::Migrate => "migrate",
            Phase::Activate => "activate",
            Phase::Verify => "verify",
            Phase::Commit => "commit",
            Phase::Compensate => "compensate",
        };
        f.write_str(s)
    }
}
