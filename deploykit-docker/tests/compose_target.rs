//! ComposeTarget against the rig's real Docker engine and Compose.

mod common;

use common::{rig, spec, WebStack};
use deploykit_core::testing::conformance::target_contract;
use deploykit_core::{CollectingSink, Event, Events, ReleaseId, Target, TargetExt};
use std::sync::Arc;

#[tokio::test]
async fn compose_target_keeps_the_target_contract() {
    let Some(rig) = rig("compose_target_keeps_the_target_contract") else {
        return;
    };
    let stack = WebStack::new(&rig, "dk-contract", common::reuseport::free_port()).await;
    stack.write_release("contract", true, 0);
    let target = stack.target(&rig).await;
    target_contract(&target, &spec("r1-a"), &spec("r2-b")).await;
    assert_eq!(stack.page().await.as_deref(), Some("contract"));
}

#[tokio::test]
async fn first_deploy_serves_the_release_tag_and_its_undo_stops_the_service_plainly() {
    let Some(rig) = rig("first_deploy") else {
        return;
    };
    let stack = WebStack::new(&rig, "dk-first", common::reuseport::free_port()).await;
    stack.write_release("v1", true, 0);
    let sink = Arc::new(CollectingSink::default());
    let target = stack
        .target(&rig)
        .await
        .events(Events::none().with(sink.clone()));

    let v1 = spec("20260101T000000Z-v1");
    assert_eq!(target.current().await.unwrap(), None);
    target.prepare(&v1).await.unwrap();
    assert_eq!(stack.page().await, None, "prepare serves nothing");
    target.activate(Some(&v1.id)).await.unwrap();
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
    assert_eq!(stack.page().await.as_deref(), Some("v1"));
    let c = target
        .engine()
        .service_container("dk-first", "web")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c.image,
        format!("{}:{}", stack.repo, v1.id),
        "the container runs the immutable tag"
    );

    // The undo of a first deploy: no previous release, so the service is stopped.
    target.activate(None).await.unwrap();
    assert_eq!(target.current().await.unwrap(), None);
    assert_eq!(stack.page().await, None);
    let warned = sink.events().iter().any(
        |e| matches!(e, Event::Warning { message } if message.contains("no previous release")),
    );
    assert!(
        warned,
        "stopping the service is said plainly: {:?}",
        sink.events()
    );
}

