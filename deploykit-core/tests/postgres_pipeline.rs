//! The pipeline with the real PostgreSQL parts (pg_dump backup, SQL migrator) and
//! the in-memory target: a failed run leaves the database as it was.

mod pg;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deploykit_core::postgres::PgDumpBackup;
use deploykit_core::sql_migrations::{HistoryDialect, SqlMigrator};
use deploykit_core::testing::{MemoryJournal, World};
use deploykit_core::{HealthPolicy, MigrationFailurePolicy, Outcome, Pipeline, Policy};
use pg::TestDb;

fn policy(on_failure: MigrationFailurePolicy) -> Policy {
    Policy::default()
        .health(HealthPolicy {
            deadline: Duration::from_secs(5),
            attempts: 2,
            interval: Duration::from_millis(50),
            accept_degraded: true,
        })
        .migration_failure(on_failure)
        .step_timeout(Duration::from_secs(120))
}

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

async fn setup(label: &str) -> Option<(TestDb, tempfile::TempDir, World)> {
    let db = TestDb::create(label).await?;
    db.exec(
        "create table users (id bigserial primary key, email text);
         insert into users (email) values ('alice@example.com'), ('bob@example.com');",
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mig = tmp.path().join("migrations");
    std::fs::create_dir(&mig).unwrap();
    write(
        &mig,
        "20250101000000_bookings.sql",
        "create table bookings (id bigserial primary key, user_id bigint references users(id));",
    );
    write(
        &mig,
        "20250101000000_bookings.down.sql",
        "drop table bookings;",
    );
    write(&mig, "20250102000000_nickname.sql", "alter table users add column nickname text;\nupdate users set nickname = email where id = 1;");
    write(
        &mig,
        "20250102000000_nickname.down.sql",
        "alter table users drop column nickname;",
    );
    let world = World::new();
    world.set_live("v1");
    Some((db, tmp, world))
}

fn pipeline(
    db: &TestDb,
    tmp: &Path,
    world: &World,
    on_failure: MigrationFailurePolicy,
) -> Pipeline {
    Pipeline::new("staging")
        .who("tester")
        .target(Arc::new(world.target()))
        .migrator(Arc::new(
            SqlMigrator::postgres(&db.url, tmp.join("migrations"), HistoryDialect::Supabase)
                .unwrap(),
        ))
        .backup(Arc::new(
            PgDumpBackup::new(&db.url, tmp.join("backups")).unwrap(),
        ))
        .probe(Arc::new(world.probe()))
        .policy(policy(on_failure))
}

#[tokio::test]
async fn a_failing_migration_is_undone_and_the_old_release_stays_live() {
    let Some((db, tmp, world)) = setup("pipe_fail").await else {
        return;
    };
    write(
        &tmp.path().join("migrations"),
        "20250103000000_broken.sql",
        "create table tags (id int);\nselect no_such_function();",
    );
    write(
        &tmp.path().join("migrations"),
        "20250103000000_broken.down.sql",
        "drop table tags;",
    );
    let before = db.schema();
    let p = pipeline(&db, tmp.path(), &world, MigrationFailurePolicy::Down);
    let report = p
        .run(&world.spec("v2"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert!(
        report
            .error
            .as_deref()
            .unwrap_or("")
            .contains("20250103000000_broken.sql"),
        "{report:?}"
    );
    assert_eq!(
        db.schema(),
        before,
        "the two good migrations were reverted too"
    );
    assert_eq!(
        db.scalar_i64("select count(*) from supabase_migrations.schema_migrations")
            .await,
        0
    );
    assert_eq!(db.scalar_i64("select count(*) from users").await, 2);
    assert_eq!(world.snapshot().live.unwrap().as_str(), "v1");
    assert!(report.backup.is_some(), "a backup was taken first");
}

#[tokio::test]
async fn an_unhealthy_release_reverts_its_migrations_with_down_scripts() {
    let Some((db, tmp, world)) = setup("pipe_verify").await else {
        return;
    };
    world.mark_unhealthy("v2");
    let before = db.schema();
    let p = pipeline(&db, tmp.path(), &world, MigrationFailurePolicy::Down);
    let report = p
        .run(&world.spec("v2"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(report.applied.as_ref().map(|a| a.migrations.len()), Some(2));
    assert_eq!(db.schema(), before);
    assert_eq!(world.snapshot().live.unwrap().as_str(), "v1");
}

#[tokio::test]
async fn restore_policy_brings_back_the_backup() {
    let Some((db, tmp, world)) = setup("pipe_restore").await else {
        return;
    };
    world.mark_unhealthy("v2");
    let before = db.schema();
    let p = pipeline(&db, tmp.path(), &world, MigrationFailurePolicy::Restore);
    let report = p
        .run(&world.spec("v2"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(db.schema(), before);
    assert_eq!(db.scalar_i64("select count(*) from users").await, 2);
}

#[tokio::test]
async fn a_healthy_run_commits_schema_and_history() {
    let Some((db, tmp, world)) = setup("pipe_ok").await else {
        return;
    };
    let p = pipeline(&db, tmp.path(), &world, MigrationFailurePolicy::Down);
    let report = p
        .run(&world.spec("v2"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert!(db.schema().contains("CREATE TABLE public.bookings"));
    assert_eq!(
        db.scalar_i64("select count(*) from supabase_migrations.schema_migrations")
            .await,
        2
    );
    assert_eq!(world.snapshot().live.unwrap().as_str(), "v2");
}
