//! Hooks: the operator's own argv commands at fixed points of a deploy (warm a
//! cache after activate, tell a chat after the run, refuse a deploy in a freeze).
//!
//! Hooks are data ([`Hook`]); how they are run is one small trait
//! ([`HookRunner`]) so the pipeline's rules about them (which failures undo, which
//! only warn) are proven with an in-memory twin and the real runner
//! ([`ShellHookRunner`]) runs them on this machine or on the target's hosts over the
//! run's shells.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

mod shell_runner;

pub use shell_runner::ShellHookRunner;

/// How long a hook may run unless configured otherwise.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// How many lines of a hook's output reach the events (the last ones).
pub const HOOK_OUTPUT_LINES: usize = 20;

/// Where in a deploy a hook runs, in run order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPoint {
    /// After preflight, before anything changes; its failure refuses the run.
    PreDeploy,
    /// After migrations were applied; its failure undoes the run.
    PostMigrate,
    /// After the new release went live, before verify; its failure undoes the run.
    PostActivate,
    /// After the commit; its failure is a warning (the release stays).
    PostDeploy,
    /// After an undo (of a failed run or by `recover`); its failure is a warning.
    OnRollback,
}

impl HookPoint {
    /// Every point, in run order.
    pub const ALL: [HookPoint; 5] = [
        HookPoint::PreDeploy,
        HookPoint::PostMigrate,
        HookPoint::PostActivate,
        HookPoint::PostDeploy,
        HookPoint::OnRollback,
    ];

    /// The point's name in config, events and `DEPLOYKIT_HOOK`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPoint::PreDeploy => "pre_deploy",
            HookPoint::PostMigrate => "post_migrate",
            HookPoint::PostActivate => "post_activate",
            HookPoint::PostDeploy => "post_deploy",
            HookPoint::OnRollback => "on_rollback",
        }
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HookPoint {
    type Err = String;

    /// Parses a point's name; the error lists the names that exist.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        HookPoint::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = HookPoint::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown hook point `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Where a hook's command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPlace {
    /// On the machine running deploykit (a CI runner, a laptop).
    Local,
    /// On each of the target's hosts, one after another.
    Hosts,
}

/// One hook: an argv command run at `point`, on `runs_on`, for at most `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// When it runs.
    pub point: HookPoint,
    /// The program and its arguments (never interpreted by a shell here).
    pub argv: Vec<String>,
    /// Where it runs.
    pub runs_on: HookPlace,
    /// Killed and failed after this long.
    pub timeout: Duration,
}

impl Hook {
    /// A hook with the default timeout.
    pub fn new(point: HookPoint, runs_on: HookPlace, argv: Vec<String>) -> Self {
        Self {
            point,
            argv,
            runs_on,
            timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command for humans: argv words quoted by [`crate::shell::quote`], with
    /// masked secrets redacted (it goes into errors, events and the journal).
    pub fn command(&self) -> String {
        let words: Vec<String> = self.argv.iter().map(|w| crate::shell::quote(w)).collect();
        crate::secret::redact(&words.join(" "), &[])
    }
}

/// What one hook did in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    /// Where it ran (`local`, or the host's location).
    pub location: String,
    /// Its exit status, if it exited (none when it timed out or could not start).
    pub status: Option<i32>,
    /// The last lines of its stdout and stderr.
    pub output: Vec<String>,
    /// Why it failed, if it did (a non-zero exit, the timeout, a dead connection).
    pub error: Option<String>,
}

impl HookRun {
    /// Whether it exited 0.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Runs hooks. The pipeline calls it once per hook; it runs the hook in every
/// place the hook names and reports each place, never stopping at a failure
/// itself (what a failure means is the pipeline's rule, by point).
#[async_trait]
pub trait HookRunner: Send + Sync {
    /// Runs `hook` with the environment variables `vars` (not secret: they are
    /// passed as plain env assignments) and returns one [`HookRun`] per place.
    async fn run(&self, hook: &Hook, vars: &[(String, String)]) -> Vec<HookRun>;
}

/// An environment's hooks and who runs them, as the pipeline holds them.
#[derive(Clone)]
pub struct Hooks {
    /// The hooks, in configured order (those of one point run in this order).
    pub list: Vec<Hook>,
    /// Their runner.
    pub runner: std::sync::Arc<dyn HookRunner>,
}

impl Hooks {
    /// The hooks of `point`, in order.
    pub fn at(&self, point: HookPoint) -> impl Iterator<Item = &Hook> {
        self.list.iter().filter(move |h| h.point == point)
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("list", &self.list)
            .finish_non_exhaustive()
    }
}

/// The last `n` lines of `text`.
pub(crate) fn last_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}
