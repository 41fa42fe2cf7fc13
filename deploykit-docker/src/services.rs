//! [`ComposeServices`]: several services of one Compose project (web and worker)
//! deployed as one release.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deploykit_core::{Event, LogLines, ReleaseId, ReleaseSpec, Result, Target};

use crate::engine::ContainerState;
use crate::probe::ContainerHealthProbe;
use crate::target::ComposeTarget;

/// Several services of one project that switch, are verified and roll back
/// together: web and worker built from the same Dockerfile, each with its own
/// `command:`.
///
/// * Each release is **one image**, made from the first (primary) service the way
///   a single [`ComposeTarget`] makes it (compose build, pull or present) and tagged
///   `<repo>:<release>`. Every other service `s` gets the same image tagged
///   `<repo>-<s>:<release>`. That tag is also the record that `s` is part of the
///   release, kept by the engine itself, so `recover` needs nothing else.
/// * `activate(R)` switches the services in order, each with its own strategy
///   (auto decides per service and warns once for each stop-first one). A service
///   with no `…:R` tag was not part of `R`, so its containers are removed: that is
///   how the undo treats a service that is new in the failed release. The undo
///   activates the previous release, so every service goes back, including those
///   the failed activation already switched.
/// * `current` is the release every running service runs. When they differ, or one
///   runs an image deploykit did not tag, the running images are adopted together
///   as one release `adopted-<hash>` (each tagged in its own repository), so an
///   undo puts back exactly what ran.
/// * Logs cover every service, and [`container_probes`](Self::container_probes)
///   verify every service.
#[derive(Debug)]
pub struct ComposeServices {
    members: Vec<Arc<ComposeTarget>>,
}

impl ComposeServices {
    /// `primary` (the service whose image each release is made from) and `others`
    /// of the same project, each a [`ComposeTarget::sibling`] of `primary`. The
    /// primary is shared (an `Arc`): the migrator and backup are built from it too.
    pub fn new(primary: Arc<ComposeTarget>, others: &[impl AsRef<str>]) -> Result<Self> {
        let mut members = Vec::with_capacity(others.len() + 1);
        for s in others {
            let s = s.as_ref();
            if s == primary.service()
                || members
                    .iter()
                    .any(|m: &Arc<ComposeTarget>| m.service() == s)
            {
                return Err(deploykit_core::Error::Invalid {
                    what: "compose services",
                    value: s.to_string(),
                    reason: "each service may be named once".into(),
                });
            }
            members.push(Arc::new(primary.sibling(s)?));
        }
        members.insert(0, primary);
        Ok(Self { members })
    }

    /// The service each release's image is made from (and the migrations' default).
    pub fn primary(&self) -> &Arc<ComposeTarget> {
        &self.members[0]
    }

    /// Every service's target, the primary first.
    pub fn members(&self) -> &[Arc<ComposeTarget>] {
        &self.members
    }

    /// A [`ContainerHealthProbe`] of every service for the verify phase. A service
    /// the live release leaves out (new in a release that was rolled back, so its
    /// containers were removed) passes, so the check after an undo asks only for
    /// what the previous release ran.
    pub fn container_probes(&self) -> Vec<ContainerHealthProbe> {
        let primary = self.primary();
        self.members
            .iter()
            .map(|m| {
                let probe =
                    ContainerHealthProbe::new(m.engine().clone(), &m.project().name, m.service());
                if m.service() == primary.service() {
                    probe
                } else {
                    probe.member_of(primary.service(), primary.image_repo(), m.image_repo())
                }
            })
            .collect()
    }

    /// Each service with its newest container (running or not), for `status`.
    pub async fn containers(&self) -> Result<Vec<(String, Option<ContainerState>)>> {
        let mut out = Vec::new();
        for m in &self.members {
            out.push((m.service().to_string(), m.container().await?));
        }
        Ok(out)
    }

    fn others(&self) -> &[Arc<ComposeTarget>] {
        &self.members[1..]
    }

    /// Each service's newest container, when it runs.
    async fn running(&self) -> Result<Vec<(&Arc<ComposeTarget>, ContainerState)>> {
        let mut running = Vec::new();
        for m in &self.members {
            if let Some(c) = m.container().await? {
                if matches!(c.status.as_str(), "running" | "restarting") {
                    running.push((m, c));
                }
            }
        }
        Ok(running)
    }

