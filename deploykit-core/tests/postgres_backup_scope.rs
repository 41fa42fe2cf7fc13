//! Environments sharing one backup directory, with real pg_dump backups: pruning
//! touches only the environment's own artifacts (same env, same database), and
//! never one that a pending undo still needs.

mod pg;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deploykit_core::postgres::PgDumpBackup;
use deploykit_core::testing::World;
use deploykit_core::{
    Backup, BackupArtifact, BackupExt, BackupRequest, Commit, Compensation, HealthPolicy,
    JournalDir, Outcome, Phase, Pipeline, Policy, Record, ReleaseId,
};
use pg::TestDb;
use time::OffsetDateTime;

fn request(env: &str, n: u32) -> BackupRequest {
    BackupRequest {
        env: env.into(),
        release: ReleaseId::parse(format!("20261126T10000{n}Z-abc1234")).unwrap(),
        commit: Commit::parse("abc1234def").unwrap(),
        branch: None,
    }
}

async fn db(label: &str) -> Option<TestDb> {
    let db = TestDb::create(label).await?;
    db.exec("create table notes (body text); insert into notes values ('x');")
        .await;
    Some(db)
}

async fn take(backup: &PgDumpBackup, env: &str, n: u32) -> BackupArtifact {
    let a = backup.create(&request(env, n)).await.unwrap();
    // Distinct creation times, so "oldest" is well defined.
    tokio::time::sleep(Duration::from_millis(20)).await;
    a
}

fn paths(artifacts: &[BackupArtifact]) -> Vec<&Path> {
    artifacts.iter().map(|a| a.path.as_path()).collect()
}

#[tokio::test]
async fn staging_rotation_never_removes_productions_backups() {
    let (Some(staging_db), Some(production_db)) = (db("scope_s").await, db("scope_p").await) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let staging = PgDumpBackup::new(&staging_db.url, dir.path()).unwrap();
    let production = PgDumpBackup::new(&production_db.url, dir.path()).unwrap();
    let prod = take(&production, "production", 1).await;
    let s1 = take(&staging, "staging", 2).await;
    let s2 = take(&staging, "staging", 3).await;
    let s3 = take(&staging, "staging", 4).await;

    let removed = staging.prune("staging", 2, &[]).await.unwrap();
    assert_eq!(paths(&removed), vec![s1.path.as_path()]);
    assert!(
        prod.path.exists(),
        "production's backup survives staging's rotation"
    );
    assert_eq!(
        paths(&staging.list_scoped("staging").await.unwrap().own),
        vec![s2.path.as_path(), s3.path.as_path()]
    );
    let prod_view = production.list_scoped("production").await.unwrap();
    assert_eq!(paths(&prod_view.own), vec![prod.path.as_path()]);
    assert_eq!(prod_view.foreign, 2);
    assert!(production.prune("production", 0, &[]).await.unwrap().len() == 1);
    assert!(s2.path.exists() && s3.path.exists());
}

#[tokio::test]
async fn the_same_env_name_on_another_database_is_not_ours() {
    // Two apps, each with a `production`, configured with the same directory.
    let (Some(a_db), Some(b_db)) = (db("scope_a").await, db("scope_b").await) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = PgDumpBackup::new(&a_db.url, dir.path()).unwrap();
    let b = PgDumpBackup::new(&b_db.url, dir.path()).unwrap();
    let b1 = take(&b, "production", 1).await;
    let a1 = take(&a, "production", 2).await;
    let removed = a.prune("production", 0, &[]).await.unwrap();
    assert_eq!(paths(&removed), vec![a1.path.as_path()]);
    assert!(b1.path.exists());
    assert_eq!(a.latest("production").await.unwrap(), None);
}

#[tokio::test]
async fn a_deploy_prunes_only_its_own_and_keeps_what_pending_undos_need() {
    let (Some(staging_db), Some(production_db)) = (db("scope_ps").await, db("scope_pp").await)
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let staging = PgDumpBackup::new(&staging_db.url, &backups).unwrap();
    let production = PgDumpBackup::new(&production_db.url, &backups).unwrap();
    let prod = take(&production, "production", 1).await;
    let needed = take(&staging, "staging", 2).await;
    let old = take(&staging, "staging", 3).await;

    // An earlier staging run that stopped before its undo (restore) finished.
    let journals = JournalDir::new(tmp.path().join("journal/staging"));
    let pending = journals.create("20261126T100000Z-000000000-r1").unwrap();
    for record in [
        Record::RunStarted {
            run_id: "20261126T100000Z-000000000-r1".into(),
            env: "staging".into(),
            release: ReleaseId::parse("r1").unwrap(),
            commit: Commit::parse("abc1234").unwrap(),
            branch: None,
            previous: None,
            who: "ci".into(),
            message: None,
            at: OffsetDateTime::now_utc(),
        },
        Record::Intent {
            seq: 1,
            phase: Phase::Migrate,
            undo: Some(Compensation::RestoreBackup {
                artifact: needed.clone(),
                only_if_applied: None,
            }),
            at: OffsetDateTime::now_utc(),
        },
    ] {
        deploykit_core::JournalStore::append(&pending, &record)
            .await
            .unwrap();
    }

    let world = World::new();
    world.set_live("v1");
    let report = Pipeline::new("staging")
        .who("tester")
        .target(Arc::new(world.target()))
        .backup(Arc::new(
            PgDumpBackup::new(&staging_db.url, &backups).unwrap(),
        ))
        .probe(Arc::new(world.probe()))
        .policy(Policy::default().keep_backups(1).health(HealthPolicy {
            deadline: Duration::from_secs(5),
            attempts: 2,
            interval: Duration::from_millis(50),
            accept_degraded: true,
        }))
        .run_in(
            &deploykit_core::LocalStore::new(
                journals.clone(),
                Arc::new(deploykit_core::testing::MemoryLock::default()),
            ),
            &world.spec("v2"),
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let ours = report.backup.expect("the run took a backup");
    assert!(ours.path.exists());
    assert!(
        prod.path.exists(),
        "production's backup is not staging's to prune"
    );
    assert!(
        needed.path.exists(),
        "a pending undo still needs this backup"
    );
    assert!(!old.path.exists(), "staging's own surplus backup is pruned");
}
