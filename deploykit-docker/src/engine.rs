//! The Docker engine through bollard, over a unix socket.
//!
//! There is one code path for a local and a remote engine: a remote host's socket is
//! forwarded over the run's SSH connection to a local unix socket, and [`Engine`]
//! connects to that socket exactly as it would to `/var/run/docker.sock`. Only the
//! `location` (used in errors) tells them apart.

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerInspectResponse, ExecConfig, HealthStatusEnum};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, StopContainerOptionsBuilder,
    TagImageOptionsBuilder,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use deploykit_core::{Error, Result};
use futures::StreamExt;

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

/// A stream of byte chunks fed to a command's standard input.
pub type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<Vec<u8>>> + Send>>;

/// The output and exit code of a command run inside a container.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// Exit code (`-1` if the engine did not report one).
    pub exit_code: i64,
    /// Standard error (standard output went to the caller's sink).
    pub stderr: Vec<u8>,
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

    /// True if an image with this reference exists.
    pub async fn image_exists(&self, reference: &str) -> Result<bool> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.fail("engine.image", format!("image {reference}"), e)),
        }
    }

    /// Tags `source` as `repo:tag`.
    pub async fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        let options = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| self.fail("engine.tag", format!("tag {source} as {repo}:{tag}"), e))
    }

    /// Removes the tag `reference`; an image still tagged otherwise stays. A missing
    /// tag is not an error (discard is idempotent).
    pub async fn untag(&self, reference: &str) -> Result<()> {
        let options = RemoveImageOptionsBuilder::new().noprune(false).build();
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.fail("engine.untag", format!("image {reference}"), e)),
        }
    }

    /// Every tag of repository `repo` (the part after `repo:`).
    pub async fn tags_of(&self, repo: &str) -> Result<Vec<String>> {
        let filters = HashMap::from([("reference", vec![repo.to_string()])]);
        let options = ListImagesOptionsBuilder::new().filters(&filters).build();
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(|e| self.fail("engine.images", format!("images of {repo}"), e))?;
        let prefix = format!("{repo}:");
        Ok(images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter_map(|t| t.strip_prefix(&prefix).map(str::to_string))
            .collect())
    }

    /// Runs `argv` inside running container `id` without a TTY (binary output stays
    /// intact), feeding `stdin` if given and sending each stdout chunk to `stdout` as
    /// it arrives. If the receiver goes away (its writer failed), the exec's output
    /// stops being read and an error is returned.
    pub async fn exec_streaming(
        &self,
        id: &str,
        argv: &[String],
        env: &[String],
        stdin: Option<ByteStream>,
        stdout: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<ExecOutput> {
        let config = ExecConfig {
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            env: Some(env.to_vec()),
            cmd: Some(argv.to_vec()),
            ..Default::default()
        };
        let step = "engine.exec";
        let what = || format!("`{}` in container {id}", argv.join(" "));
        let created = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(|e| self.fail(step, what(), e))?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(64 * 1024),
                }),
            )
            .await
            .map_err(|e| self.fail(step, what(), e))?;
        let StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        else {
            return Err(Error::part(
                step,
                &self.location,
                format!("{}: exec did not attach", what()),
            ));
        };
        let feed = async {
            use tokio::io::AsyncWriteExt;
            if let Some(mut stdin) = stdin {
                while let Some(chunk) = stdin.next().await {
                    let chunk = chunk.map_err(|e| {
                        Error::part(
                            step,
                            &self.location,
                            format!("{}: reading input: {e}", what()),
                        )
                    })?;
                    input.write_all(&chunk).await.map_err(|e| {
                        Error::part(
                            step,
                            &self.location,
                            format!("{}: writing stdin: {e}", what()),
                        )
                    })?;
                }
                input.shutdown().await.map_err(|e| {
                    Error::part(
                        step,
                        &self.location,
                        format!("{}: closing stdin: {e}", what()),
                    )
                })?;
            }
            Ok::<(), Error>(())
        };
        let mut stderr = Vec::new();
        let read = async {
            while let Some(frame) = output.next().await {
                match frame.map_err(|e| self.fail(step, what(), e))? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        if stdout.send(message.to_vec()).await.is_err() {
                            return Err(Error::part(
                                step,
                                &self.location,
                                format!("{}: its output could not be stored", what()),
                            ));
                        }
                    }
                    LogOutput::StdErr { message } => {
                        // Keep the tail only: pg_dump -v can be chatty.
                        stderr.extend_from_slice(&message);
                        if stderr.len() > 64 * 1024 {
                            stderr.drain(..stderr.len() - 32 * 1024);
                        }
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
            Ok::<(), Error>(())
        };
        let (fed, read) = futures::join!(feed, read);
        read?;
        fed?;
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(|e| self.fail(step, what(), e))?;
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            stderr,
        })
    }
}

fn state_of(id: &str, c: ContainerInspectResponse) -> ContainerState {
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
    }
}
