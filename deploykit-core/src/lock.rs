//! The per-environment deploy lock: one deploy at a time, who holds it, and whether
//! that holder is still alive.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

pub use crate::file_lock::FileLock;

/// Who holds a lock: enough for the person who is refused to go and ask, and to
/// tell whether the holder is still running.
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
    /// Names this one acquisition. Compare-and-swap operations (renewing the lease,
    /// a recover taking over, `lock release`) act only while the lock still holds
    /// the token they read, so two of them can never both win. Empty in locks
    /// written before tokens existed.
    #[serde(default)]
    pub token: String,
    /// The lease its holder renews while it works: the liveness signal that also
    /// works when the holder runs on another machine. `None` in older locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// What the holder says it is doing, shown with every refusal so the person
    /// refused knows why without asking: a freeze's reason ("release freeze until
    /// Monday"). `None` in locks without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A freeze: held by a person, not by a running process, until a human
    /// releases it. No process renews it and none needs to, so it has no lease and
    /// is never stale; it lives where the lock lives, so it survives the machine
    /// that set it. Old locks lack the field: not a freeze.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freeze: bool,
    /// Set when the lock file exists but cannot be read (empty or cut short by a
    /// crash while it was written): no run holds it, so it is stale.
    #[serde(skip)]
    pub unreadable: Option<String>,
}

/// A holder's lease: alive until `expires_at` unless renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// How long each renewal extends it, in seconds.
    pub secs: u64,
    /// When it was last renewed.
    #[serde(with = "time::serde::rfc3339")]
    pub renewed_at: OffsetDateTime,
    /// When it runs out if not renewed again.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Whether the holder of a lock is still working, and why we think so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The holder is (or may be) running: `recover` and `lock release` refuse it.
    Alive(String),
    /// The holder is gone: its lock may be taken over.
    Stale(String),
}

impl Liveness {
    /// The reason, for messages.
    pub fn reason(&self) -> &str {
        match self {
            Liveness::Alive(r) | Liveness::Stale(r) => r,
        }
    }
}

impl LockHolder {
    /// A holder describing this process, without a lease yet.
    pub fn this_process(
        env: impl Into<String>,
        run_id: impl Into<String>,
        who: impl Into<String>,
    ) -> Self {
        let now = OffsetDateTime::now_utc();
        let pid = std::process::id();
        Self {
            env: env.into(),
            run_id: run_id.into(),
            who: who.into(),
            host: this_host(),
            pid,
            since: now,
            token: new_token(pid, now),
            lease: None,
            message: None,
            freeze: false,
            unreadable: None,
        }
    }

    /// A freeze of `env` set by `who`, saying why: deploys are refused until a
    /// human releases it. Its run id names it as a freeze, so no run's own release
    /// (which removes only its run id's lock) can lift it.
    pub fn freeze(
        env: impl Into<String>,
        who: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let mut h = Self::this_process(env, "", who);
        h.run_id = format!("freeze-{}", crate::release::utc_stamp(h.since));
        h.message = Some(one_line(&message.into()));
        h.freeze = true;
        h
    }

    /// This holder saying what it is doing (`None` leaves it silent).
    pub fn with_message(mut self, message: Option<String>) -> Self {
        self.message = message
            .map(|m| one_line(&m))
            .filter(|m| !m.trim().is_empty());
        self
    }

    /// The placeholder for a lock file that exists but cannot be read.
    pub fn unreadable(env: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            env: env.into(),
            run_id: String::new(),
            who: "nobody".into(),
            host: String::new(),
            pid: 0,
            since: OffsetDateTime::UNIX_EPOCH,
            token: String::new(),
            lease: None,
            message: None,
            freeze: false,
            unreadable: Some(why.into()),
        }
    }

    /// This holder with its lease (re)started now for `lease`.
    pub fn renewed(&self, lease: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            lease: Some(Lease {
                secs: lease.as_secs().max(1),
                renewed_at: now,
                expires_at: now + lease,
            }),
            ..self.clone()
        }
    }

    /// This holder with its lease ended now: the run stopped working but keeps the
    /// lock on purpose (`rollback_failed`, `interrupted`) for `recover`, which may
    /// take it over at once instead of waiting for the lease to run out.
    pub fn ended(&self) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            lease: Some(Lease {
                secs: self.lease.as_ref().map_or(0, |l| l.secs),
                renewed_at: now,
                expires_at: now,
            }),
            ..self.clone()
        }
    }

    /// Whether `other` is the same acquisition of the lock (renewals included).
    pub fn same_acquisition(&self, other: &LockHolder) -> bool {
        self.token == other.token && self.unreadable.is_some() == other.unreadable.is_some()
    }

    /// Whether the holder is still working, judged now.
    ///
    /// On this host a holder whose process is gone is stale at once. Otherwise a
    /// lease decides: alive until it expires. A lock without a lease (written by an
    /// older deploykit) is alive while its process runs on this host, and never
    /// judged stale from another machine.
    pub fn liveness(&self) -> Liveness {
        self.liveness_at(OffsetDateTime::now_utc())
    }

    /// [`liveness`](Self::liveness) at `now`.
    pub fn liveness_at(&self, now: OffsetDateTime) -> Liveness {
        if let Some(why) = &self.unreadable {
            return Liveness::Stale(format!(
                "the lock file is {why}, left by a crash while it was written; no run holds it"
            ));
        }
        if self.freeze {
            return Liveness::Alive(format!(
                "a freeze set by {}: it holds until a human releases it",
                self.who
            ));
        }
        let here = self.host == this_host();
        if here && !Path::new(&format!("/proc/{}", self.pid)).exists() {
            return Liveness::Stale(format!("its process {} on {} is gone", self.pid, self.host));
        }
        match &self.lease {
            Some(l) if l.expires_at <= now => Liveness::Stale(format!(
                "its lease expired at {} (last renewed at {})",
                l.expires_at, l.renewed_at
            )),
            Some(l) => Liveness::Alive(format!(
                "its lease was renewed at {} and runs until {}",
                l.renewed_at, l.expires_at
            )),
            None if here => Liveness::Alive(format!(
                "its process {} on {} is running",
                self.pid, self.host
            )),
            None => Liveness::Alive(format!(
                "it runs on {} and its lock has no lease to tell whether it is alive",
                self.host
            )),
        }
    }

    /// Whether the holder is gone (see [`liveness`](Self::liveness)).
    pub fn is_stale(&self) -> bool {
        matches!(self.liveness(), Liveness::Stale(_))
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.unreadable {
            return write!(
                f,
                "nobody (the lock file is {why}, left by a crash while it was written)"
            );
        }
        if self.freeze {
            write!(f, "a freeze by {} since {}", self.who, self.since)?;
        } else {
            write!(
                f,
                "{} on {} (pid {}, run {}) since {}",
                self.who, self.host, self.pid, self.run_id, self.since
            )?;
        }
        if let Some(l) = &self.lease {
            write!(f, ", lease until {}", l.expires_at)?;
        }
        if let Some(m) = &self.message {
            write!(f, ": \"{m}\"")?;
        }
        Ok(())
    }
}

