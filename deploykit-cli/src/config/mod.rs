//! `deploykit.toml`: environments, each with a target, database, backup, migrations,
//! probes, policy, gates and notifications.
//!
//! Every table rejects unknown keys, so a typo is an error with file, line and the
//! keys that are allowed, never a silently ignored setting. Secret values are
//! [`Secret`]s: showing a config prints `[redacted]` for them.

mod backup_place;
mod defaults;
pub mod dotenv;
mod hooks;
mod interpolate;
mod load;
mod masks;
mod names;
mod paths;
mod spelling;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use deploykit_core::{DumpCompression, HealthPolicy, MigrationFailurePolicy, Policy, Secret};
use serde::{Deserialize, Serialize};

pub use backup_place::BackupPlace;
pub use hooks::HookConfig;
pub use interpolate::interpolate;
pub use load::{load, ConfigError, LoadedConfig};
pub use paths::resolve_path;

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Project-wide settings.
    #[serde(default)]
    pub project: Project,
    /// Environments by name (e.g. `staging`, `production`).
    pub environments: BTreeMap<String, Environment>,
}

/// Project-wide settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// A name for notifications and summaries.
    pub name: Option<String>,
    /// Where journals, locks and local backups live (relative to the config file).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// A `.env` file whose variables `${VAR}` may use (the process environment wins).
    pub env_file: Option<PathBuf>,
}

impl Default for Project {
    fn default() -> Self {
        Self {
            name: None,
            state_dir: default_state_dir(),
            env_file: None,
        }
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(".deploykit")
}

/// One environment.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Where releases go.
    pub target: Option<TargetConfig>,
    /// The database migrations and backups act on.
    pub database: Option<DatabaseConfig>,
    /// How backups are taken.
    pub backup: Option<BackupConfig>,
    /// How migrations are applied.
    pub migrations: Option<MigrationsConfig>,
    /// Health probes for the verify phase.
    #[serde(default)]
    pub probes: Vec<ProbeConfig>,
    /// The run's rules.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Gates before anything changes.
    #[serde(default)]
    pub gates: GatesConfig,
    /// Where outcomes are announced.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// Rules for `deploykit secrets check`.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Where the run journals, history and deploy lock live.
    #[serde(default)]
    pub state: StateConfig,
    /// Commands at points of a deploy (`hooks.rs`).
    #[serde(default)]
    pub hooks: Vec<HookConfig>,
}

/// Where an environment's state (run journals, history, deploy lock) lives; see
/// `crate::state` for the defaults and why.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `hosts` (default for PM2 and an `ssh://` Compose engine) or `local`.
    pub store: Option<StoreKind>,
    /// The PM2 host (as written in `target.hosts`) that keeps it; default the first.
    pub host: Option<String>,
}

/// Which state store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// On the environment's host, over SSH.
    Hosts,
    /// Under the project's `state_dir` on the deploying machine.
    Local,
}

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
    /// The PM2 app name.
    pub app: String,
    /// The git repository URL the hosts fetch from.
    pub repo: String,
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
    /// The service deployed.
    pub service: String,
    /// The image repository release tags are made in (e.g. `crm-backend`).
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

/// The database.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://path`; usually `${DATABASE_URL}`.
    pub url: Secret,
}

