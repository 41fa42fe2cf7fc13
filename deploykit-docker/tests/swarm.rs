//! SwarmTarget against the rig's two-node swarm (script/rig/swarm.sh): releases
//! switch start-first through the engine's services API, and a release whose
//! tasks never turn healthy is undone to the exact previous spec.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bollard::models::ServiceSpec;
use common::spec;
use common::swarm::{sh, swarm_rig, SwarmRig, SwarmService};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{HealthPolicy, Outcome, Phase, Pipeline, Policy, Target};
use deploykit_docker::swarm::spec::{image_of, replicas, without_record};
use deploykit_docker::SwarmTarget;

/// The service's spec as the manager has it now.
async fn spec_now(target: &SwarmTarget) -> ServiceSpec {
    target
        .engine()
        .service(target.service())
        .await
        .unwrap()
        .expect("the service exists")
        .spec
        .unwrap()
}

fn env_of(spec: &ServiceSpec) -> Option<Vec<String>> {
    spec.task_template
        .as_ref()?
        .container_spec
        .as_ref()?
        .env
        .clone()
}

/// Image, env and replicas, what an operator compares first.
fn essentials(spec: &ServiceSpec) -> (Option<String>, Option<Vec<String>>, Option<i64>) {
    (
        image_of(spec).map(str::to_string),
        env_of(spec),
        replicas(spec),
    )
}

/// The page, once the switch settled (start-first: old and new tasks answer
/// side by side until the old ones are retired).
async fn settled_page(service: &SwarmService) -> Option<String> {
    let mut page = None;
    for _ in 0..20 {
        page = service.page().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    page
}

/// v1 deployed by hand, upgraded to v2 (whose env and replicas an operator then
/// changes by hand), prepared for v3.
async fn serving_v2(rig: &SwarmRig, service: &SwarmService, target: &SwarmTarget) -> ServiceSpec {
    let (v1, v2) = (spec("20260101T000000Z-v1"), spec("20260102T000000Z-v2"));
    service.build(rig, &v1.id, "v1", true);
    service.build(rig, &v2.id, "v2", true);
    service.create(rig, &service.image(&v1.id), 2, &["APP_NOTE=first"]);

    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
    // Activating the live release only waits for its tasks.
    target.activate(Some(&v1.id)).await.expect("v1 runs");
    assert_eq!(service.page().await.as_deref(), Some("v1"));

    target.prepare(&v2).await.expect("prepare v2");
    target.activate(Some(&v2.id)).await.expect("upgrade to v2");
    assert_eq!(target.current().await.unwrap(), Some(v2.id.clone()));
    assert_eq!(settled_page(service).await.as_deref(), Some("v2"));

    // The operator changes v2's spec by hand (env, replicas, and the update config
    // the switch to v2 wrote): the undo must return to THIS spec, not to the one
    // the switch wrote, and not to v2's image on the failed release's spec.
    sh(&format!(
        "docker -H {} service update --detach --quiet --env-add APP_NOTE=second \
         --env-add APP_EXTRA=1 --replicas 3 --update-failure-action continue {} >/dev/null",
        rig.manager, service.name
    ));
    target
        .activate(Some(&v2.id))
        .await
        .expect("v2 with 3 replicas runs");
    let nodes: std::collections::BTreeSet<String> = target
        .engine()
        .service_tasks(target.service())
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.desired_state == Some(bollard::models::TaskState::RUNNING))
        .filter_map(|t| t.node_id)
        .collect();
    assert_eq!(nodes.len(), 2, "v2's tasks run on both nodes: {nodes:?}");
    spec_now(target).await
}

