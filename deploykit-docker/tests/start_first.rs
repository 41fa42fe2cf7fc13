//! Start-first activation against the rig's real Docker engine and Compose, with an
//! app that binds its port with `SO_REUSEPORT` under `network_mode: host`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::reuseport_stack::{EventLog, ReuseportStack};
use common::{rig, spec};
use deploykit_core::{Error, LocalShell, ReleaseId, ShellExt, Target};
use deploykit_docker::{ComposeTarget, ContainerState};

/// Deploys v1 start-first (a first deploy: nothing to keep) and returns its container.
async fn serving_v1(stack: &ReuseportStack, target: &ComposeTarget) -> (ReleaseId, ContainerState) {
    let v1 = spec("20260101T000000Z-v1");
    stack.write_release("v1", true);
    target.prepare(&v1).await.unwrap();
    target.activate(Some(&v1.id)).await.unwrap();
    let live = stack.containers(target).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert!(live[0].is_serving());
    assert_eq!(stack.page().await.as_deref(), Some("v1"));
    (v1.id, live[0].clone())
}

/// The one container left must run `release` and serve.
async fn assert_only(
    stack: &ReuseportStack,
    target: &ComposeTarget,
    release: &ReleaseId,
) -> String {
    let left = stack.containers(target).await;
    assert_eq!(left.len(), 1, "exactly one container is left: {left:?}");
    assert_eq!(left[0].image, target.image_of(release));
    assert!(left[0].is_serving(), "{}", left[0].describe());
    assert_eq!(
        stack.page().await.as_deref(),
        Some(release.as_str().rsplit('-').next().unwrap())
    );
    left[0].id.clone()
}

#[tokio::test]
async fn start_first_upgrade_keeps_the_old_container_serving_until_the_new_one_is_healthy() {
    let Some(rig) = rig("start_first_upgrade") else {
        return;
    };
    let stack = ReuseportStack::new(&rig, "dk-sf-upgrade", "").await;
    let target = stack.target(&rig).await;
    let (_, old) = serving_v1(&stack, &target).await;

    let v2 = spec("20260102T000000Z-v2");
    stack.write_release("v2", true);
    target.prepare(&v2).await.unwrap();
    let log = EventLog::start(&rig.bollard().await, "dk-sf-upgrade");
    target.activate(Some(&v2.id)).await.unwrap();
    let new_id = assert_only(&stack, &target, &v2.id).await;
    assert_ne!(new_id, old.id);

    let events = log.until(|a, i| a == "destroy" && i == old.id).await;
    let at = |pred: &dyn Fn(&(String, String)) -> bool| events.iter().position(pred);
    let new_healthy = at(&|(a, i)| a == "health_status: healthy" && *i == new_id)
        .unwrap_or_else(|| panic!("the new container turned healthy: {events:?}"));
    let old_stopping = at(&|(a, i)| matches!(a.as_str(), "kill" | "die" | "stop") && *i == old.id)
        .unwrap_or_else(|| panic!("the old container was stopped: {events:?}"));
    assert!(
        new_healthy < old_stopping,
        "the old container is stopped only after the new one is healthy: {events:?}"
    );
    let old_destroyed = at(&|(a, i)| a == "destroy" && *i == old.id).unwrap();
    assert!(old_stopping < old_destroyed, "{events:?}");

    // Activating the live release again is a no-op: same container, no scaling.
    target.activate(Some(&v2.id)).await.unwrap();
    assert_eq!(assert_only(&stack, &target, &v2.id).await, new_id);
}

