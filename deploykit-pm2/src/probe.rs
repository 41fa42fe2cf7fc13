//! PM2's own view of an app's health, as a [`HealthProbe`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deploykit_core::{HealthProbe, HealthReport, HealthStatus, Shell, ShellExt};

use crate::commands;
use crate::config::Pm2Config;
use crate::jlist::{self, Snapshot};
use crate::layout::Layout;
use crate::settle::{judge, Requirement, Verdict};

/// Healthy when every instance of the app is `online`, runs the release `current`
/// points at (its cwd or script in that release, or started through `current` with
/// that `DEPLOYKIT_RELEASE`), and has been up for at least a settle window: a cluster reload "succeeds" even when the new code crashes a
/// second after starting, and only a young start time or a climbing restart count
/// shows it.
///
/// The window is counted from each worker's start (`pm_uptime`, by the host's own
/// clock), not from the probe's: a snapshot whose instances are all older than the
/// window is healthy at once; otherwise the probe sleeps the rest of it and looks
/// again, and any instance that restarted in between (restart count, start time or
/// id changed) fails the check. See the `settle` module for every rule.
///
/// Used next to HTTP probes: PM2 says the processes live, HTTP says they serve.
pub struct Pm2Probe {
    shell: Arc<dyn Shell>,
    config: Pm2Config,
    requirement: Requirement,
    name: String,
}

impl std::fmt::Debug for Pm2Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pm2Probe")
            .field("host", &self.shell.location())
            .field("app", &self.config.app)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Pm2Probe {
    /// A probe of every app of `config` on `shell`'s host, with a 2 s settle
    /// window: all must be healthy (a worker that listens on no port is
    /// verified here alone).
    pub fn new(shell: Arc<dyn Shell>, config: Pm2Config) -> Self {
        let name = format!(
            "pm2 {} on {}",
            config.app_names().join("+"),
            shell.location()
        );
        let requirement = Requirement {
            app: config.app.clone(),
            instances: None,
            settle: Duration::from_secs(2),
            layout: Layout::new(&config.deploy_to).ok(),
        };
        Self {
            shell,
            config,
            requirement,
            name,
        }
    }

    /// Also requires at least `n` instances (e.g. the cluster size) of the first
    /// app ([`Pm2Config::app`]).
    pub fn instances(mut self, n: usize) -> Self {
        self.requirement.instances = Some(n);
        self
    }

    /// How long every instance must have been up without a restart.
    pub fn settle(mut self, window: Duration) -> Self {
        self.requirement.settle = window;
        self
    }

    /// What each app of the release must meet: the configured instance count
    /// applies to the first app (the web app's cluster size), every other app
    /// (a worker) needs its processes online and settled.
    fn requirements(&self) -> Vec<Requirement> {
        let mut all = vec![self.requirement.clone()];
        for app in &self.config.extra_apps {
            let mut req = self.requirement.clone();
            req.app = app.clone();
            req.instances = None;
            all.push(req);
        }
        all
    }

    /// `pm2 jlist` and the host's clock, in one round trip.
    async fn snapshot(&self) -> Result<Snapshot, String> {
        let out = self
            .shell
            .check("pm2 jlist", &commands::clocked_jlist(&self.config))
            .await
            .map_err(|e| e.to_string())?;
        jlist::parse_snapshot(&out.stdout_text())
    }
}

#[async_trait]
impl HealthProbe for Pm2Probe {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> HealthReport {
        let started = Instant::now();
        let report = |status, detail: String| {
            HealthReport::new(&self.name, status, started.elapsed(), detail)
        };
        let settle = self.requirement.settle;
        let requirements = self.requirements();
        let several = requirements.len() > 1;
        let mut first: Option<Snapshot> = None;
        let mut waited = Duration::ZERO;
        // At most three snapshots: the first gives the ages; after a wait for the
        // youngest, the second normally settles it; if the host's clock could not
        // tell (no start times, a clock behind them), the rest of a full window
        // between unchanged snapshots does, as the third. Every app of the release
        // is judged on the same snapshots.
        loop {
            let snap = match self.snapshot().await {
                Ok(s) => s,
                Err(e) => return report(HealthStatus::Unhealthy, e),
            };
            let mut settled = Vec::new();
            let mut longest: Option<Duration> = None;
            // An app the live release does not have (the release an undo went
            // back to predates it) is not required; the first app always is.
            let has = |app: &str| {
                snap.live_apps
                    .as_ref()
                    .is_none_or(|l| l.iter().any(|a| a == app))
            };
            for req in requirements
                .iter()
                .enumerate()
                .filter(|(i, r)| *i == 0 || has(&r.app))
                .map(|(_, r)| r)
            {
                let named = |text: String| {
                    if several {
                        format!("{}: {text}", req.app)
                    } else {
                        text
                    }
                };
                match judge(req, first.as_ref(), waited, &snap) {
                    Verdict::Unhealthy(problem) => {
                        return report(HealthStatus::Unhealthy, named(problem))
                    }
                    Verdict::Settled(summary) => settled.push(named(summary)),
                    Verdict::Wait(wait) => longest = longest.max(Some(wait)),
                }
            }
            let wait = match longest {
                None => return report(HealthStatus::Healthy, settled.join("; ")),
                Some(wait) if first.is_none() => wait,
                Some(_) => settle.saturating_sub(waited),
            };
            if first.is_none() {
                first = Some(snap);
            }
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }
}
