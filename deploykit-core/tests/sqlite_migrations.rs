//! The SQL migrator on a real SQLite database file (bundled SQLite, no server).

use std::path::Path;

use deploykit_core::sql_migrations::{HistoryDialect, SqlMigrator};
use deploykit_core::testing::conformance::migrator_contract;
use deploykit_core::{Error, Migrator};
use sqlx::{ConnectOptions, Row};

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

async fn query_strings(db: &Path, sql: &'static str) -> Vec<String> {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::query(sql)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
}

/// The schema as SQLite stores it, without deploykit's own history table.
async fn schema(db: &Path) -> Vec<String> {
    query_strings(
        db,
        "SELECT coalesce(sql, name) FROM sqlite_master \
         WHERE name NOT LIKE '%migrations' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .await
}

fn users_and_posts(dir: &Path) {
    write(
        dir,
        "1_users.sql",
        "create table users (id integer primary key, email text);\n",
    );
    write(dir, "1_users.down.sql", "drop table users;\n");
    write(
        dir,
        "2_posts.sql",
        "create table posts (id integer primary key, user_id integer references users(id));\n\
         create index posts_user on posts (user_id);\n",
    );
    write(
        dir,
        "2_posts.down.sql",
        "drop index posts_user;\ndrop table posts;\n",
    );
}

#[tokio::test]
async fn sqlite_migrator_keeps_the_contract() {
    for dialect in [HistoryDialect::Deploykit, HistoryDialect::Sqlx] {
        let tmp = tempfile::tempdir().unwrap();
        users_and_posts(tmp.path());
        let db = tmp.path().join("app.db");
        let m = SqlMigrator::sqlite_with_dialect(&db, tmp.path(), dialect).unwrap();
        migrator_contract(&m).await;
        assert_eq!(schema(&db).await, Vec::<String>::new(), "{dialect:?}");
    }
}

#[tokio::test]
async fn failing_migration_mid_file_leaves_no_trace() {
    let tmp = tempfile::tempdir().unwrap();
    users_and_posts(tmp.path());
    write(
        tmp.path(),
        "3_broken.sql",
        "create table tags (id integer primary key);\n\
         insert into tags values (1);\n\
         insert into no_such_table values (1);\n",
    );
    let db = tmp.path().join("app.db");
    let m = SqlMigrator::sqlite(&db, tmp.path());
    let plan = m.plan(None).await.unwrap();
    assert_eq!(plan.migrations.len(), 3);
    let err = m.apply(&plan).await.unwrap_err().to_string();
    assert!(err.contains("3_broken.sql"), "{err}");
    assert!(err.contains("statement 3 of 3"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("no such table"), "{err}");
    assert!(err.contains("nothing of 3_broken.sql was applied"), "{err}");

    let tables = schema(&db).await.join("\n");
    assert!(!tables.contains("tags"), "{tables}");
    let status = m.status(None).await.unwrap();
    assert_eq!(status.applied.len(), 2);
    assert_eq!(status.pending[0].version, "3");

    // The run's undo reverts exactly what was applied, from the plan.
    m.revert(&plan.as_applied()).await.unwrap();
    assert_eq!(schema(&db).await, Vec::<String>::new());
}

#[tokio::test]
async fn single_transaction_plan_is_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    users_and_posts(tmp.path());
    write(tmp.path(), "3_broken.sql", "select * from nowhere;");
    let db = tmp.path().join("app.db");
    let m = SqlMigrator::sqlite(&db, tmp.path()).single_transaction(true);
    let plan = m.plan(None).await.unwrap();
    let err = m.apply(&plan).await.unwrap_err().to_string();
    assert!(err.contains("nothing of this plan was applied"), "{err}");
    assert_eq!(schema(&db).await, Vec::<String>::new());
    assert!(m.status(None).await.unwrap().applied.is_empty());
}

#[tokio::test]
async fn drift_is_detected_and_refuses_to_plan_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    users_and_posts(tmp.path());
    let db = tmp.path().join("app.db");
    let m = SqlMigrator::sqlite(&db, tmp.path());
    m.apply(&m.plan(None).await.unwrap()).await.unwrap();

    // Line endings alone are not drift.
    let crlf = std::fs::read_to_string(tmp.path().join("1_users.sql"))
        .unwrap()
        .replace('\n', "\r\n");
    write(tmp.path(), "1_users.sql", &crlf);
    assert!(m.status(None).await.unwrap().drifted.is_empty());

    write(
        tmp.path(),
        "1_users.sql",
        "create table users (id integer primary key);\n",
    );
    write(
        tmp.path(),
        "3_more.sql",
        "create table more (id integer);\n",
    );
    let status = m.status(None).await.unwrap();
    assert_eq!(status.drifted[0].to_string(), "1_users");
    let err = m.plan(None).await.unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    assert!(err.to_string().contains("1_users"), "{err}");
    let plan = m.clone().allow_drift(true).plan(None).await.unwrap();
    assert_eq!(plan.migrations[0].id.to_string(), "3_more");

    std::fs::remove_file(tmp.path().join("2_posts.sql")).unwrap();
    assert_eq!(
        m.status(None).await.unwrap().missing[0].to_string(),
        "2_posts"
    );
}

