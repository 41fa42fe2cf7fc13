//! The core Pipeline driving a Compose stack on the rig's engine: migrations run in a
//! one-off container of the new image before the switch, and failures are undone.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{rig, spec, Rig, WebStack};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{
    HealthPolicy, Outcome, Phase, Pipeline, Policy, ReleaseSpec, RunReport, Target,
};
use deploykit_docker::{ComposeRunMigrator, ComposeTarget, ContainerHealthProbe};

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn policy() -> Policy {
    Policy::default()
        .health(HealthPolicy {
            deadline: Duration::from_secs(60),
            attempts: 60,
            interval: Duration::from_millis(500),
            accept_degraded: false,
        })
        // The web stack has no database to dump; backups have their own test.
        .waive_backup(true)
}

/// Deploys `release` the way the CLI wires it: target, migrator for this release,
/// container health probe.
async fn deploy(rig: &Rig, stack: &WebStack, release: &ReleaseSpec) -> RunReport {
    let target = Arc::new(stack.target(rig).await);
    let migrator = ComposeRunMigrator::new(&target, argv(&["/migrate", "up"]))
        .revision_command(argv(&["/migrate", "revision"]))
        .revert_command(argv(&["/migrate", "down", "{revision}"]))
        .run_service("web-migrate")
        .unwrap();
    let probe = ContainerHealthProbe::new(target.engine().clone(), &stack.project.name, "web");
    Pipeline::new("staging")
        .target(target.clone() as Arc<dyn Target>)
        .migrator(Arc::new(migrator))
        .probe(Arc::new(probe))
        .policy(policy())
        .run(release, &MemoryJournal::default())
        .await
        .expect("the run starts")
}

async fn live_container(target: &ComposeTarget) -> String {
    target
        .engine()
        .service_container(&target.project().name, "web")
        .await
        .unwrap()
        .expect("a container")
        .id
}

#[tokio::test]
async fn failing_migration_never_replaces_the_live_container() {
    let Some(rig) = rig("failing_migration") else {
        return;
    };
    let stack = WebStack::new(&rig, "dk-migfail", common::reuseport::free_port()).await;
    let target = stack.target(&rig).await;
    let (v1, v2) = (spec("20260101T000000Z-v1"), spec("20260102T000000Z-v2"));

    stack.write_release("v1", true, 0);
    let report = deploy(&rig, &stack, &v1).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert_eq!(
        stack.revision(),
        "v1",
        "the migration ran before the switch"
    );
    let live = live_container(&target).await;

    stack.write_release("v2", true, 3);
    let report = deploy(&rig, &stack, &v2).await;
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(
        report.failed_phase,
        Some(Phase::Migrate),
        "{:?}",
        report.error
    );
    let error = report.error.clone().unwrap();
    assert!(
        error.contains("column \"guest\" already exists"),
        "the tool's stderr is in the error: {error}"
    );
    assert!(error.contains("run --rm --no-deps"), "{error}");

    assert_eq!(
        live_container(&target).await,
        live,
        "the live container was never replaced"
    );
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
    assert_eq!(stack.page().await.as_deref(), Some("v1"));
    assert_eq!(stack.revision(), "v1");
    assert!(
        !target.list().await.unwrap().contains(&v2.id),
        "the staged v2 tag was discarded"
    );
}

#[tokio::test]
async fn unhealthy_release_is_undone_code_and_schema() {
    let Some(rig) = rig("unhealthy_release") else {
        return;
    };
    let stack = WebStack::new(&rig, "dk-undo", common::reuseport::free_port()).await;
    let target = stack.target(&rig).await;
    let (v1, v2) = (spec("20260101T000000Z-v1"), spec("20260102T000000Z-v2"));

    // First deploy: nothing live before, revision goes base -> v1.
    stack.write_release("v1", true, 0);
    let report = deploy(&rig, &stack, &v1).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert_eq!(
        report.applied.as_ref().unwrap().revision_before.as_deref(),
        None
    );
    assert_eq!(
        report.applied.as_ref().unwrap().revision_after.as_deref(),
        Some("v1")
    );

    // v2 migrates fine but its container never turns healthy.
    stack.write_release("v2", false, 0);
    let report = deploy(&rig, &stack, &v2).await;
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(report.failed_phase, Some(Phase::Activate));
    assert!(
        report.error.as_deref().unwrap().contains("unhealthy"),
        "{:?}",
        report.error
    );
    assert_eq!(
        target.current().await.unwrap(),
        Some(v1.id.clone()),
        "previous tag live again"
    );
    assert_eq!(stack.page().await.as_deref(), Some("v1"));
    assert_eq!(
        stack.revision(),
        "v1",
        "the migration was reverted to the recorded revision"
    );
    assert!(
        report.undone.iter().all(|u| u.error.is_none()),
        "{:?}",
        report.undone
    );
}

