//! The twins themselves: real implementations of the traits over the shared [`World`].

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::backup::{Backup, BackupArtifact, BackupRequest, ConfirmDestructive};
use crate::error::{Error, Result};
use crate::health::{HealthProbe, HealthReport, HealthStatus};
use crate::migrate::{AppliedSet, MigrationPlan, MigrationStatus, Migrator, PlannedMigration};
use crate::release::{ReleaseId, ReleaseSpec};
use crate::target::Target;

use super::faults::Fault;
use super::world::World;

/// A [`Target`] twin: staged releases in a set, the live one in a field.
#[derive(Debug, Clone)]
pub struct MemoryTarget {
    pub(crate) world: World,
}

#[async_trait]
impl Target for MemoryTarget {
    async fn current(&self) -> Result<Option<ReleaseId>> {
        self.world.faults.enter("target.current").await?;
        Ok(self.world.state().live.clone())
    }

    async fn prepare(&self, spec: &ReleaseSpec) -> Result<()> {
        // The release dir exists from the first byte: a failing prepare leaves it half-made.
        self.world.state().releases.insert(spec.id.clone());
        self.world.faults.enter("target.prepare").await
    }

    async fn activate(&self, release: Option<&ReleaseId>) -> Result<()> {
        self.world.faults.enter("target.activate").await?;
        let mut s = self.world.state();
        match release {
            Some(r) if !s.releases.contains(r) => Err(Error::part(
                "activate",
                "memory",
                format!("release {r} is not staged"),
            )),
            _ => {
                s.live = release.cloned();
                Ok(())
            }
        }
    }

    async fn discard(&self, release: &ReleaseId) -> Result<()> {
        self.world.faults.enter("target.discard").await?;
        let mut s = self.world.state();
        if s.live.as_ref() == Some(release) {
            return Err(Error::part(
                "discard",
                "memory",
                format!("release {release} is live"),
            ));
        }
        s.releases.remove(release);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ReleaseId>> {
        Ok(self.world.state().releases.iter().cloned().collect())
    }

    /// What the live release "printed": its start, and why it is unhealthy if it
    /// is marked so. A release that is not live runs nothing and has no logs, so a
    /// pipeline that read them after its undo would find none.
    async fn recent_logs(
        &self,
        release: &ReleaseId,
        lines: usize,
    ) -> Result<Vec<crate::logs::LogLines>> {
        let s = self.world.state();
        if s.live.as_ref() != Some(release) {
            return Ok(Vec::new());
        }
        let mut printed = vec![format!("release {release} started")];
        if s.unhealthy.contains(release) {
            printed.push(format!("release {release}: cannot reach the database"));
        }
        let skip = printed.len().saturating_sub(lines);
        Ok(vec![crate::logs::LogLines {
            source: format!("memory: {release}"),
            lines: printed.split_off(skip),
        }])
    }
}

/// A [`Migrator`] twin: migrations "on disk" and an applied list. Apply and revert
/// consult the fault script once per migration, so "fails on the second migration"
/// can be scripted.
#[derive(Debug, Clone)]
pub struct MemoryMigrator {
    pub(crate) world: World,
}

#[async_trait]
impl Migrator for MemoryMigrator {
    async fn status(&self, _release: Option<&ReleaseSpec>) -> Result<MigrationStatus> {
        let s = self.world.state();
        let on_disk: Vec<_> = s.available.iter().map(|m| m.id.clone()).collect();
        Ok(MigrationStatus {
            applied: s
                .applied
                .iter()
                .filter(|m| on_disk.contains(m))
                .cloned()
                .collect(),
            pending: on_disk
                .iter()
                .filter(|m| !s.applied.contains(m))
                .cloned()
                .collect(),
            missing: s
                .applied
                .iter()
                .filter(|m| !on_disk.contains(m))
                .cloned()
                .collect(),
            drifted: Vec::new(),
        })
    }

    async fn plan(&self, release: Option<&ReleaseSpec>) -> Result<MigrationPlan> {
        self.world.faults.enter("migrator.plan").await?;
        let s = self.world.state();
        let migrations = s
            .available
            .iter()
            .filter(|m| !s.applied.contains(&m.id))
            .map(|m| PlannedMigration {
                id: m.id.clone(),
                reversible: m.reversible,
                findings: m.findings.clone(),
                allowed: m.allowed,
                // Each twin migration is its own transaction.
                all_or_nothing: true,
            })
            .collect();
        Ok(MigrationPlan {
            migrations,
            from_revision: None,
            origin: None,
            release: release.cloned(),
        })
    }

