//! One module per command; each returns its exit code.

pub mod backup;
pub mod config_show;
pub mod demo;
pub mod deploy;
pub mod health;
pub mod history;
pub mod init;
pub mod lock;
pub mod migrate;
mod migrate_guard;
mod migrate_source;
pub mod recover;
pub mod rollback;
pub mod secrets;
pub mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use deploykit_core::{DeployLock, Events, FileLock, JournalDir, Pipeline, PreApproved};
use deploykit_pm2::{Layout, Pm2HostLock};

use crate::config::{self, Environment, LoadedConfig};
use crate::render::Mode;
use crate::wiring::{self, Parts};

/// What every command that works on an environment needs.
pub struct EnvContext {
    /// The config.
    pub loaded: LoadedConfig,
    /// The environment's name.
    pub name: String,
    /// Its parts.
    pub parts: Parts,
    /// Output mode.
    pub mode: Mode,
}

impl EnvContext {
    /// Loads the config and builds the environment's parts.
    pub async fn open(config: &Path, name: &str, mode: Mode) -> Result<Self> {
        Self::open_for(config, name, mode, None).await
    }

    /// Like [`open`](Self::open), for deploying (or recovering a deploy of)
    /// `release`: its parts read files from its commit, and migrators that run the
    /// release's image know which.
    pub async fn open_for(
        config: &Path,
        name: &str,
        mode: Mode,
        release: Option<&deploykit_core::ReleaseSpec>,
    ) -> Result<Self> {
        let loaded = config::load(config)?;
        let env = loaded.env(name)?.clone();
        let parts = wiring::parts(
            &loaded,
            name,
            &env,
            release,
            Events::none().with(mode.sink()),
        )
        .await?;
        Ok(Self {
            loaded,
            name: name.to_string(),
            parts,
            mode,
        })
    }

    /// The environment's config.
    pub fn env(&self) -> &Environment {
        &self.loaded.config.environments[&self.name]
    }

    /// Where this environment's run journals live.
    pub fn journals(&self) -> JournalDir {
        self.loaded.journals(&self.name)
    }

    /// This environment's deploy lock.
    ///
    /// PM2 environments keep it on their (first) host, so deployers on different
    /// machines — laptops, CI runners — see each other; others keep it in the
    /// project's state directory.
    pub fn lock(&self) -> Arc<dyn DeployLock> {
        if let (Some(config::TargetConfig::Pm2(pm2)), Some((_, host))) =
            (&self.env().target, self.parts.hosts.first())
        {
            if let Ok(layout) = Layout::new(&pm2.deploy_to) {
                return Arc::new(Pm2HostLock::new(host.shell(), layout));
            }
        }
        Arc::new(FileLock::new(self.lock_path()))
    }

    /// The lock file's path.
    pub fn lock_path(&self) -> PathBuf {
        self.loaded
            .state_dir()
            .join("locks")
            .join(format!("{}.lock", self.name))
    }

    /// The environment's full pipeline, reporting to this command's output.
    pub fn pipeline(&self, approver: Option<&str>) -> Pipeline {
        let env = self.env();
        let keep_backups = env.backup.as_ref().map(|b| match b {
            config::BackupConfig::PgDump { keep, .. }
            | config::BackupConfig::ComposeExec { keep, .. }
            | config::BackupConfig::Sqlite { keep, .. } => *keep,
        });
        let mut p = Pipeline::new(&self.name)
            .policy(env.policy.to_policy(env.gates.approval, keep_backups))
            .lock(self.lock())
            .events(Events::none().with(self.mode.sink()));
        if let Some(t) = &self.parts.target {
            p = p.target(t.clone());
        }
        if let Some(b) = &self.parts.backup {
            p = p.backup(b.clone());
        }
        if let Some(m) = &self.parts.migrator {
            p = p.migrator(m.clone());
        }
        for probe in &self.parts.probes {
            p = p.probe(probe.clone());
        }
        if let Some(name) = approver {
            p = p.gate(Arc::new(PreApproved(name.to_string())));
        }
        p
    }
}

/// Prints a line of output in the command's mode (`--json` gets an object).
pub fn say(mode: Mode, text: &str, mut json: serde_json::Value) {
    match mode {
        Mode::Json => {
            deploykit_core::secret::redact_json(&mut json);
            println!("{json}")
        }
        _ => println!("{}", deploykit_core::redact(text, &[])),
    }
}
