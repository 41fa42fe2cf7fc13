//! Several services of one Compose project deployed as one release (web and a
//! worker built from the same Dockerfile): they switch together, are verified
//! together (a worker without a port by its container probe) and roll back
//! together, on the rig's real engine.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{rig, spec, Rig, WebStack};
use deploykit_core::testing::conformance::target_contract;
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{
    CollectingSink, Event, Events, HealthPolicy, HealthProbe, LocalShell, Outcome, Phase, Pipeline,
    Policy, ReleaseSpec, RunReport, ShellExt, Target,
};
use deploykit_docker::{ComposeServices, ContainerHealthProbe, PinFile};

/// The worker: same build as web, its own command, no port and no HEALTHCHECK.
const WORKER: &str =
    "  worker:\n    build: .\n    network_mode: host\n    stop_grace_period: 1s\n    \
     command: [\"/worker\"]\n    healthcheck:\n      disable: true\n";

const WORKER_FAILED: &str = "DKWORKER: cannot reach the queue";

/// Writes release `version`: web serves `version`; the worker runs for good, or
/// (`worker_ok = false`) prints `WORKER_FAILED` and exits a second after it starts.
fn write_release(stack: &WebStack, version: &str, worker_ok: bool) {
    stack.write_release(version, true, 0);
    let script = if worker_ok {
        format!("#!/bin/sh\necho \"worker {version} started\"\nexec sleep 3600\n")
    } else {
        format!("#!/bin/sh\necho '{WORKER_FAILED}' >&2\nsleep 1\nexit 3\n")
    };
    std::fs::write(stack.path().join("worker"), script).unwrap();
    let file = stack.path().join("Dockerfile");
    let text = std::fs::read_to_string(&file).unwrap();
    let (from, rest) = text.split_once('\n').unwrap();
    std::fs::write(
        &file,
        format!("{from}\nCOPY worker /worker\nRUN chmod +x /worker\n{rest}"),
    )
    .unwrap();
}

fn policy() -> Policy {
    Policy::default().waive_backup(true).health(HealthPolicy {
        deadline: Duration::from_secs(10),
        attempts: 16,
        interval: Duration::from_millis(300),
        accept_degraded: true,
    })
}

/// Runs the pipeline with `target` and `probes` (a worker must stay up 2 s).
async fn deploy(
    target: Arc<dyn Target>,
    probes: Vec<ContainerHealthProbe>,
    release: &ReleaseSpec,
) -> RunReport {
    let mut pipeline = Pipeline::new("staging").target(target).policy(policy());
    for probe in probes {
        let probe = probe.settle(Duration::from_secs(2));
        pipeline = pipeline.probe(Arc::new(probe) as Arc<dyn HealthProbe>);
    }
    pipeline
        .run(release, &MemoryJournal::default())
        .await
        .expect("the run starts")
}

/// The images of `service`'s containers that run (or restart), newest first.
async fn running_images(rig: &Rig, stack: &WebStack, service: &str) -> Vec<String> {
    rig.engine()
        .await
        .service_containers(&stack.project.name, service)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| matches!(c.status.as_str(), "running" | "restarting"))
        .map(|c| c.image)
        .collect()
}

#[tokio::test]
async fn web_and_worker_switch_verify_and_roll_back_together() {
    let Some(rig) = rig("services") else { return };
    let stack =
        WebStack::with_services(&rig, "dk-svc", common::reuseport::free_port(), WORKER).await;
    let worker_repo = format!("{}-worker", stack.repo);
    common::reset(&rig, "dk-svc", &worker_repo).await;
    let sink = Arc::new(CollectingSink::default());
    let services = || async {
        let web = stack
            .target(&rig)
            .await
            .events(Events::none().with(sink.clone()));
        Arc::new(ComposeServices::new(Arc::new(web), &["worker"]).unwrap())
    };
    let (v1, v2, v3, v4) = (
        spec("20260101T000000Z-v1"),
        spec("20260102T000000Z-v2"),
        spec("20260103T000000Z-v3"),
        spec("20260104T000000Z-v4"),
    );

    // v1 runs web alone (the config before the worker was added).
    write_release(&stack, "v1", true);
    let web_only = Arc::new(stack.target(&rig).await);
    let probe = ContainerHealthProbe::new(rig.engine().await, "dk-svc", "web");
    let report = deploy(web_only, vec![probe], &v1).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let web_v1 = format!("{}:{}", stack.repo, v1.id);
    assert_eq!(
        running_images(&rig, &stack, "web").await,
        vec![web_v1.clone()]
    );

    // v2 adds the worker, which dies a second after it starts: the run fails, web
    // goes back to v1, and the worker, new in v2, is removed. It fails in verify,
    // or in activate when the engine is slow enough that the worker is already
    // gone by the time activate looks (CI under load); either way its output
    // reaches the operator: the report's logs, or the activate error's tail.
    write_release(&stack, "v2", false);
    let target = services().await;
    let report = deploy(target.clone(), target.container_probes(), &v2).await;
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert!(
        matches!(report.failed_phase, Some(Phase::Verify | Phase::Activate)),
        "{:?}: {:?}",
        report.failed_phase,
        report.error
    );
    let in_logs = report
        .logs
        .iter()
        .any(|l| l.lines.iter().any(|x| x.contains(WORKER_FAILED)));
    let in_error = report
        .error
        .as_deref()
        .is_some_and(|e| e.contains(WORKER_FAILED));
    assert!(
        in_logs || in_error,
        "the worker's output is in the report: {:?} / {:?}",
        report.logs,
        report.error
    );
    assert_eq!(
        running_images(&rig, &stack, "web").await,
        vec![web_v1.clone()]
    );
    assert!(
        running_images(&rig, &stack, "worker").await.is_empty(),
        "the worker did not run before v2"
    );
    assert_eq!(stack.page().await.as_deref(), Some("v1"));
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));

    // A good v3 switches both.
    write_release(&stack, "v3", true);
    let target = services().await;
    let report = deploy(target.clone(), target.container_probes(), &v3).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let web_v3 = format!("{}:{}", stack.repo, v3.id);
    let worker_v3 = format!("{worker_repo}:{}", v3.id);
    assert_eq!(
        running_images(&rig, &stack, "web").await,
        vec![web_v3.clone()]
    );
    assert_eq!(
        running_images(&rig, &stack, "worker").await,
        vec![worker_v3.clone()]
    );
    assert_eq!(stack.page().await.as_deref(), Some("v3"));

    // v4's worker fails: both services are back on their v3 tags, web serving.
    write_release(&stack, "v4", false);
    let target = services().await;
    let report = deploy(target.clone(), target.container_probes(), &v4).await;
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert!(
        report.undone.iter().all(|u| u.error.is_none()),
        "{:?}",
        report.undone
    );
    assert_eq!(running_images(&rig, &stack, "web").await, [web_v3]);
    assert_eq!(running_images(&rig, &stack, "worker").await, [worker_v3]);
    assert_eq!(stack.page().await.as_deref(), Some("v3"));
    assert_eq!(target.current().await.unwrap(), Some(v3.id.clone()));

    // Host networking keeps both services on stop-first: one warning for each.
    let stop_first: Vec<String> = sink
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Warning { message } if message.contains("stop_first is used") => Some(message),
            _ => None,
        })
        .collect();
    assert!(
        stop_first.iter().any(|m| m.contains("dk-svc/web"))
            && stop_first.iter().any(|m| m.contains("dk-svc/worker")),
        "{stop_first:?}"
    );
}

