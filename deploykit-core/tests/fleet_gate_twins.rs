//! Health-gated rolling batches over in-memory twins: each batch's hosts pass
//! their probes before the next batch is switched; a failing batch stops the
//! rollout and switches back every host already switched, and never touches the
//! later batches.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deploykit_core::fleet::{Fleet, Rollout};
use deploykit_core::testing::World;
use deploykit_core::{HealthProbe, HealthReport, ReleaseId, ReleaseSpec, Result, Target};

type Log = Arc<Mutex<Vec<String>>>;

/// A twin target that logs every activation as `activate <host> <release>`.
struct Logged {
    name: String,
    inner: Arc<dyn Target>,
    log: Log,
}

#[async_trait]
impl Target for Logged {
    async fn current(&self) -> Result<Option<ReleaseId>> {
        self.inner.current().await
    }
    async fn prepare(&self, spec: &ReleaseSpec) -> Result<()> {
        self.inner.prepare(spec).await
    }
    async fn activate(&self, release: Option<&ReleaseId>) -> Result<()> {
        let r = release.map_or("offline".to_string(), |r| r.to_string());
        self.log
            .lock()
            .unwrap()
            .push(format!("activate {} {r}", self.name));
        self.inner.activate(release).await
    }
    async fn discard(&self, release: &ReleaseId) -> Result<()> {
        self.inner.discard(release).await
    }
    async fn list(&self) -> Result<Vec<ReleaseId>> {
        self.inner.list().await
    }
}

/// A twin probe that logs every check as `probe <host>`.
struct LoggedProbe {
    name: String,
    inner: Arc<dyn HealthProbe>,
    log: Log,
}

#[async_trait]
impl HealthProbe for LoggedProbe {
    fn name(&self) -> &str {
        &self.name
    }
    async fn check(&self) -> HealthReport {
        self.log
            .lock()
            .unwrap()
            .push(format!("probe {}", self.name));
        self.inner.check().await
    }
}

/// Three hosts h0..h2 in batches of one, each gated by its own probe.
fn fleet(worlds: &[World], log: &Log) -> Fleet {
    let hosts = worlds
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let t = Logged {
                name: format!("h{i}"),
                inner: Arc::new(w.target()),
                log: log.clone(),
            };
            (format!("h{i}"), Arc::new(t) as Arc<dyn Target>)
        })
        .collect();
    let mut fleet = Fleet::new(hosts)
        .rollout(Rollout::Rolling { batch: 1 })
        .gate_rounds(2, Duration::from_millis(1));
    for (i, w) in worlds.iter().enumerate() {
        let probe = LoggedProbe {
            name: format!("h{i}"),
            inner: Arc::new(w.probe()),
            log: log.clone(),
        };
        fleet = fleet.gate(&format!("h{i}"), Arc::new(probe)).unwrap();
    }
    fleet
}

async fn on_v1(worlds: &[World], fleet: &Fleet, log: &Log) -> (ReleaseSpec, ReleaseSpec) {
    let v1 = worlds[0].spec("v1");
    let v2 = worlds[0].spec("v2");
    fleet.prepare(&v1).await.unwrap();
    fleet.activate(Some(&v1.id)).await.unwrap();
    fleet.prepare(&v2).await.unwrap();
    log.lock().unwrap().clear();
    (v1, v2)
}

#[tokio::test]
async fn each_batch_is_probed_before_the_next_batch_is_switched() {
    let worlds: Vec<World> = (0..3).map(|_| World::new()).collect();
    let log: Log = Arc::default();
    let fleet = fleet(&worlds, &log);
    let (_, v2) = on_v1(&worlds, &fleet, &log).await;
    fleet.activate(Some(&v2.id)).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "activate h0 v2",
            "probe h0",
            "activate h1 v2",
            "probe h1",
            "activate h2 v2",
            "probe h2"
        ]
    );
}

#[tokio::test]
async fn a_failing_batch_stops_the_rollout_and_switches_every_switched_host_back() {
    let worlds: Vec<World> = (0..3).map(|_| World::new()).collect();
    let log: Log = Arc::default();
    let fleet = fleet(&worlds, &log);
    let (_, v2) = on_v1(&worlds, &fleet, &log).await;
    worlds[1].mark_unhealthy("v2");
    let err = fleet.activate(Some(&v2.id)).await.unwrap_err().to_string();
    assert!(err.contains("h1: not healthy after 2 tries"), "{err}");
    assert!(err.contains("v2 is failing"), "the probe's detail: {err}");
    assert!(err.contains("batch 2 of 3 failed its health gate"), "{err}");
    assert!(err.contains("later batches were never switched"), "{err}");
    assert!(err.contains("Switched 2 host(s) back to v1"), "{err}");
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "activate h0 v2",
            "probe h0",
            "activate h1 v2",
            "probe h1",
            "probe h1",
            "activate h0 v1",
            "activate h1 v1"
        ],
        "h2 was never switched"
    );
    assert!(!log.iter().any(|l| l.contains("h2")), "{log:?}");
    for w in &worlds {
        assert_eq!(w.snapshot().live.unwrap().as_str(), "v1");
    }
}

#[tokio::test]
async fn the_undo_of_a_half_done_rollout_puts_back_every_switched_host() {
    // A crash mid-rollout left h0 on v2, h1 and h2 on v1; the journaled undo is
    // the fleet's activation of v1: every host ends on v1, and the hosts already
    // there are not gated (nothing changed on them).
    let worlds: Vec<World> = (0..3).map(|_| World::new()).collect();
    let log: Log = Arc::default();
    let fleet = fleet(&worlds, &log);
    let (v1, v2) = on_v1(&worlds, &fleet, &log).await;
    worlds[0].set_live(v2.id.as_str());
    assert!(fleet.current().await.is_err(), "the hosts disagree");
    fleet.activate(Some(&v1.id)).await.unwrap();
    for w in &worlds {
        assert_eq!(w.snapshot().live.unwrap().as_str(), "v1");
    }
    let probed: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("probe"))
        .cloned()
        .collect();
    assert_eq!(probed, ["probe h0"]);
}

#[test]
fn a_gate_for_a_host_the_fleet_does_not_have_is_refused() {
    let w = World::new();
    let fleet = Fleet::new(vec![(
        "web1".into(),
        Arc::new(w.target()) as Arc<dyn Target>,
    )]);
    let err = fleet
        .gate("web9", Arc::new(w.probe()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no host named web9 (hosts: web1)"), "{err}");
}
