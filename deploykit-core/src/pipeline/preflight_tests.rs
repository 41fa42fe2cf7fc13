//! Each preflight rule, as data in and a verdict out.

use std::time::Duration;

use super::*;
use crate::migrate::{LintFinding, MigrationId, PlannedMigration};

fn migration(
    version: &str,
    reversible: bool,
    findings: &[&str],
    allowed: bool,
) -> PlannedMigration {
    PlannedMigration {
        id: MigrationId {
            version: version.into(),
            name: format!("m{version}"),
        },
        reversible,
        findings: findings
            .iter()
            .map(|r| LintFinding {
                rule: r.to_string(),
                message: String::new(),
            })
            .collect(),
        allowed,
        all_or_nothing: true,
    }
}

fn plan(migrations: Vec<PlannedMigration>) -> MigrationPlan {
    MigrationPlan {
        migrations,
        ..MigrationPlan::default()
    }
}

fn refusal(r: Result<()>) -> String {
    match r {
        Err(e @ Error::Policy { .. }) => e.to_string(),
        other => panic!("expected a policy refusal, got {other:?}"),
    }
}

#[test]
fn the_live_release_is_refused_and_another_passes() {
    let live = ReleaseId::parse("r1").unwrap();
    let new = ReleaseId::parse("r2").unwrap();
    assert!(refusal(not_live_already(&live, Some(&live))).contains("already live"));
    assert!(not_live_already(&new, Some(&live)).is_ok());
    assert!(not_live_already(&new, None).is_ok());
}

#[test]
fn an_empty_plan_needs_nothing() {
    let policy = Policy {
        protected: true,
        migration_failure: MigrationFailurePolicy::Restore,
        ..Policy::default()
    };
    assert!(plan_allowed("prod", &policy, &plan(vec![]), false).is_ok());
}

#[test]
fn policy_down_refuses_migrations_without_down_scripts() {
    let p = plan(vec![
        migration("1", true, &[], false),
        migration("2", false, &[], false),
    ]);
    let text = refusal(plan_allowed("staging", &Policy::default(), &p, true));
    assert!(text.contains("2_m2") || text.contains("m2"), "{text}");
    assert!(text.contains("no down script"), "{text}");
    let keep = Policy {
        migration_failure: MigrationFailurePolicy::Keep,
        ..Policy::default()
    };
    assert!(plan_allowed("staging", &keep, &p, true).is_ok());
}

#[test]
fn protected_environments_refuse_unallowed_findings_only() {
    let protected = Policy {
        protected: true,
        ..Policy::default()
    };
    let flagged = plan(vec![migration("1", true, &["drop-column"], false)]);
    let text = refusal(plan_allowed("prod", &protected, &flagged, true));
    assert!(text.contains("protected environment prod"), "{text}");
    assert!(text.contains("drop-column"), "{text}");
    let allowed = plan(vec![migration("1", true, &["drop-column"], true)]);
    assert!(plan_allowed("prod", &protected, &allowed, true).is_ok());
    assert!(plan_allowed("dev", &Policy::default(), &flagged, true).is_ok());
}

#[test]
fn migrations_need_a_backup_unless_waived_and_restore_always_does() {
    let p = plan(vec![migration("1", true, &[], false)]);
    let text = refusal(plan_allowed("dev", &Policy::default(), &p, false));
    assert!(text.contains("no backup is configured"), "{text}");
    let waived = Policy {
        waive_backup: true,
        ..Policy::default()
    };
    assert!(plan_allowed("dev", &waived, &p, false).is_ok());
    let restore = Policy {
        waive_backup: true,
        migration_failure: MigrationFailurePolicy::Restore,
        ..Policy::default()
    };
    assert!(refusal(plan_allowed("dev", &restore, &p, false)).contains("policy `restore`"));
}

#[test]
fn a_backup_older_than_the_policy_allows_is_refused() {
    let now = OffsetDateTime::now_utc();
    let policy = Policy {
        backup_max_age: Duration::from_secs(600),
        ..Policy::default()
    };
    let artifact = |age_secs: i64| BackupArtifact {
        path: "/backups/dev.dump".into(),
        size: 1,
        sha256: String::new(),
        created: now - time::Duration::seconds(age_secs),
        release: ReleaseId::parse("r1").unwrap(),
        commit: crate::release::Commit::parse("abc1234").unwrap(),
        env: None,
        database_id: None,
    };
    assert!(backup_fresh(&policy, Some(&artifact(60)), now).is_ok());
    let text = refusal(backup_fresh(&policy, Some(&artifact(601)), now));
    assert!(text.contains("older than 10 minute(s)"), "{text}");
    assert!(refusal(backup_fresh(&policy, None, now)).contains("no backup was taken"));
}
