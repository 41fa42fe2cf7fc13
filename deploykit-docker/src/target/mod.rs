//! [`ComposeTarget`]: releases as immutable image tags of one Compose service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deploykit_core::{Error, Event, Events, HealthProbe, ReleaseId, Result, Shell};

use crate::compose::{validate_compose_name, ComposeProject};
use crate::engine::{ContainerState, Engine};
use crate::pin::PinFile;
use crate::strategy::{Strategy, StrategyChoice};

mod logs;
mod releases;
mod serving;
mod start_first;

/// Tags that name no release and are never listed, pruned or parsed as one.
pub const ALIAS_TAGS: [&str; 2] = ["rollback", "latest"];

/// Where the image a release is made from comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `compose build <service>`, which leaves the image named `image`.
    Build {
        /// What compose names the built image (v1 `project_service`, v2
        /// `project-service`, or the service's own `image:`).
        image: String,
    },
    /// `docker pull image` on the engine: built once, in CI, and pushed to a
    /// registry the host can reach.
    Pull {
        /// The pulled reference.
        image: String,
    },
    /// An image already on the engine (e.g. `docker load`ed by CI), named `image`.
    Present {
        /// Its reference.
        image: String,
    },
}

/// One Compose service deployed as immutable release tags `<repo>:<release-id>`.
///
/// * `prepare` builds (or pulls) the image and tags it through the engine API; the
///   live container is not touched and an existing release tag is never moved.
/// * `activate` pins the service to the release tag with an override file, runs
///   `up -d --no-deps --no-build <service>` and waits for the container's own
///   HEALTHCHECK to report `healthy`, failing with the last log lines otherwise.
///   That is [`Strategy::StopFirst`]: compose stops the old container before the
///   new one starts, so each deploy has a gap.
/// * With [`Strategy::StartFirst`] (see [`ComposeTarget::strategy`]; the default
///   [`Strategy::Auto`] uses it wherever the service allows) `activate` instead adds
///   one container of the release next to the running one(s)
///   (`up --no-recreate --scale <service>=<n+1>`), waits until *that* container
///   serves (its HEALTHCHECK, or without one the
///   [readiness probes](ComposeTarget::readiness_probes)), then stops (with the
///   service's `stop_grace_period`) and removes the others. If the new container fails, it is removed and the old one was never
///   touched. Activation converges: whatever mix of old and new containers a
///   killed run left, activating a release ends with exactly one serving container
///   of it (keeping one that already serves).
/// * `activate(None)` (the undo of a first deploy) stops the service's containers and
///   says so in a warning event.
/// * `current` is the release tag the newest running container was created from.
pub struct ComposeTarget {
    shell: Arc<dyn Shell>,
    engine: Engine,
    project: ComposeProject,
    service: String,
    repo: String,
    source: ImageSource,
    state_dir: PathBuf,
    health_deadline: Duration,
    poll: Duration,
    log_lines: usize,
    rollback_alias: bool,
    adopt: bool,
    strategy: Strategy,
    /// Set by [`ComposeTarget::build_from_repository`].
    build_repo: Option<PathBuf>,
    /// The strategy decided from `compose config`, read once: prepare and activate
    /// (and the undo's reactivation) of one run all need it, each read starts
    /// compose, and auto's fallback is said once per deploy.
    choice: std::sync::OnceLock<StrategyChoice>,
    /// What must pass before start-first retires the old container when the new
    /// one has no HEALTHCHECK.
    readiness: Vec<Arc<dyn HealthProbe>>,
    events: Events,
}

