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
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// A stable, human-readable name, e.g. `http GET /api/health`.
    fn name(&self) -> &str;
    /// Checks once.
    async fn check(&self) -> HealthReport;
}
