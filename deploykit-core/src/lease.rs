//! Keeping a lock's lease alive while its run works.
//!
//! The lock outlives a crashed holder on purpose, so something must tell a live
//! holder from a dead one, including when the holder runs on another machine (a CI
//! runner) and its pid means nothing here. The running deploy renews a lease in the
//! background; `recover` and `lock release` refuse a holder whose lease has not
//! expired.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::error::Error;
use crate::event::{Event, Events};
use crate::lock::{DeployLock, LockHolder};

/// How long a lease lasts and how often the holder renews it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long the holder counts as alive after a renewal.
    pub lease: Duration,
    /// How often it renews: well under `lease`, so a renewal or two may fail (a
    /// network blip) before anyone may call the holder dead.
    pub renew_every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            renew_every: Duration::from_secs(10),
        }
    }
}

/// Renews one holder's lease until stopped; notices when the lock was taken away.
pub(crate) struct LeaseKeeper {
    lock: Arc<dyn DeployLock>,
    current: Arc<Mutex<LockHolder>>,
    lost: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Starts renewing `holder` (already holding `lock`) every `timing.renew_every`.
    pub(crate) fn start(
        lock: Arc<dyn DeployLock>,
        holder: LockHolder,
        timing: LeaseTiming,
        events: Events,
    ) -> Self {
        let current = Arc::new(Mutex::new(holder));
        let lost = Arc::new(Mutex::new(None));
        let task = tokio::spawn(renew_loop(
            lock.clone(),
            current.clone(),
            lost.clone(),
            timing,
            events,
        ));
        Self {
            lock,
            current,
            lost,
            task,
        }
    }

    /// Why the lock is no longer this run's, if it was taken away (a forced
    /// `recover` or `lock release`).
    pub(crate) fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Checks, just before a point of no return, that the lock is still this run's:
    /// a take-over between two renewals would otherwise go unnoticed. A lock that
    /// cannot be read counts as still held (the lease says so); the journal's rules
    /// still refuse a commit after another process's undo.
    pub(crate) async fn confirm(&self) -> Option<String> {
        if let Some(why) = self.lost() {
            return Some(why);
        }
        let mine = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let why = match self.lock.holder().await {
            Ok(Some(h)) if h.same_acquisition(&mine) => return None,
            Ok(Some(h)) => format!("the deploy lock was taken over by {h}"),
            Ok(None) => "the deploy lock was released by another process".to_string(),
            Err(_) => return None,
        };
        *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
        Some(why)
    }

    /// Stops renewing. The lock itself is untouched.
    pub(crate) fn stop(&self) {
        self.task.abort();
    }

    /// Stops renewing and ends the lease now, keeping the lock: the run stopped
    /// working, and `recover` may take over without waiting for the lease to run out.
    pub(crate) async fn end(&self) -> crate::error::Result<()> {
        self.stop();
        let current = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.lock.replace(&current, Some(&current.ended())).await
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn renew_loop(
    lock: Arc<dyn DeployLock>,
    current: Arc<Mutex<LockHolder>>,
    lost: Arc<Mutex<Option<String>>>,
    timing: LeaseTiming,
    events: Events,
) {
    loop {
        tokio::time::sleep(timing.renew_every).await;
        let held = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let next = held.renewed(timing.lease);
        match lock.replace(&held, Some(&next)).await {
            Ok(()) => *current.lock().unwrap_or_else(|e| e.into_inner()) = next,
            Err(e @ (Error::Locked { .. } | Error::Refused { .. })) => {
                let why = format!("the deploy lock was taken away: {e}");
                events.emit(Event::Warning {
                    message: why.clone(),
                });
                *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                return;
            }
            Err(e) => events.emit(Event::Warning {
                message: format!("renewing the deploy lock's lease failed (retrying): {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Liveness;
    use crate::FileLock;

    #[tokio::test(start_paused = true)]
    async fn the_keeper_renews_and_notices_a_take_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock: Arc<dyn DeployLock> = Arc::new(FileLock::new(dir.path().join("p.lock")));
        let timing = LeaseTiming {
            lease: Duration::from_secs(30),
            renew_every: Duration::from_secs(10),
        };
        let h = LockHolder::this_process("p", "run-1", "ana").renewed(timing.lease);
        lock.acquire(&h).await.unwrap();
        let keeper = LeaseKeeper::start(lock.clone(), h.clone(), timing, Events::none());
        tokio::time::sleep(Duration::from_secs(25)).await;
        let now = lock.holder().await.unwrap().unwrap();
        assert!(now.same_acquisition(&h));
        assert!(
            now.lease.as_ref().unwrap().renewed_at > h.lease.as_ref().unwrap().renewed_at,
            "renewed in the background"
        );
        assert_eq!(keeper.lost(), None);
        let other = LockHolder::this_process("p", "run-1", "recover --force");
        lock.replace(&now, Some(&other)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(keeper.lost().unwrap().contains("taken away"));
        assert_eq!(lock.holder().await.unwrap().unwrap().who, "recover --force");
    }

    #[tokio::test(start_paused = true)]
    async fn ending_the_lease_keeps_the_lock_but_makes_it_stale() {
        let dir = tempfile::tempdir().unwrap();
        let lock: Arc<dyn DeployLock> = Arc::new(FileLock::new(dir.path().join("p.lock")));
        let h = LockHolder::this_process("p", "run-1", "ana").renewed(Duration::from_secs(30));
        lock.acquire(&h).await.unwrap();
        let keeper = LeaseKeeper::start(lock.clone(), h, LeaseTiming::default(), Events::none());
        keeper.end().await.unwrap();
        let now = lock.holder().await.unwrap().unwrap();
        assert!(
            matches!(now.liveness(), Liveness::Stale(_)),
            "{:?}",
            now.liveness()
        );
    }
}