/// How backups are taken.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackupConfig {
    /// `pg_dump` from this machine against `database.url`.
    PgDump {
        /// Artifact directory (relative to the config file); or set `store`.
        #[serde(default)]
        dir: Option<PathBuf>,
        /// Object store instead of `dir`: `s3://bucket/prefix` or `file:///path`.
        /// Backups then outlive the machine that deploys (a CI runner).
        #[serde(default)]
        store: Option<String>,
        /// An S3-compatible server's endpoint (`https://…`); AWS when unset.
        #[serde(default)]
        endpoint: Option<String>,
        /// The bucket's region.
        #[serde(default)]
        region: Option<String>,
        /// S3 access key id, usually `${VAR}`; `AWS_ACCESS_KEY_ID` when unset.
        #[serde(default)]
        access_key_id: Option<Secret>,
        /// S3 secret access key, usually `${VAR}`; `AWS_SECRET_ACCESS_KEY` when unset.
        #[serde(default)]
        secret_access_key: Option<Secret>,
        /// Backups kept.
        #[serde(default = "default_keep_backups")]
        keep: usize,
        /// `custom` (pg_dump -Fc) or `plain_gzip`.
        #[serde(default)]
        format: DumpFormat,
        /// zlib level 0–9; 1 (fast) by default, since migrations wait for the dump.
        #[serde(default)]
        compression: DumpCompression,
    },
    /// `pg_dump` inside the stack's database container.
    ComposeExec {
        /// The database service.
        service: String,
        /// Database name inside the container.
        database: String,
        /// Database user inside the container.
        user: String,
        /// Artifact directory (relative to the config file); or set `store`.
        #[serde(default)]
        dir: Option<PathBuf>,
        /// Object store instead of `dir`: `s3://bucket/prefix` or `file:///path`.
        /// Backups then outlive the machine that deploys (a CI runner).
        #[serde(default)]
        store: Option<String>,
        /// An S3-compatible server's endpoint (`https://…`); AWS when unset.
        #[serde(default)]
        endpoint: Option<String>,
        /// The bucket's region.
        #[serde(default)]
        region: Option<String>,
        /// S3 access key id, usually `${VAR}`; `AWS_ACCESS_KEY_ID` when unset.
        #[serde(default)]
        access_key_id: Option<Secret>,
        /// S3 secret access key, usually `${VAR}`; `AWS_SECRET_ACCESS_KEY` when unset.
        #[serde(default)]
        secret_access_key: Option<Secret>,
        /// Backups kept.
        #[serde(default = "default_keep_backups")]
        keep: usize,
        /// zlib level 0–9; 1 (fast) by default, since migrations wait for the dump.
        #[serde(default)]
        compression: DumpCompression,
    },
    /// `VACUUM INTO` for SQLite databases.
    Sqlite {
        /// Artifact directory.
        dir: PathBuf,
        /// Backups kept.
        #[serde(default = "default_keep_backups")]
        keep: usize,
    },
}

fn default_base_revision() -> String {
    "base".into()
}

fn default_dot() -> PathBuf {
    PathBuf::from(".")
}

fn default_keep_backups() -> usize {
    7
}

/// pg_dump output formats.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DumpFormat {
    /// `pg_dump -Fc`.
    #[default]
    Custom,
    /// Plain SQL, gzipped.
    PlainGzip,
}

/// How migrations are applied.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MigrationsConfig {
    /// A directory of `<version>_<name>.sql` (+ `.down.sql`) files.
    Sql {
        /// The directory (relative to the config file).
        dir: PathBuf,
        /// History table dialect: `deploykit`, `supabase` or `sqlx`.
        #[serde(default)]
        dialect: Dialect,
    },
    /// The app's own tool, run on this machine (e.g. prisma, alembic).
    Command {
        /// Applies pending migrations, e.g. `["alembic", "upgrade", "head"]`.
        up: Vec<String>,
        /// Prints the current revision, e.g. `["alembic", "current"]`.
        current: Vec<String>,
        /// Goes back to a revision (`{revision}` is replaced), e.g.
        /// `["alembic", "downgrade", "{revision}"]`.
        down: Vec<String>,
        /// The revision meaning "nothing applied" (alembic: `base`).
        #[serde(default = "default_base_revision")]
        base_revision: String,
        /// Directory the commands run in (relative to the config file).
        #[serde(default = "default_dot")]
        dir: PathBuf,
    },
    /// The app's own tool, in a one-off container of the new image.
    ComposeRun {
        /// The compose service the one-off container runs as (default: the
        /// target's service; Compose v1 with host networking needs a separate one).
        service: Option<String>,
        /// Applies pending migrations.
        up: Vec<String>,
        /// Prints the current revision (first word of the last output line).
        current: Option<Vec<String>>,
        /// Goes back to a revision (`{revision}` is replaced).
        down: Option<Vec<String>>,
    },
}

/// History table dialects of the SQL migrator.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// deploykit's own table (checksums, release, timings).
    #[default]
    Deploykit,
    /// `supabase_migrations.schema_migrations`, as the Supabase CLI writes it.
    Supabase,
    /// `_sqlx_migrations`, as sqlx writes it.
    Sqlx,
}

