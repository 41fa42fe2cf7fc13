//! [`Fleet`]: one release on many hosts, as one [`Target`].
//!
//! Nothing here knows what a host runs: the fleet fans out over any
//! `Arc<dyn Target>` (PM2 apps over SSH, Compose stacks, your own), so every
//! backend gets the same rollout and the same all-or-nothing switch back.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::health::HealthProbe;
use crate::logs::LogLines;
use crate::next_step::NextStep;
use crate::release::{ReleaseId, ReleaseSpec};
use crate::target::Target;
use async_trait::async_trait;
use futures::stream::{self, StreamExt};

mod gate;

/// How activation moves through the hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Every host at once (bounded by `max_parallel`).
    AllAtOnce,
    /// Batches of `batch` hosts, one batch after the other: a bad release stops
    /// at the first batch instead of reaching every host.
    Rolling {
        /// Hosts per batch (at least 1).
        batch: usize,
    },
}

/// N hosts running the same app, deployed as one: prepare everywhere, activate
/// everywhere, and if any host fails to activate, every host this call already
/// switched (and the failing one) is switched back to the release it had before.
///
/// The hosts must agree on the live release; a fleet whose hosts disagree (a
/// previous run half-failed and was not recovered) is refused rather than guessed at.
///
/// In a rolling rollout, hosts may have gate probes ([`Fleet::gate`]): each
/// batch's hosts must pass theirs before the next batch starts, and a batch that
/// does not stops the rollout and switches back every host already switched.
pub struct Fleet {
    hosts: Vec<Arc<dyn Target>>,
    names: Vec<String>,
    rollout: Rollout,
    max_parallel: usize,
    gates: Vec<Vec<Arc<dyn HealthProbe>>>,
    gate_rounds: (u32, Duration),
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("hosts", &self.names)
            .field("rollout", &self.rollout)
            .field("max_parallel", &self.max_parallel)
            .field("gate_rounds", &self.gate_rounds)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// A fleet of `(name, target)` pairs; names appear in errors. All at once,
    /// at most 8 hosts in parallel.
    pub fn new(hosts: Vec<(String, Arc<dyn Target>)>) -> Self {
        let (names, hosts): (Vec<String>, Vec<_>) = hosts.into_iter().unzip();
        Self {
            gates: vec![Vec::new(); hosts.len()],
            hosts,
            names,
            rollout: Rollout::AllAtOnce,
            max_parallel: 8,
            gate_rounds: (6, Duration::from_secs(2)),
        }
    }

    /// Probes `probe` on the host named `host` once its batch is activated, before
    /// the next batch starts (rolling rollouts only; all at once, the pipeline's
    /// verify sees every host anyway). Refused for a name the fleet does not have.
    pub fn gate(mut self, host: &str, probe: Arc<dyn HealthProbe>) -> Result<Self> {
        let Some(i) = self.names.iter().position(|n| n == host) else {
            return Err(Error::part(
                "gate",
                "fleet",
                format!("no host named {host} (hosts: {})", self.names.join(", ")),
            )
            .with_hint("name the probe's host as the fleet names it"));
        };
        self.gates[i].push(probe);
        Ok(self)
    }

    /// How often (at least 1) and how far apart a batch's gate probes are tried
    /// before the batch counts as failed (default 6 tries, 2 s apart).
    pub fn gate_rounds(mut self, attempts: u32, interval: Duration) -> Self {
        self.gate_rounds = (attempts.max(1), interval);
        self
    }

    /// Sets the rollout.
    pub fn rollout(mut self, rollout: Rollout) -> Self {
        self.rollout = rollout;
        self
    }

    /// Bounds how many hosts are worked on at the same time (at least 1).
    pub fn max_parallel(mut self, n: usize) -> Self {
        self.max_parallel = n.max(1);
        self
    }

    /// Runs `f` on the hosts `idx`, at most `max_parallel` at once, keeping order.
    async fn each<'a, T, F, Fut>(&'a self, idx: &[usize], f: F) -> Vec<(usize, Result<T>)>
    where
        F: Fn(&'a Arc<dyn Target>) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + 'a,
    {
        let mut out: Vec<(usize, Result<T>)> = stream::iter(idx.iter().copied())
            .map(|i| {
                let fut = f(&self.hosts[i]);
                async move { (i, fut.await) }
            })
            .buffer_unordered(self.max_parallel)
            .collect()
            .await;
        out.sort_by_key(|(i, _)| *i);
        out
    }

    fn all(&self) -> Vec<usize> {
        (0..self.hosts.len()).collect()
    }

    fn failures<T>(&self, results: &[(usize, Result<T>)]) -> Vec<String> {
        results
            .iter()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("{}: {e}", self.names[*i])))
            .collect()
    }
}

