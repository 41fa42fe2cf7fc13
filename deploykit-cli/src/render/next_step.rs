//! The CLI's words for the library's next steps: the same situations, with the
//! `deploykit` commands a human types to act on them.

use std::sync::Arc;

use deploykit_core::{NextStep, NextStepWords};

/// The wording the CLI gives its pipelines, so reports and journals name its commands.
pub fn words() -> NextStepWords {
    Arc::new(render)
}

/// One next step, naming the `deploykit` command that takes it.
pub fn render(step: &NextStep) -> String {
    match step {
        NextStep::RecoverAfterJournalFailure { env } => format!(
            "the journal could not be written, so the run stopped where it was; fix the cause, then run `deploykit recover --env {env}` to finish the undo"
        ),
        NextStep::FinishUndo { env, failures } => format!(
            "the undo did not complete ({failures}). The environment is neither fully old nor fully new and the \
             lock is kept; fix the cause, then run `deploykit recover --env {env}`"
        ),
        NextStep::PreviousUnhealthy { env, failures } => format!(
            "everything this run did was undone, but the previous release is not healthy: {failures}. \
             Investigate the app and its dependencies; the lock is kept until `deploykit recover --env {env}` succeeds"
        ),
        NextStep::RemoveResidue { env, residue, also } => match also {
            Some(also) => format!("{residue}; also: {}", render(also)),
            None => format!(
                "{residue}. The lock is kept until `deploykit recover --env {env}` succeeds"
            ),
        },
        NextStep::FinishedElsewhere { env, outcome } => format!(
            "another process (a forced `deploykit recover`) finished this run as {outcome} \
             while it was still going; check `deploykit status --env {env}` before deploying again"
        ),
        NextStep::LockTakenOver { env } => format!(
            "another process took this run's lock (a forced `deploykit recover` or `lock release`) \
             before it ended, so this run neither committed nor undid anything; check `deploykit status --env {env}` and \
             run `deploykit recover --env {env}` if the run is still unfinished"
        ),
        NextStep::RecoverOtherEnv { env } => format!("run `deploykit recover --env {env}`"),
        // A step a newer library adds: its own description, without a command.
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_names_the_command_that_takes_it() {
        let env = "staging".to_string();
        let failed = NextStep::FinishUndo {
            env: env.clone(),
            failures: "reactivate v1: pm2 down".into(),
        };
        assert_eq!(
            render(&failed),
            "the undo did not complete (reactivate v1: pm2 down). The environment is neither fully old nor fully new \
             and the lock is kept; fix the cause, then run `deploykit recover --env staging`"
        );
        let residue = NextStep::RemoveResidue {
            env: env.clone(),
            residue: "0002 stays".into(),
            also: Some(Box::new(failed)),
        };
        let text = render(&residue);
        assert!(
            text.starts_with("0002 stays; also: the undo did not complete"),
            "{text}"
        );
        let lost = render(&NextStep::LockTakenOver { env });
        assert!(lost.contains("`deploykit status --env staging`"), "{lost}");
        assert!(lost.contains("`deploykit recover --env staging`"), "{lost}");
    }
}
