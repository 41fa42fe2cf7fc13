//! Applies retries, an interval and a deadline to a set of probes.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::event::{Event, Events};
use crate::health::{HealthProbe, HealthReport, HealthStatus};

/// When a set of probes counts as passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthPolicy {
    /// Give up after this long in total.
    #[serde(with = "crate::duration_ms")]
    pub deadline: Duration,
    /// Give up after this many rounds.
    pub attempts: u32,
    /// Wait between rounds.
    #[serde(with = "crate::duration_ms")]
    pub interval: Duration,
    /// Count `degraded` as passing (with a warning event).
    pub accept_degraded: bool,
}

impl Default for HealthPolicy {
    /// The seeds' 30 tries × 5 s, within 150 s.
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(150),
            attempts: 30,
            interval: Duration::from_secs(5),
            accept_degraded: true,
        }
    }
}

/// The verdict of a driver run: the last report of every probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthVerdict {
    /// All probes passed in the same round.
    pub passed: bool,
    /// Rounds run.
    pub rounds: u32,
    /// The last report of each probe, in probe order.
    pub reports: Vec<HealthReport>,
}

impl HealthVerdict {
    /// One line naming each probe that did not pass, for errors.
    pub fn failures(&self) -> String {
        self.reports
            .iter()
            .filter(|r| r.status != HealthStatus::Healthy)
            .map(|r| format!("{}: {:?} ({})", r.probe, r.status, r.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Runs a set of probes in rounds until all pass, the attempts run out, or the
/// deadline passes. A probe that hangs is cut off at the deadline and reported
/// unhealthy, so a hung endpoint cannot hang a deploy.
pub struct HealthDriver {
    probes: Vec<Arc<dyn HealthProbe>>,
    policy: HealthPolicy,
}

impl std::fmt::Debug for HealthDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthDriver")
            .field(
                "probes",
                &self.probes.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .field("policy", &self.policy)
            .finish()
    }
}

impl HealthDriver {
    /// A driver for `probes` under `policy`.
    pub fn new(probes: Vec<Arc<dyn HealthProbe>>, policy: HealthPolicy) -> Self {
        Self { probes, policy }
    }

    /// Runs rounds until a verdict; emits one event per probe attempt.
    pub async fn run(&self, events: &Events) -> HealthVerdict {
        let started = Instant::now();
        let deadline = started + self.policy.deadline;
        let mut rounds = 0;
        let mut reports = Vec::new();
        while rounds < self.policy.attempts.max(1) {
            rounds += 1;
            let checks = self
                .probes
                .iter()
                .map(|p| check_until(p.as_ref(), deadline));
            reports = futures::future::join_all(checks).await;
            for report in &reports {
                events.emit(Event::HealthAttempt {
                    probe: report.probe.clone(),
                    attempt: rounds,
                    status: report.status,
                    latency_ms: report.latency.as_millis() as u64,
                    detail: report.detail.clone(),
                });
            }
            if reports.iter().all(|r| self.passes(r)) {
                for r in reports
                    .iter()
                    .filter(|r| r.status == HealthStatus::Degraded)
                {
                    events.emit(Event::Warning {
                        message: format!("{} is degraded: {}", r.probe, r.detail),
                    });
                }
                return HealthVerdict {
                    passed: true,
                    rounds,
                    reports,
                };
            }
            let next = Instant::now() + self.policy.interval;
            if rounds >= self.policy.attempts || next >= deadline {
                break;
            }
            tokio::time::sleep_until(next).await;
        }
        HealthVerdict {
            passed: false,
            rounds,
            reports,
        }
    }

    fn passes(&self, report: &HealthReport) -> bool {
        match report.status {
            HealthStatus::Healthy => true,
            HealthStatus::Degraded => self.policy.accept_degraded,
            HealthStatus::Unhealthy => false,
        }
    }
}

async fn check_until(probe: &dyn HealthProbe, deadline: Instant) -> HealthReport {
    let started = Instant::now();
    let guarded = std::panic::AssertUnwindSafe(probe.check()).catch_unwind();
    match tokio::time::timeout_at(deadline, guarded).await {
        Ok(Ok(report)) => report,
        Ok(Err(panic)) => HealthReport::new(
            probe.name(),
            HealthStatus::Unhealthy,
            started.elapsed(),
            format!(
                "the probe panicked: {}",
                crate::pipeline::guard::panic_message(&panic)
            ),
        ),
        Err(_) => HealthReport::new(
            probe.name(),
            HealthStatus::Unhealthy,
            started.elapsed(),
            "no answer before the health deadline",
        ),
    }
}
