//! pg_dump backups kept in an object store (object_store's filesystem backend here;
//! the CLI and Docker tests use the rig's S3 server), against the real PostgreSQL:
//! both dump formats round-trip with verify and restore reading the artifact back
//! as a stream, with deep verify restoring it into a scratch database.

mod pg;

use std::sync::Arc;

use deploykit_core::artifact_store::object::{ObjectDir, ObjectStoreSpec};
use deploykit_core::postgres::{DumpFormat, PgDumpBackup};
use deploykit_core::{Backup, BackupRequest, Commit, ConfirmDestructive, ReleaseId};
use pg::TestDb;

fn request() -> BackupRequest {
    BackupRequest {
        env: "production".into(),
        release: ReleaseId::parse("20261126T100000Z-abc1234").unwrap(),
        commit: Commit::parse("abc1234def").unwrap(),
        branch: Some("main".into()),
    }
}

#[tokio::test]
async fn both_formats_round_trip_through_an_object_store() {
    for format in [DumpFormat::Custom, DumpFormat::PlainGzip] {
        let Some(db) = TestDb::create("objstore").await else {
            return;
        };
        db.exec(
            "create table users (id bigserial primary key, email text not null unique);
             insert into users (email) select 'u' || g || '@example.com' from generate_series(1, 300) g;",
        )
        .await;
        let schema_before = db.schema();
        let tmp = tempfile::tempdir().unwrap();
        let spec = ObjectStoreSpec {
            url: format!("file://{}/store", tmp.path().display()),
            ..Default::default()
        };
        let unused_local_dir = tmp.path().join("local");
        let backup = PgDumpBackup::new(&db.url, &unused_local_dir)
            .unwrap()
            .format(format)
            .backend(Arc::new(ObjectDir::connect(&spec).unwrap()))
            .deep_verify(true);
        let artifact = backup.create(&request()).await.unwrap();
        let path = artifact.path.to_string_lossy().into_owned();
        assert!(
            path.starts_with(&format!("{}/production/production-", spec.url)),
            "{path}"
        );
        assert!(!unused_local_dir.exists(), "nothing went to the local dir");
        assert_eq!(backup.list().await.unwrap(), vec![artifact.clone()]);
        backup.verify(&artifact).await.unwrap();

        db.exec("delete from users where id > 10; create table extra (id int);")
            .await;
        backup
            .restore(
                &artifact,
                ConfirmDestructive::i_understand_this_replaces_live_data(),
            )
            .await
            .unwrap();
        assert_eq!(db.schema(), schema_before, "{format:?}");
        assert_eq!(db.scalar_i64("select count(*) from users").await, 300);

        // A corrupted object is refused before anything is restored.
        let file = tmp
            .path()
            .join("store/production")
            .join(artifact.path.file_name().unwrap());
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        assert!(backup.verify(&artifact).await.is_err(), "{format:?}");
        db.exec("delete from users where id > 20").await;
        assert!(backup
            .restore(
                &artifact,
                ConfirmDestructive::i_understand_this_replaces_live_data(),
            )
            .await
            .is_err());
        assert_eq!(db.scalar_i64("select count(*) from users").await, 20);
    }
}
