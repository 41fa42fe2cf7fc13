//! Where releases go: PM2 apps over SSH, or a Docker Compose service.

use std::collections::BTreeMap;
use std::path::PathBuf;

use deploykit_core::Secret;
use serde::{Deserialize, Serialize};

/// Where releases go.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetConfig {
    /// Release directories on this machine, running one process (the demo's target,
    /// and small apps run without PM2).
    Local {
        /// Root of `releases/`, `current`, `shared/`.
        deploy_to: PathBuf,
        /// A git repository the exact commit is exported from.
        repo: PathBuf,
        /// Commands run in the new release directory after export (argv lists).
        #[serde(default)]
        build: Vec<Vec<String>>,
        /// The app's command line, run in `current` (`{port}` is replaced).
        start: Vec<String>,
        /// The port the app listens on.
        port: u16,
    },
    /// PM2 apps on hosts reached over SSH (or this machine).
    Pm2(Box<Pm2Config>),
    /// A Docker Compose stack.
    Compose(Box<ComposeConfig>),
}

/// PM2 over SSH.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pm2Config {
    /// `user@host[:port]` for each host; `local` deploys on this machine.
    pub hosts: Vec<String>,
    /// Root of `releases/`, `current`, `shared/` on each host.
    pub deploy_to: PathBuf,
    /// The PM2 app name: the one-app form of [`apps`](Self::apps) (set exactly
    /// one of the two).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app: String,
    /// The apps of one ecosystem file deployed together, e.g. `["web", "worker"]`:
    /// they switch, are verified and roll back together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
    /// Where each release's code comes from (default `git`: the hosts fetch
    /// `repo`; `artifact`: a tarball built once is uploaded to every host).
    #[serde(default)]
    pub source: Pm2Source,
    /// The git repository URL the hosts fetch from (`source = "git"` only).
    #[serde(default)]
    pub repo: String,
    /// `source = "artifact"`: the tarball to ship, relative to the config file
    /// (what `artifact_build` writes, or what CI leaves there); `deploy
    /// --artifact PATH` names another for one run.
    pub artifact: Option<PathBuf>,
    /// `source = "artifact"`: commands (argv lists) run here, in the config's
    /// directory, before each deploy, to write `artifact` from the deployed commit.
    #[serde(default)]
    pub artifact_build: Vec<Vec<String>>,
    /// The ecosystem file inside a release.
    #[serde(default = "default_ecosystem")]
    pub ecosystem: String,
    /// Install commands (argv lists), e.g. `["pnpm", "install", "--frozen-lockfile"]`.
    #[serde(default)]
    pub install: Vec<Vec<String>>,
    /// Build commands (argv lists).
    #[serde(default)]
    pub build: Vec<Vec<String>>,
    /// Files under `shared/` linked into every release (e.g. `.env`); they must exist.
    #[serde(default)]
    pub linked_files: Vec<String>,
    /// Folders under `shared/` linked into every release (e.g. `uploads`); created when missing.
    #[serde(default)]
    pub linked_dirs: Vec<String>,
    /// `PM2_HOME` on the hosts, when not the SSH user's `~/.pm2`.
    pub pm2_home: Option<String>,
    /// Take over an app PM2 already runs that deploykit did not start (e.g. one
    /// started by hand): recorded on the host and restored by an undo. Off: such
    /// an app is refused before anything changes.
    #[serde(default)]
    pub adopt_running: bool,
    /// Run the reload gate's canary on `rollback` too. Off (the default): a
    /// rollback to a release a run verified on these hosts reloads the workers at
    /// once, since that code already served here; its verify and undo still run.
    #[serde(default)]
    pub rollback_canary: bool,
    /// The app's environment, for the build commands and PM2 (`--update-env`).
    /// Values are secrets: never printed.
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// Instances the probe expects online (e.g. the cluster size).
    pub instances: Option<usize>,
    /// SSH private key file.
    pub key_file: Option<PathBuf>,
    /// known_hosts file (strict checking unless `accept_new_host_keys`).
    pub known_hosts: Option<PathBuf>,
    /// Accept unknown host keys on first connect (never the default).
    #[serde(default)]
    pub accept_new_host_keys: bool,
    /// Password authentication is not supported (openssh); present only to be refused clearly.
    pub password: Option<Secret>,
    /// Hosts activated per batch in a rolling deploy; 0 = all at once.
    #[serde(default)]
    pub batch: usize,
    /// Hosts worked on at the same time (default 8).
    pub max_parallel: Option<usize>,
    /// Seconds to wait for each SSH connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
}

/// Where a PM2 release's code comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pm2Source {
    /// Each host fetches `repo` and exports the deployed commit, then runs
    /// `install` and `build` there.
    #[default]
    Git,
    /// A gzipped tarball built once (in CI, or by `artifact_build` here),
    /// uploaded to every host, checked against its SHA-256 there, unpacked.
    Artifact,
}

