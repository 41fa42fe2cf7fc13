//! Unit tests of [`Error`](super::Error): kinds, sources, next steps.

use super::*;

#[test]
fn kinds_come_from_the_variant_the_part_or_the_os_never_the_words() {
    let worded = Error::part("ssh connect", "h", "connection refused; disk full");
    assert_eq!(worded.kind(), ErrorKind::Failed);
    assert_eq!(
        worded.with_kind(ErrorKind::Transient).kind(),
        ErrorKind::Transient
    );
    let full = std::io::Error::from_raw_os_error(28);
    assert_eq!(Error::io("write", "/b", full).kind(), ErrorKind::DiskFull);
    let gone = std::io::Error::from(std::io::ErrorKind::NotFound);
    assert_eq!(Error::io("read", "/b", gone).kind(), ErrorKind::NotFound);
    let policy = Error::Policy {
        reason: "no".into(),
    };
    assert_eq!(policy.kind(), ErrorKind::Refused);
}

#[test]
fn a_part_failure_keeps_its_cause_as_source_and_its_text() {
    use std::error::Error as _;
    let cause = std::io::Error::other("socket closed");
    let e = Error::part("activate", "web1", "reload failed: socket closed")
        .with_source(cause)
        .with_hint("check pm2");
    assert_eq!(
        e.source().map(|s| s.to_string()).as_deref(),
        Some("socket closed")
    );
    assert_eq!(
        e.to_string(),
        "activate failed on web1: reload failed: socket closed; next: check pm2"
    );
}

/// The texts a human reads say what to do without naming a program; the
/// step comes as data, for the program to word.
fn assert_plain(e: &Error, step: &NextStep) {
    let text = e.to_string();
    assert_eq!(e.next_step().as_ref(), Some(step), "{text}");
    assert!(text.contains(&step.to_string()), "{text}");
    assert!(!text.contains("deploykit "), "names a program: {text}");
}

#[test]
fn errors_whose_way_on_is_a_command_carry_it_as_a_step_and_say_it_plainly() {
    let holder = crate::lock::LockHolder::this_process("staging", "run-1", "ana");
    let stale = Error::Locked {
        env: "staging".into(),
        holder: Box::new(holder.clone()),
        stale: true,
    };
    let release = NextStep::ReleaseStaleLock {
        env: "staging".into(),
    };
    assert_plain(&stale, &release);
    assert!(stale.to_string().contains("recover environment staging"));
    let live = Error::Locked {
        env: "staging".into(),
        holder: Box::new(holder),
        stale: false,
    };
    assert_eq!(live.next_step(), None);

    let partly = Error::PartlyApplied {
        migration: "0002_index.sql".into(),
        remains: vec!["CREATE INDEX a".into()],
        message: "migrate failed on db: boom".into(),
    };
    assert_plain(&partly, &partly_applied_step());
    assert!(partly.to_string().ends_with(
        "remove them by hand (or finish the migration by hand), then recover the environment"
    ));

    let released = crate::lock::lock_changed("staging", None);
    assert_plain(
        &released,
        &NextStep::CheckStatus {
            env: "staging".into(),
        },
    );
    assert_eq!(released.kind(), ErrorKind::Refused);

    let recover = NextStep::Recover {
        env: None,
        first: Some("fix it".into()),
    };
    let part = Error::part("migrate.revert", "db", "down failed")
        .with_hint("the down script failed")
        .with_next_step(recover.clone());
    assert_plain(&part, &recover);
    assert_eq!(
        part.to_string(),
        "migrate.revert failed on db: down failed; next: the down script failed; fix it, then recover the environment"
    );
}

#[test]
fn a_program_words_the_step_with_its_own_commands_and_the_rest_stays() {
    let e = Error::part("ssh", "web1", "connection lost").with_next_step(NextStep::Recover {
        env: None,
        first: Some("wait until the host answers".into()),
    });
    let words = |s: &NextStep| match s.clone().in_env("staging") {
        NextStep::Recover {
            env: Some(env),
            first: Some(first),
        } => {
            format!("{first}, then run `tool recover --env {env}`")
        }
        other => other.to_string(),
    };
    assert_eq!(
        e.worded(&words),
        "ssh failed on web1: connection lost; next: wait until the host answers, then run `tool recover --env staging`"
    );
    let plain = Error::part("ssh", "web1", "connection lost");
    assert_eq!(plain.worded(&words), plain.to_string());
}
