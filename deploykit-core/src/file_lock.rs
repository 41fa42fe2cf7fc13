//! The deploy lock as a file in the project's state directory.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::durable::{sync_dir, write_private};
use crate::error::{Error, Result};
use crate::lock::{lock_changed, DeployLock, LockHolder};

/// A lock held as a file holding the holder's JSON.
///
/// The file is written whole to a temporary file, fsynced, then hard-linked into
/// place: `link` fails when the lock exists, so of two deployers exactly one wins,
/// and a crash can never leave the lock empty or half-written. A lock file left
/// empty by an older deploykit reads as an unreadable — stale — holder that
/// `lock release` removes. Renewals, take-overs and releases are compare-and-swap
/// operations under an advisory `flock` on `<lock>.guard`, which the kernel drops
/// when its process dies, so it never goes stale itself.
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
        let _guard = self.guard()?;
        let holder = self.read()?;
        self.remove()?;
        Ok(holder)
    }

    fn env(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    fn read(&self) -> Result<Option<LockHolder>> {
        match std::fs::read(&self.path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => {
                Ok(Some(LockHolder::unreadable(self.env(), "empty")))
            }
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                LockHolder::unreadable(self.env(), format!("not a lock record ({e})"))
            }))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read lock", &self.path, e)),
        }
    }

    /// Holds `<lock>.guard` exclusively until dropped.
    fn guard(&self) -> Result<File> {
        let dir = self.dir();
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create lock directory", dir, e))?;
        let path = self.path.with_extension("lock.guard");
        let file = private_options()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("open lock guard", &path, e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io("flock", &path, e.into()))?;
        Ok(file)
    }

    /// Writes `holder` to a fresh temporary file next to the lock, fsynced.
    fn write_temp(&self, holder: &LockHolder) -> Result<PathBuf> {
        let body = serde_json::to_vec_pretty(holder).expect("lock holder serialises");
        let tmp = self
            .path
            .with_extension(format!("lock.{}.tmp", holder.token_or_pid()));
        write_private(&tmp, &body).map_err(|e| Error::io("write lock", &tmp, e))?;
        Ok(tmp)
    }

    fn remove(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => sync_dir(self.dir()).map_err(|e| Error::io("sync", self.dir(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove lock", &self.path, e)),
        }
    }
}

fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.create(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

impl LockHolder {
    fn token_or_pid(&self) -> String {
        if self.token.is_empty() {
            format!("p{}", self.pid)
        } else {
            self.token.clone()
        }
    }
}

#[async_trait]
impl DeployLock for FileLock {
    async fn acquire(&self, holder: &LockHolder) -> Result<()> {
        let dir = self.dir();
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create lock directory", dir, e))?;
        let tmp = self.write_temp(holder)?;
        let linked = std::fs::hard_link(&tmp, &self.path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => sync_dir(dir).map_err(|e| Error::io("sync", dir, e)),
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
        let _guard = self.guard()?;
        match self.read()? {
            Some(h) if h.unreadable.is_none() && h.run_id == run_id => self.remove(),
            _ => Ok(()),
        }
    }

    async fn holder(&self) -> Result<Option<LockHolder>> {
        self.read()
    }

    async fn replace(&self, expected: &LockHolder, next: Option<&LockHolder>) -> Result<()> {
        let _guard = self.guard()?;
        let current = self.read()?;
        if !current
            .as_ref()
            .is_some_and(|c| c.same_acquisition(expected))
        {
            return Err(lock_changed(&expected.env, current));
        }
        match next {
            Some(next) => {
                let tmp = self.write_temp(next)?;
                std::fs::rename(&tmp, &self.path)
                    .map_err(|e| Error::io("replace lock", &self.path, e))?;
                sync_dir(self.dir()).map_err(|e| Error::io("sync", self.dir(), e))
            }
            None => self.remove(),
        }
    }
}

/// Writes `bytes` to `path` in one go: used by tests to leave a lock as a crash would.
#[cfg(test)]
fn write_raw(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Liveness;
    use std::time::Duration;

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
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
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

    #[tokio::test]
    async fn an_empty_or_torn_lock_file_is_a_stale_holder_that_can_be_released() {
        for body in [&b""[..], br#"{"env":"production","run_id":"ru"#] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("production.lock");
            write_raw(&path, body);
            let lock = FileLock::new(&path);
            let held = lock.holder().await.unwrap().expect("the file is there");
            assert!(held.is_stale(), "{:?}", held.liveness());
            assert!(held.to_string().contains("nobody"), "{held}");
            let err = lock
                .acquire(&LockHolder::this_process("production", "run-2", "bo"))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Locked { stale: true, .. }), "{err:?}");
            assert!(err.to_string().contains("crash"), "{err}");
            lock.replace(&held, None).await.unwrap();
            assert!(lock.holder().await.unwrap().is_none());
            lock.acquire(&LockHolder::this_process("production", "run-2", "bo"))
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn replace_is_compare_and_swap_on_the_acquisition() {
        let dir = tempfile::tempdir().unwrap();
        let lock = FileLock::new(dir.path().join("prod.lock"));
        let a =
            LockHolder::this_process("production", "run-1", "ana").renewed(Duration::from_secs(30));
        lock.acquire(&a).await.unwrap();
        let renewed = a.renewed(Duration::from_secs(30));
        lock.replace(&a, Some(&renewed)).await.unwrap();
        assert_eq!(lock.holder().await.unwrap().unwrap(), renewed);
        // A recover takes over from the (renewed) holder it read…
        let r = LockHolder::this_process("production", "run-1", "recover");
        lock.replace(&renewed, Some(&r)).await.unwrap();
        // …after which the old holder's renewal and a second take-over both fail.
        let err = lock.replace(&renewed, Some(&renewed)).await.unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err:?}");
        let err = lock.replace(&a, None).await.unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err:?}");
        assert_eq!(lock.holder().await.unwrap().unwrap().who, "recover");
        assert!(matches!(
            lock.holder().await.unwrap().unwrap().liveness(),
            Liveness::Alive(_)
        ));
    }

    #[tokio::test]
    async fn creating_or_removing_the_lock_syncs_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let lock = FileLock::new(locks.join("prod.lock"));
        crate::durable::synced::take();
        lock.acquire(&LockHolder::this_process("production", "run-1", "ana"))
            .await
            .unwrap();
        assert_eq!(crate::durable::synced::take(), vec![locks.clone()]);
        lock.release("run-1").await.unwrap();
        assert_eq!(crate::durable::synced::take(), vec![locks]);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_lock_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prod.lock");
        FileLock::new(&path)
            .acquire(&LockHolder::this_process("production", "run-1", "ana"))
            .await
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
