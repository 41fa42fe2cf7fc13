//! The checks that stop a run before it changes anything. The policy rules are pure
//! functions over data (the plan, the policy, what is configured), so each rule is
//! tested without a world; only the approval gate and its journal record need one.

use time::OffsetDateTime;

use super::*;
use crate::backup::BackupArtifact;
use crate::gate::ApprovalRequest;
use crate::migrate::MigrationPlan;
use crate::policy::MigrationFailurePolicy;
use crate::release::ReleaseId;

fn refuse(reason: String) -> Error {
    Error::Policy { reason }
}

/// Deploying the release that is already live would make its undo tear it down.
pub(super) fn not_live_already(release: &ReleaseId, previous: Option<&ReleaseId>) -> Result<()> {
    if previous == Some(release) {
        return Err(refuse(format!(
            "release {release} is already live; deploy a new release id, or use `rollback` to go back"
        )));
    }
    Ok(())
}

/// Whether `plan` may run under `policy` in `env`, given whether a backup part is
/// configured: every migration can be undone the way the policy says, a protected
/// environment gets no unreviewed destructive migration, and migrations get a backup.
pub(super) fn plan_allowed(
    env: &str,
    policy: &Policy,
    plan: &MigrationPlan,
    has_backup: bool,
) -> Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    if policy.migration_failure == MigrationFailurePolicy::Down {
        let irreversible: Vec<String> = plan
            .migrations
            .iter()
            .filter(|m| !m.reversible)
            .map(|m| m.id.to_string())
            .collect();
        if !irreversible.is_empty() {
            return Err(refuse(format!(
                "migration(s) {} have no down script, so policy `down` could not undo them; \
                 add down scripts, or set the migration failure policy to `keep` or `restore`",
                irreversible.join(", ")
            )));
        }
    }
    if policy.protected {
        let flagged: Vec<String> = plan
            .migrations
            .iter()
            .filter(|m| !m.findings.is_empty() && !m.allowed)
            .map(|m| {
                let rules: Vec<&str> = m.findings.iter().map(|f| f.rule.as_str()).collect();
                format!("{} ({})", m.id, rules.join(", "))
            })
            .collect();
        if !flagged.is_empty() {
            return Err(refuse(format!(
                "protected environment {env} refuses destructive migration(s) {}; \
                 review them and add the allow marker to each file to proceed",
                flagged.join("; ")
            )));
        }
    }
    if !has_backup && !policy.waive_backup {
        return Err(refuse(
            "migrations need a fresh backup and no backup is configured; configure one, \
             or waive the requirement explicitly"
                .into(),
        ));
    }
    if policy.migration_failure == MigrationFailurePolicy::Restore && !has_backup {
        return Err(refuse("policy `restore` needs a configured backup".into()));
    }
    Ok(())
}

/// Whether `artifact` (the backup this run took) is fresh enough at `now` to
/// migrate after. A waived backup is the caller's business.
pub(super) fn backup_fresh(
    policy: &Policy,
    artifact: Option<&BackupArtifact>,
    now: OffsetDateTime,
) -> Result<()> {
    let max = policy.backup_max_age;
    match artifact {
        Some(a) if (now - a.created) <= max => Ok(()),
        Some(a) => Err(refuse(format!(
            "backup {} is older than {} minute(s); nothing was migrated. Re-run the deploy",
            a.path.display(),
            max.as_secs() / 60
        ))),
        None => Err(refuse(
            "no backup was taken, so migrations were not applied".into(),
        )),
    }
}

impl Pipeline {
    /// Gates and plan checks, before anything changes: returns the plan and, for a
    /// protected environment, who approved it (journaled before going on).
    pub(super) async fn preflight(
        &self,
        state: &RunState<'_>,
        spec: &ReleaseSpec,
        previous: Option<&ReleaseId>,
    ) -> std::result::Result<(MigrationPlan, Option<String>), Stop> {
        let fail = |error: Error| Stop::Failed {
            phase: Phase::Preflight,
            error,
        };
        not_live_already(&spec.id, previous).map_err(fail)?;
        let plan = match &self.migrator {
            Some(m) => m.plan(Some(spec)).await.map_err(fail)?,
            None => MigrationPlan::default(),
        };
        plan_allowed(&self.env, &self.policy, &plan, self.backup.is_some()).map_err(fail)?;
        let mut approver = None;
        if self.policy.protected {
            let gate = self.gate.as_ref().ok_or_else(|| {
                fail(refuse(format!(
                    "environment {} is protected and no approval was given (e.g. --approve NAME)",
                    self.env
                )))
            })?;
            let request = ApprovalRequest {
                env: self.env.clone(),
                release: spec.id.clone(),
                previous: previous.cloned(),
                migrations: plan.migrations.iter().map(|m| m.id.to_string()).collect(),
            };
            let name = gate
                .approve(&request)
                .await
                .map_err(|e| fail(refuse(format!("approval refused: {e}"))))?;
            state
                .journal
                .append(&Record::Approved {
                    approver: name.clone(),
                    at: OffsetDateTime::now_utc(),
                })
                .await
                .map_err(|e| Stop::Interrupted {
                    error: e.to_string(),
                })?;
            approver = Some(name);
        }
        Ok((plan, approver))
    }

    /// The backup check before migrating: fresh, or explicitly waived (with a warning).
    pub(super) fn check_backup_fresh(
        &self,
        artifact: Option<&BackupArtifact>,
    ) -> std::result::Result<(), Stop> {
        if self.policy.waive_backup {
            self.events.emit(Event::Warning {
                message: "migrating without a fresh backup (waived)".into(),
            });
            return Ok(());
        }
        backup_fresh(&self.policy, artifact, OffsetDateTime::now_utc()).map_err(|error| {
            Stop::Failed {
                phase: Phase::Migrate,
                error,
            }
        })
    }
}

#[cfg(test)]
#[path = "preflight_tests.rs"]
mod tests;
