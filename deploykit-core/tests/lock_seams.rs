//! The lock at the seams: a recover while a run is alive, two recovers at once, a
//! journal finished by another process, and what is live read under the lock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use deploykit_core::testing::{MemoryJournal, MemoryLock, World};
use deploykit_core::*;

/// The journal and lock a crashed run leaves: it stopped after activating v2 (its
/// verify step never ran), so the environment is half new.
async fn crashed_after_activate(s: &Scenario) -> MemoryJournal {
    let full = MemoryJournal::default();
    // Count the records up to the activate outcome in a clean run of a copy.
    let copy = scenario();
    copy.pipeline.run(&copy.spec(), &full).await.unwrap();
    let records = full.snapshot();
    let upto = records
        .iter()
        .position(|r| {
            matches!(
                r,
                Record::Outcome {
                    phase: Phase::Activate,
                    ..
                }
            )
        })
        .unwrap()
        + 1;
    let journal = MemoryJournal::crashing_after(upto);
    let report = s.pipeline.run(&s.spec(), &journal).await.unwrap();
    assert_eq!(report.outcome, Outcome::Interrupted, "{report:?}");
    MemoryJournal::from_records(journal.snapshot())
}

/// Makes the lock look held by a live run on another machine (a CI runner).
async fn held_by_a_live_runner(lock: &MemoryLock) -> LockHolder {
    let held = lock
        .holder()
        .await
        .unwrap()
        .expect("the crashed run kept the lock");
    let mut live = LockHolder::this_process("staging", held.run_id.clone(), "ci")
        .renewed(Duration::from_secs(30));
    live.host = "ci-runner-7".into();
    live.pid = 4242;
    lock.replace(&held, Some(&live)).await.unwrap();
    live
}

fn ends(journal: &MemoryJournal) -> usize {
    journal
        .snapshot()
        .iter()
        .filter(|r| matches!(r, Record::RunFinished { .. }))
        .count()
}

