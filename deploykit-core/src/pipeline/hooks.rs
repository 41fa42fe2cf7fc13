//! Running the operator's hooks at their points of a run, with the rule each point
//! has: `pre_deploy` refuses the run before any change, `post_migrate` and
//! `post_activate` fail it (so it is undone), `post_deploy` and `on_rollback` only
//! warn (a committed release stays; an undo is never blocked).
//!
//! Every place a hook ran is journaled (a `hook` record: point, command, place,
//! exit status, error) and its output's last lines go to the events.

use std::time::Duration;

use super::*;
use crate::hook::{Hook, HookPoint, HookRun};
use crate::journal::Outcome;
use crate::release::ReleaseId;

/// What the `DEPLOYKIT_*` variables of one run say.
pub(super) struct HookVars<'a> {
    pub run_id: &'a str,
    pub release: &'a ReleaseId,
    pub previous: Option<&'a ReleaseId>,
    /// How the run ended, for `post_deploy` and `on_rollback`.
    pub outcome: Option<Outcome>,
}

/// Why a point's hooks did not all pass.
pub(super) enum HookStop {
    /// A hook failed (its runs' errors, joined).
    Failed(String),
    /// The journal could not be written.
    Journal(String),
}

/// The phase a point belongs to, for output lines and a failed run's report.
pub(super) fn phase_of(point: HookPoint) -> Phase {
    match point {
        HookPoint::PreDeploy => Phase::Preflight,
        HookPoint::PostMigrate => Phase::Migrate,
        HookPoint::PostActivate => Phase::Activate,
        HookPoint::PostDeploy => Phase::Commit,
        HookPoint::OnRollback => Phase::Compensate,
    }
}

/// How much longer than its own timeout a runner may take before the pipeline
/// stops waiting (the runner kills the hook itself; this only bounds a stuck one).
const RUNNER_GRACE: Duration = Duration::from_secs(30);

impl Pipeline {
    /// Runs the hooks of `point` in order. A point that blocks (`pre_deploy`,
    /// `post_migrate`, `post_activate`) stops at its first failing hook; the others
    /// run every hook and report each failure as a warning.
    pub(super) async fn run_hooks(
        &self,
        journal: &dyn JournalStore,
        point: HookPoint,
        vars: &HookVars<'_>,
    ) -> std::result::Result<(), HookStop> {
        let Some(hooks) = &self.hooks else {
            return Ok(());
        };
        let blocks = matches!(
            point,
            HookPoint::PreDeploy | HookPoint::PostMigrate | HookPoint::PostActivate
        );
        for hook in hooks.at(point) {
            let env = self.hook_env(point, vars);
            let runs =
                match guard::guarded(hook.timeout + RUNNER_GRACE, hooks.runner.run(hook, &env))
                    .await
                {
                    Ok(runs) => runs,
                    Err(why) => vec![HookRun {
                        location: "deploykit".into(),
                        status: None,
                        output: Vec::new(),
                        error: Some(format!(
                            "hook {point} (`{}`) did not finish: {why:?}",
                            hook.command()
                        )),
                    }],
                };
            let mut failed = Vec::new();
            for run in runs {
                self.report_hook_run(journal, hook, &run).await?;
                if let Some(e) = run.error {
                    failed.push(e);
                }
            }
            if failed.is_empty() {
                continue;
            }
            let message = failed.join("; ");
            if blocks {
                return Err(HookStop::Failed(message));
            }
            self.events.emit(Event::Warning {
                message: format!("{message} (a {point} hook failing changes nothing)"),
            });
        }
        Ok(())
    }

