//! One module per command; each returns its exit code.

pub mod backup;
mod compose_check;
pub mod config_show;
pub mod demo;
pub mod deploy;
pub mod health;
pub mod history;
pub mod init;
pub mod lock;
pub mod logs;
pub mod migrate;
mod migrate_guard;
pub mod migrate_lint;
mod migrate_source;
pub mod recover;
pub mod rollback;
pub mod secrets;
pub mod state;
pub mod status;

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use deploykit_core::{
    DeployLock, Events, LockWait, Pipeline, PreApproved, StateStore, WaitingLock,
};

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
    /// Where its journals, history and lock live.
    pub store: Arc<dyn StateStore>,
    /// How long taking the lock waits for a live holder (`--lock-wait`); `None`:
    /// refused at once.
    pub lock_wait: Option<LockWait>,
}

impl EnvContext {
    /// Loads the config and builds the environment's parts.
    /// Its parts are bound to no release: each call that reads a release's files or
    /// runs its image is told which release it concerns.
    pub async fn open(config: &Path, name: &str, mode: Mode) -> Result<Self> {
        Self::open_loaded(config::load(config)?, name, mode).await
    }

    /// Like [`open`](Self::open), over a config already loaded (and given one-run
    /// settings such as `--accept-drift`).
    pub async fn open_loaded(loaded: LoadedConfig, name: &str, mode: Mode) -> Result<Self> {
        let env = loaded.env(name)?.clone();
        let parts = wiring::parts(&loaded, name, &env, Events::none().with(mode.sink())).await?;
        let store = match crate::state::open(&loaded, name, &env, Some(&parts)).await {
            Ok(s) => s.store,
            Err(e) => {
                parts.close().await;
                return Err(e.into());
            }
        };
        Ok(Self {
            loaded,
            name: name.to_string(),
            parts,
            mode,
            store,
            lock_wait: None,
        })
    }

    /// The environment's config.
    pub fn env(&self) -> &Environment {
        &self.loaded.config.environments[&self.name]
    }

    /// This environment's deploy lock, kept with its journals in its state store:
    /// on the state host for PM2 and SSH Compose environments, so deployers on
    /// different machines (laptops, CI runners) see each other.
    /// With `--lock-wait`, taking it waits for a live holder.
    pub fn lock(&self) -> Arc<dyn DeployLock> {
        match self.lock_wait {
            Some(wait) => Arc::new(WaitingLock::new(self.store.lock(), wait, self.events())),
            None => self.store.lock(),
        }
    }

    /// This command waits for a held lock as `--lock-wait` says.
    pub fn wait_for_lock(mut self, arg: &crate::cli::LockWaitArg) -> Self {
        self.lock_wait = arg
            .lock_wait
            .map(|secs| LockWait::up_to(std::time::Duration::from_secs(secs)));
        self
    }

    /// Events to this command's output.
    pub fn events(&self) -> Events {
        Events::none().with(self.mode.sink())
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
            .who(actor())
            .next_step_words(crate::render::next_step::words())
            .policy(env.policy.to_policy(env.gates.approval, keep_backups))
            .lock(self.lock())
            .events(Events::none().with(self.mode.sink()));
        if let Some(t) = &self.parts.target {
            p = p.target(t.clone());
        }
        if let Some(a) = &self.loaded.artifact {
            p = p.staged_from(format!("artifact sha256:{}", a.sha256()));
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
        if let Some(hooks) = crate::hook_runner::hooks(&self.loaded, env, &self.parts) {
            p = p.hooks(hooks);
        }
        p
    }
}

/// Prints a line of output in the command's mode (`--json` gets an object).
pub fn say(mode: Mode, text: &str, json: serde_json::Value) {
    match mode {
        Mode::Json => crate::render::json::print_event(json),
        _ => println!("{}", deploykit_core::redact(text, &[])),
    }
}

/// Who is deploying, for the lock and the journal: the CI's actor, else the login
/// user. The CLI decides this; the library takes it as an input.
pub fn actor() -> String {
    actor_from(|k| std::env::var(k).ok())
}

/// [`actor`] over any environment. Containers and CI runners often have no `USER`;
/// "unknown" then told a colleague nothing about who held the lock, so the fallback
/// is the uid and the machine (`uid 1001@runner-7`), which do say where to look.
fn actor_from(var: impl Fn(&str) -> Option<String>) -> String {
    ["GITHUB_ACTOR", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| var(k).filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .or_else(|| var("HOSTNAME"))
                .unwrap_or_else(|| "this machine".into());
            match own_uid() {
                Some(uid) => format!("uid {uid}@{host}"),
                None => format!("a user without a name@{host}"),
            }
        })
}

/// This process's real uid, from /proc (no unsafe call needed).
fn own_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod actor_tests {
    use super::*;

    #[test]
    fn without_a_user_name_the_actor_is_the_uid_and_host() {
        let none = actor_from(|_| None);
        assert!(none.starts_with("uid ") && none.contains('@'), "{none}");
        assert_ne!(none, "unknown");
        let empty_user = actor_from(|k| (k == "USER").then(String::new));
        assert!(empty_user.starts_with("uid "), "{empty_user}");
        assert_eq!(
            actor_from(|k| (k == "LOGNAME").then(|| "ana".into())),
            "ana"
        );
        let ci = actor_from(|k| Some(format!("{k}-value")));
        assert_eq!(ci, "GITHUB_ACTOR-value");
    }
}