#[async_trait]
impl Target for Fleet {
    async fn current(&self) -> Result<Option<ReleaseId>> {
        let results = self.each(&self.all(), |t| t.current()).await;
        let errors = self.failures(&results);
        if !errors.is_empty() {
            return Err(Error::part(
                "current",
                "fleet",
                format!("could not read the live release: {}", errors.join("; ")),
            ));
        }
        let live: Vec<(usize, Option<ReleaseId>)> = results
            .into_iter()
            .map(|(i, r)| (i, r.expect("errors handled above")))
            .collect();
        let first = live.first().and_then(|(_, r)| r.clone());
        if live.iter().all(|(_, r)| *r == first) {
            return Ok(first);
        }
        let seen = live
            .iter()
            .map(|(i, r)| {
                format!(
                    "{}: {}",
                    self.names[*i],
                    r.as_ref().map_or("nothing".to_string(), |r| r.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        Err(Error::part(
            "current",
            "fleet",
            format!("the hosts disagree on the live release ({seen})"),
        )
        .with_next_step(NextStep::DeployAgainOrRecover {
            env: None,
            first: "activate one release on every host".into(),
        }))
    }

    async fn prepare(&self, spec: &ReleaseSpec) -> Result<()> {
        let results = self.each(&self.all(), |t| t.prepare(spec)).await;
        let errors = self.failures(&results);
        if errors.is_empty() {
            return Ok(());
        }
        // No host keeps any of it, the failing ones included (their own cleanup
        // may have failed too); discard is idempotent.
        let _ = self.each(&self.all(), |t| t.discard(&spec.id)).await;
        Err(Error::part(
            "prepare",
            "fleet",
            format!(
                "{} of {} host(s) failed, nothing was activated: {}",
                errors.len(),
                self.hosts.len(),
                errors.join("; ")
            ),
        ))
    }

    async fn activate(&self, release: Option<&ReleaseId>) -> Result<()> {
        // Each host's own live release, read before anything changes: what it is
        // switched back to if the fleet fails.
        let read = self.each(&self.all(), |t| t.current()).await;
        let errors = self.failures(&read);
        if !errors.is_empty() {
            return Err(Error::part(
                "activate",
                "fleet",
                format!(
                    "could not read the live release, nothing was changed: {}",
                    errors.join("; ")
                ),
            ));
        }
        let previous: Vec<Option<ReleaseId>> = read
            .into_iter()
            .map(|(_, r)| r.expect("errors handled above"))
            .collect();
        let batches: Vec<Vec<usize>> = match self.rollout {
            Rollout::AllAtOnce => vec![self.all()],
            Rollout::Rolling { batch } => self
                .all()
                .chunks(batch.max(1))
                .map(|c| c.to_vec())
                .collect(),
        };
        let rolling = matches!(self.rollout, Rollout::Rolling { .. });
        let mut touched: Vec<usize> = Vec::new();
        for (n, batch) in batches.iter().enumerate() {
            let results = self.each(batch, |t| t.activate(release)).await;
            touched.extend(batch.iter().copied());
            let mut errors = self.failures(&results);
            let mut gated = String::new();
            if errors.is_empty() && rolling {
                // Hosts that changed release pass their gate before the next batch;
                // one already on `release` (an undo) has nothing new to prove.
                let changed: Vec<usize> = batch
                    .iter()
                    .copied()
                    .filter(|i| previous[*i].as_ref() != release)
                    .collect();
                errors = self.gate_batch(&changed).await;
                if !errors.is_empty() {
                    gated = format!(
                        " (batch {} of {} failed its health gate after switching; {})",
                        n + 1,
                        batches.len(),
                        if n + 1 < batches.len() {
                            "the later batches were never switched"
                        } else {
                            "it was the last batch"
                        }
                    );
                }
            }
            if errors.is_empty() {
                continue;
            }
            // Switch back every host this call touched, failing ones included (a
            // failed reload may already have swapped `current`).
            let undo: Vec<(usize, Result<()>)> = stream::iter(touched.iter().copied())
                .map(|i| {
                    let back = previous[i].clone();
                    async move { (i, self.hosts[i].activate(back.as_ref()).await) }
                })
                .buffer_unordered(self.max_parallel)
                .collect()
                .await;
            let undo_errors = self.failures(&undo);
            let mut targets: Vec<String> = touched
                .iter()
                .map(|i| {
                    previous[*i]
                        .as_ref()
                        .map_or("offline".to_string(), |p| p.to_string())
                })
                .collect();
            targets.sort();
            targets.dedup();
            let message = format!(
                "{} host(s) failed to activate: {}{gated}. Switched {} host(s) back to {}{}",
                errors.len(),
                errors.join("; "),
                touched.len(),
                targets.join(" / "),
                if undo_errors.is_empty() {
                    String::new()
                } else {
                    format!("; switching back FAILED on: {}", undo_errors.join("; "))
                }
            );
            return Err(Error::part("activate", "fleet", message));
        }
        Ok(())
    }

    async fn discard(&self, release: &ReleaseId) -> Result<()> {
        let results = self.each(&self.all(), |t| t.discard(release)).await;
        let errors = self.failures(&results);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::part(
                "discard",
                "fleet",
                format!("could not discard {release}: {}", errors.join("; ")),
            ))
        }
    }

    async fn list(&self) -> Result<Vec<ReleaseId>> {
        let results = self.each(&self.all(), |t| t.list()).await;
        let errors = self.failures(&results);
        if !errors.is_empty() {
            return Err(Error::part(
                "list",
                "fleet",
                format!("could not list releases: {}", errors.join("; ")),
            ));
        }
        let mut all: Vec<ReleaseId> = results
            .into_iter()
            .flat_map(|(_, r)| r.unwrap_or_default())
            .collect();
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// Every host's logs; a host whose logs cannot be read is named, not fatal.
    async fn recent_logs(&self, release: &ReleaseId, lines: usize) -> Result<Vec<LogLines>> {
        let results = self
            .each(&self.all(), |t| t.recent_logs(release, lines))
            .await;
        let mut all = Vec::new();
        for (i, r) in results {
            match r {
                Ok(logs) => all.extend(logs),
                Err(e) => all.push(LogLines {
                    source: self.names[i].clone(),
                    lines: vec![format!("(its logs could not be read: {e})")],
                }),
            }
        }
        Ok(all)
    }
}
