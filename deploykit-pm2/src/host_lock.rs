//! A deploy lock kept on the host itself.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deploykit_core::lock::lock_changed;
use deploykit_core::{DeployLock, Error, LockHolder, Result, Shell, ShellExt};
use time::OffsetDateTime;

use crate::commands;
use crate::layout::Layout;

/// The environment's deploy lock as `<deploy_to>/.deploykit/lock.json` on the host.
///
/// Why on the host: deploys start from laptops and from different CI runners, and
/// a lock file on any one of them cannot see the others. The file is written to a
/// temporary name and linked into place, so of two deployers exactly one wins (the
/// other gets [`Error::Locked`] naming the holder) and the lock is never empty. Like
/// core's `FileLock` it survives a crashed holder on purpose (recover first);
/// renewals, take-overs and releases are compare-and-swap operations under `flock`
/// on the host. The lease is judged by the host's clock: the age of the lock file
/// (its mtime, set by the last renewal) against the host's time, so a deploying
/// machine whose clock is off can neither kill a live holder nor keep a dead one.
pub struct Pm2HostLock {
    shell: Arc<dyn Shell>,
    layout: Layout,
}

impl Pm2HostLock {
    /// The lock of the app deployed under `layout` on `shell`'s host.
    pub fn new(shell: Arc<dyn Shell>, layout: Layout) -> Self {
        Self { shell, layout }
    }

    fn invalid(&self, e: impl std::fmt::Display) -> Error {
        Error::part(
            "lock",
            self.shell.location(),
            format!("{} is unreadable: {e}", self.layout.lock().display()),
        )
        .with_hint("inspect the file; if no deploy is running, remove it")
    }

    /// Parses [`commands::lock_read`]'s output: the clock line, then the JSON.
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
impl DeployLock for Pm2HostLock {
    async fn acquire(&self, holder: &LockHolder) -> Result<()> {
        let json = serde_json::to_vec(holder).map_err(|e| self.invalid(e))?;
        let out = self
            .shell
            .run(&commands::lock_create(&self.layout), Some(&json))
            .await?;
        if out.success() {
            return Ok(());
        }
        match self.holder().await? {
            Some(current) => Err(Error::Locked {
                env: holder.env.clone(),
                stale: current.is_stale(),
                holder: Box::new(current),
            }),
            None => Err(deploykit_core::shell::CommandFailed::new(
                "lock",
                self.shell.location(),
                &commands::lock_create(&self.layout),
                &out,
            )
            .into()),
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
        let out = self
            .shell
            .check("lock", &commands::lock_read(&self.layout))
            .await?;
        self.parse(&out.stdout_text())
    }

    async fn replace(&self, expected: &LockHolder, next: Option<&LockHolder>) -> Result<()> {
        let token = if expected.unreadable.is_some() {
            ""
        } else {
            expected.token.as_str()
        };
        let cmd = commands::lock_replace(&self.layout, token, next.is_some());
        let json = match next {
            Some(n) => Some(serde_json::to_vec(n).map_err(|e| self.invalid(e))?),
            None => None,
        };
        let out = self.shell.run(&cmd, json.as_deref()).await?;
        if out.success() {
            return Ok(());
        }
        if out.status == commands::LOCK_CHANGED {
            return Err(lock_changed(&expected.env, self.holder().await?));
        }
        Err(
            deploykit_core::shell::CommandFailed::new("lock", self.shell.location(), &cmd, &out)
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploykit_core::LocalShell;

    fn lock_in(dir: &std::path::Path) -> (Pm2HostLock, std::path::PathBuf) {
        let layout = Layout::new(dir.join("app")).unwrap();
        let path = layout.lock();
        (Pm2HostLock::new(Arc::new(LocalShell::new()), layout), path)
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_only_it_releases() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, _) = lock_in(dir.path());
        assert_eq!(lock.holder().await.unwrap(), None);
        let a = LockHolder::this_process("prod", "run-a", "alice");
        lock.acquire(&a).await.unwrap();
        let err = lock
            .acquire(&LockHolder::this_process("prod", "run-b", "bob"))
            .await
            .unwrap_err();
        match &err {
            Error::Locked { holder, .. } => assert_eq!(holder.run_id, "run-a"),
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(err.to_string().contains("alice"), "{err}");
        lock.release("run-b").await.unwrap();
        assert_eq!(lock.holder().await.unwrap().unwrap().run_id, "run-a");
        lock.release("run-a").await.unwrap();
        assert_eq!(lock.holder().await.unwrap(), None);
        lock.release("run-a").await.unwrap();
    }

    #[tokio::test]
    async fn an_empty_host_lock_is_a_stale_holder_not_free_and_can_be_released() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, path) = lock_in(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"").unwrap();
        let held = lock
            .holder()
            .await
            .unwrap()
            .expect("an empty file is not a free lock");
        assert!(held.is_stale(), "{:?}", held.liveness());
        let err = lock
            .acquire(&LockHolder::this_process("prod", "run-b", "bob"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Locked { stale: true, .. }), "{err:?}");
        lock.replace(&held, None).await.unwrap();
        assert_eq!(lock.holder().await.unwrap(), None);
        lock.acquire(&LockHolder::this_process("prod", "run-b", "bob"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_lease_is_judged_by_the_hosts_clock_and_replace_is_compare_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, path) = lock_in(dir.path());
        let mut a =
            LockHolder::this_process("prod", "run-a", "alice").renewed(Duration::from_secs(30));
        // Written by a machine whose clock is an hour behind: still alive here.
        let skew = time::Duration::hours(1);
        let l = a.lease.as_mut().unwrap();
        l.renewed_at -= skew;
        l.expires_at -= skew;
        a.host = "ci-runner-7".into();
        lock.acquire(&a).await.unwrap();
        let seen = lock.holder().await.unwrap().unwrap();
        assert!(!seen.is_stale(), "{:?}", seen.liveness());
        // The file was last renewed a minute ago by the host's clock: expired.
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let seen = lock.holder().await.unwrap().unwrap();
        assert!(seen.is_stale(), "{:?}", seen.liveness());
        // A recover takes over; the old holder's renewal then fails.
        let r =
            LockHolder::this_process("prod", "run-a", "recover").renewed(Duration::from_secs(30));
        lock.replace(&seen, Some(&r)).await.unwrap();
        let err = lock.replace(&a, Some(&a)).await.unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err:?}");
        assert_eq!(lock.holder().await.unwrap().unwrap().who, "recover");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
