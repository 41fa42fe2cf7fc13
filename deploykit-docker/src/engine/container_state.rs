//! What the engine says about a container: its state and health, read from
//! `docker inspect`.

use bollard::models::{ContainerInspectResponse, HealthStatusEnum};

/// What the engine says about a service's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// The container's id.
    pub id: String,
    /// Its name, without the leading `/`.
    pub name: String,
    /// The image reference it was created from (e.g. `crm/backend:20261126T100000Z-abc1234`).
    pub image: String,
    /// The image id it runs.
    pub image_id: String,
    /// `running`, `exited`, `restarting`…
    pub status: String,
    /// The HEALTHCHECK's verdict, `None` when the image defines none.
    pub health: Option<Health>,
    /// Exit code, meaningful when not running.
    pub exit_code: i64,
    /// How often the engine restarted it (a `restart:` policy): a crash-looping
    /// container may look `running` between two crashes.
    pub restart_count: i64,
}

/// A container HEALTHCHECK's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Still within its start period, not yet decided.
    Starting,
    /// Its last checks passed.
    Healthy,
    /// It failed its checks `retries` times in a row.
    Unhealthy,
}

impl ContainerState {
    /// Running, and healthy if it has a HEALTHCHECK.
    pub fn is_serving(&self) -> bool {
        self.status == "running" && matches!(self.health, None | Some(Health::Healthy))
    }

    /// One line for humans.
    pub fn describe(&self) -> String {
        let health = match self.health {
            None => "no HEALTHCHECK",
            Some(Health::Starting) => "health: starting",
            Some(Health::Healthy) => "health: healthy",
            Some(Health::Unhealthy) => "health: unhealthy",
        };
        if self.status == "running" {
            format!("{} ({}) running, {health}", self.name, self.image)
        } else {
            format!(
                "{} ({}) {} with exit code {}",
                self.name, self.image, self.status, self.exit_code
            )
        }
    }
}

pub(super) fn state_of(id: &str, c: ContainerInspectResponse) -> ContainerState {
    let state = c.state.unwrap_or_default();
    let health = state.health.and_then(|h| h.status).and_then(|s| match s {
        HealthStatusEnum::STARTING => Some(Health::Starting),
        HealthStatusEnum::HEALTHY => Some(Health::Healthy),
        HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
        _ => None,
    });
    ContainerState {
        id: c.id.unwrap_or_else(|| id.to_string()),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: c.config.and_then(|cfg| cfg.image).unwrap_or_default(),
        image_id: c.image.unwrap_or_default(),
        status: state
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into()),
        health,
        exit_code: state.exit_code.unwrap_or(0),
        restart_count: c.restart_count.unwrap_or(0),
    }
}
