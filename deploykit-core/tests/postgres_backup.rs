//! pg_dump backups against the real PostgreSQL started by script/test.

mod pg;

use std::path::Path;

use deploykit_core::artifact_store::hash_file;
use deploykit_core::postgres::{DumpFormat, PgDumpBackup};
use deploykit_core::{Backup, BackupRequest, Commit, ConfirmDestructive, ReleaseId, Secret};
use pg::TestDb;

fn request() -> BackupRequest {
    BackupRequest {
        env: "production".into(),
        release: ReleaseId::parse("20261126T100000Z-abc1234").unwrap(),
        commit: Commit::parse("abc1234def").unwrap(),
        branch: Some("main".into()),
    }
}

async fn seed(db: &TestDb) {
    db.exec(
        "create table users (id bigserial primary key, email text not null unique);
         create table bookings (id bigserial primary key, user_id bigint references users(id), at timestamptz default now());
         create index bookings_user on bookings (user_id);
         insert into users (email) select 'u' || g || '@example.com' from generate_series(1, 500) g;
         insert into bookings (user_id) select 1 + g % 500 from generate_series(1, 2000) g;",
    )
    .await;
}

fn no_partials(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".partial"), "left behind: {name}");
        }
    }
}

#[tokio::test]
async fn backup_restore_round_trip_preserves_schema_and_rows() {
    for format in [DumpFormat::Custom, DumpFormat::PlainGzip] {
        let Some(db) = TestDb::create("roundtrip").await else {
            return;
        };
        seed(&db).await;
        let schema_before = db.schema();
        let tmp = tempfile::tempdir().unwrap();
        let backup = PgDumpBackup::new(&db.url, tmp.path())
            .unwrap()
            .format(format)
            .deep_verify(true);
        let artifact = backup.create(&request()).await.unwrap();
        let name = artifact
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let ext = if format == DumpFormat::Custom {
            ".dump"
        } else {
            ".sql.gz"
        };
        assert!(
            name.starts_with("production-") && name.ends_with(&format!("-abc1234{ext}")),
            "{name}"
        );
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&artifact.path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let meta = backup.store().metadata(&artifact.path).await.unwrap();
        assert!(meta.extra["pg_dump_version"]
            .as_str()
            .unwrap()
            .starts_with("15"));
        assert!(meta.extra["server_version"]
            .as_str()
            .unwrap()
            .starts_with("15"));
        backup.verify(&artifact).await.unwrap();

        // What a failed deploy might do: change rows, add a table, drop a column.
        db.exec(
            "delete from bookings where id > 10;
             update users set email = 'x' || id where id < 5;
             create table extra (id int);
             alter table bookings drop column at;",
        )
        .await;
        assert_ne!(db.schema(), schema_before);
        backup
            .restore(
                &artifact,
                ConfirmDestructive::i_understand_this_replaces_live_data(),
            )
            .await
            .unwrap();
        assert_eq!(db.schema(), schema_before, "{format:?}");
        assert_eq!(db.scalar_i64("select count(*) from bookings").await, 2000);
        assert_eq!(
            db.scalar_i64("select count(*) from users where email like 'x%'")
                .await,
            0
        );
        no_partials(tmp.path());
    }
}

#[tokio::test]
async fn truncated_or_corrupted_backup_fails_verify() {
    let Some(db) = TestDb::create("corrupt").await else {
        return;
    };
    seed(&db).await;
    let tmp = tempfile::tempdir().unwrap();
    let backup = PgDumpBackup::new(&db.url, tmp.path()).unwrap();
    let artifact = backup.create(&request()).await.unwrap();
    let bytes = std::fs::read(&artifact.path).unwrap();

    std::fs::write(&artifact.path, &bytes[..bytes.len() / 2]).unwrap();
    let err = backup.verify(&artifact).await.unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");

    let mut corrupt = bytes.clone();
    corrupt[bytes.len() / 2] ^= 0xff;
    std::fs::write(&artifact.path, &corrupt).unwrap();
    let err = backup.verify(&artifact).await.unwrap_err().to_string();
    assert!(err.contains("sha256"), "{err}");

    // A file whose recorded checksum matches but is not a dump: pg_restore --list refuses it.
    let mut forged = artifact.clone();
    std::fs::write(&artifact.path, b"PGDMP garbage that is not an archive").unwrap();
    let (size, sha) = hash_file(&artifact.path).await.unwrap();
    forged.size = size;
    forged.sha256 = sha;
    let err = backup.verify(&forged).await.unwrap_err().to_string();
    assert!(err.contains("pg_restore --list"), "{err}");
    assert!(backup
        .restore(
            &forged,
            ConfirmDestructive::i_understand_this_replaces_live_data()
        )
        .await
        .is_err());
    assert_eq!(
        db.scalar_i64("select count(*) from users").await,
        500,
        "refused restore touched nothing"
    );
}

#[tokio::test]
async fn clear_errors_for_missing_or_old_pg_dump() {
    let Some(db) = TestDb::create("tools").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let empty_bin = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty_bin).unwrap();
    let backup = PgDumpBackup::new(&db.url, tmp.path().join("b"))
        .unwrap()
        .bin_dir(&empty_bin);
    let err = backup.create(&request()).await.unwrap_err().to_string();
    assert!(err.contains("pg_dump"), "{err}");
    assert!(err.contains("install"), "{err}");

    // A pg_dump that reports an older major version than the server.
    let old_bin = tmp.path().join("old-bin");
    std::fs::create_dir(&old_bin).unwrap();
    let fake = old_bin.join("pg_dump");
    std::fs::write(&fake, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.19'\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let backup = PgDumpBackup::new(&db.url, tmp.path().join("b"))
        .unwrap()
        .bin_dir(&old_bin);
    let err = backup.create(&request()).await.unwrap_err().to_string();
    assert!(err.contains("older than the server"), "{err}");
    assert!(err.contains("postgresql-client-15"), "{err}");
    no_partials(&tmp.path().join("b"));
}

#[tokio::test]
async fn clear_errors_for_refused_connection_and_bad_password() {
    let Some(db) = TestDb::create("connfail").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let wrong = Secret::new(
        db.url
            .expose()
            .replacen("deploykit:", "deploykit:Wr0ngPassw0rd-", 1),
    );
    let err = PgDumpBackup::new(&wrong, tmp.path())
        .unwrap()
        .create(&request())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("Wr0ngPassw0rd"), "{err}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let refused = Secret::new(format!("postgres://u:Secr3tPw@127.0.0.1:{port}/x"));
    let err = PgDumpBackup::new(&refused, tmp.path())
        .unwrap()
        .create(&request())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("connection refused"), "{err}");
    assert!(!err.contains("Secr3tPw"), "{err}");
    no_partials(tmp.path());
}

#[tokio::test]
async fn disk_full_leaves_no_partial_file() {
    let Some(db) = TestDb::create("diskfull").await else {
        return;
    };
    db.exec(
        "create table blobs (id int, body text);
         insert into blobs select g, md5(g::text) || repeat(md5((g*7)::text), 20) from generate_series(1, 20000) g;",
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&small)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run as root to mount a tiny tmpfs"
        );
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&small);
    let backup = PgDumpBackup::new(&db.url, &small).unwrap();
    let err = backup.create(&request()).await.unwrap_err().to_string();
    assert!(err.contains("disk full"), "{err}");
    assert!(err.contains("free space"), "{err}");
    assert_eq!(
        std::fs::read_dir(&small).unwrap().count(),
        0,
        "nothing left behind"
    );
    assert!(backup.list().await.unwrap().is_empty());
}
