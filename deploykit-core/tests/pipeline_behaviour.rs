//! The pipeline's rules, one scenario each: phases, gates, policies, locking, events.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use deploykit_core::testing::{Fault, MemoryJournal};
use deploykit_core::*;

#[tokio::test(start_paused = true)]
async fn a_clean_run_ends_fully_on_the_new_release() {
    let s = scenario();
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert_eq!(s.world.snapshot(), s.new_state());
    assert_eq!(report.applied.unwrap().migrations.len(), 2);
    let backup = report.backup.expect("a backup was taken before migrating");
    assert_eq!(s.world.backups(), vec![backup]);
    assert!(s.lock.holder().await.unwrap().is_none(), "lock released");
    assert_eq!(report.previous.unwrap().as_str(), "v1");
}

#[tokio::test(start_paused = true)]
async fn journal_records_intent_before_and_outcome_after_each_step() {
    let s = scenario();
    let journal = MemoryJournal::default();
    s.pipeline.run(&s.spec(), &journal).await.unwrap();
    let kinds: Vec<String> = journal
        .snapshot()
        .iter()
        .map(|r| match r {
            Record::RunStarted { .. } => "start".into(),
            Record::Intent { phase, .. } => format!("intent:{phase}"),
            Record::Outcome {
                phase, error: None, ..
            } => format!("ok:{phase}"),
            Record::RunFinished { outcome, .. } => format!("end:{outcome}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds.first().unwrap(), "start");
    assert_eq!(kinds.last().unwrap(), "end:succeeded");
    for phase in ["prepare", "backup", "migrate", "activate", "verify"] {
        let i = kinds
            .iter()
            .position(|k| k == &format!("intent:{phase}"))
            .unwrap();
        let o = kinds
            .iter()
            .position(|k| k == &format!("ok:{phase}"))
            .unwrap();
        assert!(i < o, "{phase}: intent must precede outcome in {kinds:?}");
    }
    let order: Vec<&String> = kinds.iter().filter(|k| k.starts_with("intent:")).collect();
    let pos = |p: &str| {
        order
            .iter()
            .position(|k| *k == &format!("intent:{p}"))
            .unwrap()
    };
    assert!(pos("migrate") > pos("prepare") && pos("migrate") > pos("backup"));
    assert!(
        pos("activate") > pos("migrate")
            && pos("verify") > pos("activate")
            && pos("commit") > pos("verify")
    );
}

#[tokio::test(start_paused = true)]
async fn failed_health_undoes_in_reverse_order_and_reverifies_the_old_release() {
    let s = scenario();
    s.world.mark_unhealthy("v2");
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack);
    assert_eq!(report.failed_phase, Some(Phase::Verify));
    assert!(
        report.error.as_deref().unwrap().contains("v2 is failing"),
        "{report:?}"
    );
    assert_eq!(s.world.snapshot(), s.old);
    let undos: Vec<&str> = report.undone.iter().map(|u| u.undo.as_str()).collect();
    assert!(undos[0].starts_with("reactivate v1"), "{undos:?}");
    assert!(
        undos[1].starts_with("revert migrations 0002_add_bookings, 0003_add_index"),
        "{undos:?}"
    );
    assert!(
        undos[2].starts_with("discard staged release v2"),
        "{undos:?}"
    );
    let rechecks = s
        .sink
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::HealthAttempt {
                    status: HealthStatus::Healthy,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        rechecks, 1,
        "the restored release was probed and found healthy"
    );
    assert!(s.lock.holder().await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn first_deploy_that_fails_takes_the_app_offline_and_says_so() {
    let world = deploykit_core::testing::World::new();
    world.add_migration("0001", "init", true);
    world.mark_unhealthy("v1");
    let lock = Arc::new(deploykit_core::testing::MemoryLock::default());
    let sink = Arc::new(CollectingSink::default());
    let pipeline = pipeline_for(&world, &lock, &sink, policy());
    let report = pipeline
        .run(&world.spec("v1"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack);
    let snap = world.snapshot();
    assert_eq!(snap.live, None);
    assert!(snap.applied.is_empty() && snap.releases.is_empty());
    assert!(report
        .undone
        .iter()
        .any(|u| u.undo.contains("first deploy: no previous release")));
}

#[tokio::test(start_paused = true)]
async fn a_held_lock_fails_fast_with_the_holder_and_changes_nothing() {
    let s = scenario();
    s.lock
        .acquire(&LockHolder::this_process("staging", "other-run", "ana"))
        .await
        .unwrap();
    let err = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap_err();
    match err {
        Error::Locked { holder, .. } => assert_eq!(holder.who, "ana"),
        other => panic!("expected Locked, got {other}"),
    }
    assert_eq!(s.world.snapshot(), s.old);
    assert_eq!(s.world.faults.calls("backup.create"), 0);
}

#[tokio::test(start_paused = true)]
async fn protected_environment_needs_an_approval_and_records_the_approver() {
    let mut p = policy();
    p.protected = true;
    let s = scenario_with(p.clone());
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack);
    assert_eq!(report.failed_phase, Some(Phase::Preflight));
    assert!(report.error.unwrap().contains("--approve"));
    assert_eq!(s.world.snapshot(), s.old);

    let approved = s.pipeline.clone().gate(Arc::new(PreApproved("ana".into())));
    let journal = MemoryJournal::default();
    let report = approved.run(&s.spec(), &journal).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(report.approver.as_deref(), Some("ana"));
    assert!(journal
        .snapshot()
        .iter()
        .any(|r| matches!(r, Record::Approved { approver, .. } if approver == "ana")));
    let summary = RunSummary::from_records(&journal.snapshot()).unwrap();
    assert_eq!(summary.approver.as_deref(), Some("ana"));
}

struct Refuse;
#[async_trait]
impl ApprovalGate for Refuse {
    async fn approve(&self, _: &ApprovalRequest) -> Result<String> {
        Err(Error::Refused {
            reason: "not on a Friday".into(),
            next: "wait".into(),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusing_gate_stops_before_anything_changes() {
    let mut p = policy();
    p.protected = true;
    let s = scenario_with(p);
    let report = s
        .pipeline
        .clone()
        .gate(Arc::new(Refuse))
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack);
    assert!(report.error.unwrap().contains("not on a Friday"));
    assert_eq!(s.world.snapshot(), s.old);
    assert!(report.undone.is_empty());
}

#[tokio::test(start_paused = true)]
async fn protected_environment_refuses_flagged_migrations_without_allow_marker() {
    let mut p = policy();
    p.protected = true;
    let s = scenario_with(p);
    s.world
        .add_flagged_migration("0004", "drop_legacy", "drop-column", false);
    let pipeline = s.pipeline.clone().gate(Arc::new(PreApproved("ana".into())));
    let report = pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.failed_phase, Some(Phase::Preflight));
    assert!(
        report
            .error
            .as_deref()
            .unwrap()
            .contains("0004_drop_legacy (drop-column)"),
        "{report:?}"
    );
    assert_eq!(s.world.snapshot(), s.old);

    let s = scenario_with({
        let mut p = policy();
        p.protected = true;
        p
    });
    s.world
        .add_flagged_migration("0004", "drop_legacy", "drop-column", true);
    let pipeline = s.pipeline.clone().gate(Arc::new(PreApproved("ana".into())));
    let report = pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Succeeded,
        "an allow marker lets it through: {report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn down_policy_refuses_a_plan_it_could_not_undo() {
    let s = scenario();
    s.world.add_migration("0004", "irreversible", false);
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.failed_phase, Some(Phase::Preflight));
    assert!(report
        .error
        .unwrap()
        .contains("0004_irreversible have no down script"));
    assert_eq!(s.world.snapshot(), s.old);
    assert_eq!(
        s.world.faults.calls("backup.create"),
        0,
        "refused before anything ran"
    );
}

#[tokio::test(start_paused = true)]
async fn migrations_need_a_backup_unless_explicitly_waived() {
    let s = scenario();
    let no_backup = Pipeline::new("staging")
        .target(Arc::new(s.world.target()))
        .migrator(Arc::new(s.world.migrator()))
        .probe(Arc::new(s.world.probe()))
        .policy(policy());
    let report = no_backup
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.failed_phase, Some(Phase::Preflight));
    assert!(report.error.unwrap().contains("fresh backup"));
    assert_eq!(s.world.snapshot(), s.old);

    let mut waived = policy();
    waived.waive_backup = true;
    let report = no_backup
        .policy(waived)
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(s.world.snapshot(), s.new_state());
}

#[tokio::test(start_paused = true)]
async fn a_backup_older_than_the_limit_stops_before_migrating() {
    let mut p = policy();
    p.backup_max_age = Duration::ZERO;
    let s = scenario_with(p);
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack);
    assert_eq!(report.failed_phase, Some(Phase::Migrate));
    assert!(report.error.unwrap().contains("older than"));
    assert_eq!(s.world.snapshot(), s.old);
    assert_eq!(s.world.faults.calls("migrator.apply"), 0);
}

#[tokio::test(start_paused = true)]
async fn keep_policy_rolls_back_code_but_leaves_schema_with_a_warning() {
    let mut p = policy();
    p.migration_failure = MigrationFailurePolicy::Keep;
    let s = scenario_with(p);
    s.world.mark_unhealthy("v2");
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack);
    let snap = s.world.snapshot();
    assert_eq!(snap.live, s.old.live);
    assert_eq!(snap.applied, s.new_state().applied, "schema kept");
    assert!(report
        .undone
        .iter()
        .any(|u| u.undo.contains("keep schema changes of 2 migration(s)")));
}

#[tokio::test(start_paused = true)]
async fn restore_policy_restores_the_runs_own_backup() {
    let mut p = policy();
    p.migration_failure = MigrationFailurePolicy::Restore;
    let s = scenario_with(p);
    s.world.mark_unhealthy("v2");
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack);
    assert_eq!(s.world.snapshot(), s.old);
    assert_eq!(s.world.faults.calls("backup.restore"), 1);
    assert_eq!(s.world.faults.calls("migrator.revert"), 0);
}

#[tokio::test(start_paused = true)]
async fn deploying_the_live_release_again_is_refused() {
    let s = scenario();
    let report = s
        .pipeline
        .run(&s.world.spec("v1"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.failed_phase, Some(Phase::Preflight));
    assert!(report.error.unwrap().contains("already live"));
    assert_eq!(s.world.snapshot(), s.old);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_step_is_cut_off_by_the_step_timeout_and_undone() {
    let mut p = policy();
    p.step_timeout = Duration::from_secs(30);
    let s = scenario_with(p);
    s.world.faults.on_call("target.activate", 1, Fault::Hang);
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack);
    assert_eq!(report.failed_phase, Some(Phase::Activate));
    assert!(report.error.unwrap().contains("did not finish within 30s"));
    assert_eq!(s.world.snapshot(), s.old);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_probe_is_cut_off_at_the_health_deadline() {
    let s = scenario();
    // The first check hangs; the deadline ends verification, and the re-check of
    // the restored release (call 2) answers.
    s.world.faults.on_call("probe.check", 1, Fault::Hang);
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack);
    assert!(report
        .error
        .unwrap()
        .contains("no answer before the health deadline"));
    assert_eq!(s.world.snapshot(), s.old);
    assert_eq!(
        s.world.faults.calls("probe.check"),
        2,
        "one hung round, then one re-check"
    );
}

#[tokio::test(start_paused = true)]
async fn a_flaky_probe_passes_on_a_later_attempt() {
    let s = scenario();
    s.world.faults.on_call("probe.check", 1, Fault::Fail);
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let attempts: Vec<u32> = s
        .sink
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::HealthAttempt { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2]);
}

/// A target and a backup that each wait for the other: only concurrent phases finish.
struct Rendezvous<T> {
    inner: T,
    barrier: Arc<tokio::sync::Barrier>,
}

#[async_trait]
impl Target for Rendezvous<deploykit_core::testing::MemoryTarget> {
    async fn current(&self) -> Result<Option<ReleaseId>> {
        self.inner.current().await
    }
    async fn prepare(&self, spec: &ReleaseSpec) -> Result<()> {
        self.barrier.wait().await;
        self.inner.prepare(spec).await
    }
    async fn activate(&self, release: Option<&ReleaseId>) -> Result<()> {
        self.inner.activate(release).await
    }
    async fn discard(&self, release: &ReleaseId) -> Result<()> {
        self.inner.discard(release).await
    }
    async fn list(&self) -> Result<Vec<ReleaseId>> {
        self.inner.list().await
    }
}

#[async_trait]
impl Backup for Rendezvous<deploykit_core::testing::MemoryBackup> {
    async fn create(&self, request: &BackupRequest) -> Result<BackupArtifact> {
        self.barrier.wait().await;
        self.inner.create(request).await
    }
    async fn verify(&self, a: &BackupArtifact) -> Result<()> {
        self.inner.verify(a).await
    }
    async fn restore(&self, a: &BackupArtifact, c: ConfirmDestructive) -> Result<()> {
        self.inner.restore(a, c).await
    }
    async fn list(&self) -> Result<Vec<BackupArtifact>> {
        self.inner.list().await
    }
    async fn remove(&self, a: &BackupArtifact) -> Result<()> {
        self.inner.remove(a).await
    }
    fn database_id(&self) -> String {
        self.inner.database_id()
    }
}

#[tokio::test(start_paused = true)]
async fn prepare_and_backup_run_concurrently() {
    let mut p = policy();
    p.step_timeout = Duration::from_secs(5);
    let s = scenario_with(p.clone());
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let pipeline = Pipeline::new("staging")
        .target(Arc::new(Rendezvous {
            inner: s.world.target(),
            barrier: barrier.clone(),
        }))
        .backup(Arc::new(Rendezvous {
            inner: s.world.backup(),
            barrier,
        }))
        .migrator(Arc::new(s.world.migrator()))
        .probe(Arc::new(s.world.probe()))
        .policy(p);
    let report = pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Succeeded,
        "sequential phases would time out: {report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn events_tell_the_run_in_order_and_end_with_the_outcome() {
    let s = scenario();
    s.pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    let events = s.sink.events();
    assert!(matches!(events.first(), Some(Event::RunStarted { .. })));
    assert!(matches!(
        events.last(),
        Some(Event::RunFinished {
            outcome: Outcome::Succeeded,
            ..
        })
    ));
    let finished: Vec<Phase> = events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseFinished {
                phase, ok: true, ..
            } => Some(*phase),
            _ => None,
        })
        .collect();
    for p in [
        Phase::Preflight,
        Phase::Prepare,
        Phase::Backup,
        Phase::Migrate,
        Phase::Activate,
        Phase::Verify,
        Phase::Commit,
    ] {
        assert!(finished.contains(&p), "{p} missing from {finished:?}");
    }
    let json = serde_json::to_string(events.last().unwrap()).unwrap();
    assert_eq!(
        json,
        r#"{"event":"run_finished","outcome":"succeeded","next":null}"#
    );
}

