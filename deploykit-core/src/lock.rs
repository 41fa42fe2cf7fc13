//! The per-environment deploy lock: one deploy at a time, and who holds it.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// Who holds a lock: enough for the person who is refused to go and ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The environment locked.
    pub env: String,
    /// The run holding it (its journal's name).
    pub run_id: String,
    /// The user (or CI actor) who started the run.
    pub who: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id on that machine.
    pub pid: u32,
    /// When the lock was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl LockHolder {
    /// A holder describing this process.
    pub fn this_process(
        env: impl Into<String>,
        run_id: impl Into<String>,
        who: impl Into<String>,
    ) -> Self {
        Self {
            env: env.into(),
            run_id: run_id.into(),
            who: who.into(),
            host: this_host(),
            pid: std::process::id(),
            since: OffsetDateTime::now_utc(),
        }
    }

    /// Whether the holder's process is gone. Only knowable on the same host; a lock
    /// held from another machine is never called stale.
    pub fn is_stale(&self) -> bool {
        self.host == this_host() && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} (pid {}, run {}) since {}",
            self.who, self.host, self.pid, self.run_id, self.since
        )
    }
}

/// The name of this machine, as the kernel reports it.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A mutual-exclusion lock for one environment.
///
/// A lock survives the crash of its holder on purpose: a half-finished deploy must be
/// recovered before anyone deploys over it. Stale locks are reported, never stolen.
#[async_trait]
pub trait DeployLock: Send + Sync {
    /// Takes the lock, or fails fast with [`Error::Locked`] naming the holder.
    async fn acquire(&self, holder: &LockHolder) -> Result<()>;
    /// Releases the lock if `run_id` holds it; releasing a free lock is a no-op.
    async fn release(&self, run_id: &str) -> Result<()>;
    /// The current holder, if any.
    async fn holder(&self) -> Result<Option<LockHolder>>;
}

/// A lock held as a file created with `O_EXCL`, holding the holder's JSON.
#[derive(Debug, Clone)]
pub struct FileLock {
    path: PathBuf,
}

impl FileLock {
    /// A lock at `path` (e.g. `<state>/locks/production.lock`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Removes the lock whoever holds it: the explicit human action after a stale
    /// lock was reported (`deploykit lock release`).
    pub fn force_release(&self) -> Result<Option<LockHolder>> {
        let holder = self.read()?;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(holder),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("remove lock", &self.path, e)),
        }
    }

    fn read(&self) -> Result<Option<LockHolder>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Refused {
                    reason: format!("lock file {} is unreadable: {e}", self.path.display()),
                    next: "inspect it; remove it by hand only if no deploy is running".into(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read lock", &self.path, e)),
        }
    }
}

#[async_trait]
impl DeployLock for FileLock {
    async fn acquire(&self, holder: &LockHolder) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create lock directory", dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.path);
        match file {
            Ok(mut file) => {
                let body = serde_json::to_vec_pretty(holder).expect("lock holder serialises");
                file.write_all(&body)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| Error::io("write lock", &self.path, e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let current = self.read()?.ok_or_else(|| Error::Refused {
                    reason: format!("lock file {} appeared and vanished", self.path.display()),
                    next: "retry the deploy".into(),
                })?;
                Err(Error::Locked {
                    env: holder.env.clone(),
                    stale: current.is_stale(),
                    holder: Box::new(current),
                })
            }
            Err(e) => Err(Error::io("create lock", &self.path, e)),
        }
    }

    async fn release(&self, run_id: &str) -> Result<()> {
        match self.read()? {
            Some(h) if h.run_id == run_id => std::fs::remove_file(&self.path)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| Error::io("remove lock", &self.path, e)),
            _ => Ok(()),
        }
    }

    async fn holder(&self) -> Result<Option<LockHolder>> {
        self.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_acquire_fails_fast_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock = FileLock::new(dir.path().join("prod.lock"));
        let first = LockHolder::this_process("production", "run-1", "ana");
        lock.acquire(&first).await.unwrap();
        let err = lock
            .acquire(&LockHolder::this_process("production", "run-2", "bo"))
            .await
            .unwrap_err();
        match &err {
            Error::Locked { holder, stale, .. } => {
                assert_eq!(holder.run_id, "run-1");
                assert!(!stale, "our own process is alive");
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(err.to_string().contains("ana on"), "{err}");
    }

    #[tokio::test]
    async fn release_only_by_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock = FileLock::new(dir.path().join("prod.lock"));
        lock.acquire(&LockHolder::this_process("production", "run-1", "ana"))
            .await
            .unwrap();
        lock.release("run-other").await.unwrap();
        assert_eq!(lock.holder().await.unwrap().unwrap().run_id, "run-1");
        lock.release("run-1").await.unwrap();
        assert!(lock.holder().await.unwrap().is_none());
        lock.release("run-1").await.unwrap();
    }

    #[tokio::test]
    async fn dead_holder_is_reported_stale_and_not_stolen() {
        let dir = tempfile::tempdir().unwrap();
        let lock = FileLock::new(dir.path().join("prod.lock"));
        let mut dead = LockHolder::this_process("production", "run-1", "ana");
        dead.pid = u32::MAX - 1; // no such process
        lock.acquire(&dead).await.unwrap();
        let err = lock
            .acquire(&LockHolder::this_process("production", "run-2", "bo"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Locked { stale: true, .. }), "{err:?}");
        assert!(err.to_string().contains("stale"));
        assert_eq!(
            lock.holder().await.unwrap().unwrap().run_id,
            "run-1",
            "never stolen"
        );
        assert_eq!(lock.force_release().unwrap().unwrap().run_id, "run-1");
        assert!(lock.holder().await.unwrap().is_none());
    }
}
