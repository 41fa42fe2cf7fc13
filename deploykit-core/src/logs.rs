//! The last lines a release's processes printed: shown when verify fails, so the
//! person deploying sees why the new release is unhealthy without logging in.

use serde::{Deserialize, Serialize};

/// The last lines of one source of a release's output: one PM2 process's out or
/// err log on one host, or one container's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLines {
    /// Where they come from, for humans: host, process and stream
    /// (`deploy@web1: web[3] stderr`), or the container.
    pub source: String,
    /// The lines, oldest first, as the app printed them (deploykit's own secrets
    /// redacted).
    pub lines: Vec<String>,
}

impl LogLines {
    /// These lines with every secret deploykit knows (and URL passwords) removed:
    /// the app may print its own config, which holds deploykit's database URL.
    pub fn redacted(self) -> Self {
        Self {
            source: crate::secret::redact(&self.source, &[]),
            lines: self
                .lines
                .iter()
                .map(|l| crate::secret::redact(l, &[]))
                .collect(),
        }
    }
}

/// How many lines per source the pipeline reads when verify fails.
pub const FAILURE_LOG_LINES: usize = 30;