#[tokio::test]
async fn crm_stack_backs_up_inside_the_db_container_and_a_failed_backup_changes_nothing() {
    use deploykit_core::{BackupExt, LocalShell, ShellExt};
    use deploykit_docker::{ExecPgDumpBackup, Health, PinFile};

    let Some(rig) = rig("crm_stack") else { return };
    let pg_port = common::reuseport::free_port();
    let db = format!(
        "  db:\n    image: {}\n    network_mode: host\n    environment:\n      PGPORT: \"{pg_port}\"\n      POSTGRES_USER: crm_user\n      POSTGRES_DB: crm\n",
        rig.postgres
    );
    let stack = WebStack::with_services(&rig, "dk-crm", common::reuseport::free_port(), &db).await;
    let target = Arc::new(stack.target(&rig).await);
    let engine = target.engine().clone();
    // The database runs as the stack's own service.
    let shell = LocalShell::new();
    let pin = PinFile::new(&stack.path().join(".deploykit"), "dk-crm", "db", "live");
    pin.write(&shell, "db", &rig.postgres).await.unwrap();
    shell
        .check("setup", &stack.project.up("db", &pin.path))
        .await
        .unwrap();
    let db_id = loop {
        let c = engine
            .service_container("dk-crm", "db")
            .await
            .unwrap()
            .unwrap();
        if c.health == Some(Health::Healthy) {
            break c.id;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    let backups = tempfile::tempdir().unwrap();
    let deploy_with_backup = |release: ReleaseSpec| {
        let target = target.clone();
        let engine = engine.clone();
        let dir = backups.path().to_path_buf();
        async move {
            let migrator = ComposeRunMigrator::new(&target, argv(&["/migrate", "up"]))
                .revision_command(argv(&["/migrate", "revision"]))
                .revert_command(argv(&["/migrate", "down", "{revision}"]))
                .run_service("web-migrate")
                .unwrap();
            let backup =
                ExecPgDumpBackup::new(engine.clone(), "dk-crm", "db", "crm", "crm_user", dir);
            let probe = ContainerHealthProbe::new(engine, "dk-crm", "web");
            Pipeline::new("production")
                .target(target.clone() as Arc<dyn Target>)
                .migrator(Arc::new(migrator))
                .backup(Arc::new(backup))
                .probe(Arc::new(probe))
                .policy(policy().waive_backup(false))
                .run(&release, &MemoryJournal::default())
                .await
                .expect("the run starts")
        }
    };

    let (v1, v2) = (spec("20260101T000000Z-v1"), spec("20260102T000000Z-v2"));
    stack.write_release("v1", true, 0);
    let report = deploy_with_backup(v1.clone()).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let artifact = report
        .backup
        .clone()
        .expect("a backup was taken before migrating");
    assert!(std::fs::read(&artifact.path).unwrap().starts_with(b"PGDMP"));
    let live = live_container(&target).await;

    // The database container is down: the backup fails, so nothing else happens.
    engine.stop(&db_id, Duration::from_secs(5)).await.unwrap();
    stack.write_release("v2", true, 0);
    let report = deploy_with_backup(v2.clone()).await;
    assert_ne!(report.outcome, Outcome::Succeeded);
    assert_eq!(
        report.failed_phase,
        Some(Phase::Backup),
        "{:?}",
        report.error
    );
    assert!(
        report.error.as_deref().unwrap().contains("not running"),
        "{:?}",
        report.error
    );
    assert_eq!(
        live_container(&target).await,
        live,
        "the live container was never replaced"
    );
    assert_eq!(stack.revision(), "v1", "no migration ran without a backup");
    assert_eq!(stack.page().await.as_deref(), Some("v1"));
    let store = ExecPgDumpBackup::new(
        engine.clone(),
        "dk-crm",
        "db",
        "crm",
        "crm_user",
        backups.path(),
    );
    assert_eq!(
        store.latest("production").await.unwrap(),
        Some(artifact),
        "no new artifact, complete or partial"
    );
}
