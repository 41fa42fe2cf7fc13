//! `VACUUM INTO` backups of a real SQLite database: round trip, verify, retention.

use std::path::Path;

use deploykit_core::sqlite::VacuumIntoBackup;
use deploykit_core::{Backup, BackupExt, BackupRequest, Commit, ConfirmDestructive, ReleaseId};
use sqlx::{AssertSqlSafe, ConnectOptions};

async fn exec(db: &Path, sql: &str) {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn count(db: &Path) -> i64 {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    sqlx::query_scalar("select count(*) from items")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

fn request() -> BackupRequest {
    BackupRequest {
        env: "demo".into(),
        release: ReleaseId::parse("20261126T100000Z-abc1234").unwrap(),
        commit: Commit::parse("abc1234").unwrap(),
        branch: None,
    }
}

#[tokio::test]
async fn backup_restore_round_trip_preserves_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("app.db");
    exec(
        &db,
        "create table items (id integer primary key, name text);
         insert into items (name) values ('a'), ('b'), ('c');",
    )
    .await;
    let backup = VacuumIntoBackup::new(&db, tmp.path().join("backups"));
    let artifact = backup.create(&request()).await.unwrap();
    assert!(artifact.path.to_string_lossy().ends_with("-abc1234.sqlite"));
    backup.verify(&artifact).await.unwrap();
    let meta = backup.store().metadata(&artifact.path).await.unwrap();
    assert!(meta.extra["sqlite_version"]
        .as_str()
        .unwrap()
        .starts_with('3'));

    exec(
        &db,
        "delete from items; insert into items (name) values ('z');",
    )
    .await;
    assert_eq!(count(&db).await, 1);
    backup
        .restore(
            &artifact,
            ConfirmDestructive::i_understand_this_replaces_live_data(),
        )
        .await
        .unwrap();
    assert_eq!(count(&db).await, 3);
}

#[tokio::test]
async fn truncated_or_corrupted_backup_fails_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("app.db");
    exec(
        &db,
        "create table items (id integer primary key, name text);",
    )
    .await;
    let backup = VacuumIntoBackup::new(&db, tmp.path().join("backups"));
    let artifact = backup.create(&request()).await.unwrap();
    let bytes = std::fs::read(&artifact.path).unwrap();

    std::fs::write(&artifact.path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(backup.verify(&artifact).await.is_err());

    let mut corrupt = bytes.clone();
    corrupt[0] ^= 0xff;
    std::fs::write(&artifact.path, &corrupt).unwrap();
    let err = backup.verify(&artifact).await.unwrap_err().to_string();
    assert!(err.contains("sha256"), "{err}");

    // Same size and checksum recorded for a file that is not a database: the
    // integrity check still refuses it.
    let mut fake = artifact.clone();
    std::fs::write(&artifact.path, vec![b'x'; 4096]).unwrap();
    fake.size = 4096;
    fake.sha256 = deploykit_core::artifact_store::hash_file(&artifact.path)
        .await
        .unwrap()
        .1;
    assert!(backup.verify(&fake).await.is_err());
    assert!(backup
        .restore(
            &fake,
            ConfirmDestructive::i_understand_this_replaces_live_data()
        )
        .await
        .is_err());
}

#[tokio::test]
async fn prune_keeps_newest_and_protected() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("app.db");
    exec(&db, "create table items (id integer primary key);").await;
    let backup = VacuumIntoBackup::new(&db, tmp.path().join("backups"));
    let mut made = Vec::new();
    for _ in 0..4 {
        made.push(backup.create(&request()).await.unwrap());
    }
    let removed = backup
        .prune("demo", 2, &[made[0].path.clone()])
        .await
        .unwrap();
    assert_eq!(removed, vec![made[1].clone()]);
    assert_eq!(backup.list().await.unwrap().len(), 3);
}
