//! History read back from real journal files, and the conformance suite on the twins.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use deploykit_core::testing::{conformance, World};
use deploykit_core::*;

#[tokio::test]
async fn history_reads_journals_and_computes_delivery_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::in_dir(dir.path());
    let journals = store.journals().clone();
    let s = scenario();
    let ok = s.pipeline.run_in(&store, &s.spec()).await.unwrap();
    assert_eq!(ok.outcome, Outcome::Succeeded);
    s.world.mark_unhealthy("v3");
    let failed = s
        .pipeline
        .run_in(&store, &s.world.spec("v3"))
        .await
        .unwrap();
    assert_eq!(failed.outcome, Outcome::RolledBack);

    let history = History::load(&journals).unwrap();
    assert_eq!(history.runs.len(), 2);
    assert_eq!(history.runs[0].release.as_str(), "v2");
    assert_eq!(history.runs[0].outcome, Some(Outcome::Succeeded));
    assert_eq!(history.runs[1].outcome, Some(Outcome::RolledBack));
    assert_eq!(history.runs[1].failed_phase, Some(Phase::Verify));
    assert_eq!(history.runs[1].previous.as_ref().unwrap().as_str(), "v2");
    assert_eq!(history.runs[0].who, "tester");
    assert!((history.change_failure_rate() - 0.5).abs() < 1e-9);
    assert!((history.deployment_frequency(1) - 1.0).abs() < 1e-9);
    assert!(history.mean_time_to_restore().is_some());
    assert!(journals.unfinished().unwrap().is_empty());
}

#[tokio::test]
async fn empty_history_has_no_failures_and_no_restore_time() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::load(&JournalDir::new(dir.path().join("none"))).unwrap();
    assert_eq!(history.change_failure_rate(), 0.0);
    assert_eq!(history.mean_time_to_restore(), None);
}

#[tokio::test]
async fn memory_target_keeps_the_target_contract() {
    let world = World::new();
    conformance::target_contract(&world.target(), &world.spec("a"), &world.spec("b")).await;
}

#[tokio::test]
async fn memory_migrator_keeps_the_migrator_contract() {
    let world = World::new();
    world.add_migration("0001", "one", true);
    world.add_migration("0002", "two", true);
    conformance::migrator_contract(&world.migrator()).await;
}

struct Fixed(HealthStatus);
#[async_trait]
impl HealthProbe for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }
    async fn check(&self) -> HealthReport {
        HealthReport::new("fixed", self.0, Duration::from_millis(3), "as configured")
    }
}

fn driver_policy(accept_degraded: bool) -> HealthPolicy {
    HealthPolicy {
        deadline: Duration::from_secs(10),
        attempts: 3,
        interval: Duration::from_secs(1),
        accept_degraded,
    }
}

#[tokio::test(start_paused = true)]
async fn degraded_passes_with_a_warning_only_when_accepted() {
    let sink = Arc::new(CollectingSink::default());
    let events = Events::none().with(sink.clone());
    let probes: Vec<Arc<dyn HealthProbe>> = vec![Arc::new(Fixed(HealthStatus::Degraded))];
    let verdict = HealthDriver::new(probes.clone(), driver_policy(true))
        .run(&events)
        .await;
    assert!(verdict.passed);
    assert!(sink
        .events()
        .iter()
        .any(|e| matches!(e, Event::Warning { message } if message.contains("degraded"))));
    let verdict = HealthDriver::new(probes, driver_policy(false))
        .run(&events)
        .await;
    assert!(!verdict.passed);
    assert_eq!(verdict.rounds, 3, "retried up to the attempt limit");
    assert!(verdict.failures().contains("fixed: Degraded"));
}

#[tokio::test(start_paused = true)]
async fn all_probes_must_pass_in_the_same_round() {
    let probes: Vec<Arc<dyn HealthProbe>> = vec![
        Arc::new(Fixed(HealthStatus::Healthy)),
        Arc::new(Fixed(HealthStatus::Unhealthy)),
    ];
    let verdict = HealthDriver::new(probes, driver_policy(true))
        .run(&Events::none())
        .await;
    assert!(!verdict.passed);
    assert_eq!(verdict.reports.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_the_rounds() {
    let probes: Vec<Arc<dyn HealthProbe>> = vec![Arc::new(Fixed(HealthStatus::Unhealthy))];
    let policy = HealthPolicy {
        deadline: Duration::from_secs(3),
        attempts: 100,
        interval: Duration::from_secs(1),
        accept_degraded: true,
    };
    let started = tokio::time::Instant::now();
    let verdict = HealthDriver::new(probes, policy).run(&Events::none()).await;
    assert!(!verdict.passed);
    assert!(verdict.rounds <= 3, "{} rounds", verdict.rounds);
    assert!(started.elapsed() <= Duration::from_secs(3));
}

#[test]
fn journal_records_and_events_are_stable_json() {
    let c = Compensation::Reactivate {
        previous: Some(ReleaseId::parse("v1").unwrap()),
        failed: ReleaseId::parse("v2").unwrap(),
    };
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        r#"{"undo":"reactivate","previous":"v1","failed":"v2"}"#
    );
    let back: Compensation =
        serde_json::from_str(r#"{"undo":"discard_release","release":"v2"}"#).unwrap();
    assert_eq!(
        back,
        Compensation::DiscardRelease {
            release: ReleaseId::parse("v2").unwrap()
        }
    );
    let hostile = r#"{"undo":"discard_release","release":"../../etc"}"#;
    assert!(
        serde_json::from_str::<Compensation>(hostile).is_err(),
        "a tampered journal cannot name a path"
    );
}
