//! Which strategy a Compose deploy uses when none is configured, and start-first's
//! gate for a service without a HEALTHCHECK, against the rig's real engine.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::reuseport::dockerfile_unchecked;
use common::reuseport_stack::{EventLog, ReuseportStack};
use common::{http_get, rig, spec};
use deploykit_core::{
    CollectingSink, Event, Events, HealthProbe, HealthReport, HealthStatus, Target,
};
use deploykit_docker::Strategy;

fn warnings(sink: &CollectingSink) -> Vec<String> {
    sink.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Warning { message } => Some(message),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn auto_replaces_a_service_start_first_when_two_containers_can_run() {
    let Some(rig) = rig("strategy_auto_start_first") else {
        return;
    };
    // Its own network namespace: no container_name, no host port, no host network.
    let stack = ReuseportStack::on_network(&rig, "dk-auto-sf", "none", "").await;
    let sink = Arc::new(CollectingSink::default());
    let target = stack
        .target(&rig)
        .await
        .strategy(Strategy::default())
        .events(Events::none().with(sink.clone()));
    let v1 = spec("20260101T000000Z-v1");
    stack.write_release("v1", true);
    target.prepare(&v1).await.unwrap();
    target.activate(Some(&v1.id)).await.unwrap();
    assert_eq!(target.strategy_in_use(), Strategy::StartFirst);
    let old = stack.containers(&target).await;
    assert_eq!(old.len(), 1, "{old:?}");

    let v2 = spec("20260102T000000Z-v2");
    stack.write_release("v2", true);
    target.prepare(&v2).await.unwrap();
    let log = EventLog::start(&rig.bollard().await, "dk-auto-sf");
    target.activate(Some(&v2.id)).await.unwrap();
    let left = stack.containers(&target).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].image, target.image_of(&v2.id));
    let events = log.until(|a, i| a == "destroy" && i == old[0].id).await;
    let at = |pred: &dyn Fn(&(String, String)) -> bool| events.iter().position(pred);
    let new_healthy = at(&|(a, i)| a == "health_status: healthy" && *i == left[0].id)
        .unwrap_or_else(|| panic!("the new container turned healthy: {events:?}"));
    let old_stopping = at(&|(a, i)| matches!(a.as_str(), "kill" | "stop") && *i == old[0].id)
        .unwrap_or_else(|| panic!("the old container was stopped: {events:?}"));
    assert!(
        new_healthy < old_stopping,
        "auto kept the old container until the new one was healthy: {events:?}"
    );
    assert_eq!(warnings(&sink), Vec::<String>::new());
}

#[tokio::test]
async fn auto_keeps_a_host_network_service_on_stop_first_and_says_why_once() {
    let Some(rig) = rig("strategy_auto_host_network") else {
        return;
    };
    let stack = ReuseportStack::new(&rig, "dk-auto-host", "").await;
    let sink = Arc::new(CollectingSink::default());
    let target = stack
        .target(&rig)
        .await
        .strategy(Strategy::Auto)
        .events(Events::none().with(sink.clone()));
    let v1 = spec("20260101T000000Z-v1");
    stack.write_release("v1", true);
    target.prepare(&v1).await.unwrap();
    target.activate(Some(&v1.id)).await.unwrap();
    assert_eq!(target.strategy_in_use(), Strategy::StopFirst);
    assert_eq!(stack.page().await.as_deref(), Some("v1"));
    let said = warnings(&sink);
    assert_eq!(said.len(), 1, "said once per deploy: {said:?}");
    assert!(said[0].contains("network_mode: host"), "{}", said[0]);
    assert!(said[0].contains("SO_REUSEPORT"), "{}", said[0]);
    assert!(said[0].contains("strategy = \"stop_first\""), "{}", said[0]);
}

/// Healthy once the page says `want`.
struct Serves {
    port: u16,
    want: &'static str,
    calls: AtomicUsize,
}

#[async_trait]
impl HealthProbe for Serves {
    fn name(&self) -> &str {
        "page"
    }

    async fn check(&self) -> HealthReport {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        let page = http_get(self.port, "/").await;
        let status = if page.as_deref() == Some(self.want) {
            HealthStatus::Healthy
        } else {
            HealthStatus::Unhealthy
        };
        HealthReport::new(self.name(), status, started.elapsed(), format!("{page:?}"))
    }
}

#[tokio::test]
async fn start_first_without_a_healthcheck_retires_the_old_container_only_once_the_probes_pass() {
    let Some(rig) = rig("strategy_readiness") else {
        return;
    };
    let stack = ReuseportStack::new(&rig, "dk-sf-ready", "").await;
    let probe = Arc::new(Serves {
        port: stack.port,
        want: "v2",
        calls: AtomicUsize::new(0),
    });
    let target = stack
        .target(&rig)
        .await
        .readiness_probes(vec![probe.clone()]);
    let v1 = spec("20260101T000000Z-v1");
    stack.write_release("v1", true);
    target.prepare(&v1).await.unwrap();
    target.activate(Some(&v1.id)).await.unwrap();
    assert_eq!(stack.page().await.as_deref(), Some("v1"));

    // v2 has no HEALTHCHECK and listens 3 s after its container starts: running is
    // not serving. Every request meanwhile must still be answered (by v1).
    let v2 = spec("20260102T000000Z-v2");
    stack.write_dockerfile(&dockerfile_unchecked(&stack.base, stack.port, "v2", 3000));
    target.prepare(&v2).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, failed, answered, port) =
            (stop.clone(), failed.clone(), answered.clone(), stack.port);
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match http_get(port, "/").await {
                    Some(_) => answered.fetch_add(1, Ordering::SeqCst),
                    None => failed.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    target.activate(Some(&v2.id)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(stack.page().await.as_deref(), Some("v2"));
    assert!(
        probe.calls.load(Ordering::SeqCst) > 1,
        "the probe was asked until v2 answered"
    );
    assert!(answered.load(Ordering::SeqCst) > 50);
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no request failed while v2 was starting"
    );
    let left = stack.containers(&target).await;
    assert_eq!(left.len(), 1, "{left:?}");
}