    async fn apply(&self, plan: &MigrationPlan) -> Result<AppliedSet> {
        let mut done = Vec::new();
        for m in &plan.migrations {
            // Each migration is its own transaction: a failure leaves it unapplied.
            self.world.faults.enter("migrator.apply").await?;
            self.world.state().applied.push(m.id.clone());
            done.push(m.id.clone());
        }
        Ok(AppliedSet {
            migrations: done,
            revision_before: None,
            revision_after: None,
            origin: None,
            release: plan.release.clone(),
        })
    }

    async fn revert(&self, applied: &AppliedSet) -> Result<()> {
        for m in applied.migrations.iter().rev() {
            if !self.world.state().applied.contains(m) {
                continue;
            }
            self.world.faults.enter("migrator.revert").await?;
            let mut s = self.world.state();
            let reversible = s.available.iter().any(|a| &a.id == m && a.reversible);
            if !reversible {
                return Err(Error::part(
                    "migrate.revert",
                    "memory",
                    format!("{m} has no down script"),
                ));
            }
            s.applied.retain(|a| a != m);
        }
        Ok(())
    }
}

/// The database identity of every [`MemoryBackup`]: one world, one database.
const MEMORY_DATABASE: &str = "memory://world";

/// A [`Backup`] twin: each artifact keeps a copy of the applied migrations and rows.
#[derive(Debug, Clone)]
pub struct MemoryBackup {
    pub(crate) world: World,
}

#[async_trait]
impl Backup for MemoryBackup {
    async fn create(&self, request: &BackupRequest) -> Result<BackupArtifact> {
        self.world.faults.enter("backup.create").await?;
        let mut s = self.world.state();
        let content = format!("{:?}{:?}", s.applied, s.rows);
        let artifact = BackupArtifact {
            path: PathBuf::from(format!(
                "/memory/{}-{}-{}.dump",
                request.env,
                s.backups.len() + 1,
                request.release
            )),
            size: content.len() as u64,
            sha256: hex::encode(Sha256::digest(content.as_bytes())),
            created: OffsetDateTime::now_utc(),
            release: request.release.clone(),
            commit: request.commit.clone(),
            env: Some(request.env.clone()),
            database_id: Some(MEMORY_DATABASE.into()),
        };
        let (applied, rows) = (s.applied.clone(), s.rows.clone());
        s.backups.push((artifact.clone(), applied, rows));
        Ok(artifact)
    }

    async fn verify(&self, artifact: &BackupArtifact) -> Result<()> {
        self.world.faults.enter("backup.verify").await?;
        if self.world.state().backups.iter().any(|b| &b.0 == artifact) {
            Ok(())
        } else {
            Err(Error::part(
                "backup.verify",
                "memory",
                format!("{} does not exist", artifact.path.display()),
            ))
        }
    }

    async fn restore(&self, artifact: &BackupArtifact, _confirm: ConfirmDestructive) -> Result<()> {
        self.world.faults.enter("backup.restore").await?;
        let mut s = self.world.state();
        let Some((_, applied, rows)) = s.backups.iter().find(|b| &b.0 == artifact).cloned() else {
            return Err(Error::part("backup.restore", "memory", "no such backup"));
        };
        s.applied = applied;
        s.rows = rows;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<BackupArtifact>> {
        Ok(self
            .world
            .state()
            .backups
            .iter()
            .map(|b| b.0.clone())
            .collect())
    }

    fn database_id(&self) -> String {
        MEMORY_DATABASE.into()
    }

    async fn remove(&self, artifact: &BackupArtifact) -> Result<()> {
        self.world.state().backups.retain(|b| &b.0 != artifact);
        Ok(())
    }
}

/// A [`HealthProbe`] twin: healthy while a release is live and not marked unhealthy.
#[derive(Debug, Clone)]
pub struct MemoryProbe {
    pub(crate) world: World,
}

#[async_trait]
impl HealthProbe for MemoryProbe {
    fn name(&self) -> &str {
        "memory"
    }

    async fn check(&self) -> HealthReport {
        let fault = self.world.faults.next("probe.check");
        match fault {
            Some(Fault::Fail) => {
                return HealthReport::new(
                    "memory",
                    HealthStatus::Unhealthy,
                    Duration::ZERO,
                    "scripted failure",
                )
            }
            Some(Fault::Hang) => std::future::pending::<()>().await,
            Some(Fault::Panic) => panic!("scripted panic in probe.check"),
            None => {}
        }
        let s = self.world.state();
        match &s.live {
            Some(r) if !s.unhealthy.contains(r) => HealthReport::new(
                "memory",
                HealthStatus::Healthy,
                Duration::ZERO,
                format!("{r} answers"),
            ),
            Some(r) => HealthReport::new(
                "memory",
                HealthStatus::Unhealthy,
                Duration::ZERO,
                format!("{r} is failing"),
            ),
            None => HealthReport::new(
                "memory",
                HealthStatus::Unhealthy,
                Duration::ZERO,
                "nothing is live",
            ),
        }
    }
}
