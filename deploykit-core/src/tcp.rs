//! [`TcpProbe`]: can a TCP connection be opened? The simplest liveness check
//! (a database port, a Redis, an app before its HTTP layer is up).

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::health::{HealthProbe, HealthReport, HealthStatus};

/// Connects to `host:port` once. Connected within `max_latency`: healthy;
/// slower: degraded; refused, unresolvable or not within the timeout: unhealthy.
#[derive(Debug, Clone)]
pub struct TcpProbe {
    name: String,
    address: String,
    max_latency: Duration,
    timeout: Duration,
}

impl TcpProbe {
    /// A probe of `address` (`host:port`), degraded above 1 s, timeout 5 s.
    pub fn new(address: impl Into<String>) -> Self {
        let address = address.into();
        Self {
            name: format!("tcp {address}"),
            address,
            max_latency: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
        }
    }

    /// Slower connects are degraded.
    pub fn max_latency(mut self, max: Duration) -> Self {
        self.max_latency = max;
        self
    }

    /// No connection within this is unhealthy.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl HealthProbe for TcpProbe {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> HealthReport {
        let started = Instant::now();
        let attempt = tokio::time::timeout(
            self.timeout,
            tokio::net::TcpStream::connect(self.address.as_str()),
        )
        .await;
        let latency = started.elapsed();
        let (status, detail) = match attempt {
            Ok(Ok(_stream)) if latency > self.max_latency => (
                HealthStatus::Degraded,
                format!("connected in {latency:?} (> {:?})", self.max_latency),
            ),
            Ok(Ok(_stream)) => (HealthStatus::Healthy, format!("connected in {latency:?}")),
            Ok(Err(e)) => (HealthStatus::Unhealthy, format!("cannot connect: {e}")),
            Err(_) => (
                HealthStatus::Unhealthy,
                format!("no connection within {:?}", self.timeout),
            ),
        };
        HealthReport::new(&self.name, status, latency, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_port_is_healthy_closed_port_unhealthy() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // Connect latency cannot be "slow" on loopback, so degradation is shown
        // with a zero threshold rather than a timed assertion.
        let report = TcpProbe::new(&addr).check().await;
        assert_ne!(report.status, HealthStatus::Unhealthy, "{report:?}");
        let report = TcpProbe::new(&addr)
            .max_latency(Duration::ZERO)
            .check()
            .await;
        assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
        drop(listener);
        let report = TcpProbe::new(&addr).check().await;
        assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
        assert!(report.detail.contains("cannot connect"), "{report:?}");
    }
}
