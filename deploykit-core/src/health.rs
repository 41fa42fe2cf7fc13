//! The `HealthProbe` trait: one check of one thing, reported, never thrown.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// How a checked thing is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working as expected.
    Healthy,
    /// Working, with a reported problem (e.g. a slow dependency).
    Degraded,
    /// Not working.
    Unhealthy,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The probe's name.
    pub probe: String,
    /// What it found.
    pub status: HealthStatus,
    /// How long the check took.
    #[serde(with = "crate::duration_ms")]
    pub latency: Duration,
    /// A short explanation (status code, body excerpt, error), redacted.
    pub detail: String,
}

impl HealthReport {
    /// A report for `probe` with the given status.
    pub fn new(
        probe: impl Into<String>,
        status: HealthStatus,
        latency: Duration,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            probe: probe.into(),
            status,
            latency,
            detail: detail.into(),
        }
    }
}

/// Checks one thing once. Retries, intervals and deadlines belong to
/// [`HealthDriver`](crate::HealthDriver), so probes stay trivial to write and test.
///
/// A failing check is an `Unhealthy` report, not an error: being unhealthy is the
/// answer, not a malfunction of the probe.
///
/// # Example
///
/// A probe that passes when a file exists (say, a worker's heartbeat). The
/// driver retries it under the environment's [`HealthPolicy`](crate::HealthPolicy).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::path::PathBuf;
/// use std::time::Instant;
/// use deploykit_core::{async_trait, HealthProbe, HealthReport, HealthStatus};
///
/// struct Heartbeat(PathBuf);
///
/// #[async_trait]
/// impl HealthProbe for Heartbeat {
///     fn name(&self) -> &str {
///         "worker heartbeat"
///     }
///     async fn check(&self) -> HealthReport {
///         let started = Instant::now();
///         let (status, detail) = match std::fs::metadata(&self.0) {
///             Ok(_) => (HealthStatus::Healthy, "present".to_string()),
///             Err(e) => (HealthStatus::Unhealthy, format!("{}: {e}", self.0.display())),
///         };
///         HealthReport::new(self.name(), status, started.elapsed(), detail)
///     }
/// }
///
/// let report = Heartbeat("/nonexistent/heartbeat".into()).check().await;
/// assert_eq!(report.status, HealthStatus::Unhealthy);
/// # }
/// ```
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// A stable, human-readable name, e.g. `http GET /api/health`.
    fn name(&self) -> &str;
    /// Checks once.
    async fn check(&self) -> HealthReport;
}