#[tokio::test]
async fn several_services_keep_the_target_contract() {
    let Some(rig) = rig("services_contract") else {
        return;
    };
    let stack = WebStack::with_services(
        &rig,
        "dk-svc-contract",
        common::reuseport::free_port(),
        WORKER,
    )
    .await;
    common::reset(&rig, "dk-svc-contract", &format!("{}-worker", stack.repo)).await;
    write_release(&stack, "contract", true);
    let web = stack.target(&rig).await;
    let target = ComposeServices::new(Arc::new(web), &["worker"]).unwrap();
    target_contract(&target, &spec("r1-a"), &spec("r2-b")).await;
    assert_eq!(stack.page().await.as_deref(), Some("contract"));
}

#[tokio::test]
async fn a_stack_started_by_hand_is_adopted_whole_and_put_back_by_the_undo() {
    let Some(rig) = rig("services_adopt") else {
        return;
    };
    let stack =
        WebStack::with_services(&rig, "dk-svc-adopt", common::reuseport::free_port(), WORKER).await;
    let worker_repo = format!("{}-worker", stack.repo);
    common::reset(&rig, "dk-svc-adopt", &worker_repo).await;
    // Both services started by hand from a build deploykit never tagged.
    write_release(&stack, "by-hand", true);
    let shell = LocalShell::new();
    shell
        .check("setup", &stack.project.build("web"))
        .await
        .unwrap();
    let hand = stack.project.cli.built_image_name("dk-svc-adopt", "web");
    for service in ["web", "worker"] {
        let pin = PinFile::new(&stack.path().join("hand"), "dk-svc-adopt", service, "hand");
        pin.write(&shell, service, &hand).await.unwrap();
        shell
            .check("setup", &stack.project.up(service, &pin.path))
            .await
            .unwrap();
    }
    let engine = rig.engine().await;
    let image_id = |service: &'static str| {
        let engine = engine.clone();
        async move {
            engine
                .service_container("dk-svc-adopt", service)
                .await
                .unwrap()
                .filter(|c| c.status == "running")
                .map(|c| c.image_id)
        }
    };
    let before = (image_id("web").await, image_id("worker").await);
    assert!(before.0.is_some() && before.1.is_some(), "{before:?}");

    let sink = Arc::new(CollectingSink::default());
    let web = stack
        .target(&rig)
        .await
        .events(Events::none().with(sink.clone()));
    let target = Arc::new(ComposeServices::new(Arc::new(web), &["worker"]).unwrap());
    let adopted = target
        .current()
        .await
        .unwrap()
        .expect("the stack is adopted");
    assert!(adopted.as_str().starts_with("adopted-"), "{adopted}");
    assert!(
        sink.events().iter().any(|e| matches!(
            e,
            Event::Warning { message } if message.contains("did not run one deploykit release")
        )),
        "{:?}",
        sink.events()
    );

    let v1 = spec("20260101T000000Z-v1");
    write_release(&stack, "v1", false);
    let report = deploy(target.clone(), target.container_probes(), &v1).await;
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(
        (image_id("web").await, image_id("worker").await),
        before,
        "both services run exactly the images they ran before"
    );
    assert_eq!(
        running_images(&rig, &stack, "worker").await,
        vec![format!("{worker_repo}:{adopted}")]
    );
    assert_eq!(stack.page().await.as_deref(), Some("by-hand"));
}
