//! The rules an environment's secrets (env file) must meet.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Rules for `secrets check`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The env file holding the app's secrets.
    pub env_file: Option<PathBuf>,
    /// Keys that must be present and non-empty.
    #[serde(default)]
    pub required: Vec<String>,
    /// Minimum lengths by key, in addition to the built-in rules.
    #[serde(default)]
    pub min_length: BTreeMap<String, usize>,
}
