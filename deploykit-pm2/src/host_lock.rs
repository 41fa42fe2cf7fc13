//! A deploy lock kept on the host itself.

use std::sync::Arc;

use async_trait::async_trait;
use deploykit_core::{DeployLock, Error, LockHolder, Result, Shell, ShellExt};

use crate::commands;
use crate::layout::Layout;

/// The environment's deploy lock as `<deploy_to>/.deploykit/lock.json` on the host.
///
/// Why on the host: deploys start from laptops and from different CI runners, and
/// a lock file on any one of them cannot see the others. The file is created with
/// `O_EXCL`, so of two deployers exactly one wins; the other gets
/// [`Error::Locked`] naming the holder. Like core's `FileLock` it survives a crashed
/// holder on purpose (recover first), and is never stolen.
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
            Some(h) if h.run_id == run_id => {
                self.shell
                    .check("unlock", &commands::lock_remove(&self.layout))
                    .await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn holder(&self) -> Result<Option<LockHolder>> {
        let out = self
            .shell
            .check("lock", &commands::lock_read(&self.layout))
            .await?;
        let text = out.stdout_text();
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| self.invalid(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploykit_core::LocalShell;

    #[tokio::test]
    async fn one_holder_at_a_time_and_only_it_releases() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("app")).unwrap();
        let lock = Pm2HostLock::new(Arc::new(LocalShell::new()), layout);
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
}