impl std::fmt::Debug for ComposeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComposeTarget")
            .field("host", &self.shell.location())
            .field("project", &self.project.name)
            .field("service", &self.service)
            .field("repo", &self.repo)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl ComposeTarget {
    /// `service` of `project`, built by compose and tagged into `repo`. Compose runs
    /// through `shell` (local or SSH), the engine is reached through `engine`; the
    /// pin override lives in `<project dir>/.deploykit/`.
    pub fn new(
        shell: Arc<dyn Shell>,
        engine: Engine,
        project: ComposeProject,
        service: &str,
        repo: &str,
    ) -> Result<Self> {
        validate_compose_name("compose service name", service)?;
        validate_repo(repo)?;
        let source = ImageSource::Build {
            image: project.cli.built_image_name(&project.name, service),
        };
        let state_dir = project.directory.join(".deploykit");
        Ok(Self {
            shell,
            engine,
            project,
            service: service.to_string(),
            repo: repo.to_string(),
            source,
            state_dir,
            health_deadline: Duration::from_secs(120),
            poll: Duration::from_millis(500),
            log_lines: 30,
            rollback_alias: false,
            adopt: true,
            strategy: Strategy::Auto,
            build_repo: None,
            choice: std::sync::OnceLock::new(),
            readiness: Vec::new(),
            events: Events::none(),
        })
    }

    /// Where the image comes from (default: `compose build`).
    pub fn source(mut self, source: ImageSource) -> Self {
        self.source = source;
        self
    }

    /// Where deploykit keeps its override files on the compose host.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// How long `activate` waits for `healthy` (default 120 s).
    pub fn health_deadline(mut self, deadline: Duration) -> Self {
        self.health_deadline = deadline;
        self
    }

    /// How often `activate` asks the engine while waiting (default 500 ms).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Also tag the release being replaced as `<repo>:rollback`, for people used
    /// to the hand-written scripts. deploykit itself never rolls back to it.
    pub fn keep_rollback_alias(mut self, keep: bool) -> Self {
        self.rollback_alias = keep;
        self
    }

    /// Adopt a running container that deploykit did not start (an image such as
    /// `crm-backend:latest` deployed by hand): `current` tags its exact image as
    /// `<repo>:adopted-<image id>` and reports that, so the undo of the first
    /// deploykit deploy goes back to it instead of stopping the service. On by default.
    pub fn adopt_unmanaged(mut self, adopt: bool) -> Self {
        self.adopt = adopt;
        self
    }

    /// How a release's container replaces the running one (default
    /// [`Strategy::Auto`]). The strategy is decided from the resolved `compose
    /// config` in `prepare` (or `activate`), before anything is touched: an explicit
    /// [`Strategy::StartFirst`] for a service with `container_name` or a fixed host
    /// port is refused; `Auto` uses stop-first for it, and for `network_mode: host`,
    /// and emits one warning saying why. Under `network_mode: host` both containers
    /// bind the same port, which only works if the app sets `SO_REUSEPORT` (not
    /// detectable: without it the new container never serves and the old one keeps
    /// serving).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Probes that must all pass, with the new container running, before
    /// start-first retires the old container, when the new one has no HEALTHCHECK
    /// (with one, its `healthy` decides). Without them a container that runs counts
    /// as serving. They see whatever their address reaches: a probe through a proxy
    /// in front of both containers may be answered by the old one, so a HEALTHCHECK
    /// is the surer gate.
    pub fn readiness_probes(mut self, probes: Vec<Arc<dyn HealthProbe>>) -> Self {
        self.readiness = probes;
        self
    }

    /// Builds each release from its commit of the git repository `repo` (exported
    /// with `git archive`), never from the project directory's working tree: a
    /// release named after a commit then runs exactly that commit's code, whatever
    /// is checked out or uncommitted. See [`crate::commit_build`].
    pub fn build_from_repository(mut self, repo: impl Into<PathBuf>) -> Self {
        self.build_repo = Some(repo.into());
        self
    }

    /// The strategy `activate` uses: the configured one until `prepare` or
    /// `activate` decided what [`Strategy::Auto`] means for the service.
    pub fn strategy_in_use(&self) -> Strategy {
        self.choice.get().map_or(self.strategy, |c| c.strategy)
    }

    /// Where warnings (e.g. "service stopped, no previous release") are sent.
    pub fn events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// The same target for another `service` of the project, with its release
    /// images in `<repo>-<service>`: every setting is copied (source, strategy,
    /// deadlines, adoption, events) but the readiness probes, which ask the
    /// primary service's app. [`crate::ComposeServices`] deploys such siblings as
    /// one release; a sibling's own strategy is decided for it.
    pub fn sibling(&self, service: &str) -> Result<Self> {
        validate_compose_name("compose service name", service)?;
        let repo = format!("{}-{service}", self.repo);
        validate_repo(&repo)?;
        Ok(Self {
            shell: self.shell.clone(),
            engine: self.engine.clone(),
            project: self.project.clone(),
            service: service.to_string(),
            repo,
            source: self.source.clone(),
            state_dir: self.state_dir.clone(),
            health_deadline: self.health_deadline,
            poll: self.poll,
            log_lines: self.log_lines,
            rollback_alias: self.rollback_alias,
            adopt: self.adopt,
            strategy: self.strategy,
            build_repo: self.build_repo.clone(),
            choice: std::sync::OnceLock::new(),
            readiness: Vec::new(),
            events: self.events.clone(),
        })
    }

    /// Whether a running container that is no deploykit release is adopted
    /// (see [`adopt_unmanaged`](Self::adopt_unmanaged)).
    pub(crate) fn adopts(&self) -> bool {
        self.adopt
    }

    /// Where warnings go.
    pub(crate) fn event_sink(&self) -> &Events {
        &self.events
    }

    /// The image reference of a release.
    pub fn image_of(&self, release: &ReleaseId) -> String {
        image_of(&self.repo, release)
    }

    /// The repository release images are tagged into.
    pub(crate) fn image_repo(&self) -> &str {
        &self.repo
    }

    /// The compose project.
    pub fn project(&self) -> &ComposeProject {
        &self.project
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The shell compose runs through.
    pub fn shell(&self) -> Arc<dyn Shell> {
        self.shell.clone()
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The override file that pins the live release.
    pub fn pin_file(&self) -> PinFile {
        PinFile::new(&self.state_dir, &self.project.name, &self.service, "live")
    }

    /// The directory override files are written to.
    pub fn state_dir_path(&self) -> &Path {
        &self.state_dir
    }

    pub(crate) fn where_(&self) -> String {
        format!(
            "{}/{} on {}",
            self.project.name,
            self.service,
            self.engine.location()
        )
    }

    pub(crate) async fn container(&self) -> Result<Option<ContainerState>> {
        self.engine
            .service_container(&self.project.name, &self.service)
            .await
    }

    pub(crate) fn release_of(&self, container: &ContainerState) -> Option<ReleaseId> {
        let tag = container.image.strip_prefix(&format!("{}:", self.repo))?;
        if ALIAS_TAGS.contains(&tag) {
            return None;
        }
        ReleaseId::parse(tag).ok()
    }

    /// Tags the image an unmanaged container runs as a release, once.
    async fn adopt(&self, container: &ContainerState) -> Result<Option<ReleaseId>> {
        let hex = container.image_id.trim_start_matches("sha256:");
        if hex.len() < 12 {
            return Ok(None);
        }
        let release = ReleaseId::parse(format!("adopted-{}", &hex[..12]))?;
        if !self.engine.image_exists(&self.image_of(&release)).await? {
            self.engine
                .tag(&container.image_id, &self.repo, release.as_str())
                .await?;
            self.events.emit(Event::Warning {
                message: format!(
                    "{} ran {} (not a deploykit release); tagged it {} so a rollback can return to it",
                    self.where_(),
                    container.image,
                    self.image_of(&release)
                ),
            });
        }
        Ok(Some(release))
    }
}

pub(crate) fn validate_repo(repo: &str) -> Result<()> {
    let ok = !repo.is_empty()
        && repo.len() <= 200
        && repo
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        && repo
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && !repo.contains("//");
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: "image repository",
            value: repo.chars().take(80).collect(),
            reason:
                "use lowercase letters, digits, '.', '_', '-' and '/' (no tag, no registry port)"
                    .into(),
        })
    }
}

/// The image of `release` in `repo`: `<repo>:<release>`.
pub(crate) fn image_of(repo: &str, release: &ReleaseId) -> String {
    format!("{repo}:{release}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_that_could_carry_a_tag_or_break_argv_are_refused() {
        for bad in [
            "",
            "Crm/api",
            "crm/api:latest",
            "a b",
            "-x",
            "crm//api",
            "crm;rm",
        ] {
            assert!(validate_repo(bad).is_err(), "{bad}");
        }
        for good in ["crm/backend", "registry.example.com/crm/backend", "app"] {
            assert!(validate_repo(good).is_ok(), "{good}");
        }
    }
}
