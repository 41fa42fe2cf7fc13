//! A pg_dump restore is all or nothing: when it fails part-way, the live data is
//! exactly as it was, including tables the backup does not hold.

mod pg;

use deploykit_core::postgres::{DumpFormat, PgDumpBackup};
use deploykit_core::{Backup, BackupRequest, Commit, ConfirmDestructive, ReleaseId};
use pg::TestDb;

fn request() -> BackupRequest {
    BackupRequest {
        env: "production".into(),
        release: ReleaseId::parse("20261126T100000Z-abc1234").unwrap(),
        commit: Commit::parse("abc1234def").unwrap(),
        branch: None,
    }
}

#[tokio::test]
async fn a_restore_that_fails_part_way_leaves_the_live_data_intact() {
    for format in [DumpFormat::Custom, DumpFormat::PlainGzip] {
        let Some(db) = TestDb::create("restore_atomic").await else {
            return;
        };
        db.exec(
            "create table users (id bigserial primary key, email text);
             insert into users (email) values ('alice@example.com');",
        )
        .await;
        let tmp = tempfile::tempdir().unwrap();
        let backup = PgDumpBackup::new(&db.url, tmp.path())
            .unwrap()
            .format(format);
        let artifact = backup.create(&request()).await.unwrap();

        // After the backup: a table the backup does not hold (which a restore
        // drops), new rows, and a view that makes dropping `users` fail.
        db.exec(
            "create table invoices (id int, total int);
             insert into invoices values (1, 100), (2, 200);
             insert into users (email) values ('bob@example.com');
             create view user_emails as select email from users;",
        )
        .await;
        let before = db.schema();

        let err = backup
            .restore(
                &artifact,
                ConfirmDestructive::i_understand_this_replaces_live_data(),
            )
            .await
            .expect_err("the view on users blocks the restore");
        assert!(err.to_string().contains("user_emails"), "{format:?}: {err}");
        assert_eq!(
            db.scalar_i64("select count(*) from invoices").await,
            2,
            "{format:?}: the failed restore dropped a table"
        );
        assert_eq!(db.scalar_i64("select count(*) from users").await, 2);
        assert_eq!(db.schema(), before, "{format:?}");
    }
}

#[tokio::test]
async fn a_restore_drops_tables_created_after_the_backup() {
    for format in [DumpFormat::Custom, DumpFormat::PlainGzip] {
        let Some(db) = TestDb::create("restore_drops").await else {
            return;
        };
        db.exec(
            "create table users (id bigserial primary key, email text);
             insert into users (email) values ('alice@example.com');",
        )
        .await;
        let before = db.schema();
        let tmp = tempfile::tempdir().unwrap();
        let backup = PgDumpBackup::new(&db.url, tmp.path())
            .unwrap()
            .format(format);
        let artifact = backup.create(&request()).await.unwrap();
        db.exec(
            "create table invoices (id int, user_id bigint references users(id));
             insert into users (email) values ('bob@example.com');",
        )
        .await;
        backup
            .restore(
                &artifact,
                ConfirmDestructive::i_understand_this_replaces_live_data(),
            )
            .await
            .unwrap();
        assert_eq!(db.schema(), before, "{format:?}");
        assert_eq!(db.scalar_i64("select count(*) from users").await, 1);
    }
}