    /// The run's `DEPLOYKIT_*` variables for a hook of `point`.
    fn hook_env(&self, point: HookPoint, vars: &HookVars<'_>) -> Vec<(String, String)> {
        [
            ("DEPLOYKIT_ENV", self.env.clone()),
            ("DEPLOYKIT_RUN_ID", vars.run_id.to_string()),
            ("DEPLOYKIT_RELEASE", vars.release.to_string()),
            (
                "DEPLOYKIT_PREVIOUS",
                vars.previous.map(|p| p.to_string()).unwrap_or_default(),
            ),
            (
                "DEPLOYKIT_OUTCOME",
                vars.outcome.map(|o| o.to_string()).unwrap_or_default(),
            ),
            ("DEPLOYKIT_HOOK", point.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Journals one run of a hook and shows its output's last lines.
    async fn report_hook_run(
        &self,
        journal: &dyn JournalStore,
        hook: &Hook,
        run: &HookRun,
    ) -> std::result::Result<(), HookStop> {
        let phase = phase_of(hook.point);
        let tag = format!("{} hook on {}", hook.point, run.location);
        for line in &run.output {
            self.events.emit(Event::StepOutput {
                phase,
                line: format!("[{tag}] {line}"),
            });
        }
        let ended = match (&run.status, &run.error) {
            (_, Some(e)) => e.clone(),
            (Some(s), None) => format!("exited {s}"),
            (None, None) => "ran".into(),
        };
        self.events.emit(Event::StepOutput {
            phase,
            line: format!("[{tag}] `{}`: {ended}", hook.command()),
        });
        journal
            .append(&Record::Hook {
                point: hook.point,
                command: hook.command(),
                location: run.location.clone(),
                status: run.status,
                error: run.error.clone(),
                at: OffsetDateTime::now_utc(),
            })
            .await
            .map_err(|e| HookStop::Journal(e.to_string()))
    }

    /// A forward point's hooks as a step's result: a failure stops the run in
    /// the point's phase (`pre_deploy`: refused, nothing changed).
    pub(super) async fn forward_hooks(
        &self,
        state: &RunState<'_>,
        point: HookPoint,
        vars: &HookVars<'_>,
    ) -> std::result::Result<(), Stop> {
        if let Some(why) = state.keeper.as_ref().and_then(|k| k.lost()) {
            return Err(Stop::Interrupted { error: why });
        }
        match self.run_hooks(state.journal, point, vars).await {
            Ok(()) => Ok(()),
            Err(HookStop::Journal(error)) => Err(Stop::Interrupted { error }),
            Err(HookStop::Failed(message)) => {
                let phase = phase_of(point);
                let error = match point {
                    HookPoint::PreDeploy => Error::Refused {
                        reason: message,
                        next: "nothing was changed: fix what the pre_deploy hook reports, \
                               then deploy again"
                            .into(),
                    },
                    _ => Error::part(format!("{point} hook"), self.env.clone(), message).with_hint(
                        format!(
                        "the run was undone; fix what the {point} hook reports, then deploy again"
                    ),
                    ),
                };
                self.events.emit(Event::PhaseFinished {
                    phase,
                    elapsed_ms: 0,
                    ok: false,
                    detail: error.to_string(),
                });
                Err(Stop::Failed { phase, error })
            }
        }
    }

    /// A closing point's hooks (`post_deploy`, `on_rollback`): failures were
    /// warned about already; a journal that cannot be written is warned about too,
    /// since the run's end is what matters now.
    pub(super) async fn closing_hooks(
        &self,
        journal: &dyn JournalStore,
        point: HookPoint,
        vars: &HookVars<'_>,
    ) {
        if let Err(HookStop::Journal(e) | HookStop::Failed(e)) =
            self.run_hooks(journal, point, vars).await
        {
            self.events.emit(Event::Warning {
                message: format!("{point} hooks: {e}"),
            });
        }
    }
}

impl Pipeline {
    /// `post_deploy`, once the run is committed (warnings only).
    pub(super) async fn after_commit_hooks(
        &self,
        journal: &dyn JournalStore,
        spec: &ReleaseSpec,
        previous: Option<&ReleaseId>,
        report: &RunReport,
    ) {
        let vars = HookVars {
            run_id: &report.run_id,
            release: &spec.id,
            previous,
            outcome: Some(report.outcome),
        };
        self.closing_hooks(journal, HookPoint::PostDeploy, &vars)
            .await;
    }

    /// `on_rollback`, once an undo ran, whatever it achieved (warnings only: the
    /// undo is done before it starts).
    pub(super) async fn after_undo_hooks(&self, journal: &dyn JournalStore, report: &RunReport) {
        let vars = HookVars {
            run_id: &report.run_id,
            release: &report.release,
            previous: report.previous.as_ref(),
            outcome: Some(report.outcome),
        };
        self.closing_hooks(journal, HookPoint::OnRollback, &vars)
            .await;
    }
}
