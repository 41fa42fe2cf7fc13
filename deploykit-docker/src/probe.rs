//! [`ContainerHealthProbe`]: a Compose service's own HEALTHCHECK as a [`HealthProbe`].

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use deploykit_core::{HealthProbe, HealthReport, HealthStatus};
use tokio::time::Instant;

use crate::engine::{ContainerState, Engine, Health};

/// How long a container without a HEALTHCHECK must be seen running before it
/// counts (see [`ContainerHealthProbe::settle`]).
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(3);

/// Reports what the engine says about a service's container: healthy when it runs
/// and its HEALTHCHECK passes (or it runs and defines none, reported as degraded so
/// the missing check is visible), unhealthy otherwise. Runs alongside HTTP probes in
/// the verify phase.
///
/// A container without a HEALTHCHECK (a worker with no port) says nothing about
/// itself but that it runs, and a worker that dies on start-up (a queue it cannot
/// reach) runs for a moment first. So it counts only once this probe has seen the
/// same container running, without a restart, for the settle time; until then it
/// is reported unhealthy and verify asks again.
pub struct ContainerHealthProbe {
    engine: Engine,
    project: String,
    service: String,
    name: String,
    settle: Duration,
    /// The container (id, restart count) seen running without a HEALTHCHECK, and
    /// since when.
    seen: Mutex<Option<(String, i64, Instant)>>,
    /// For a service deployed with others ([`crate::ComposeServices`]): how to
    /// tell that the live release leaves it out.
    membership: Option<Membership>,
}

/// How a probe of one of several services tells whether the live release has it.
#[derive(Debug, Clone)]
struct Membership {
    primary_service: String,
    primary_repo: String,
    repo: String,
}

impl std::fmt::Debug for ContainerHealthProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerHealthProbe")
            .field("engine", &self.engine)
            .field("project", &self.project)
            .field("service", &self.service)
            .field("name", &self.name)
            .field("settle", &self.settle)
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
            settle: DEFAULT_SETTLE,
            seen: Mutex::new(None),
            membership: None,
        }
    }

    /// A probe of `service`, released with `primary` as in
    /// [`crate::ComposeServices`]: when `service` has no container and the release
    /// `primary` runs has no `<repo>:<release>` tag, the release does not include
    /// the service (it is new in a release that was rolled back), which is healthy.
    pub(crate) fn member_of(
        mut self,
        primary_service: &str,
        primary_repo: &str,
        repo: &str,
    ) -> Self {
        self.membership = Some(Membership {
            primary_service: primary_service.to_string(),
            primary_repo: primary_repo.to_string(),
            repo: repo.to_string(),
        });
        self
    }

    /// The live release, when it leaves this probe's service out.
    async fn left_out(&self) -> Option<String> {
        let m = self.membership.as_ref()?;
        let primary = self
            .engine
            .service_container(&self.project, &m.primary_service)
            .await
            .ok()??;
        if primary.status != "running" {
            return None;
        }
        let tag = primary
            .image
            .strip_prefix(&format!("{}:", m.primary_repo))?;
        let own = format!("{}:{tag}", m.repo);
        match self.engine.image_exists(&own).await {
            Ok(false) => Some(tag.to_string()),
            _ => None,
        }
    }

    /// How long a container without a HEALTHCHECK must stay up, seen by this
    /// probe, before it passes (default [`DEFAULT_SETTLE`]). Containers with a
    /// HEALTHCHECK pass on `healthy` at once.
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// The verdict on a running container without a HEALTHCHECK.
    fn settled(&self, c: &ContainerState) -> (HealthStatus, String) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let since = match seen.as_ref() {
            Some((id, restarts, since)) if *id == c.id && *restarts == c.restart_count => *since,
            _ => {
                let now = Instant::now();
                *seen = Some((c.id.clone(), c.restart_count, now));
                now
            }
        };
        let up = since.elapsed();
        if up >= self.settle {
            (HealthStatus::Degraded, c.describe())
        } else {
            (
                HealthStatus::Unhealthy,
                format!(
                    "{}; seen up for {:.1}s of the {:.1}s it must stay up",
                    c.describe(),
                    up.as_secs_f64(),
                    self.settle.as_secs_f64()
                ),
            )
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
            Ok(None) => match self.left_out().await {
                Some(release) => (
                    HealthStatus::Healthy,
                    format!(
                        "{}/{} is not part of the live release {release}",
                        self.project, self.service
                    ),
                ),
                None => (
                    HealthStatus::Unhealthy,
                    format!("no container of {}/{} exists", self.project, self.service),
                ),
            },
            Ok(Some(c)) => match (c.status.as_str(), c.health) {
                ("running", Some(Health::Healthy)) => (HealthStatus::Healthy, c.describe()),
                ("running", None) => self.settled(&c),
                _ => (HealthStatus::Unhealthy, c.describe()),
            },
        };
        HealthReport::new(&self.name, status, started.elapsed(), detail)
    }
}
