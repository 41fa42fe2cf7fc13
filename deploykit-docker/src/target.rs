//! [`ComposeTarget`]: releases as immutable image tags of one Compose service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deploykit_core::{
    Error, Event, Events, ReleaseId, ReleaseSpec, Result, Shell, ShellExt, Target,
};
use tokio::time::Instant;

use crate::compose::{validate_compose_name, ComposeProject};
use crate::engine::{ContainerState, Engine, Health};
use crate::pin::PinFile;
use crate::strategy::{StartFirstSettings, Strategy};

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
    /// `compose pull <service>` of the service's `image:`, named `image`.
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
///   That is [`Strategy::StopFirst`], the default: compose stops the old container
///   before the new one starts, so each deploy has a gap.
/// * With [`Strategy::StartFirst`] (see [`ComposeTarget::strategy`]) `activate`
///   instead adds one container of the release next to the running one(s)
///   (`up --no-recreate --scale <service>=<n+1>`), waits until *that* container is
///   healthy, then stops (with the service's `stop_grace_period`) and removes the
///   others. If the new container fails, it is removed and the old one was never
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
    /// `compose config`'s verdict, read once: prepare and activate (and the undo's
    /// reactivation) of one run all need it, and each read starts compose.
    start_first: std::sync::OnceLock<StartFirstSettings>,
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
            strategy: Strategy::StopFirst,
            build_repo: None,
            start_first: std::sync::OnceLock::new(),
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
    /// [`Strategy::StopFirst`]). [`Strategy::StartFirst`] is checked against the
    /// resolved `compose config` in `prepare` and `activate`, before anything is
    /// touched: a service with `container_name` or a fixed host port is refused.
    /// Under `network_mode: host` both containers bind the same port, which only
    /// works if the app sets `SO_REUSEPORT` (not detectable, so not checked: without
    /// it the new container never turns healthy and the old one keeps serving).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
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

    /// The strategy `activate` uses.
    pub fn strategy_in_use(&self) -> Strategy {
        self.strategy
    }

    /// Where warnings (e.g. "service stopped, no previous release") are sent.
    pub fn events(mut self, events: Events) -> Self {
        self.events = events;
        self
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

    fn where_(&self) -> String {
        format!(
            "{}/{} on {}",
            self.project.name,
            self.service,
            self.engine.location()
        )
    }

    async fn container(&self) -> Result<Option<ContainerState>> {
        self.engine
            .service_container(&self.project.name, &self.service)
            .await
    }

    fn release_of(&self, container: &ContainerState) -> Option<ReleaseId> {
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

    /// Waits until the service's container runs `image` and is healthy (or has no
    /// HEALTHCHECK and runs); fails at once on `unhealthy` or an exited container.
    pub async fn wait_serving(&self, image: &str) -> Result<ContainerState> {
        self.wait_until_serving(image, None).await
    }

    /// Like [`wait_serving`](Self::wait_serving), for one container (`id`), never
    /// another of the service: with start-first the old container serves too.
    async fn wait_until_serving(&self, image: &str, id: Option<&str>) -> Result<ContainerState> {
        let deadline = Instant::now() + self.health_deadline;
        let mut last: Option<ContainerState> = None;
        loop {
            let seen = match id {
                Some(id) => match self.engine.inspect(id).await? {
                    Some(c) => Some(c),
                    None => {
                        return Err(Error::part(
                            "activate.health",
                            self.where_(),
                            format!("the new container {id} of {image} disappeared"),
                        )
                        .with_hint("something else removed it; deploy again"))
                    }
                },
                None => self.container().await?,
            };
            if let Some(c) = seen {
                let ours = c.image == image;
                if ours && c.is_serving() {
                    return Ok(c);
                }
                let broken = ours
                    && (c.health == Some(Health::Unhealthy)
                        || matches!(c.status.as_str(), "exited" | "dead"));
                if broken {
                    return Err(self.not_serving(&c, "").await);
                }
                last = Some(c);
            }
            if Instant::now() + self.poll > deadline {
                break;
            }
            tokio::time::sleep(self.poll).await;
        }
        let why = format!("did not turn healthy within {:?}; ", self.health_deadline);
        match last {
            Some(c) => Err(self.not_serving(&c, &why).await),
            None => Err(Error::part(
                "activate.health",
                self.where_(),
                format!("{why}no container of the service exists"),
            )),
        }
    }

    async fn not_serving(&self, c: &ContainerState, why: &str) -> Error {
        let hint = match self.strategy {
            Strategy::StopFirst => {
                "fix the release and deploy again; the previous release is restored by the rollback"
            }
            Strategy::StartFirst => {
                "fix the release and deploy again; the new container was removed and the \
                 previous release's container kept serving (start-first)"
            }
        };
        let logs = self.engine.log_tail(&c.id, self.log_lines).await;
        Error::part(
            "activate.health",
            self.where_(),
            format!(
                "{why}{}\n---- container output (last lines) ----\n{}\n----",
                c.describe(),
                logs.trim_end()
            ),
        )
        .with_hint(hint)
    }

    /// The service's start-first settings from `compose config` (read once per
    /// target), or the refusal.
    pub async fn start_first_settings(&self) -> Result<StartFirstSettings> {
        if let Some(settings) = self.start_first.get() {
            return Ok(*settings);
        }
        let out = self
            .shell
            .check("start-first.config", &self.project.config())
            .await?;
        let settings =
            StartFirstSettings::from_config(&out.stdout_text(), &self.service, &self.where_())?;
        Ok(*self.start_first.get_or_init(|| settings))
    }

    /// Start-first activation of `image` (see the type's docs).
    async fn activate_start_first(
        &self,
        release: &ReleaseId,
        image: &str,
        settings: StartFirstSettings,
    ) -> Result<()> {
        let all = self
            .engine
            .service_containers(&self.project.name, &self.service)
            .await?;
        let pin = self.pin_file();
        // Done already (a re-run, or a killed run got this far): keep the serving
        // container of the release, retire everything else.
        if let Some(keep) = all.iter().find(|c| c.image == image && c.is_serving()) {
            pin.write(self.shell.as_ref(), &self.service, image).await?;
            for c in all.iter().filter(|c| c.id != keep.id) {
                self.retire(c, settings.stop_grace).await?;
            }
            return Ok(());
        }
        // Keep what runs another release (it serves until the new one is healthy);
        // remove leftovers that serve nothing: stopped containers, and an unfinished
        // container of this release from a killed run.
        let mut old = Vec::new();
        for c in all {
            if c.image != image && matches!(c.status.as_str(), "running" | "restarting") {
                old.push(c);
            } else {
                self.engine.remove(&c.id).await?;
            }
        }
        if self.rollback_alias {
            if let Some(previous) = old.first().and_then(|c| self.release_of(c)) {
                if &previous != release {
                    self.engine
                        .tag(&self.image_of(&previous), &self.repo, "rollback")
                        .await?;
                }
            }
        }
        pin.write(self.shell.as_ref(), &self.service, image).await?;
        let scaled = self
            .shell
            .check(
                "activate",
                &self
                    .project
                    .up_scaled(&self.service, &pin.path, old.len() + 1),
            )
            .await;
        let fresh: Vec<ContainerState> = self
            .engine
            .service_containers(&self.project.name, &self.service)
            .await?
            .into_iter()
            .filter(|c| c.image == image && !old.iter().any(|o| o.id == c.id))
            .collect();
        let waited = match (scaled, fresh.first()) {
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(Error::part(
                "activate",
                self.where_(),
                format!("compose started no container of {image}"),
            )
            .with_hint("check `compose up` for the service by hand")),
            (Ok(_), Some(new)) => self.wait_until_serving(image, Some(&new.id)).await,
        };
        match waited {
            Ok(_) => {
                for c in &old {
                    self.retire(c, settings.stop_grace).await?;
                }
                Ok(())
            }
            Err(e) => {
                // The old container(s) were never touched: remove the new one and
                // point the pin back at what still serves.
                for c in &fresh {
                    self.engine.remove(&c.id).await?;
                }
                if let Some(serving) = old.first() {
                    pin.write(self.shell.as_ref(), &self.service, &serving.image)
                        .await?;
                }
                Err(e)
            }
        }
    }

    /// Stops a container that is no longer wanted (SIGTERM, `grace`, SIGKILL) and removes it.
    async fn retire(&self, c: &ContainerState, grace: Duration) -> Result<()> {
        if matches!(c.status.as_str(), "running" | "restarting") {
            self.engine.stop(&c.id, grace).await?;
        }
        self.engine.remove(&c.id).await
    }
}

fn validate_repo(repo: &str) -> Result<()> {
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

#[path = "target_logs.rs"]
mod logs;

#[async_trait]
impl Target for ComposeTarget {
    async fn current(&self) -> Result<Option<ReleaseId>> {
        match self.container().await? {
            Some(c) if matches!(c.status.as_str(), "running" | "restarting") => {
                match self.release_of(&c) {
                    Some(release) => Ok(Some(release)),
                    None if self.adopt => self.adopt(&c).await,
                    None => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    async fn prepare(&self, spec: &ReleaseSpec) -> Result<()> {
        if self.strategy == Strategy::StartFirst {
            // Refuse before building or tagging anything.
            self.start_first_settings().await?;
        }
        let target = self.image_of(&spec.id);
        if self.engine.image_exists(&target).await? {
            // Release tags are immutable: a re-run of prepare keeps what was staged.
            return Ok(());
        }
        let image = match &self.source {
            ImageSource::Build { image } => {
                match &self.build_repo {
                    Some(repo) => {
                        crate::commit_build::build_from_commit(
                            self.shell.as_ref(),
                            &self.project,
                            &self.service,
                            repo,
                            spec,
                            &self.state_dir,
                        )
                        .await?
                    }
                    None => {
                        self.shell
                            .check("prepare", &self.project.build(&self.service))
                            .await?;
                    }
                }
                image
            }
            ImageSource::Pull { image } => {
                self.shell
                    .check("prepare", &self.project.pull(&self.service))
                    .await?;
                image
            }
            ImageSource::Present { image } => image,
        };
        if !self.engine.image_exists(image).await? {
            return Err(Error::part(
                "prepare",
                self.where_(),
                format!("the image {image} to tag as {target} does not exist"),
            )
            .with_hint("set the target's image source to the name compose gives the built image"));
        }
        self.engine.tag(image, &self.repo, spec.id.as_str()).await
    }

    async fn activate(&self, release: Option<&ReleaseId>) -> Result<()> {
        let Some(release) = release else {
            let mut stopped = Vec::new();
            for c in self
                .engine
                .service_containers(&self.project.name, &self.service)
                .await?
            {
                if c.status == "running" || c.status == "restarting" {
                    self.engine.stop(&c.id, Duration::from_secs(10)).await?;
                    stopped.push(c.name);
                }
            }
            let message = if stopped.is_empty() {
                format!(
                    "{} has no running container: nothing to stop (first deploy, no previous release)",
                    self.where_()
                )
            } else {
                format!(
                    "stopped {} of {}: this was its first deploy, so there is no previous \
                     release to go back to; the service is down until a release is deployed \
                     (the journal keeps the record)",
                    stopped.join(", "),
                    self.where_()
                )
            };
            self.events.emit(Event::Warning { message });
            return Ok(());
        };
        let image = self.image_of(release);
        // Refuse start-first before touching anything.
        let start_first = match self.strategy {
            Strategy::StartFirst => Some(self.start_first_settings().await?),
            Strategy::StopFirst => None,
        };
        if !self.engine.image_exists(&image).await? {
            return Err(Error::part(
                "activate",
                self.where_(),
                format!("release image {image} does not exist"),
            )
            .with_hint("prepare the release first (it may have been pruned)"));
        }
        if let Some(settings) = start_first {
            return self.activate_start_first(release, &image, settings).await;
        }
        let live = self.container().await?;
        if let Some(c) = &live {
            if c.image == image && c.is_serving() {
                return Ok(());
            }
        }
        if self.rollback_alias {
            if let Some(previous) = live.as_ref().and_then(|c| self.release_of(c)) {
                if &previous != release {
                    self.engine
                        .tag(&self.image_of(&previous), &self.repo, "rollback")
                        .await?;
                }
            }
        }
        let pin = self.pin_file();
        pin.write(self.shell.as_ref(), &self.service, &image)
            .await?;
        self.shell
            .check("activate", &self.project.up(&self.service, &pin.path))
            .await?;
        self.wait_serving(&image).await.map(|_| ())
    }

    async fn discard(&self, release: &ReleaseId) -> Result<()> {
        if self.current().await?.as_ref() == Some(release) {
            return Err(Error::part(
                "discard",
                self.where_(),
                format!("release {release} is live; a live release is never removed"),
            )
            .with_hint("activate another release first"));
        }
        self.engine.untag(&self.image_of(release)).await
    }

    async fn list(&self) -> Result<Vec<ReleaseId>> {
        let mut releases: Vec<ReleaseId> = self
            .engine
            .tags_of(&self.repo)
            .await?
            .into_iter()
            .filter(|t| !ALIAS_TAGS.contains(&t.as_str()))
            .filter_map(|t| ReleaseId::parse(t).ok())
            .collect();
        releases.sort();
        Ok(releases)
    }

    async fn recent_logs(
        &self,
        release: &ReleaseId,
        lines: usize,
    ) -> Result<Vec<deploykit_core::LogLines>> {
        self.logs_of(release, lines).await
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
