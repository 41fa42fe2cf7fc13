//! `deploykit.toml`: environments, each with a target, database, backup, migrations,
//! probes, policy, gates and notifications.
//!
//! Every table rejects unknown keys, so a typo is an error with file, line and the
//! keys that are allowed, never a silently ignored setting. Secret values are
//! [`Secret`](deploykit_core::Secret)s: showing a config prints `[redacted]` for them.

mod backup_place;
mod database;
mod defaults;
pub mod dotenv;
mod hooks;
mod interpolate;
mod load;
mod masks;
mod names;
mod notify;
mod paths;
mod policy;
mod probes;
mod secrets;
mod spelling;
mod target;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use backup_place::BackupPlace;
pub use database::{BackupConfig, DatabaseConfig, Dialect, DumpFormat, MigrationsConfig};
pub use hooks::HookConfig;
pub use interpolate::interpolate;
pub use load::{load, ConfigError, LoadedConfig};
pub use notify::{NotifyConfig, NotifyOn};
pub use paths::resolve_path;
pub use policy::{GatesConfig, PolicyConfig};
pub use probes::ProbeConfig;
pub use secrets::SecretsConfig;
pub use target::{
    ComposeConfig, ComposeImageSource, ComposeStrategy, Pm2Config, Pm2Source, TargetConfig,
};

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