    /// Tags what every running service runs as one release, once.
    async fn adopt(&self, running: &[(&Arc<ComposeTarget>, ContainerState)]) -> Result<ReleaseId> {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (m, c) in running {
            for b in format!("{}={};", m.service(), c.image_id).bytes() {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        let release = ReleaseId::parse(format!("adopted-{:012x}", hash >> 16))?;
        let mut tagged = Vec::new();
        for (m, c) in running {
            let image = m.image_of(&release);
            if !m.engine().image_exists(&image).await? {
                m.engine()
                    .tag(&c.image_id, m.image_repo(), release.as_str())
                    .await?;
                tagged.push(format!("{} ran {} (tagged {image})", m.service(), c.image));
            }
        }
        if !tagged.is_empty() {
            self.primary().event_sink().emit(Event::Warning {
                message: format!(
                    "{} did not run one deploykit release: {}; a rollback returns to exactly these",
                    self.primary().where_(),
                    tagged.join(", ")
                ),
            });
        }
        Ok(release)
    }

    /// Stops and removes `m`'s containers: it is not part of `release`.
    async fn remove_service(&self, m: &ComposeTarget, release: &ReleaseId) -> Result<()> {
        let all = m
            .engine()
            .service_containers(&m.project().name, m.service())
            .await?;
        if all.is_empty() {
            return Ok(());
        }
        for c in &all {
            if matches!(c.status.as_str(), "running" | "restarting") {
                m.engine().stop(&c.id, Duration::from_secs(10)).await?;
            }
            m.engine().remove(&c.id).await?;
        }
        m.event_sink().emit(Event::Warning {
            message: format!(
                "removed the containers of {} ({}): the service is not part of release {release}",
                m.where_(),
                all.iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        Ok(())
    }
}

#[async_trait]
impl Target for ComposeServices {
    async fn current(&self) -> Result<Option<ReleaseId>> {
        let running = self.running().await?;
        let releases: Vec<Option<ReleaseId>> =
            running.iter().map(|(m, c)| m.release_of(c)).collect();
        match releases.first() {
            None => Ok(None),
            Some(Some(first)) if releases.iter().all(|r| r.as_ref() == Some(first)) => {
                Ok(Some(first.clone()))
            }
            _ if self.primary().adopts() => self.adopt(&running).await.map(Some),
            _ => Ok(running
                .iter()
                .find(|(m, _)| m.service() == self.primary().service())
                .and_then(|(m, c)| m.release_of(c))),
        }
    }

    async fn prepare(&self, spec: &ReleaseSpec) -> Result<()> {
        // Every service's strategy is decided (or refused) before anything is built.
        for m in &self.members {
            m.strategy_choice().await?;
        }
        let primary = self.primary();
        primary.prepare(spec).await?;
        let image = primary.image_of(&spec.id);
        for m in self.others() {
            // Release tags are immutable: a re-run keeps what was staged.
            if !m.engine().image_exists(&m.image_of(&spec.id)).await? {
                m.engine()
                    .tag(&image, m.image_repo(), spec.id.as_str())
                    .await?;
            }
        }
        Ok(())
    }

    async fn activate(&self, release: Option<&ReleaseId>) -> Result<()> {
        let Some(release) = release else {
            for m in &self.members {
                m.activate(None).await?;
            }
            return Ok(());
        };
        self.primary().activate(Some(release)).await?;
        for m in self.others() {
            if m.engine().image_exists(&m.image_of(release)).await? {
                m.activate(Some(release)).await?;
            } else {
                self.remove_service(m, release).await?;
            }
        }
        Ok(())
    }

    async fn discard(&self, release: &ReleaseId) -> Result<()> {
        for (m, c) in self.running().await? {
            if m.release_of(&c).as_ref() == Some(release) {
                return Err(deploykit_core::Error::part(
                    "discard",
                    m.where_(),
                    format!("release {release} is live; a live release is never removed"),
                )
                .with_hint("activate another release first"));
            }
        }
        for m in &self.members {
            m.engine().untag(&m.image_of(release)).await?;
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ReleaseId>> {
        self.primary().list().await
    }

    async fn recent_logs(&self, release: &ReleaseId, lines: usize) -> Result<Vec<LogLines>> {
        let mut out = Vec::new();
        for m in &self.members {
            out.extend(m.recent_logs(release, lines).await?);
        }
        Ok(out)
    }
}
