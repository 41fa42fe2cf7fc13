//! The deploy lock in memory.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::lock::{lock_changed, DeployLock, LockHolder};

/// A [`DeployLock`] held in memory, for tests of the pipeline's locking rules.
#[derive(Debug, Default)]
pub struct MemoryLock {
    holder: Mutex<Option<LockHolder>>,
}

#[async_trait]
impl DeployLock for MemoryLock {
    async fn acquire(&self, holder: &LockHolder) -> Result<()> {
        let mut h = self.holder.lock().unwrap();
        if let Some(current) = h.as_ref() {
            return Err(Error::Locked {
                env: holder.env.clone(),
                holder: Box::new(current.clone()),
                stale: current.is_stale(),
            });
        }
        *h = Some(holder.clone());
        Ok(())
    }

    async fn release(&self, run_id: &str) -> Result<()> {
        let mut h = self.holder.lock().unwrap();
        if h.as_ref().is_some_and(|x| x.run_id == run_id) {
            *h = None;
        }
        Ok(())
    }

    async fn holder(&self) -> Result<Option<LockHolder>> {
        Ok(self.holder.lock().unwrap().clone())
    }

    async fn replace(&self, expected: &LockHolder, next: Option<&LockHolder>) -> Result<()> {
        let mut h = self.holder.lock().unwrap();
        if !h.as_ref().is_some_and(|c| c.same_acquisition(expected)) {
            return Err(lock_changed(&expected.env, h.clone()));
        }
        *h = next.cloned();
        Ok(())
    }
}