#[tokio::test]
async fn failed_new_release_is_removed_and_the_old_container_never_stops() {
    let Some(rig) = rig("start_first_failure") else {
        return;
    };
    let stack = ReuseportStack::new(&rig, "dk-sf-failure", "").await;
    let target = stack.target(&rig).await;
    let (v1, old) = serving_v1(&stack, &target).await;

    let bad = spec("20260102T000000Z-bad");
    stack.write_release("bad", false);
    target.prepare(&bad).await.unwrap();
    let log = EventLog::start(&rig.bollard().await, "dk-sf-failure");
    let err = target.activate(Some(&bad.id)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unhealthy"), "{text}");
    assert!(
        text.contains("cannot connect to the database"),
        "logs: {text}"
    );
    match &err {
        Error::Part { hint: Some(h), .. } => assert!(h.contains("kept serving"), "{h}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(assert_only(&stack, &target, &v1).await, old.id);
    assert_eq!(target.current().await.unwrap(), Some(v1.clone()));

    // The pipeline's undo re-activates v1: a no-op that keeps the same container.
    target.activate(Some(&v1)).await.unwrap();
    assert_eq!(assert_only(&stack, &target, &v1).await, old.id);

    let events = log.until(|a, i| a == "destroy" && i != old.id).await;
    assert!(
        !events
            .iter()
            .any(|(a, i)| *i == old.id && matches!(a.as_str(), "kill" | "die" | "stop")),
        "the old container was never stopped: {events:?}"
    );
}

#[tokio::test]
async fn leftovers_of_a_killed_run_converge_to_one_container_of_the_requested_release() {
    let Some(rig) = rig("start_first_crash") else {
        return;
    };
    let stack = ReuseportStack::new(&rig, "dk-sf-crash", "").await;
    let target = stack.target(&rig).await;
    let (v1, a) = serving_v1(&stack, &target).await;
    let v2 = spec("20260102T000000Z-v2");
    stack.write_release("v2", true);
    target.prepare(&v2).await.unwrap();
    let shell = LocalShell::new();
    let pin = target.pin_file();

    // Killed right after `up --scale web=2`: v1 and a starting v2 both run.
    // The undo (activate v1) keeps the v1 container and removes the v2 one.
    pin.write(&shell, "web", &target.image_of(&v2.id))
        .await
        .unwrap();
    shell
        .check("crash", &stack.project.up_scaled("web", &pin.path, 2))
        .await
        .unwrap();
    assert_eq!(stack.containers(&target).await.len(), 2);
    target.activate(Some(&v1)).await.unwrap();
    assert_eq!(assert_only(&stack, &target, &v1).await, a.id);

    // Killed after the new container turned healthy, before the old one was stopped:
    // a re-run of activate(v2) keeps the healthy v2 container.
    pin.write(&shell, "web", &target.image_of(&v2.id))
        .await
        .unwrap();
    shell
        .check("crash", &stack.project.up_scaled("web", &pin.path, 2))
        .await
        .unwrap();
    let b = stack
        .containers(&target)
        .await
        .into_iter()
        .find(|c| c.image == target.image_of(&v2.id))
        .unwrap();
    target.wait_serving(&target.image_of(&v2.id)).await.unwrap();
    target.activate(Some(&v2.id)).await.unwrap();
    assert_eq!(assert_only(&stack, &target, &v2.id).await, b.id);

    // A stopped v1 container next to the serving v2 one, then the undo to v1:
    // the stopped one is removed, a fresh v1 starts, v2 goes only once it is healthy.
    pin.write(&shell, "web", &target.image_of(&v1))
        .await
        .unwrap();
    shell
        .check("crash", &stack.project.up_scaled("web", &pin.path, 2))
        .await
        .unwrap();
    let stale = stack
        .containers(&target)
        .await
        .into_iter()
        .find(|c| c.id != b.id)
        .unwrap();
    target
        .engine()
        .stop(&stale.id, Duration::from_secs(5))
        .await
        .unwrap();
    target.activate(Some(&v1)).await.unwrap();
    let fresh = assert_only(&stack, &target, &v1).await;
    assert!(fresh != stale.id && fresh != b.id);
}

#[tokio::test]
async fn start_first_is_refused_before_anything_is_touched() {
    let Some(rig) = rig("start_first_refusal") else {
        return;
    };
    for (name, extra, expect) in [
        (
            "dk-sf-named",
            "    container_name: dk-sf-named-web\n",
            "container_name",
        ),
        (
            "dk-sf-ported",
            "    ports:\n      - \"{port}:{port}\"\n",
            "fixed host port",
        ),
    ] {
        // A fixed host port needs bridge networking (host mode ignores `ports`).
        let stack = ReuseportStack::new(&rig, name, extra).await;
        if name == "dk-sf-ported" {
            let file = stack.project.files[0].clone();
            let text = std::fs::read_to_string(&file)
                .unwrap()
                .replace("    network_mode: host\n", "");
            std::fs::write(&file, text).unwrap();
        }
        stack.write_release("v1", true);
        let target = stack.target(&rig).await;
        let v1 = spec("20260101T000000Z-v1");
        for err in [
            target.prepare(&v1).await.unwrap_err(),
            target.activate(Some(&v1.id)).await.unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(text.contains(expect), "{name}: {text}");
            if name == "dk-sf-ported" {
                let fixed = format!("{0}:{0}", stack.port);
                assert!(text.contains(&fixed), "{name}: {text}");
            }
            match &err {
                Error::Part {
                    step,
                    hint: Some(h),
                    ..
                } => {
                    assert_eq!(step, "start-first");
                    assert!(h.contains("stop_first"), "{h}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(
            stack.containers(&target).await.is_empty(),
            "{name}: no container"
        );
        assert!(
            target.list().await.unwrap().is_empty(),
            "{name}: nothing built or tagged"
        );
    }
}

#[tokio::test]
async fn pipeline_rollback_after_a_failed_start_first_switch_keeps_the_old_container() {
    use deploykit_core::testing::MemoryJournal;
    use deploykit_core::{Outcome, Pipeline};
    use deploykit_docker::ContainerHealthProbe;

    let Some(rig) = rig("start_first_pipeline") else {
        return;
    };
    let stack = ReuseportStack::new(&rig, "dk-sf-pipeline", "").await;
    let target = Arc::new(stack.target(&rig).await);
    let (v1, old) = serving_v1(&stack, &target).await;

    stack.write_release("broken", false);
    let probe = ContainerHealthProbe::new(target.engine().clone(), "dk-sf-pipeline", "web");
    let report = Pipeline::new("staging")
        .target(target.clone() as Arc<dyn Target>)
        .probe(Arc::new(probe))
        .run(&spec("20260102T000000Z-broken"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(report.previous, Some(v1.clone()));
    // The undo re-activated v1: no second container, the original one still serves.
    assert_eq!(assert_only(&stack, &target, &v1).await, old.id);
}