/// One health probe.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProbeConfig {
    /// An HTTP request.
    Http {
        /// The URL.
        url: String,
        /// Expected status code.
        #[serde(default = "default_status")]
        expect_status: u16,
        /// Slower than this is `degraded`.
        #[serde(default = "default_latency")]
        max_latency_ms: u64,
        /// Read a JSON `status` field (`healthy`/`ok`, `degraded`, anything else unhealthy).
        #[serde(default)]
        json_status: bool,
    },
    /// A TCP connect.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// `SELECT 1` and required tables on `database.url`.
    Postgres {
        /// Slower than this is `degraded`.
        #[serde(default = "default_db_latency")]
        max_latency_ms: u64,
        /// Tables that must exist.
        #[serde(default)]
        tables: Vec<String>,
        /// Tables that must have row-level security enabled.
        #[serde(default)]
        rls_tables: Vec<String>,
    },
    /// Every PM2 instance of the app online and not restarting.
    Pm2 {
        /// Healthy only once every instance has been up this many seconds without a restart.
        #[serde(default = "default_settle")]
        settle_secs: u64,
    },
    /// The deployed container's own HEALTHCHECK.
    Container,
}

fn default_status() -> u16 {
    200
}
fn default_latency() -> u64 {
    5000
}
fn default_db_latency() -> u64 {
    1000
}
fn default_settle() -> u64 {
    5
}

/// The run's rules; absent keys keep core's safe defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Total seconds verification may take.
    pub health_deadline_secs: Option<u64>,
    /// Verification rounds.
    pub health_attempts: Option<u32>,
    /// Seconds between rounds.
    pub health_interval_secs: Option<u64>,
    /// Count `degraded` as passing.
    pub accept_degraded: Option<bool>,
    /// Migrations need a backup younger than this.
    pub backup_max_age_minutes: Option<u64>,
    /// Migrate without a fresh backup (explicit, recorded).
    pub waive_backup: Option<bool>,
    /// `down`, `keep` or `restore`.
    pub migration_failure: Option<MigrationFailurePolicy>,
    /// Seconds any single step may take.
    pub step_timeout_secs: Option<u64>,
    /// Releases kept.
    pub keep_releases: Option<usize>,
}

impl PolicyConfig {
    /// Core's policy with this file's overrides.
    pub fn to_policy(&self, protected: bool, keep_backups: Option<usize>) -> Policy {
        let d = Policy::default();
        let h = HealthPolicy::default();
        Policy::default()
            .health(HealthPolicy {
                deadline: self
                    .health_deadline_secs
                    .map(Duration::from_secs)
                    .unwrap_or(h.deadline),
                attempts: self.health_attempts.unwrap_or(h.attempts),
                interval: self
                    .health_interval_secs
                    .map(Duration::from_secs)
                    .unwrap_or(h.interval),
                accept_degraded: self.accept_degraded.unwrap_or(h.accept_degraded),
            })
            .backup_max_age(
                self.backup_max_age_minutes
                    .map(|m| Duration::from_secs(m * 60))
                    .unwrap_or(d.backup_max_age),
            )
            .waive_backup(self.waive_backup.unwrap_or(false))
            .migration_failure(self.migration_failure.unwrap_or_default())
            .protected(protected)
            .step_timeout(
                self.step_timeout_secs
                    .map(Duration::from_secs)
                    .unwrap_or(d.step_timeout),
            )
            .keep_releases(self.keep_releases.unwrap_or(d.keep_releases))
            .keep_backups(keep_backups.unwrap_or(d.keep_backups))
    }
}

/// Gates.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatesConfig {
    /// The environment is protected: deploys need `--approve NAME`, and lint
    /// findings need an allow marker.
    #[serde(default)]
    pub approval: bool,
}

/// Notifications.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// A Slack-compatible incoming webhook URL.
    pub webhook: Option<Secret>,
    /// Outcomes announced (default: all).
    #[serde(default)]
    pub on: Vec<NotifyOn>,
}

/// Which outcomes are announced.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    /// The deploy succeeded.
    Success,
    /// The deploy failed and was rolled back.
    Rollback,
    /// The undo failed or the run was interrupted: a human is needed.
    Failure,
}

/// Rules for `secrets check`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The env file holding the app's secrets.
    pub env_file: Option<PathBuf>,
    /// Keys that must be present and non-empty.
    #[serde(default)]
    pub required: Vec<String>,
    /// Minimum lengths by key, in addition to the built-in rules.
    #[serde(default)]
    pub min_length: BTreeMap<String, usize>,
}
