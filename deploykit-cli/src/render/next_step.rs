//! The CLI's words for the library's next steps: the same situations, with the
//! `deploykit` commands a human types to act on them. The library's errors carry
//! their next step as data too ([`deploykit_core::Error::next_step`]); the
//! error printer words those here ([`word_error`]).

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
        NextStep::Recover { env, first } => match first {
            Some(first) => format!("{first}, then run `{}`", recover(env)),
            None => format!("run `{}`", recover(env)),
        },
        NextStep::DeployAgainOrRecover { env, first } => format!(
            "{first}, then run the deploy again, or `{}` to finish an interrupted run",
            recover(env)
        ),
        NextStep::ReleaseStaleLock { env } => format!(
            "check the journal, run `deploykit recover --env {env}`, then `deploykit lock release --env {env}`"
        ),
        NextStep::CheckStatus { env } => {
            format!("check `deploykit status --env {env}` before going on")
        }
        NextStep::PickListedBackup { env } => {
            format!("pick a backup listed by `deploykit backup list{}`", flag(env))
        }
        NextStep::CheckBackupStore {
            url,
            env,
            run_again,
        } => {
            let env = env.as_deref().unwrap_or("ENV");
            let mut text = format!(
                "check that the store is reachable and the bucket exists, and the backup's endpoint, \
                 region and credentials for {url} (`deploykit backup list --env {env}` tests the store)"
            );
            if *run_again {
                text.push_str("; then run again (no backup was recorded)");
            }
            text
        }
        NextStep::VerifyBackup { env, path } => format!(
            "check it with `deploykit backup verify --env {env} {path}`; take a new backup instead"
        ),
        NextStep::PickOwnBackup { env, from } => format!(
            "pick one of {env}'s own backups (`deploykit backup list --env {env}`), or, to load \
             that environment's data into {env} on purpose, pass --from-env {}",
            from.as_deref().unwrap_or("NAME")
        ),
        // A step a newer library adds: its own description, without a command.
        other => other.to_string(),
    }
}

/// `deploykit recover`, for the environment when it is known.
fn recover(env: &Option<String>) -> String {
    format!("deploykit recover{}", flag(env))
}

/// ` --env ENV`, or nothing when the environment is not known.
fn flag(env: &Option<String>) -> String {
    env.as_ref()
        .map(|e| format!(" --env {e}"))
        .unwrap_or_default()
}

/// A failed command's error text (`{:#}`, every cause), with the next step of
/// each library error in it worded as the CLI's command; `env` is the
/// environment the command ran for, named where the library did not know it.
pub fn word_error(err: &anyhow::Error, env: Option<&str>) -> String {
    let mut text = format!("{err:#}");
    for cause in err.chain() {
        let Some(step) = cause
            .downcast_ref::<deploykit_core::Error>()
            .and_then(deploykit_core::Error::next_step)
        else {
            continue;
        };
        let worded = match env {
            Some(env) => render(&step.clone().in_env(env)),
            None => render(&step),
        };
        text = text.replace(&step.to_string(), &worded);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_error_s_step_is_worded_as_the_command_for_the_env_it_ran_for() {
        let lost = deploykit_core::Error::part("ssh", "web1", "connection lost").with_next_step(
            NextStep::Recover {
                env: None,
                first: Some("wait until the host answers".into()),
            },
        );
        let err = anyhow::Error::new(lost).context("deploy to staging");
        assert_eq!(
            word_error(&err, Some("staging")),
            "deploy to staging: ssh failed on web1: connection lost; next: wait until the host \
             answers, then run `deploykit recover --env staging`"
        );
        let stale = deploykit_core::Error::Locked {
            env: "staging".into(),
            holder: Box::new(deploykit_core::LockHolder::this_process(
                "staging", "r", "ana",
            )),
            stale: true,
        };
        let text = word_error(&anyhow::Error::new(stale), None);
        assert!(
            text.contains("run `deploykit recover --env staging`, then `deploykit lock release --env staging`"),
            "{text}"
        );
        assert!(!text.contains("release its lock"), "{text}");
    }

    #[test]
    fn a_step_without_its_environment_names_none() {
        let step = NextStep::Recover {
            env: None,
            first: Some("fix it".into()),
        };
        assert_eq!(render(&step), "fix it, then run `deploykit recover`");
        assert_eq!(
            render(&step.in_env("prod")),
            "fix it, then run `deploykit recover --env prod`"
        );
    }

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