#[tokio::test]
async fn a_release_that_never_turns_healthy_is_undone_to_the_exact_previous_spec() {
    let Some(rig) = swarm_rig("swarm_exact_undo") else {
        return;
    };
    let service = SwarmService::new(&rig, "undo");
    let target = service.target(&rig).await;
    let v2_spec = serving_v2(&rig, &service, &target).await;
    // The docker CLI writes `--env-add` in no fixed order.
    let (image, env, replicas) = essentials(&v2_spec);
    let mut env = env.unwrap_or_default();
    env.sort();
    assert_eq!(
        (image, env, replicas),
        (
            Some(service.image(&spec("20260102T000000Z-v2").id)),
            vec!["APP_EXTRA=1".to_string(), "APP_NOTE=second".to_string()],
            Some(3)
        )
    );

    let (v2, v3) = (spec("20260102T000000Z-v2"), spec("20260103T000000Z-v3"));
    service.build(&rig, &v3.id, "v3", false);
    target.prepare(&v3).await.expect("prepare v3");
    let error = target
        .activate(Some(&v3.id))
        .await
        .expect_err("v3's tasks never turn healthy");
    let message = error.to_string();
    eprintln!("activate v3 failed as it should: {message}");
    assert!(
        message.contains(&service.name) && message.contains("node "),
        "the error names the service and the node: {message}"
    );
    assert_eq!(
        service.page().await.as_deref(),
        Some("v2"),
        "start-first: v2 kept serving while v3 failed"
    );

    // The undo (core's Compensation::Reactivate: activate the previous release).
    target.activate(Some(&v2.id)).await.expect("undo to v2");
    let restored = spec_now(&target).await;
    assert_eq!(essentials(&restored), essentials(&v2_spec));
    assert_eq!(
        restored,
        without_record(&v2_spec),
        "the whole spec is v2's, only deploykit's record of v1 is gone"
    );
    assert_eq!(target.current().await.unwrap(), Some(v2.id.clone()));
    assert_eq!(settled_page(&service).await.as_deref(), Some("v2"));

    // Replayed (a crash after the undo): nothing more changes.
    target.activate(Some(&v2.id)).await.expect("the undo again");
    assert_eq!(spec_now(&target).await, restored);
    service.remove(&rig);
}

#[tokio::test]
async fn the_pipeline_undoes_a_failed_swarm_release_through_its_journal() {
    let Some(rig) = swarm_rig("swarm_pipeline_undo") else {
        return;
    };
    let service = SwarmService::new(&rig, "pipeline");
    let target = Arc::new(service.target(&rig).await);
    let v2_spec = serving_v2(&rig, &service, &target).await;

    let v3 = spec("20260103T000000Z-v3");
    service.build(&rig, &v3.id, "v3", false);
    let policy = Policy::default()
        .health(HealthPolicy {
            deadline: Duration::from_secs(30),
            attempts: 30,
            interval: Duration::from_millis(500),
            accept_degraded: false,
        })
        // No database in this stack: the backup and migrations are the Compose
        // tests' (and, for Swarm, a later slice's).
        .waive_backup(true);
    let report = Pipeline::new("staging")
        .target(target.clone() as Arc<dyn Target>)
        .policy(policy)
        .run(&v3, &MemoryJournal::default())
        .await
        .expect("the run starts");
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(report.failed_phase, Some(Phase::Activate));
    assert!(
        report
            .undone
            .iter()
            .any(|u| u.undo.starts_with("reactivate ")),
        "the journaled Reactivate ran: {:?}",
        report.undone
    );
    assert!(
        report.undone.iter().all(|u| u.error.is_none()),
        "{:?}",
        report.undone
    );
    assert_eq!(spec_now(&target).await, without_record(&v2_spec));
    assert_eq!(settled_page(&service).await.as_deref(), Some("v2"));
    service.remove(&rig);
}

#[tokio::test]
async fn the_undo_of_a_first_deploy_puts_back_the_spec_deployed_by_hand() {
    let Some(rig) = swarm_rig("swarm_first_deploy_undo") else {
        return;
    };
    let service = SwarmService::new(&rig, "first");
    let target = service.target(&rig).await;
    // Deployed by hand as `:latest`, which names no release.
    let latest = deploykit_core::ReleaseId::parse("latest").unwrap();
    service.build(&rig, &latest, "by-hand", true);
    service.create(&rig, &service.image(&latest), 1, &["APP_NOTE=hand"]);
    assert_eq!(
        target.current().await.unwrap(),
        None,
        "latest is no release"
    );
    let by_hand = spec_now(&target).await;

    let v1 = spec("20260101T000000Z-v1");
    service.build(&rig, &v1.id, "v1", true);
    target.prepare(&v1).await.expect("prepare v1");
    target.activate(Some(&v1.id)).await.expect("first deploy");
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
    assert_eq!(settled_page(&service).await.as_deref(), Some("v1"));

    // The undo of a first deploy (`Reactivate { previous: None }`).
    target.activate(None).await.expect("undo the first deploy");
    assert_eq!(
        spec_now(&target).await,
        by_hand,
        "exactly the hand-made spec"
    );
    assert_eq!(settled_page(&service).await.as_deref(), Some("by-hand"));
    service.remove(&rig);
}
