//! Who hears about a run, and when.

use deploykit_core::Secret;
use serde::{Deserialize, Serialize};

/// Notifications.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// A Slack-compatible incoming webhook URL.
    pub webhook: Option<Secret>,
    /// Outcomes announced (default: all).
    #[serde(default)]
    pub on: Vec<NotifyOn>,
}

/// Which outcomes are announced.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    /// The deploy succeeded.
    Success,
    /// The deploy failed and was rolled back.
    Rollback,
    /// The undo failed or the run was interrupted: a human is needed.
    Failure,
}
