//! [`ContainerHealthProbe`]: a Compose service's own HEALTHCHECK as a [`HealthProbe`].

use async_trait::async_trait;
use deploykit_core::{HealthProbe, HealthReport, HealthStatus};
use tokio::time::Instant;

use crate::engine::{Engine, Health};

/// Reports what the engine says about a service's container: healthy when it runs
/// and its HEALTHCHECK passes (or it runs and defines none, reported as degraded so
/// the missing check is visible), unhealthy otherwise. Runs alongside HTTP probes in
/// the verify phase.
pub struct ContainerHealthProbe {
    engine: Engine,
    project: String,
    service: String,
    name: String,
}

impl std::fmt::Debug for ContainerHealthProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerHealthProbe")
            .field("engine", &self.engine)
            .field("project", &self.project)
            .field("service", &self.service)
            .field("name", &self.name)
            .finish()
    }
}

impl ContainerHealthProbe {
    /// A probe of `service` in compose `project`.
    pub fn new(engine: Engine, project: &str, service: &str) -> Self {
        Self {
            name: format!("container {project}/{service}"),
            engine,
            project: project.to_string(),
            service: service.to_string(),
        }
    }
}

#[async_trait]
impl HealthProbe for ContainerHealthProbe {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> HealthReport {
        let started = Instant::now();
        let found = self
            .engine
            .service_container(&self.project, &self.service)
            .await;
        let (status, detail) = match found {
            Err(e) => (HealthStatus::Unhealthy, e.to_string()),
            Ok(None) => (
                HealthStatus::Unhealthy,
                format!("no container of {}/{} exists", self.project, self.service),
            ),
            Ok(Some(c)) => {
                let status = match (c.status.as_str(), c.health) {
                    ("running", Some(Health::Healthy)) => HealthStatus::Healthy,
                    ("running", None) => HealthStatus::Degraded,
                    _ => HealthStatus::Unhealthy,
                };
                (status, c.describe())
            }
        };
        HealthReport::new(&self.name, status, started.elapsed(), detail)
    }
}