impl Pm2Config {
    /// The apps of a release: `apps`, or the one `app`.
    pub fn app_names(&self) -> Vec<String> {
        if self.apps.is_empty() {
            vec![self.app.clone()]
        } else {
            self.apps.clone()
        }
    }
}

fn default_connect_timeout() -> u64 {
    10
}

fn default_ecosystem() -> String {
    "ecosystem.config.js".into()
}

/// A Docker Compose stack.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeConfig {
    /// The compose project name.
    pub project: String,
    /// Compose files, relative to the config file.
    pub files: Vec<PathBuf>,
    /// The env file passed to compose.
    pub env_file: Option<PathBuf>,
    /// The service deployed (the one-service form of `services`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Several services deployed as one release (e.g. `["web", "worker"]`): they
    /// switch, are verified and roll back together. Each release is one image,
    /// made from the first service; see docs/CONFIG.md. Exactly one of `service`
    /// and `services` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
    /// The image repository release tags are made in (e.g. `crm-backend`); with
    /// `services`, every service after the first gets `<image>-<service>`.
    pub image: String,
    /// Where each release's image comes from (default `build`, on the host).
    #[serde(default)]
    pub image_source: ComposeImageSource,
    /// For `pull` and `present`: the image CI built, e.g.
    /// `ghcr.io/acme/crm-backend` (`deploy --image-tag` names the tag) or a
    /// reference with its tag or digest.
    pub source_image: Option<String>,
    /// The engine: `unix:///path/docker.sock`, or `ssh://user@host[:port]` for a
    /// remote one reached over SSH; `$DOCKER_HOST` or the default socket when absent.
    pub host: Option<String>,
    /// SSH private key for an `ssh://` host.
    pub key_file: Option<PathBuf>,
    /// known_hosts file for an `ssh://` host (strict checking).
    pub known_hosts: Option<PathBuf>,
    /// The engine's socket on an `ssh://` host, when not `/var/run/docker.sock`
    /// (a rootless engine's, or one started elsewhere).
    pub engine_socket: Option<PathBuf>,
    /// Seconds to wait for the container's HEALTHCHECK.
    #[serde(default = "default_health_wait")]
    pub health_wait_secs: u64,
    /// How a release's container replaces the running one (default `auto`).
    #[serde(default)]
    pub strategy: ComposeStrategy,
}

impl ComposeConfig {
    /// The deployed services, the first being the one each release's image is
    /// made from (empty only in a config [`check_services`](Self::check_services)
    /// refuses).
    pub fn service_names(&self) -> Vec<&str> {
        match (&self.service, &self.services) {
            (Some(one), None) => vec![one.as_str()],
            (None, Some(many)) => many.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// The service each release's image is made from, and the migrations' and
    /// backup's default.
    pub fn primary_service(&self) -> &str {
        self.service_names().first().copied().unwrap_or_default()
    }

    /// Exactly one of `service` and `services`, with no service twice; `at` is
    /// the target table's key, for the message.
    pub fn check_services(&self, at: &str) -> Result<(), String> {
        match (&self.service, &self.services) {
            (Some(_), Some(_)) => Err(format!(
                "{at}: set service (one service) or services (several), not both"
            )),
            (None, None) => Err(format!(
                "{at}: name the deployed service: service = \"web\", or services = \
                 [\"web\", \"worker\"] for several deployed as one release"
            )),
            (None, Some(many)) if many.is_empty() => Err(format!(
                "{at}.services is empty: name at least one service, or write service = \"web\""
            )),
            (None, Some(many)) => {
                for (i, s) in many.iter().enumerate() {
                    if many[..i].contains(s) {
                        return Err(format!(
                            "{at}.services names {s} more than once; name each service once"
                        ));
                    }
                }
                Ok(())
            }
            (Some(_), None) => Ok(()),
        }
    }
}

/// Where a Compose release's image comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComposeImageSource {
    /// `compose build` on the host, from the deployed commit's tree.
    #[default]
    Build,
    /// `docker pull` of `source_image` on the host: built once, in CI.
    Pull,
    /// `source_image` is already on the engine (`docker load`ed by CI).
    Present,
}

/// How a Compose target replaces the service's container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComposeStrategy {
    /// Start-first where `compose config` shows the service allows it, stop-first
    /// (with a warning saying why and what to change) where it does not.
    #[default]
    Auto,
    /// Compose's own way: the old container stops before the new one starts (a
    /// gap of some seconds on every deploy). Works for every service.
    StopFirst,
    /// The new container starts next to the old one, which is stopped only once
    /// the new one is healthy. Refused for a service with `container_name` or a
    /// fixed host port (put a proxy in front); under `network_mode: host` the app
    /// must bind with SO_REUSEPORT.
    StartFirst,
}

fn default_health_wait() -> u64 {
    120
}