#[tokio::test]
async fn revert_runs_down_scripts_and_refuses_when_one_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    users_and_posts(tmp.path());
    let db = tmp.path().join("app.db");
    let m = SqlMigrator::sqlite(&db, tmp.path());
    let before = schema(&db).await;
    m.apply(&m.plan(None).await.unwrap()).await.unwrap();
    write(
        tmp.path(),
        "3_irreversible.sql",
        "create table audit (id integer);",
    );
    let plan = m.plan(None).await.unwrap();
    assert!(!plan.migrations[0].reversible);
    let applied = m.apply(&plan).await.unwrap();

    let err = m.revert(&applied).await.unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    assert!(err.to_string().contains("3_irreversible"), "{err}");
    assert!(
        schema(&db).await.join(" ").contains("audit"),
        "nothing reverted"
    );

    write(tmp.path(), "3_irreversible.down.sql", "drop table audit;");
    let mut all = plan.as_applied();
    all.migrations.splice(
        0..0,
        ["1", "2"]
            .iter()
            .map(|v| m_id(v, if *v == "1" { "users" } else { "posts" })),
    );
    m.revert(&all).await.unwrap();
    assert_eq!(schema(&db).await, before, "down scripts restore the schema");
    m.revert(&all).await.unwrap();
}

fn m_id(v: &str, n: &str) -> deploykit_core::MigrationId {
    deploykit_core::MigrationId {
        version: v.into(),
        name: n.into(),
    }
}

#[tokio::test]
async fn plan_carries_lint_findings_and_allow_markers() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "1_t.sql", "create table t (a int, b int);");
    write(tmp.path(), "2_drop.sql", "alter table t drop column b;");
    write(
        tmp.path(),
        "3_drop_allowed.sql",
        "-- deploykit:allow drop-column\nalter table t drop column a;",
    );
    let m = SqlMigrator::sqlite(tmp.path().join("app.db"), tmp.path());
    let plan = m.plan(None).await.unwrap();
    let p = &plan.migrations;
    assert!(p[0].findings.is_empty());
    assert_eq!(p[1].findings[0].rule, "drop-column");
    assert!(!p[1].allowed);
    assert_eq!(p[2].findings[0].rule, "drop-column");
    assert!(p[2].allowed);
}

#[tokio::test]
async fn sqlx_dialect_writes_sqlx_layout() {
    let tmp = tempfile::tempdir().unwrap();
    users_and_posts(tmp.path());
    let db = tmp.path().join("app.db");
    let m = SqlMigrator::sqlite_with_dialect(&db, tmp.path(), HistoryDialect::Sqlx).unwrap();
    m.apply(&m.plan(None).await.unwrap()).await.unwrap();
    let rows = query_strings(
        &db,
        "SELECT version || '|' || description || '|' || success || '|' || hex(checksum) \
         FROM _sqlx_migrations ORDER BY version",
    )
    .await;
    let sum = |f: &str| {
        use sha2::Digest;
        hex::encode_upper(sha2::Sha384::digest(
            std::fs::read(tmp.path().join(f)).unwrap(),
        ))
    };
    assert_eq!(
        rows,
        [
            format!("1|users|1|{}", sum("1_users.sql")),
            format!("2|posts|1|{}", sum("2_posts.sql"))
        ]
    );
    assert!(SqlMigrator::sqlite_with_dialect(&db, tmp.path(), HistoryDialect::Supabase).is_err());
}
