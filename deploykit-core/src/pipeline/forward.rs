//! The forward run: preflight, then prepare ∥ backup, migrate, activate, verify.
//! Each step is journaled before it changes anything; the first failure stops the
//! run and hands it to `finish` for the undo.

use super::*;
use crate::backup::BackupRequest;
use crate::health_driver::HealthDriver;
use crate::hook::HookPoint;
use crate::migrate::MigrationPlan;
use crate::policy::MigrationFailurePolicy;
use crate::release::ReleaseId;
use crate::rollback::Compensation;

impl Pipeline {
    /// Everything up to and including verify.
    pub(super) async fn forward(
        &self,
        state: &RunState<'_>,
        spec: &ReleaseSpec,
        previous: Option<&ReleaseId>,
        report: &mut RunReport,
    ) -> std::result::Result<(), Stop> {
        let plan = self.checked(state, spec, previous, report).await?;
        let run_id = report.run_id.clone();
        let vars = super::hooks::HookVars {
            run_id: &run_id,
            release: &spec.id,
            previous,
            outcome: None,
        };
        self.forward_hooks(state, HookPoint::PreDeploy, &vars)
            .await?;

        // Prepare and backup touch no live traffic, so they run side by side.
        let prepare = async {
            match &self.target {
                // Already staged (a rollback, or a redeploy of a kept release): nothing
                // to prepare, and nothing to discard if the run fails.
                Some(target) if self.is_staged(target.as_ref(), &spec.id).await? => {
                    self.events.emit(Event::Warning {
                        message: format!("{} is already staged; prepare skipped", spec.id),
                    });
                    Ok(())
                }
                Some(target) => {
                    let undo = Compensation::DiscardRelease {
                        release: spec.id.clone(),
                    };
                    self.step(
                        state,
                        Phase::Prepare,
                        Some(undo),
                        target.prepare(spec),
                        |_| match &self.staged_from {
                            Some(from) => format!("staged {} from {from}", spec.id),
                            None => format!("staged {}", spec.id),
                        },
                    )
                    .await
                }
                None => Ok(()),
            }
        };
        let needs_backup = self.backup.is_some() && (!plan.is_empty() || self.migrator.is_none());
        let backup = async {
            match (&self.backup, needs_backup) {
                (Some(backup), true) => {
                    let request = BackupRequest {
                        env: self.env.clone(),
                        release: spec.id.clone(),
                        commit: spec.commit.clone(),
                        branch: spec.branch.clone(),
                    };
                    let taken = async {
                        let a = backup.create(&request).await?;
                        backup.verify(&a).await?;
                        Ok(a)
                    };
                    let artifact = self
                        .step(state, Phase::Backup, None, taken, |a| {
                            format!(
                                "{} ({} bytes, sha256 {})",
                                a.path.display(),
                                a.size,
                                a.sha256
                            )
                        })
                        .await?;
                    Ok(Some(artifact))
                }
                _ => Ok(None),
            }
        };
        let (prepared, backed_up) = futures::join!(prepare, backup);
        let artifact = match (prepared, backed_up) {
            (Err(Stop::Interrupted { error }), _) | (_, Err(Stop::Interrupted { error })) => {
                return Err(Stop::Interrupted { error })
            }
            (Err(stop), _) | (_, Err(stop)) => return Err(stop),
            (Ok(()), Ok(artifact)) => artifact,
        };
        report.backup = artifact.clone();

        if let (Some(migrator), false) = (&self.migrator, plan.is_empty()) {
            self.check_backup_fresh(artifact.as_ref())?;
            let undo = self.migration_undo(&plan, artifact.as_ref())?;
            let applied = self
                .step(
                    state,
                    Phase::Migrate,
                    Some(undo),
                    migrator.apply(&plan),
                    |set| format!("applied {} migration(s)", set.migrations.len()),
                )
                .await?;
            report.applied = Some(applied);
        }
        if self.migrator.is_some() {
            self.forward_hooks(state, HookPoint::PostMigrate, &vars)
                .await?;
        }

        if let Some(target) = &self.target {
            let undo = Compensation::Reactivate {
                previous: previous.cloned(),
                failed: spec.id.clone(),
            };
            self.step(
                state,
                Phase::Activate,
                Some(undo),
                target.activate(Some(&spec.id)),
                |_| format!("{} is live", spec.id),
            )
            .await?;
            self.forward_hooks(state, HookPoint::PostActivate, &vars)
                .await?;
        }

        if !self.probes.is_empty() {
            let driver = HealthDriver::new(self.probes.clone(), self.policy.health.clone());
            let events = self.events.clone();
            let healthy = async move {
                let verdict = driver.run(&events).await;
                if verdict.passed {
                    Ok(verdict.rounds)
                } else {
                    Err(Error::part(
                        "verify",
                        "health probes",
                        format!(
                            "not healthy after {} round(s): {}",
                            verdict.rounds,
                            verdict.failures()
                        ),
                    ))
                }
            };
            let verified = self
                .step(state, Phase::Verify, None, healthy, |rounds| {
                    format!("all probes passed after {rounds} round(s)")
                })
                .await;
            if verified.is_err() {
                self.logs_on_failure(&spec.id, report).await;
            }
            verified?;
        }
        Ok(())
    }

    /// Preflight under the step deadline, as its own phase. It changes nothing, so
    /// it needs no intent records.
    async fn checked(
        &self,
        state: &RunState<'_>,
        spec: &ReleaseSpec,
        previous: Option<&ReleaseId>,
        report: &mut RunReport,
    ) -> std::result::Result<MigrationPlan, Stop> {
        let t = self.phase_start(Phase::Preflight);
        let checked = self
            .guarded_step(Phase::Preflight, async {
                Ok(self.preflight(state, spec, previous).await)
            })
            .await
            .unwrap_or_else(|error| {
                Err(Stop::Failed {
                    phase: Phase::Preflight,
                    error,
                })
            });
        match checked {
            Ok((plan, approver)) => {
                report.approver = approver;
                self.phase_end(state, Phase::Preflight, t, true, "checks passed".into());
                Ok(plan)
            }
            Err(Stop::Failed { phase, error }) => {
                self.phase_end(state, phase, t, false, error.to_string());
                Err(Stop::Failed { phase, error })
            }
            Err(stop) => Err(stop),
        }
    }

    /// The undo the migrate step owes, as the migration failure policy says.
    fn migration_undo(
        &self,
        plan: &MigrationPlan,
        artifact: Option<&crate::backup::BackupArtifact>,
    ) -> std::result::Result<Compensation, Stop> {
        Ok(match self.policy.migration_failure {
            MigrationFailurePolicy::Down => Compensation::RevertMigrations {
                applied: plan.as_applied(),
            },
            MigrationFailurePolicy::Keep => Compensation::KeepSchema {
                applied: plan.as_applied(),
            },
            MigrationFailurePolicy::Restore => {
                match artifact {
                    Some(a) => Compensation::RestoreBackup {
                        artifact: a.clone(),
                        only_if_applied: plan.all_or_nothing().then(|| plan.as_applied()),
                    },
                    None => return Err(Stop::Failed {
                        phase: Phase::Migrate,
                        error: Error::Policy {
                            reason:
                                "policy `restore` needs a backup taken by this run, and none was"
                                    .into(),
                        },
                    }),
                }
            }
        })
    }

    async fn is_staged(
        &self,
        target: &dyn Target,
        id: &ReleaseId,
    ) -> std::result::Result<bool, Stop> {
        target
            .list()
            .await
            .map(|staged| staged.contains(id))
            .map_err(|error| Stop::Failed {
                phase: Phase::Prepare,
                error,
            })
    }
}
