//! Migration edge cases on the real PostgreSQL: sqlx's numeric versions, down
//! scripts that must run outside a transaction, and a no-transaction migration
//! that fails part-way.

mod pg;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deploykit_core::sql_migrations::{HistoryDialect, SqlMigrator};
use deploykit_core::testing::{MemoryJournal, World};
use deploykit_core::{
    Error, HealthPolicy, MigrationFailurePolicy, Migrator, Outcome, Pipeline, Policy,
};
use pg::TestDb;

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

#[tokio::test]
async fn sqlx_versions_match_as_numbers_so_zero_padded_files_are_applied() {
    let Some(db) = TestDb::create("sqlx_pad").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "0001_init.sql", "create table a (id int);");
    write(tmp.path(), "0001_init.down.sql", "drop table a;");
    write(tmp.path(), "0002_more.sql", "create table b (id int);");
    write(tmp.path(), "0002_more.down.sql", "drop table b;");
    let m = SqlMigrator::postgres(&db.url, tmp.path(), HistoryDialect::Sqlx).unwrap();
    let applied = m.apply(&m.plan(None).await.unwrap()).await.unwrap();
    assert_eq!(applied.migrations.len(), 2);
    assert_eq!(
        db.scalar_i64("select min(version) from _sqlx_migrations")
            .await,
        1
    );
    let status = m.status(None).await.unwrap();
    assert!(status.pending.is_empty(), "{status:?}");
    assert!(status.missing.is_empty(), "{status:?}");
    assert_eq!(status.applied.len(), 2, "{status:?}");
    assert!(m.plan(None).await.unwrap().is_empty());
    // Revert finds them recorded, too.
    m.revert(&applied).await.unwrap();
    assert_eq!(
        db.scalar_i64("select count(*) from _sqlx_migrations").await,
        0
    );
    assert_eq!(
        db.scalar_i64("select count(*) from pg_tables where tablename in ('a', 'b')")
            .await,
        0
    );
}

#[tokio::test]
async fn a_down_script_marked_no_transaction_can_drop_an_index_concurrently() {
    let Some(db) = TestDb::create("down_notx").await else {
        return;
    };
    db.exec("create table t (c int);").await;
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "20250101000000_idx.sql",
        "-- deploykit:no-transaction\ncreate index concurrently t_c on t (c);\n",
    );
    write(
        tmp.path(),
        "20250101000000_idx.down.sql",
        "-- deploykit:no-transaction\ndrop index concurrently t_c;\n",
    );
    let m = SqlMigrator::postgres(&db.url, tmp.path(), HistoryDialect::Deploykit).unwrap();
    let applied = m.apply(&m.plan(None).await.unwrap()).await.unwrap();
    assert_eq!(
        db.scalar_i64("select count(*) from pg_indexes where indexname = 't_c'")
            .await,
        1
    );
    m.revert(&applied).await.unwrap();
    assert_eq!(
        db.scalar_i64("select count(*) from pg_indexes where indexname = 't_c'")
            .await,
        0
    );
    assert_eq!(
        db.scalar_i64("select count(*) from deploykit_migrations")
            .await,
        0
    );
}

#[tokio::test]
async fn a_no_transaction_migration_failing_part_way_says_what_stays_applied() {
    let Some(db) = TestDb::create("notx_part").await else {
        return;
    };
    db.exec("create table t (c int);").await;
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "20250101000000_idx.sql",
        "-- deploykit:no-transaction\ncreate index concurrently t_first on t (c);\nselect no_such_function();\n",
    );
    write(
        tmp.path(),
        "20250101000000_idx.down.sql",
        "-- deploykit:no-transaction\ndrop index concurrently if exists t_first;\n",
    );
    let m = SqlMigrator::postgres(&db.url, tmp.path(), HistoryDialect::Deploykit).unwrap();
    let err = m.apply(&m.plan(None).await.unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::PartlyApplied { .. }), "{err}");
    assert!(err.to_string().contains("t_first"), "{err}");

    // Through the pipeline, policy `down`: not `rolled_back`, since the index stays.
    let Some(db) = TestDb::create("notx_pipe").await else {
        return;
    };
    db.exec("create table t (c int);").await;
    let world = World::new();
    world.set_live("v1");
    let report = Pipeline::new("staging")
        .who("tester")
        .target(Arc::new(world.target()))
        .migrator(Arc::new(
            SqlMigrator::postgres(&db.url, tmp.path(), HistoryDialect::Deploykit).unwrap(),
        ))
        .probe(Arc::new(world.probe()))
        .policy(
            Policy::default()
                .migration_failure(MigrationFailurePolicy::Down)
                .waive_backup(true)
                .health(HealthPolicy {
                    deadline: Duration::from_secs(5),
                    attempts: 2,
                    interval: Duration::from_millis(50),
                    accept_degraded: true,
                }),
        )
        .run(&world.spec("v2"), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(
        db.scalar_i64("select count(*) from pg_indexes where indexname = 't_first'")
            .await,
        1,
        "the statement before the failure stayed applied"
    );
    assert_eq!(report.outcome, Outcome::RollbackFailed, "{report:?}");
    let next = report.next.clone().unwrap_or_default();
    assert!(next.contains("t_first"), "names what remains: {next}");
    assert!(next.contains("recover"), "{next}");
    assert_eq!(world.snapshot().live.unwrap().as_str(), "v1");
}