/// `text` on one line without control characters: a message is printed in other
/// people's terminals and CI logs.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The name of this machine, as the kernel reports it.
pub(crate) fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A token unique to one acquisition: letters and digits only, so a host's shell
/// script can look for it in the lock file verbatim.
fn new_token(pid: u32, now: OffsetDateTime) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("t{:x}x{pid:x}x{n:x}", now.unix_timestamp_nanos())
}

/// The error a compare-and-swap returns when the lock no longer holds what the
/// caller read: someone else took it over, or it was released.
pub fn lock_changed(env: &str, now: Option<LockHolder>) -> Error {
    match now {
        Some(holder) => Error::Locked {
            env: env.to_string(),
            stale: holder.is_stale(),
            holder: Box::new(holder),
        },
        None => Error::RefusedUntil {
            reason: format!("the deploy lock of {env} was released by someone else"),
            next: crate::next_step::NextStep::CheckStatus {
                env: env.to_string(),
            },
        },
    }
}

/// A mutual-exclusion lock for one environment.
///
/// A lock survives the crash of its holder on purpose: a half-finished deploy must be
/// recovered before anyone deploys over it. Stale locks are reported, never stolen
/// silently: `recover` and `lock release` take them over explicitly, through
/// [`replace`](DeployLock::replace).
#[async_trait]
pub trait DeployLock: Send + Sync {
    /// Takes the lock, or fails fast with [`Error::Locked`] naming the holder. The
    /// lock never exists empty or half-written, even if the process dies midway.
    async fn acquire(&self, holder: &LockHolder) -> Result<()>;
    /// Releases the lock if `run_id` holds it; releasing a free lock is a no-op.
    async fn release(&self, run_id: &str) -> Result<()>;
    /// The current holder, if any; an unreadable lock file is a holder for which
    /// [`LockHolder::unreadable`] is set.
    async fn holder(&self) -> Result<Option<LockHolder>>;
    /// Compare-and-swap: if the lock still holds `expected`'s acquisition, replace
    /// it by `next` (renew a lease, take over) or remove it (`None`). Otherwise
    /// change nothing and fail with [`lock_changed`].
    async fn replace(&self, expected: &LockHolder, next: Option<&LockHolder>) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> LockHolder {
        LockHolder::this_process("production", "run-1", "ana")
    }

    #[test]
    fn a_live_lease_on_another_machine_is_alive_and_an_expired_one_stale() {
        let mut h = holder().renewed(Duration::from_secs(30));
        h.host = "ci-runner-7".into();
        h.pid = 4242;
        assert!(
            matches!(h.liveness(), Liveness::Alive(_)),
            "{:?}",
            h.liveness()
        );
        let later = OffsetDateTime::now_utc() + Duration::from_secs(31);
        match h.liveness_at(later) {
            Liveness::Stale(why) => assert!(why.contains("lease expired"), "{why}"),
            other => panic!("expected stale, got {other:?}"),
        }
    }

    #[test]
    fn a_dead_process_on_this_host_is_stale_at_once_even_with_a_lease() {
        let mut h = holder().renewed(Duration::from_secs(30));
        h.pid = u32::MAX - 1;
        assert!(h.is_stale());
        assert!(h.liveness().reason().contains("is gone"));
    }

    #[test]
    fn an_ended_lease_is_stale_even_though_the_process_lives() {
        let h = holder().renewed(Duration::from_secs(30)).ended();
        assert!(h.is_stale(), "{:?}", h.liveness());
    }

    #[test]
    fn a_legacy_lock_from_another_machine_is_never_called_stale() {
        let mut h = holder();
        h.host = "elsewhere".into();
        assert!(!h.is_stale());
        let json = r#"{"env":"p","run_id":"r","who":"w","host":"h","pid":1,"since":"2026-01-01T00:00:00Z"}"#;
        let legacy: LockHolder = serde_json::from_str(json).unwrap();
        assert_eq!(legacy.token, "");
        assert_eq!(legacy.lease, None);
    }

    #[test]
    fn tokens_differ_between_acquisitions_and_survive_renewal() {
        let a = holder();
        let b = holder();
        assert_ne!(a.token, b.token);
        assert!(a.token.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(a.same_acquisition(&a.renewed(Duration::from_secs(5))));
        assert!(!a.same_acquisition(&b));
    }
}
