//! The generic [`Fleet`] over in-memory twins: the Target contract holds for a
//! fleet, and a failure on any host switches every host back.

use std::sync::Arc;

use deploykit_core::fleet::{Fleet, Rollout};
use deploykit_core::testing::{conformance::target_contract, Fault, World};
use deploykit_core::{ReleaseSpec, Target};

fn spec(world: &World, id: &str) -> ReleaseSpec {
    world.spec(id)
}

#[tokio::test]
async fn a_fleet_of_twins_keeps_the_target_contract() {
    let worlds: Vec<World> = (0..3).map(|_| World::new()).collect();
    let fleet = Fleet::new(
        worlds
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("h{i}"), Arc::new(w.target()) as Arc<dyn Target>))
            .collect(),
    )
    .rollout(Rollout::Rolling { batch: 1 });
    target_contract(&fleet, &spec(&worlds[0], "a"), &spec(&worlds[0], "b")).await;
}

#[tokio::test]
async fn one_failing_host_switches_every_activated_host_back() {
    let worlds: Vec<World> = (0..3).map(|_| World::new()).collect();
    let fleet = Fleet::new(
        worlds
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("h{i}"), Arc::new(w.target()) as Arc<dyn Target>))
            .collect(),
    )
    .rollout(Rollout::Rolling { batch: 2 })
    .max_parallel(2);
    let v1 = spec(&worlds[0], "v1");
    let v2 = spec(&worlds[0], "v2");
    fleet.prepare(&v1).await.unwrap();
    fleet.activate(Some(&v1.id)).await.unwrap();
    fleet.prepare(&v2).await.unwrap();
    // Call 1 activated v1; call 2 (v2) fails; call 3 (switching back) works.
    worlds[2].faults.on_call("target.activate", 2, Fault::Fail);
    let err = fleet.activate(Some(&v2.id)).await.unwrap_err().to_string();
    assert!(err.contains("h2"), "{err}");
    assert!(err.contains("back to v1"), "{err}");
    for w in &worlds {
        assert_eq!(w.snapshot().live.unwrap().as_str(), "v1");
    }
}

#[tokio::test]
async fn all_at_once_failure_switches_every_host_back_and_disagreement_is_refused() {
    let worlds: Vec<World> = (0..3).map(|_| World::new()).collect();
    let fleet = Fleet::new(
        worlds
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("h{i}"), Arc::new(w.target()) as Arc<dyn Target>))
            .collect(),
    );
    let v1 = spec(&worlds[0], "v1");
    let v2 = spec(&worlds[0], "v2");
    fleet.prepare(&v1).await.unwrap();
    fleet.activate(Some(&v1.id)).await.unwrap();
    fleet.prepare(&v2).await.unwrap();
    worlds[0].faults.on_call("target.activate", 2, Fault::Fail);
    let err = fleet.activate(Some(&v2.id)).await.unwrap_err().to_string();
    assert!(
        err.contains("h0") && err.contains("Switched 3 host(s)"),
        "{err}"
    );
    for w in &worlds {
        assert_eq!(w.snapshot().live.unwrap().as_str(), "v1");
    }

    // A host on another release: the fleet refuses to guess what "current" is.
    worlds[1].target().activate(Some(&v2.id)).await.unwrap();
    let err = fleet.current().await.unwrap_err().to_string();
    assert!(err.contains("disagree") && err.contains("h1: v2"), "{err}");
    assert!(fleet.activate(Some(&v2.id)).await.is_ok());
    assert_eq!(fleet.current().await.unwrap().unwrap().as_str(), "v2");
}

#[tokio::test]
async fn a_failed_prepare_leaves_no_host_with_the_release() {
    let worlds: Vec<World> = (0..2).map(|_| World::new()).collect();
    let fleet = Fleet::new(
        worlds
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("h{i}"), Arc::new(w.target()) as Arc<dyn Target>))
            .collect(),
    );
    worlds[1].faults.on_call("target.prepare", 1, Fault::Fail);
    let v1 = spec(&worlds[0], "v1");
    let err = fleet.prepare(&v1).await.unwrap_err().to_string();
    assert!(err.contains("1 of 2 host(s) failed"), "{err}");
    assert!(fleet.list().await.unwrap().is_empty());
}
