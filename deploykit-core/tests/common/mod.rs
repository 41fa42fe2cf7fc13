//! The scenario every pipeline test starts from: v1 live with one migration
//! applied and two rows of data; v2 brings two more migrations.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use deploykit_core::testing::{MemoryLock, Snapshot, World};
use deploykit_core::{
    CollectingSink, Events, HealthPolicy, MigrationId, Pipeline, Policy, ReleaseId,
};

pub struct Scenario {
    pub world: World,
    pub lock: Arc<MemoryLock>,
    pub sink: Arc<CollectingSink>,
    pub pipeline: Pipeline,
    pub old: Snapshot,
}

pub fn policy() -> Policy {
    Policy::default()
        .health(HealthPolicy {
            deadline: Duration::from_secs(5),
            attempts: 3,
            interval: Duration::from_millis(100),
            accept_degraded: true,
        })
        .step_timeout(Duration::from_secs(60))
}

pub fn scenario() -> Scenario {
    scenario_with(policy())
}

pub fn scenario_with(policy: Policy) -> Scenario {
    let world = World::new();
    world.add_migration("0001", "create_users", true);
    world.apply_all_migrations();
    world.set_live("v1");
    world.add_row("alice");
    world.add_row("bob");
    world.add_migration("0002", "add_bookings", true);
    world.add_migration("0003", "add_index", true);
    let lock = Arc::new(MemoryLock::default());
    let sink = Arc::new(CollectingSink::default());
    let pipeline = pipeline_for(&world, &lock, &sink, policy);
    let old = world.snapshot();
    Scenario {
        world,
        lock,
        sink,
        pipeline,
        old,
    }
}

/// A pipeline over the world's twins; a fresh one plays "the next process".
pub fn pipeline_for(
    world: &World,
    lock: &Arc<MemoryLock>,
    sink: &Arc<CollectingSink>,
    policy: Policy,
) -> Pipeline {
    Pipeline::new("staging")
        .who("tester")
        .target(Arc::new(world.target()))
        .migrator(Arc::new(world.migrator()))
        .backup(Arc::new(world.backup()))
        .probe(Arc::new(world.probe()))
        .lock(lock.clone())
        .policy(policy)
        .events(Events::none().with(sink.clone()))
}

impl Scenario {
    /// What the world must look like after v2 is fully deployed.
    pub fn new_state(&self) -> Snapshot {
        let mut s = self.old.clone();
        let v2 = ReleaseId::parse("v2").unwrap();
        s.live = Some(v2.clone());
        s.releases.insert(v2);
        for (v, n) in [("0002", "add_bookings"), ("0003", "add_index")] {
            s.applied.push(MigrationId {
                version: v.into(),
                name: n.into(),
            });
        }
        s
    }

    pub fn spec(&self) -> deploykit_core::ReleaseSpec {
        self.world.spec("v2")
    }
}

/// A current-thread runtime with paused time: hangs reach their deadlines at once.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}
