//! [`SwarmTarget`]: releases as immutable image tags of one Docker Swarm service.
//!
//! Swarm already runs a compose file across machines and replaces tasks in a
//! rolling update; deploykit drives it through the engine API of a manager
//! instead of growing its own scheduler. What Swarm lacks is an undo that knows
//! the run: its own `rollback` keeps only one previous spec, and knows nothing of
//! migrations or backups. So every switch records the exact spec it replaces (see
//! [`spec`]) and the undo writes that spec back.

use std::time::Duration;

use bollard::models::Service;
use deploykit_core::{Error, Events, ReleaseId, Result};

use crate::engine::Engine;

mod convergence;
mod releases;
pub mod spec;

/// One service of a swarm (e.g. `shop_web` of a stack deployed with `docker
/// stack deploy`), deployed as immutable release tags `<repo>:<release-id>`.
///
/// * `current` is the release the service's spec runs: the tag of its image in
///   `repo` (a spec scaled to zero runs none).
/// * `prepare` changes nothing: it refuses a service that does not exist or is in
///   the middle of an update, and a release image that is neither on the manager
///   nor resolvable on a registry.
/// * `activate(release)` updates the service to the release image in one versioned
///   update (a concurrent change is refused, not overwritten) that also records the
///   exact spec it replaces in the service's labels, with `update_config` order
///   `start-first` and failure action `pause`. It then waits until every task the
///   orchestrator wants running is of the new image and `running` (Swarm reports a
///   task with a HEALTHCHECK `running` only once healthy), and otherwise fails with
///   the failed tasks' errors, each naming the service and the node.
/// * `activate(previous)` while the service runs the release that replaced
///   `previous` (the undo, [`Compensation::Reactivate`](deploykit_core::Compensation),
///   or a rollback) writes back the recorded spec exactly: image, env, replicas and
///   everything else, as it was before the switch. Activating any other release
///   changes only the image. Activating the release the spec already runs only
///   waits for its tasks, so an undo can be replayed.
/// * `activate(None)` (the undo of the first deploy) writes back the spec deployed
///   by hand before it, if the switch recorded one, and otherwise scales the service
///   to zero and says so in a warning.
/// * `list` and `discard` are the release tags on the manager's engine. Workers keep
///   their own copies of images; prune those with the engine (`docker image prune`).
pub struct SwarmTarget {
    engine: Engine,
    service: String,
    repo: String,
    deadline: Duration,
    poll: Duration,
    events: Events,
}

impl std::fmt::Debug for SwarmTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmTarget")
            .field("engine", &self.engine.location())
            .field("service", &self.service)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl SwarmTarget {
    /// `service` (its swarm name, e.g. `<stack>_<service>`) on the swarm whose
    /// manager `engine` is, with releases tagged into `repo`.
    pub fn new(engine: Engine, service: &str, repo: &str) -> Result<Self> {
        crate::compose::validate_compose_name("swarm service name", service)?;
        crate::target::validate_repo(repo)?;
        Ok(Self {
            engine,
            service: service.to_string(),
            repo: repo.to_string(),
            deadline: convergence::DEFAULT_DEADLINE,
            poll: Duration::from_millis(500),
            events: Events::none(),
        })
    }

    /// How long `activate` waits for every new task to run (default 120 s).
    pub fn health_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// How often `activate` asks the manager while waiting (default 500 ms).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Where warnings (e.g. "scaled to zero, no previous release") are sent.
    pub fn events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// The image reference of a release: `<repo>:<release>`.
    pub fn image_of(&self, release: &ReleaseId) -> String {
        crate::target::image_of(&self.repo, release)
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The manager's engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn where_(&self) -> String {
        format!(
            "swarm service {} on {}",
            self.service,
            self.engine.location()
        )
    }

    /// The service as the manager has it now; an error naming what to do if the
    /// swarm has no such service.
    async fn service_now(&self, step: &str) -> Result<Service> {
        self.engine.service(&self.service).await?.ok_or_else(|| {
            Error::part(step, self.where_(), "the swarm has no such service").with_hint(
                "deploy the stack once with `docker stack deploy` (deploykit updates an \
                 existing service); nothing was changed",
            )
        })
    }
}
