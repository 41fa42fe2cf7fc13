//! The health gate between the batches of a rolling rollout: each switched host
//! must pass its own probes (tried a few times, as a starting app needs a moment)
//! before the next batch is switched.

use futures::stream::{self, StreamExt};

use super::Fleet;
use crate::health::HealthStatus;

impl Fleet {
    /// Probes the hosts `idx` (concurrently, bounded by `max_parallel`) until every
    /// gate probe of a host is healthy or the rounds run out; one failure line
    /// (host, probe, detail) per host that never passed.
    pub(super) async fn gate_batch(&self, idx: &[usize]) -> Vec<String> {
        let (attempts, interval) = self.gate_rounds;
        let mut failed: Vec<(usize, String)> = stream::iter(idx.iter().copied())
            .filter(|i| std::future::ready(!self.gates[*i].is_empty()))
            .map(|i| async move {
                let mut last = String::new();
                for round in 0..attempts {
                    if round > 0 {
                        tokio::time::sleep(interval).await;
                    }
                    let mut sick = Vec::new();
                    for probe in &self.gates[i] {
                        let report = probe.check().await;
                        if report.status != HealthStatus::Healthy {
                            sick.push(format!("{}: {}", probe.name(), report.detail));
                        }
                    }
                    if sick.is_empty() {
                        return None;
                    }
                    last = sick.join(", ");
                }
                Some((
                    i,
                    format!(
                        "{}: not healthy after {attempts} tr{}: {last}",
                        self.names[i],
                        if attempts == 1 { "y" } else { "ies" }
                    ),
                ))
            })
            .buffer_unordered(self.max_parallel)
            .filter_map(std::future::ready)
            .collect()
            .await;
        failed.sort_by_key(|(i, _)| *i);
        failed.into_iter().map(|(_, line)| line).collect()
    }
}
