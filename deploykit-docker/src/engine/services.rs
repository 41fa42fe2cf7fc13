//! Swarm services, tasks and nodes on a manager's engine: what the Swarm target
//! reads and the one write it makes (a versioned service update).

use std::collections::HashMap;

use bollard::models::{Node, Service, ServiceSpec, Task};
use bollard::query_parameters::{
    InspectServiceOptionsBuilder, ListNodesOptions, ListTasksOptionsBuilder,
    UpdateServiceOptionsBuilder,
};
use deploykit_core::{Error, Result};

use super::Engine;

impl Engine {
    /// The service `name` (with its spec and version index), or `None` if the swarm
    /// has no such service.
    pub async fn service(&self, name: &str) -> Result<Option<Service>> {
        let options = InspectServiceOptionsBuilder::new()
            .insert_defaults(false)
            .build();
        match self.docker.inspect_service(name, Some(options)).await {
            Ok(service) => Ok(Some(service)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.fail("swarm.inspect", format!("service {name}"), e)),
        }
    }

    /// Replaces the spec of service `name`, which must still be at `version` (the
    /// index read with it): a concurrent change makes the engine refuse rather than
    /// be overwritten. Returns the engine's warnings (e.g. an image it could not
    /// resolve on a registry).
    pub async fn update_service(
        &self,
        name: &str,
        spec: ServiceSpec,
        version: u64,
    ) -> Result<Vec<String>> {
        let version = i32::try_from(version).map_err(|_| {
            Error::part(
                "swarm.update",
                &self.location,
                format!("service {name}: version index {version} does not fit the engine API"),
            )
        })?;
        let options = UpdateServiceOptionsBuilder::new().version(version).build();
        match self.docker.update_service(name, spec, options, None).await {
            Ok(response) => Ok(response.warnings.unwrap_or_default()),
            Err(e) => {
                let conflict = e.to_string().contains("out of sequence");
                let error = self.fail("swarm.update", format!("service {name}"), e);
                Err(if conflict {
                    error.with_hint(
                        "someone else changed the service since deploykit read it; \
                         check `docker service inspect` and deploy again",
                    )
                } else {
                    error
                })
            }
        }
    }

    /// Every task of service `name` the orchestrator still wants running (old and
    /// new spec alike during an update), and the ones that ended, newest first.
    pub async fn service_tasks(&self, name: &str) -> Result<Vec<Task>> {
        let filters = HashMap::from([("service", vec![name.to_string()])]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        let mut tasks = self
            .docker
            .list_tasks(Some(options))
            .await
            .map_err(|e| self.fail("swarm.tasks", format!("tasks of service {name}"), e))?;
        tasks.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(tasks)
    }

    /// The swarm's nodes, to name where a task ran in errors.
    pub async fn nodes(&self) -> Result<Vec<Node>> {
        self.docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|e| self.fail("swarm.nodes", "nodes", e))
    }

    /// True if the engine's registry can resolve `reference` (the distribution
    /// API): how a swarm's nodes get an image that is not on the manager.
    pub async fn registry_has(&self, reference: &str) -> bool {
        self.docker
            .inspect_registry_image(reference, None)
            .await
            .is_ok()
    }
}