#[tokio::test]
async fn recover_refuses_a_run_whose_lease_is_alive_and_changes_nothing() {
    let s = scenario();
    let journal = crashed_after_activate(&s).await;
    let live = held_by_a_live_runner(&s.lock).await;
    let half = s.world.snapshot();
    let err = s.pipeline.recover(&journal).await.unwrap_err();
    match &err {
        Error::Locked { holder, stale, .. } => {
            assert_eq!(holder.host, "ci-runner-7");
            assert!(!stale);
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(s.world.snapshot(), half, "no undo ran");
    assert_eq!(ends(&journal), 0);
    assert_eq!(
        s.lock.holder().await.unwrap().unwrap(),
        live,
        "lock untouched"
    );
}

#[tokio::test]
async fn recover_takes_over_once_the_lease_expired_or_when_forced() {
    for force in [false, true] {
        let s = scenario();
        let journal = crashed_after_activate(&s).await;
        let live = held_by_a_live_runner(&s.lock).await;
        if !force {
            // The runner died: its lease ran out.
            let mut expired = live.clone();
            let l = expired.lease.as_mut().unwrap();
            l.expires_at = l.renewed_at - Duration::from_secs(1);
            s.lock.replace(&live, Some(&expired)).await.unwrap();
        }
        let report = s.pipeline.recover_with(&journal, force).await.unwrap();
        assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
        assert_eq!(s.world.snapshot(), s.old);
        assert_eq!(ends(&journal), 1);
        assert!(s.lock.holder().await.unwrap().is_none());
        if force {
            let warned = s.sink.events().iter().any(|e| {
                matches!(e, Event::Warning { message } if message.contains("--force") && message.contains("ci-runner-7"))
            });
            assert!(warned, "a forced recover says whom it overrides");
        }
    }
}

#[tokio::test]
async fn a_second_recover_at_the_same_time_is_refused() {
    let s = scenario();
    let journal = Arc::new(crashed_after_activate(&s).await);
    // The first recover hangs in its undo (the host is slow to reactivate)…
    s.world
        .faults
        .on_call("target.activate", 2, testing::Fault::Hang);
    let first = {
        let pipeline = s.pipeline.clone();
        let journal = journal.clone();
        tokio::spawn(async move { pipeline.recover(journal.as_ref()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let held = s.lock.holder().await.unwrap().unwrap();
    assert_eq!(
        held.pid,
        std::process::id(),
        "the first recover holds the lock"
    );
    // …and a second one, in this same live process, is refused: no undo twice.
    let undo_calls = s.world.faults.calls("target.activate");
    let err = s.pipeline.recover(journal.as_ref()).await.unwrap_err();
    assert!(matches!(err, Error::Locked { stale: false, .. }), "{err:?}");
    assert_eq!(s.world.faults.calls("target.activate"), undo_calls);
    first.abort();
}

/// A journal that, once the verify step starts, gets the run finished by "another
/// process": what a forced `recover` does while the run is still verifying.
struct FinishedBehindItsBack {
    inner: MemoryJournal,
}

#[async_trait]
impl JournalStore for FinishedBehindItsBack {
    async fn append(&self, record: &Record) -> Result<()> {
        self.inner.append(record).await?;
        if matches!(
            record,
            Record::Intent {
                phase: Phase::Verify,
                ..
            }
        ) {
            self.inner
                .append(&Record::RunFinished {
                    outcome: Outcome::RolledBack,
                    failed_phase: None,
                    error: Some("undone by recover --force".into()),
                    next: None,
                    at: time::OffsetDateTime::now_utc(),
                })
                .await?;
        }
        Ok(())
    }

    async fn records(&self) -> Result<Vec<Record>> {
        self.inner.records().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_finished_by_another_process_never_reports_succeeded() {
    let s = scenario();
    let journal = FinishedBehindItsBack {
        inner: MemoryJournal::default(),
    };
    let report = s.pipeline.run(&s.spec(), &journal).await.unwrap();
    assert_ne!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert_eq!(
        report.outcome,
        Outcome::RolledBack,
        "the other process's end"
    );
    assert!(report.next.unwrap().contains("another process"));
    assert_eq!(ends(&journal.inner), 1, "{:?}", journal.inner.snapshot());
}

/// A lock that, while it is being acquired, sees another run activate `v9`: the
/// moment between reading what is live and taking the lock.
struct RacyLock {
    inner: MemoryLock,
    world: World,
}

#[async_trait]
impl DeployLock for RacyLock {
    async fn acquire(&self, holder: &LockHolder) -> Result<()> {
        self.world.set_live("v9");
        self.inner.acquire(holder).await
    }
    async fn release(&self, run_id: &str) -> Result<()> {
        self.inner.release(run_id).await
    }
    async fn holder(&self) -> Result<Option<LockHolder>> {
        self.inner.holder().await
    }
    async fn replace(&self, expected: &LockHolder, next: Option<&LockHolder>) -> Result<()> {
        self.inner.replace(expected, next).await
    }
}

#[tokio::test(start_paused = true)]
async fn what_is_live_is_read_under_the_lock_so_an_undo_never_goes_back_past_it() {
    let s = scenario();
    s.world.mark_unhealthy("v2");
    let pipeline = s.pipeline.clone().lock(Arc::new(RacyLock {
        inner: MemoryLock::default(),
        world: s.world.clone(),
    }));
    let report = pipeline
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(report.previous.unwrap().as_str(), "v9");
    assert_eq!(s.world.snapshot().live.unwrap().as_str(), "v9");
}

#[tokio::test(start_paused = true)]
async fn a_running_deploy_renews_its_lease_and_leaves_none_behind() {
    let s = scenario();
    s.world
        .faults
        .on_call("probe.check", 1, testing::Fault::Hang);
    let pipeline = s.pipeline.clone().lease(LeaseTiming {
        lease: Duration::from_secs(3),
        renew_every: Duration::from_secs(1),
    });
    let run = {
        let pipeline = pipeline.clone();
        let spec = s.spec();
        tokio::spawn(async move { pipeline.run(&spec, &MemoryJournal::default()).await })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = s
        .lock
        .holder()
        .await
        .unwrap()
        .expect("held while verifying");
    assert!(
        !held.is_stale(),
        "renewed past its 3 s lease: {:?}",
        held.liveness()
    );
    let report = run.await.unwrap().unwrap();
    assert!(s.lock.holder().await.unwrap().is_none(), "{report:?}");
}

/// A probe during whose check another process takes the lock over (a forced
/// recover that has not written to the journal yet).
struct TakesTheLock(Arc<MemoryLock>);

#[async_trait]
impl HealthProbe for TakesTheLock {
    fn name(&self) -> &str {
        "takes the lock"
    }
    async fn check(&self) -> HealthReport {
        if let Some(held) = self.0.holder().await.unwrap() {
            if held.who != "recover --force" {
                let mut other =
                    LockHolder::this_process("staging", held.run_id.clone(), "recover --force");
                other.host = "laptop".into();
                self.0.replace(&held, Some(&other)).await.unwrap();
            }
        }
        HealthReport::new(
            "takes the lock",
            HealthStatus::Healthy,
            Duration::ZERO,
            "ok",
        )
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_lock_was_taken_between_renewals_does_not_commit() {
    let s = scenario();
    let pipeline = s
        .pipeline
        .clone()
        .probe(Arc::new(TakesTheLock(s.lock.clone())));
    let journal = MemoryJournal::default();
    let report = pipeline.run(&s.spec(), &journal).await.unwrap();
    assert_eq!(report.outcome, Outcome::Interrupted, "{report:?}");
    assert!(report.error.unwrap().contains("taken over"));
    assert_eq!(ends(&journal), 0, "nothing committed, nothing finished");
    let commit = journal.snapshot().iter().any(|r| {
        matches!(
            r,
            Record::Intent {
                phase: Phase::Commit,
                ..
            }
        )
    });
    assert!(!commit);
    assert_eq!(
        s.lock.holder().await.unwrap().unwrap().who,
        "recover --force"
    );
}

#[tokio::test]
async fn a_runs_message_rides_its_lock_and_journal_in_one_line_without_credentials() {
    let s = scenario();
    let pipeline = s
        .pipeline
        .clone()
        .message(Some("hotfix login\npostgres://app:s3cretpw@db/app".into()));
    // The run stops after its first records, keeping the lock as a crash would.
    let journal = MemoryJournal::crashing_after(3);
    pipeline.run(&s.spec(), &journal).await.unwrap();
    let held = s
        .lock
        .holder()
        .await
        .unwrap()
        .expect("the run kept the lock");
    let message = held.message.clone().expect("the lock carries the message");
    assert!(message.starts_with("hotfix login "), "{message}");
    assert!(!message.contains("s3cretpw"), "{message}");
    assert!(held.to_string().contains("hotfix login"), "{held}");
    let summary = RunSummary::from_records(&journal.snapshot()).unwrap();
    assert_eq!(summary.message.as_deref(), Some(message.as_str()));
}
