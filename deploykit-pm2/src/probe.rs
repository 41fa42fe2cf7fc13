//! PM2's own view of an app's health, as a [`HealthProbe`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deploykit_core::{HealthProbe, HealthReport, HealthStatus, Shell, ShellExt};

use crate::commands;
use crate::config::Pm2Config;
use crate::jlist::{self, Pm2Process};

/// Healthy when every instance of the app is `online` and none restarted during a
/// settle window: a cluster reload "succeeds" even when the new code crashes a
/// second after starting, and only a climbing restart count shows it.
///
/// Used next to HTTP probes: PM2 says the processes live, HTTP says they serve.
pub struct Pm2Probe {
    shell: Arc<dyn Shell>,
    config: Pm2Config,
    instances: Option<usize>,
    settle: Duration,
    name: String,
}

impl Pm2Probe {
    /// A probe of `config.app` on `shell`'s host, with a 2 s settle window.
    pub fn new(shell: Arc<dyn Shell>, config: Pm2Config) -> Self {
        let name = format!("pm2 {} on {}", config.app, shell.location());
        Self {
            shell,
            config,
            instances: None,
            settle: Duration::from_secs(2),
            name,
        }
    }

    /// Also requires at least `n` instances (e.g. the cluster size).
    pub fn instances(mut self, n: usize) -> Self {
        self.instances = Some(n);
        self
    }

    /// How long restart counts must stay still.
    pub fn settle(mut self, window: Duration) -> Self {
        self.settle = window;
        self
    }

    async fn snapshot(&self) -> Result<Vec<Pm2Process>, String> {
        let out = self
            .shell
            .check("pm2 jlist", &commands::jlist(&self.config))
            .await
            .map_err(|e| e.to_string())?;
        Ok(jlist::parse(&out.stdout_text())?
            .into_iter()
            .filter(|p| p.name == self.config.app)
            .collect())
    }

    /// Judges one snapshot: `Some(problem)` when not healthy.
    fn judge(&self, procs: &[Pm2Process]) -> Option<String> {
        if procs.is_empty() {
            return Some(format!("no PM2 process named {}", self.config.app));
        }
        let down: Vec<String> = procs
            .iter()
            .filter(|p| !p.online())
            .map(|p| format!("#{} {}", p.pm_id, p.pm2_env.status))
            .collect();
        if !down.is_empty() {
            return Some(format!("not online: {}", down.join(", ")));
        }
        match self.instances {
            Some(n) if procs.len() < n => Some(format!("{} of {n} instances running", procs.len())),
            _ => None,
        }
    }
}

fn restarts(procs: &[Pm2Process]) -> Vec<(u32, u64)> {
    let mut r: Vec<(u32, u64)> = procs
        .iter()
        .map(|p| (p.pm_id, p.pm2_env.restart_time))
        .collect();
    r.sort();
    r
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
        let first = match self.snapshot().await {
            Ok(p) => p,
            Err(e) => return report(HealthStatus::Unhealthy, e),
        };
        if let Some(problem) = self.judge(&first) {
            return report(HealthStatus::Unhealthy, problem);
        }
        tokio::time::sleep(self.settle).await;
        let second = match self.snapshot().await {
            Ok(p) => p,
            Err(e) => return report(HealthStatus::Unhealthy, e),
        };
        if let Some(problem) = self.judge(&second) {
            return report(HealthStatus::Unhealthy, problem);
        }
        let (before, after) = (restarts(&first), restarts(&second));
        if before != after {
            return report(
                HealthStatus::Unhealthy,
                format!(
                    "restarting: restart counts went from {before:?} to {after:?} within {:?} (pm_id, restarts)",
                    self.settle
                ),
            );
        }
        report(
            HealthStatus::Healthy,
            format!(
                "{} instance(s) online, no restarts in {:?}",
                second.len(),
                self.settle
            ),
        )
    }
}