#[tokio::test]
async fn upgrade_switches_to_the_new_tag_and_leaves_the_old_one_for_rollback() {
    let Some(rig) = rig("upgrade") else { return };
    let stack = WebStack::new(&rig, "dk-upgrade", common::reuseport::free_port()).await;
    let target = stack.target(&rig).await.keep_rollback_alias(true);
    let (v1, v2) = (spec("20260101T000000Z-v1"), spec("20260102T000000Z-v2"));
    stack.write_release("v1", true, 0);
    target.prepare(&v1).await.unwrap();
    target.activate(Some(&v1.id)).await.unwrap();
    let before = target
        .engine()
        .service_container("dk-upgrade", "web")
        .await
        .unwrap()
        .unwrap();

    stack.write_release("v2", true, 0);
    target.prepare(&v2).await.unwrap();
    let still = target
        .engine()
        .service_container("dk-upgrade", "web")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        still.id, before.id,
        "prepare leaves the live container alone"
    );
    assert_eq!(stack.page().await.as_deref(), Some("v1"));

    target.activate(Some(&v2.id)).await.unwrap();
    assert_eq!(target.current().await.unwrap(), Some(v2.id.clone()));
    assert_eq!(stack.page().await.as_deref(), Some("v2"));
    assert_eq!(
        target.list().await.unwrap(),
        vec![v1.id.clone(), v2.id.clone()]
    );
    assert!(target
        .engine()
        .image_exists(&format!("{}:rollback", stack.repo))
        .await
        .unwrap());

    // Preparing v1 again (a re-run) never moves its immutable tag.
    stack.write_release("v1-rebuilt", true, 0);
    target.prepare(&v1).await.unwrap();
    target.activate(Some(&v1.id)).await.unwrap();
    assert_eq!(stack.page().await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn unhealthy_new_container_fails_with_its_logs_and_the_previous_tag_serves_again() {
    let Some(rig) = rig("unhealthy") else { return };
    let stack = WebStack::new(&rig, "dk-unhealthy", common::reuseport::free_port()).await;
    let target = stack.target(&rig).await;
    let (good, bad) = (spec("20260101T000000Z-good"), spec("20260102T000000Z-bad"));
    stack.write_release("good", true, 0);
    target.prepare(&good).await.unwrap();
    target.activate(Some(&good.id)).await.unwrap();

    stack.write_release("bad", false, 0);
    target.prepare(&bad).await.unwrap();
    let err = target
        .activate(Some(&bad.id))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unhealthy"), "{err}");
    assert!(
        err.contains("container output"),
        "the last log lines are captured: {err}"
    );
    assert_eq!(
        target.current().await.unwrap(),
        Some(bad.id.clone()),
        "the failed release is what runs until undone"
    );

    // The pipeline's undo: reactivate the previous release and wait for healthy.
    target.activate(Some(&good.id)).await.unwrap();
    assert_eq!(target.current().await.unwrap(), Some(good.id.clone()));
    assert_eq!(stack.page().await.as_deref(), Some("good"));
}

#[tokio::test]
async fn prune_keeps_n_tags_and_never_the_live_or_previous_one() {
    let Some(rig) = rig("prune") else { return };
    let stack = WebStack::new(&rig, "dk-prune", common::reuseport::free_port()).await;
    let target = stack.target(&rig).await;
    let ids: Vec<_> = (1..=5)
        .map(|i| spec(&format!("2026010{i}T000000Z-r{i}")))
        .collect();
    for (i, s) in ids.iter().enumerate() {
        stack.write_release(&format!("r{}", i + 1), true, 0);
        target.prepare(s).await.unwrap();
    }
    // Live is the oldest release, previous the second oldest: both must survive.
    target.activate(Some(&ids[1].id)).await.unwrap();
    target.activate(Some(&ids[0].id)).await.unwrap();
    let removed = target.prune(2, &[ids[1].id.clone()]).await.unwrap();
    let removed: Vec<&str> = removed.iter().map(ReleaseId::as_str).collect();
    assert_eq!(removed, [ids[2].id.as_str()]);
    let left: Vec<ReleaseId> = target.list().await.unwrap();
    assert_eq!(
        left,
        vec![
            ids[0].id.clone(),
            ids[1].id.clone(),
            ids[3].id.clone(),
            ids[4].id.clone()
        ]
    );
    assert_eq!(stack.page().await.as_deref(), Some("r1"));
}

#[tokio::test]
async fn hand_deployed_container_is_adopted_so_a_failed_first_deploy_returns_to_it() {
    use deploykit_core::testing::MemoryJournal;
    use deploykit_core::{LocalShell, Outcome, Pipeline, ShellExt};
    use deploykit_docker::ContainerHealthProbe;

    let Some(rig) = rig("adopt") else { return };
    let stack = WebStack::new(&rig, "dk-adopt", common::reuseport::free_port()).await;
    // Deployed by hand, as the seeds do: `compose build` + `compose up -d`.
    stack.write_release("manual", true, 0);
    let shell = LocalShell::new();
    let plain = stack.path().join("plain.yml");
    std::fs::write(&plain, "version: \"2.4\"\n").unwrap();
    shell
        .check("setup", &stack.project.build("web"))
        .await
        .unwrap();
    shell
        .check("setup", &stack.project.up("web", &plain))
        .await
        .unwrap();

    let sink = Arc::new(CollectingSink::default());
    let target = Arc::new(
        stack
            .target(&rig)
            .await
            .events(Events::none().with(sink.clone())),
    );
    let adopted = target
        .current()
        .await
        .unwrap()
        .expect("the running container is adopted");
    assert!(adopted.as_str().starts_with("adopted-"), "{adopted}");
    assert_eq!(
        target.current().await.unwrap(),
        Some(adopted.clone()),
        "adoption is stable"
    );
    assert!(sink.events().iter().any(
        |e| matches!(e, Event::Warning { message } if message.contains("not a deploykit release"))
    ));

    // The first deploykit release is broken: the run goes back to the adopted image.
    stack.write_release("broken", false, 0);
    let probe = ContainerHealthProbe::new(target.engine().clone(), "dk-adopt", "web");
    let report = Pipeline::new("staging")
        .target(target.clone() as Arc<dyn Target>)
        .probe(Arc::new(probe))
        .run(&spec("20260101T000000Z-v1"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(report.previous, Some(adopted.clone()));
    assert_eq!(target.current().await.unwrap(), Some(adopted));
    assert_eq!(
        stack.page().await.as_deref(),
        Some("manual"),
        "the hand-deployed app serves again"
    );
}

#[tokio::test]
async fn an_adopted_container_comes_back_from_the_journals_undo_after_a_good_first_deploy() {
    use deploykit_core::testing::MemoryJournal;
    use deploykit_core::ShellExt;
    use deploykit_core::{Compensation, LocalShell, Outcome, PartsRollback, Pipeline, Rollback};
    use deploykit_docker::ContainerHealthProbe;

    let Some(rig) = rig("adopt-undo") else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stack = WebStack::new(&rig, "dk-adopt-undo", port).await;
    stack.write_release("manual", true, 0);
    let plain = stack.path().join("plain.yml");
    std::fs::write(&plain, "version: \"2.4\"\n").unwrap();
    let shell = LocalShell::new();
    shell
        .check("setup", &stack.project.build("web"))
        .await
        .unwrap();
    shell
        .check("setup", &stack.project.up("web", &plain))
        .await
        .unwrap();
    let target = Arc::new(stack.target(&rig).await);
    let adopted = target.current().await.unwrap().expect("adopted");

    // A good first deploykit release replaces the hand-deployed container.
    stack.write_release("v1", true, 0);
    let v1 = spec("20260101T000000Z-v1");
    let probe = ContainerHealthProbe::new(target.engine().clone(), "dk-adopt-undo", "web");
    let report = Pipeline::new("staging")
        .target(target.clone() as Arc<dyn Target>)
        .probe(Arc::new(probe))
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert_eq!(report.previous, Some(adopted.clone()));
    assert_eq!(stack.page().await.as_deref(), Some("v1"));

    // The run's undo as `recover` runs it: another process, a fresh target, only
    // the journal's record. The hand-deployed image serves again.
    let undo = Compensation::Reactivate {
        previous: Some(adopted.clone()),
        failed: v1.id.clone(),
    };
    let fresh: Arc<dyn Target> = Arc::new(stack.target(&rig).await);
    PartsRollback {
        target: Some(fresh.clone()),
        ..Default::default()
    }
    .compensate(&undo)
    .await
    .unwrap();
    assert_eq!(fresh.current().await.unwrap(), Some(adopted));
    assert_eq!(stack.page().await.as_deref(), Some("manual"));
}
