//! Waiting for a held lock instead of failing at once (`--lock-wait`).
//!
//! CI pipelines that merge twice in a row start two deploys of one environment; the
//! second should queue behind the first, not fail. It waits only for a holder that
//! is alive (a running deploy, a freeze): a stale lock is a crashed run that nobody
//! will ever release by waiting, so it is refused at once, as without waiting. The
//! lock is read at an interval, never in a loop, so a lock on a host costs one
//! short command per interval.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::event::{Event, Events};
use crate::lock::{DeployLock, LockHolder};

/// How long to wait for a held lock, and how often to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockWait {
    /// Give up (with [`Error::Locked`], as without waiting) after this long.
    pub limit: Duration,
    /// How often the lock is read again.
    pub poll: Duration,
    /// How often a [`Event::LockWaiting`] says the run is still waiting (also
    /// whenever the holder changes): a line every few seconds in a CI log.
    pub report_every: Duration,
}

impl LockWait {
    /// Waiting up to `limit`, reading the lock every 2 s and saying so every 10 s.
    pub fn up_to(limit: Duration) -> Self {
        Self {
            limit,
            poll: Duration::from_secs(2),
            report_every: Duration::from_secs(10),
        }
    }
}

/// A [`DeployLock`] whose [`acquire`](DeployLock::acquire) waits for a live holder
/// to let go, up to [`LockWait::limit`]; every other operation is the inner lock's.
/// Wrapping the lock (rather than teaching each command to wait) gives every
/// command that takes the lock the same wait: deploy, rollback, migrations.
pub struct WaitingLock {
    inner: Arc<dyn DeployLock>,
    wait: LockWait,
    events: Events,
}

impl WaitingLock {
    /// `inner`, waiting as `wait` says and reporting progress to `events`.
    pub fn new(inner: Arc<dyn DeployLock>, wait: LockWait, events: Events) -> Self {
        Self {
            inner,
            wait,
            events,
        }
    }
}

impl std::fmt::Debug for WaitingLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitingLock")
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// Progress of one wait: when it started and what was last said.
struct Waiting<'a> {
    env: &'a str,
    wait: LockWait,
    events: &'a Events,
    started: Instant,
    said_at: Option<Instant>,
    said_about: String,
}

impl<'a> Waiting<'a> {
    fn new(env: &'a str, wait: LockWait, events: &'a Events) -> Self {
        Self {
            env,
            wait,
            events,
            started: Instant::now(),
            said_at: None,
            said_about: String::new(),
        }
    }

    /// Whether to go on waiting for `holder`: reports progress and sleeps one
    /// interval if so; `false` when the holder is stale or the time is up.
    async fn still_waiting_for(&mut self, holder: &LockHolder, stale: bool) -> bool {
        let waited = self.started.elapsed();
        if stale {
            if self.said_at.is_some() {
                self.events.emit(Event::Warning {
                    message: format!(
                        "stopped waiting for the lock of {}: its holder is gone, and a stale \
                         lock is never released by waiting",
                        self.env
                    ),
                });
            }
            return false;
        }
        if waited >= self.wait.limit {
            self.events.emit(Event::Warning {
                message: format!(
                    "gave up waiting for the lock of {} after {}s",
                    self.env,
                    waited.as_secs()
                ),
            });
            return false;
        }
        let about = holder.token.clone();
        let due = self
            .said_at
            .is_none_or(|at| at.elapsed() >= self.wait.report_every);
        if due || about != self.said_about {
            self.events.emit(Event::LockWaiting {
                env: self.env.to_string(),
                holder: Box::new(holder.clone()),
                waited_secs: waited.as_secs(),
                limit_secs: self.wait.limit.as_secs(),
            });
            self.said_at = Some(Instant::now());
            self.said_about = about;
        }
        let left = self.wait.limit.saturating_sub(waited);
        tokio::time::sleep(self.wait.poll.min(left)).await;
        true
    }
}

/// Waits while `lock` has a live holder: returns once it is free or stale, or
/// when `wait.limit` has passed (the caller then meets the holder as without
/// waiting). For `recover`, which reads the holder before it takes the lock.
pub async fn wait_while_held(
    lock: &dyn DeployLock,
    env: &str,
    wait: LockWait,
    events: &Events,
) -> Result<()> {
    let mut waiting = Waiting::new(env, wait, events);
    while let Some(holder) = lock.holder().await? {
        if !waiting.still_waiting_for(&holder, holder.is_stale()).await {
            break;
        }
    }
    Ok(())
}

#[async_trait]
impl DeployLock for WaitingLock {
    async fn acquire(&self, holder: &LockHolder) -> Result<()> {
        let mut waiting = Waiting::new(&holder.env, self.wait, &self.events);
        loop {
            match self.inner.acquire(holder).await {
                Err(Error::Locked {
                    holder: held,
                    stale,
                    env,
                }) => {
                    if !waiting.still_waiting_for(&held, stale).await {
                        return Err(Error::Locked {
                            env,
                            holder: held,
                            stale,
                        });
                    }
                }
                other => return other,
            }
        }
    }

    async fn release(&self, run_id: &str) -> Result<()> {
        self.inner.release(run_id).await
    }

    async fn holder(&self) -> Result<Option<LockHolder>> {
        self.inner.holder().await
    }

    async fn replace(&self, expected: &LockHolder, next: Option<&LockHolder>) -> Result<()> {
        self.inner.replace(expected, next).await
    }
}

#[cfg(test)]
#[path = "lock_wait_tests.rs"]
mod tests;
