//! A deploy lock kept as a file on a host, reached through a [`Shell`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::lock::{lock_changed, DeployLock, LockHolder};
use crate::shell::{CommandFailed, Shell, ShellExt};

mod commands;

pub use commands::{lock_create, lock_read, lock_replace, LOCK_CHANGED};

/// The environment's deploy lock as a file (e.g. `<deploy_to>/.deploykit/lock.json`)
/// on the host that keeps the environment's state.
///
/// Why on the host: deploys start from laptops and from different CI runners, and
/// a lock file on any one of them cannot see the others. The file is written to a
/// temporary name and linked into place, so of two deployers exactly one wins (the
/// other gets [`Error::Locked`] naming the holder) and the lock is never empty. Like
/// [`FileLock`](crate::FileLock) it survives a crashed holder on purpose (recover
/// first); renewals, take-overs and releases are compare-and-swap operations under
/// `flock` on the host. The lease is judged by the host's clock: the age of the lock
/// file (its mtime, set by the last renewal) against the host's time, so a
/// deploying machine whose clock is off can neither kill a live holder nor keep a
/// dead one. PM2 and SSH Compose environments share it.
pub struct HostLock {
    shell: Arc<dyn Shell>,
    path: PathBuf,
}

impl std::fmt::Debug for HostLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLock")
            .field("host", &self.shell.location())
            .field("path", &self.path)
            .finish()
    }
}

impl HostLock {
    /// The lock file at `path` on `shell`'s host.
    pub fn new(shell: Arc<dyn Shell>, path: impl Into<PathBuf>) -> Self {
        Self {
            shell,
            path: path.into(),
        }
    }

    /// The lock file's path on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn invalid(&self, e: impl std::fmt::Display) -> Error {
        Error::part(
            "lock",
            self.shell.location(),
            format!("{} is unreadable: {e}", self.path.display()),
        )
        .with_hint("inspect the file; if no deploy is running, remove it")
    }

    /// Parses [`lock_read`]'s output: the clock line, then the JSON.
    fn parse(&self, text: &str) -> Result<Option<LockHolder>> {
        let (clock, body) = match text.split_once('\n') {
            Some((first, rest)) if first.starts_with("deploykit-lock ") => (Some(first), rest),
            _ => (None, text),
        };
        let mut fields = clock.unwrap_or("").split_whitespace().skip(1);
        let host_now: Option<i64> = fields.next().and_then(|s| s.parse().ok());
        let mtime = fields.next();
        if mtime == Some("-") {
            return Ok(None);
        }
        if clock.is_none() && body.trim().is_empty() {
            return Ok(None);
        }
        if body.trim().is_empty() {
            return Ok(Some(LockHolder::unreadable("", "empty")));
        }
        let mut holder: LockHolder = match serde_json::from_str(body) {
            Ok(h) => h,
            Err(e) => {
                return Ok(Some(LockHolder::unreadable(
                    "",
                    format!("not a lock record ({e})"),
                )))
            }
        };
        let mtime: Option<i64> = mtime.and_then(|s| s.parse().ok());
        if let (Some(lease), Some(now), Some(mtime)) = (holder.lease.as_mut(), host_now, mtime) {
            // The holder's clock only sets the lease's length; the host's clock
            // says how long ago it was renewed.
            let length = (lease.expires_at - lease.renewed_at).max(time::Duration::ZERO);
            let age = Duration::from_secs((now - mtime).max(0) as u64);
            let renewed = OffsetDateTime::now_utc() - age;
            lease.renewed_at = renewed;
            lease.expires_at = renewed + length;
        }
        Ok(Some(holder))
    }
}

#[async_trait]
impl DeployLock for HostLock {
    async fn acquire(&self, holder: &LockHolder) -> Result<()> {
        let json = serde_json::to_vec(holder).map_err(|e| self.invalid(e))?;
        let cmd = lock_create(&self.path);
        let out = self.shell.run(&cmd, Some(&json)).await?;
        if out.success() {
            return Ok(());
        }
        match self.holder().await? {
            Some(current) => Err(Error::Locked {
                env: holder.env.clone(),
                stale: current.is_stale(),
                holder: Box::new(current),
            }),
            None => Err(CommandFailed::new("lock", self.shell.location(), &cmd, &out).into()),
        }
    }

    async fn release(&self, run_id: &str) -> Result<()> {
        match self.holder().await? {
            Some(h) if h.unreadable.is_none() && h.run_id == run_id => {
                match self.replace(&h, None).await {
                    // Released or taken over meanwhile: it is not ours to release.
                    Err(Error::Locked { .. } | Error::Refused { .. }) => Ok(()),
                    other => other,
                }
            }
            _ => Ok(()),
        }
    }

    async fn holder(&self) -> Result<Option<LockHolder>> {
        let out = self.shell.check("lock", &lock_read(&self.path)).await?;
        self.parse(&out.stdout_text())
    }

    async fn replace(&self, expected: &LockHolder, next: Option<&LockHolder>) -> Result<()> {
        let token = if expected.unreadable.is_some() {
            ""
        } else {
            expected.token.as_str()
        };
        let cmd = lock_replace(&self.path, token, next.is_some());
        let json = match next {
            Some(n) => Some(serde_json::to_vec(n).map_err(|e| self.invalid(e))?),
            None => None,
        };
        let out = self.shell.run(&cmd, json.as_deref()).await?;
        if out.success() {
            return Ok(());
        }
        if out.status == LOCK_CHANGED {
            return Err(lock_changed(&expected.env, self.holder().await?));
        }
        Err(CommandFailed::new("lock", self.shell.location(), &cmd, &out).into())
    }
}
