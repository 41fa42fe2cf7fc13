//! Policy `restore` on the real PostgreSQL parts: the backup is restored only when
//! the run changed the schema. A restore when nothing was migrated would throw
//! away every write the app made since the backup, for nothing.

mod pg;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deploykit_core::postgres::{PgDumpBackup, MIGRATION_LOCK_KEY};
use deploykit_core::sql_migrations::{HistoryDialect, SqlMigrator};
use deploykit_core::testing::{MemoryJournal, World};
use deploykit_core::{
    Backup, BackupArtifact, BackupRequest, ConfirmDestructive, HealthPolicy,
    MigrationFailurePolicy, Outcome, Pipeline, Policy, Result,
};
use pg::TestDb;
use sqlx::Connection;

/// The real pg_dump backup, plus the app writing a row right after the backup
/// finished: the write a needless restore would lose.
struct AppWritesAfterBackup {
    inner: PgDumpBackup,
    db_url: String,
}

#[async_trait]
impl Backup for AppWritesAfterBackup {
    async fn create(&self, request: &BackupRequest) -> Result<BackupArtifact> {
        let artifact = self.inner.create(request).await?;
        let mut c = sqlx::postgres::PgConnection::connect(&self.db_url)
            .await
            .unwrap();
        sqlx::query("insert into users (email) values ('written-after-backup@example.com')")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        Ok(artifact)
    }
    async fn verify(&self, a: &BackupArtifact) -> Result<()> {
        self.inner.verify(a).await
    }
    async fn restore(&self, a: &BackupArtifact, c: ConfirmDestructive) -> Result<()> {
        self.inner.restore(a, c).await
    }
    async fn list(&self) -> Result<Vec<BackupArtifact>> {
        self.inner.list().await
    }
    async fn remove(&self, a: &BackupArtifact) -> Result<()> {
        self.inner.remove(a).await
    }
    fn database_id(&self) -> String {
        self.inner.database_id()
    }
}

async fn setup(label: &str, first_migration: &str) -> Option<(TestDb, tempfile::TempDir, World)> {
    let db = TestDb::create(label).await?;
    db.exec(
        "create table users (id bigserial primary key, email text);
         insert into users (email) values ('alice@example.com');",
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mig = tmp.path().join("migrations");
    std::fs::create_dir(&mig).unwrap();
    std::fs::write(mig.join("20250101000000_first.sql"), first_migration).unwrap();
    std::fs::write(
        mig.join("20250102000000_second.sql"),
        "alter table users add column nickname text;",
    )
    .unwrap();
    let world = World::new();
    world.set_live("v1");
    Some((db, tmp, world))
}

fn pipeline(db: &TestDb, tmp: &Path, world: &World, step_timeout: Duration) -> Pipeline {
    Pipeline::new("staging")
        .who("tester")
        .target(Arc::new(world.target()))
        .migrator(Arc::new(
            SqlMigrator::postgres(&db.url, tmp.join("migrations"), HistoryDialect::Deploykit)
                .unwrap(),
        ))
        .backup(Arc::new(AppWritesAfterBackup {
            inner: PgDumpBackup::new(&db.url, tmp.join("backups")).unwrap(),
            db_url: db.url.expose().to_string(),
        }))
        .probe(Arc::new(world.probe()))
        .policy(
            Policy::default()
                .health(HealthPolicy {
                    deadline: Duration::from_secs(5),
                    attempts: 2,
                    interval: Duration::from_millis(50),
                    accept_degraded: true,
                })
                .migration_failure(MigrationFailurePolicy::Restore)
                .step_timeout(step_timeout),
        )
}

#[tokio::test]
async fn a_first_migration_failing_in_its_transaction_restores_nothing() {
    let Some((db, tmp, world)) = setup(
        "restore_none",
        "create table tags (id int);\nselect no_such_function();",
    )
    .await
    else {
        return;
    };
    let report = pipeline(&db, tmp.path(), &world, Duration::from_secs(120))
        .run(&world.spec("v2"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(
        db.scalar_i64("select count(*) from users where email like 'written-after%'")
            .await,
        1,
        "nothing was migrated, so the backup was not restored over the app's write: {report:?}"
    );
    assert_eq!(world.snapshot().live.unwrap().as_str(), "v1");
}

#[tokio::test]
async fn a_run_stopped_while_waiting_for_the_migration_lock_restores_nothing() {
    let Some((db, tmp, world)) = setup("restore_lockwait", "create table tags (id int);").await
    else {
        return;
    };
    // Another migration run holds the lock for longer than the step may take.
    let mut holder = db.conn().await;
    sqlx::query("select pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    // The migrate step gives up waiting at the step timeout; the backup before
    // it takes far less.
    let report = pipeline(&db, tmp.path(), &world, Duration::from_secs(20))
        .run(&world.spec("v2"), &MemoryJournal::default())
        .await
        .unwrap();
    holder.close().await.unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(
        report.failed_phase,
        Some(deploykit_core::Phase::Migrate),
        "{report:?}"
    );
    assert_eq!(
        db.scalar_i64("select count(*) from users where email like 'written-after%'")
            .await,
        1,
        "nothing was migrated, so the backup was not restored: {report:?}"
    );
}

#[tokio::test]
async fn a_run_that_migrated_restores_the_backup() {
    let Some((db, tmp, world)) = setup("restore_some", "create table tags (id int);").await else {
        return;
    };
    world.mark_unhealthy("v2");
    let before = db.schema();
    let report = pipeline(&db, tmp.path(), &world, Duration::from_secs(120))
        .run(&world.spec("v2"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(
        db.schema(),
        before,
        "the migrations were undone by the restore"
    );
    assert_eq!(
        db.scalar_i64("select count(*) from users where email like 'written-after%'")
            .await,
        0,
        "the restore brought back the backup's rows"
    );
}
