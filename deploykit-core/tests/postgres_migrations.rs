//! The SQL migrator against the real PostgreSQL started by script/test.

mod pg;

use std::path::Path;

use deploykit_core::sql_migrations::{HistoryDialect, SqlMigrator};
use deploykit_core::testing::conformance::migrator_contract;
use deploykit_core::{Error, Migrator, Secret};
use pg::TestDb;
use sqlx::{Connection, Row};

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

fn bookings(dir: &Path) {
    write(
        dir,
        "20250101000000_users.sql",
        "-- users of the app\ncreate table users (id bigserial primary key, email text not null);\n\
         insert into users (email) values ('a@example.com');\n",
    );
    write(dir, "20250101000000_users.down.sql", "drop table users;\n");
    write(
        dir,
        "20250102000000_bookings.sql",
        "create table bookings (id bigserial primary key, user_id bigint references users(id), note text);\n\
         create index bookings_user on bookings (user_id);\n\
         create function touch() returns trigger language plpgsql as $$\n\
         begin new.note := coalesce(new.note, 'n/a'); return new; end;\n$$;\n",
    );
    write(
        dir,
        "20250102000000_bookings.down.sql",
        "drop function touch();\ndrop table bookings;\n",
    );
}

#[tokio::test]
async fn postgres_migrator_keeps_the_contract_in_every_dialect() {
    for dialect in [
        HistoryDialect::Deploykit,
        HistoryDialect::Supabase,
        HistoryDialect::Sqlx,
    ] {
        let Some(db) = TestDb::create("contract").await else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        bookings(tmp.path());
        let before = db.schema();
        let m = SqlMigrator::postgres(&db.url, tmp.path(), dialect).unwrap();
        migrator_contract(&m).await;
        m.apply(&m.plan(None).await.unwrap()).await.unwrap();
        let migrated = db.schema();
        assert!(
            migrated.contains("CREATE TABLE public.bookings"),
            "{migrated}"
        );
        assert!(migrated.contains("FUNCTION public.touch()"), "{migrated}");
        m.revert(&deploykit_core::AppliedSet {
            migrations: m.status(None).await.unwrap().applied,
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            db.schema(),
            before,
            "{dialect:?}: revert restores the schema"
        );
    }
}

#[tokio::test]
async fn failing_migration_mid_file_leaves_no_trace() {
    let Some(db) = TestDb::create("midfile").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    bookings(tmp.path());
    write(
        tmp.path(),
        "20250103000000_broken.sql",
        "create table tags (id int);\ninsert into tags values (1);\nalter table tags add column x nosuchtype;\n",
    );
    let m = SqlMigrator::postgres(&db.url, tmp.path(), HistoryDialect::Deploykit).unwrap();
    let plan = m.plan(None).await.unwrap();
    let err = m.apply(&plan).await.unwrap_err().to_string();
    assert!(err.contains("20250103000000_broken.sql"), "{err}");
    assert!(err.contains("statement 3 of 3 (line 3"), "{err}");
    assert!(err.contains("type \"nosuchtype\" does not exist"), "{err}");
    assert!(err.contains("at character"), "{err}");
    assert!(!err.contains(db.url.expose()), "{err}");

    assert_eq!(
        db.scalar_i64("select count(*) from pg_tables where tablename = 'tags'")
            .await,
        0,
        "the failing file's first statements were rolled back"
    );
    assert_eq!(
        db.scalar_i64("select count(*) from deploykit_migrations")
            .await,
        2,
        "the earlier files stay applied, with their history rows"
    );
    // The run's undo (revert of the whole plan) takes exactly those back out.
    let before_all = {
        let fresh = TestDb::create("midfile_ref").await.unwrap();
        fresh.schema()
    };
    m.revert(&plan.as_applied()).await.unwrap();
    assert_eq!(db.schema(), before_all);
    assert_eq!(
        db.scalar_i64("select count(*) from deploykit_migrations")
            .await,
        0
    );
}

#[tokio::test]
async fn drift_is_detected_and_refuses_to_plan() {
    for dialect in [
        HistoryDialect::Deploykit,
        HistoryDialect::Supabase,
        HistoryDialect::Sqlx,
    ] {
        let Some(db) = TestDb::create("drift").await else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        bookings(tmp.path());
        let m = SqlMigrator::postgres(&db.url, tmp.path(), dialect).unwrap();
        m.apply(&m.plan(None).await.unwrap()).await.unwrap();
        assert!(m.status(None).await.unwrap().drifted.is_empty());
        write(
            tmp.path(),
            "20250101000000_users.sql",
            "create table users (id bigserial primary key, email text);\n",
        );
        let status = m.status(None).await.unwrap();
        assert_eq!(status.drifted.len(), 1, "{dialect:?}");
        assert_eq!(status.drifted[0].version, "20250101000000");
        let err = m.plan(None).await.unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{dialect:?}: {err}");
        assert!(m
            .clone()
            .allow_drift(true)
            .plan(None)
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn supabase_history_is_written_exactly_as_the_cli_writes_it() {
    let Some(db) = TestDb::create("supabase").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    bookings(tmp.path());
    let m = SqlMigrator::postgres(&db.url, tmp.path(), HistoryDialect::Supabase).unwrap();
    m.apply(&m.plan(None).await.unwrap()).await.unwrap();

    let mut c = db.conn().await;
    let cols: Vec<(String, String, String)> = sqlx::query(
        "select column_name::text, data_type::text, is_nullable::text from information_schema.columns \
         where table_schema = 'supabase_migrations' and table_name = 'schema_migrations' \
         order by ordinal_position",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    assert_eq!(
        cols,
        [
            ("version".into(), "text".into(), "NO".into()),
            ("statements".into(), "ARRAY".into(), "YES".into()),
            ("name".into(), "text".into(), "YES".into()),
        ]
    );
    let elem: String = sqlx::query_scalar(
        "select format_type(atttypid, atttypmod) from pg_attribute \
         where attrelid = 'supabase_migrations.schema_migrations'::regclass and attname = 'statements'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(elem, "text[]");
    let pk: String = sqlx::query_scalar(
        "select a.attname::text from pg_index i join pg_attribute a \
         on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
         where i.indrelid = 'supabase_migrations.schema_migrations'::regclass and i.indisprimary",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(pk, "version");

    // The CLI's own read: SELECT version, coalesce(name, '') as name, statements ...
    let rows: Vec<(String, String, Vec<String>)> = sqlx::query(
        "SELECT version, coalesce(name, '') as name, statements \
         FROM supabase_migrations.schema_migrations ORDER BY version",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    c.close().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "20250101000000");
    assert_eq!(rows[0].1, "users");
    assert_eq!(
        rows[0].2,
        [
            "-- users of the app\ncreate table users (id bigserial primary key, email text not null)",
            "insert into users (email) values ('a@example.com')",
        ]
    );
    assert_eq!(rows[1].1, "bookings");
    assert_eq!(
        rows[1].2.len(),
        3,
        "the function body's inner ; does not split"
    );
    assert!(rows[1].2[2].starts_with("create function touch()"));
    assert!(rows[1].2[2].ends_with("$$"));
}

#[tokio::test]
async fn existing_supabase_history_is_read_as_applied() {
    // A project whose history the Supabase CLI wrote: deploykit sees it as applied.
    let Some(db) = TestDb::create("supaexisting").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    bookings(tmp.path());
    db.exec(
        "CREATE SCHEMA IF NOT EXISTS supabase_migrations;
         CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY);
         ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[];
         ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text;
         create table users (id bigserial primary key, email text not null);
         INSERT INTO supabase_migrations.schema_migrations(version, name, statements) VALUES
           ('20250101000000', 'users', ARRAY['-- users of the app\ncreate table users (id bigserial primary key, email text not null)', 'insert into users (email) values (''a@example.com'')']);",
    )
    .await;
    let m = SqlMigrator::postgres(&db.url, tmp.path(), HistoryDialect::Supabase).unwrap();
    let s = m.status(None).await.unwrap();
    assert_eq!(s.applied.len(), 1, "{s:?}");
    assert!(s.drifted.is_empty(), "{s:?}");
    assert_eq!(s.pending[0].name, "bookings");
}

#[tokio::test]
async fn connection_errors_are_clear_and_never_show_the_password() {
    let Some(db) = TestDb::create("connerr").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    bookings(tmp.path());
    let wrong = db
        .url
        .expose()
        .replacen("deploykit:", "deploykit:Wr0ngPassw0rd-", 1);
    let m =
        SqlMigrator::postgres(&Secret::new(wrong), tmp.path(), HistoryDialect::Deploykit).unwrap();
    let err = m.status(None).await.unwrap_err().to_string();
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("Wr0ngPassw0rd"), "{err}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let refused = Secret::new(format!("postgres://u:Secr3tPw@127.0.0.1:{port}/x"));
    let m = SqlMigrator::postgres(&refused, tmp.path(), HistoryDialect::Deploykit).unwrap();
    let err = m.status(None).await.unwrap_err().to_string();
    assert!(err.contains("connection refused"), "{err}");
    assert!(!err.contains("Secr3tPw"), "{err}");
}

#[tokio::test]
async fn apply_waits_for_the_advisory_lock() {
    let Some(db) = TestDb::create("lock").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    bookings(tmp.path());
    let mut holder = db.conn().await;
    sqlx::query("select pg_advisory_lock($1)")
        .bind(deploykit_core::postgres::MIGRATION_LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    let m = SqlMigrator::postgres(&db.url, tmp.path(), HistoryDialect::Deploykit).unwrap();
    let plan = m.plan(None).await.unwrap();
    let task = tokio::spawn({
        let m = m.clone();
        async move { m.apply(&plan).await }
    });
    // Wait until the migrator is connected and asking for the lock.
    let mut watcher = db.conn().await;
    loop {
        let asking: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = current_database() \
             and application_name = 'deploykit' and query like '%pg_try_advisory_lock%'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if asking > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let table: Option<String> =
        sqlx::query_scalar("select to_regclass('deploykit_migrations')::text")
            .fetch_one(&mut watcher)
            .await
            .unwrap();
    assert_eq!(
        table, None,
        "nothing ran while another session held the lock"
    );
    assert!(!task.is_finished());
    sqlx::query("select pg_advisory_unlock($1)")
        .bind(deploykit_core::postgres::MIGRATION_LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    let applied = task.await.unwrap().unwrap();
    assert_eq!(applied.migrations.len(), 2);
    holder.close().await.unwrap();
    watcher.close().await.unwrap();
}

#[tokio::test]
async fn no_transaction_marker_allows_create_index_concurrently() {
    let Some(db) = TestDb::create("concurrently").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    bookings(tmp.path());
    write(
        tmp.path(),
        "20250103000000_email_index.sql",
        "-- deploykit:no-transaction\ncreate index concurrently users_email on users (email);\n",
    );
    write(
        tmp.path(),
        "20250103000000_email_index.down.sql",
        "drop index users_email;\n",
    );
    let m = SqlMigrator::postgres(&db.url, tmp.path(), HistoryDialect::Deploykit).unwrap();
    let plan = m.plan(None).await.unwrap();
    assert!(
        plan.migrations[2].findings.is_empty(),
        "CONCURRENTLY is the safe form"
    );
    let err = m
        .clone()
        .single_transaction(true)
        .apply(&plan)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    let applied = m.apply(&plan).await.unwrap();
    assert_eq!(applied.migrations.len(), 3);
    assert!(db.schema().contains("CREATE INDEX users_email"));
    m.revert(&applied).await.unwrap();
    assert!(m.status(None).await.unwrap().applied.is_empty());
}
