//! A deploy lock kept on the host itself.

use std::sync::Arc;

use async_trait::async_trait;
use deploykit_core::{DeployLock, HostLock, LockHolder, Result, Shell};

use crate::layout::Layout;

/// The environment's deploy lock as `<deploy_to>/.deploykit/lock.json` on the host:
/// core's [`HostLock`] (shared with SSH Compose environments) at the PM2 layout's
/// path, which is where the host state store keeps it too.
pub struct Pm2HostLock(HostLock);

impl std::fmt::Debug for Pm2HostLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pm2HostLock").field(&self.0).finish()
    }
}

impl Pm2HostLock {
    /// The lock of the app deployed under `layout` on `shell`'s host.
    pub fn new(shell: Arc<dyn Shell>, layout: Layout) -> Self {
        Self(HostLock::new(shell, layout.lock()))
    }
}

#[async_trait]
impl DeployLock for Pm2HostLock {
    async fn acquire(&self, holder: &LockHolder) -> Result<()> {
        self.0.acquire(holder).await
    }

    async fn release(&self, run_id: &str) -> Result<()> {
        self.0.release(run_id).await
    }

    async fn holder(&self) -> Result<Option<LockHolder>> {
        self.0.holder().await
    }

    async fn replace(&self, expected: &LockHolder, next: Option<&LockHolder>) -> Result<()> {
        self.0.replace(expected, next).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploykit_core::Error;
    use deploykit_core::LocalShell;
    use std::time::Duration;

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
