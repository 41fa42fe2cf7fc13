//! The Docker engine through bollard, over a unix socket.
//!
//! There is one code path for a local and a remote engine: a remote host's socket is
//! forwarded over the run's SSH connection to a local unix socket, and [`Engine`]
//! connects to that socket exactly as it would to `/var/run/docker.sock`. Only the
//! `location` (used in errors) tells them apart.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use deploykit_core::{Error, Result};
use futures::StreamExt;

mod container_state;
mod exec;
mod images;
mod services;

use container_state::state_of;
pub use container_state::{ContainerState, Health};
pub use exec::{ByteStream, ExecOutput};

/// Compose's label naming a container's project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// Compose's label naming a container's service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// Compose's label marking one-off (`compose run`) containers.
pub const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// A connected, version-negotiated Docker engine, and where it is (for errors).
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    location: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("location", &self.location)
            .finish()
    }
}

impl Engine {
    /// Connects to the engine at `socket` (`/path/docker.sock` or `unix:///path`) and
    /// negotiates the API version (Debian's engine speaks an older one than bollard).
    /// `location` names the engine in errors, e.g. `docker engine on deploy@10.0.0.5`.
    pub async fn connect(socket: &str, location: impl Into<String>) -> Result<Self> {
        let location = location.into();
        let docker = Docker::connect_with_unix(socket, 120, API_DEFAULT_VERSION).map_err(|e| {
            Error::part("engine.connect", &location, format!("{socket}: {e}"))
                .with_hint("is dockerd running, and may this user open its socket (docker group)?")
        })?;
        let docker = docker.negotiate_version().await.map_err(|e| {
            Error::part("engine.connect", &location, format!("{socket}: {e}"))
                .with_hint("is dockerd running, and may this user open its socket (docker group)?")
        })?;
        Ok(Self { docker, location })
    }

    /// Where the engine is, for errors.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn fail(&self, step: &str, what: impl std::fmt::Display, e: bollard::errors::Error) -> Error {
        Error::part(step, &self.location, format!("{what}: {e}"))
    }

    /// The (non one-off) container of `service` in compose `project`, running or not.
    /// The newest one wins if several exist (start-first, or a crash left some).
    pub async fn service_container(
        &self,
        project: &str,
        service: &str,
    ) -> Result<Option<ContainerState>> {
        match self.service_container_ids(project, service).await?.first() {
            Some(id) => self.inspect(id).await,
            None => Ok(None),
        }
    }

    /// Every (non one-off) container of `service` in compose `project`, running or
    /// not, newest first: during a start-first switch, or after a run was killed in
    /// one, there is more than one.
    pub async fn service_containers(
        &self,
        project: &str,
        service: &str,
    ) -> Result<Vec<ContainerState>> {
        let mut states = Vec::new();
        for id in self.service_container_ids(project, service).await? {
            // A container removed between the list and the inspect is simply gone.
            if let Some(state) = self.inspect(&id).await? {
                states.push(state);
            }
        }
        Ok(states)
    }

    async fn service_container_ids(&self, project: &str, service: &str) -> Result<Vec<String>> {
        self.container_ids(project, service, false, false).await
    }

    /// The ids of `service`'s one-off (`compose run`) containers in `project` that
    /// are running now, newest first: a killed deploy's migration may still be one.
    pub async fn running_oneoff_ids(&self, project: &str, service: &str) -> Result<Vec<String>> {
        self.container_ids(project, service, true, true).await
    }

    /// Containers of `service` in `project`, one-off ones or the others, newest first.
    async fn container_ids(
        &self,
        project: &str,
        service: &str,
        oneoff: bool,
        running_only: bool,
    ) -> Result<Vec<String>> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{PROJECT_LABEL}={project}"),
                format!("{SERVICE_LABEL}={service}"),
            ],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .all(!running_only)
            .filters(&filters)
            .build();
        let mut list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| {
                self.fail(
                    "engine.containers",
                    format!("containers of {project}/{service}"),
                    e,
                )
            })?;
        list.retain(|c| {
            let is_oneoff = c
                .labels
                .as_ref()
                .and_then(|l| l.get(ONEOFF_LABEL))
                .is_some_and(|v| v == "True");
            is_oneoff == oneoff
        });
        // `created` has one-second resolution: the id breaks ties so the order is stable.
        list.sort_by(|a, b| (b.created.unwrap_or(0), &b.id).cmp(&(a.created.unwrap_or(0), &a.id)));
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Inspects one container; `None` if it no longer exists.
    pub async fn inspect(&self, id: &str) -> Result<Option<ContainerState>> {
        match self.docker.inspect_container(id, None).await {
            Ok(c) => Ok(Some(state_of(id, c))),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.fail("engine.inspect", format!("container {id}"), e)),
        }
    }

    /// The last `lines` lines of a container's output, for failure messages.
    pub async fn log_tail(&self, id: &str, lines: usize) -> String {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(out) => text.push_str(&String::from_utf8_lossy(out.as_ref())),
                Err(e) => {
                    text.push_str(&format!("(logs unavailable: {e})"));
                    break;
                }
            }
        }
        text
    }

    /// Stops a container (SIGTERM, then SIGKILL after `grace`).
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let options = StopContainerOptionsBuilder::new()
            .t(grace.as_secs().min(i32::MAX as u64) as i32)
            .build();
        match self.docker.stop_container(id, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.fail("engine.stop", format!("container {id}"), e)),
        }
    }

    /// Removes a container (forcibly, so a running one is killed first); a missing
    /// one is not an error, so a re-run after a crash can remove it again.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.fail("engine.remove", format!("container {id}"), e)),
        }
    }
}