#[tokio::test(start_paused = true)]
async fn commit_prunes_old_releases_but_never_the_previous_one() {
    let mut p = policy();
    p.keep_releases = 1;
    let s = scenario_with(p);
    for old in ["v0a", "v0b"] {
        s.world.set_live(old);
    }
    s.world.set_live("v1");
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let releases: Vec<String> = s
        .world
        .snapshot()
        .releases
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        releases,
        vec!["v1", "v2"],
        "v0a and v0b pruned; v1 kept as the rollback path"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_and_reports_never_carry_secrets() {
    let s = scenario();
    let secret = Secret::new("s3cr3t-db-password");
    let cmd = Cmd::new("psql")
        .env("PGPASSWORD", secret.expose())
        .arg("-c")
        .arg("select 1");
    let out = deploykit_core::shell::Output { status: 2, stdout: vec![], stderr: b"FATAL: password s3cr3t-db-password rejected for postgres://app:s3cr3t-db-password@db/app".to_vec() };
    let err: Error = deploykit_core::shell::CommandFailed::new("migrate", "db", &cmd, &out).into();
    let text = err.to_string();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(text.contains("PGPASSWORD=[redacted]"));
    let report = s
        .pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert!(!serde_json::to_string(&report).unwrap().contains("s3cr3t"));
}

#[tokio::test(start_paused = true)]
async fn an_already_staged_release_is_not_prepared_again_nor_discarded_on_failure() {
    let s = scenario();
    s.world.set_live("v0");
    s.world.set_live("v1");
    // Going back to v0, which is still staged: no prepare, and a failure must not delete it.
    s.world.mark_unhealthy("v0");
    let back = Pipeline::new("staging")
        .target(Arc::new(s.world.target()))
        .probe(Arc::new(s.world.probe()))
        .policy(policy());
    let report = back
        .run(&s.world.spec("v0"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack);
    assert_eq!(s.world.faults.calls("target.prepare"), 0);
    let snap = s.world.snapshot();
    assert!(
        snap.releases.iter().any(|r| r.as_str() == "v0"),
        "the kept release survives the failed rollback"
    );
    assert_eq!(snap.live.unwrap().as_str(), "v1");
}
