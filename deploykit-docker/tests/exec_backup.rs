//! ExecPgDumpBackup against PostgreSQL running in a Compose service on the rig's engine.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{rig, spec, Rig};
use deploykit_core::{Backup, BackupRequest, ConfirmDestructive, Error, LocalShell, ShellExt};
use deploykit_docker::{ComposeCli, ComposeProject, Engine, ExecPgDumpBackup, Health, PinFile};

const PROJECT: &str = "dk-backup";

struct Db {
    _dir: tempfile::TempDir,
    engine: Engine,
    id: String,
}

async fn start_db(rig: &Rig, port: u16) -> Db {
    start_db_in(rig, port, PROJECT).await
}

async fn start_db_in(rig: &Rig, port: u16, project_name: &str) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(
        &file,
        format!(
            "version: \"2.4\"\nservices:\n  db:\n    image: {}\n    network_mode: host\n    environment:\n      PGPORT: \"{port}\"\n      POSTGRES_USER: app\n      POSTGRES_DB: appdb\n",
            rig.postgres
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join(".env"), "").unwrap();
    let shell = LocalShell::new();
    let cli = ComposeCli::detect(&shell).await.unwrap();
    let project = ComposeProject::new(project_name, vec![file], cli)
        .unwrap()
        .docker_host(&rig.docker_host);
    let engine = rig.engine().await;
    common::reset(rig, project_name, "deploykit-test/none").await;
    let pin = PinFile::new(&dir.path().join(".deploykit"), project_name, "db", "live");
    pin.write(&shell, "db", &rig.postgres).await.unwrap();
    shell
        .check("test", &project.up("db", &pin.path))
        .await
        .unwrap();
    let id = loop {
        let c = engine
            .service_container(project_name, "db")
            .await
            .unwrap()
            .unwrap();
        if c.health == Some(Health::Healthy) {
            break c.id;
        }
        assert!(
            c.status == "running",
            "db container died: {}",
            engine.log_tail(&c.id, 20).await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    Db {
        _dir: dir,
        engine,
        id,
    }
}

async fn psql(db: &Db, sql: &str) -> String {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let argv: Vec<String> = [
        "psql",
        "-U",
        "app",
        "-d",
        "appdb",
        "-qAt",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
    ]
    .map(String::from)
    .to_vec();
    let collect = async {
        let mut out = Vec::new();
        while let Some(c) = rx.recv().await {
            out.extend(c);
        }
        out
    };
    let (res, out) = futures::join!(
        db.engine.exec_streaming(&db.id, &argv, &[], None, tx),
        collect
    );
    let res = res.unwrap();
    assert_eq!(
        res.exit_code,
        0,
        "psql failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    String::from_utf8(out).unwrap().trim().to_string()
}

fn request(id: &str) -> BackupRequest {
    let s = spec(id);
    BackupRequest {
        env: "production".into(),
        release: s.id,
        commit: s.commit,
        branch: s.branch,
    }
}

#[tokio::test]
async fn in_container_backup_restores_round_trip_and_failures_are_errors() {
    let Some(rig) = rig("in_container_backup") else {
        return;
    };
    let db = start_db(&rig, common::reuseport::free_port()).await;
    psql(&db, "CREATE TABLE bookings (id int primary key, guest text); INSERT INTO bookings VALUES (1, 'before'), (2, 'ação ✓');").await;

    let dir = tempfile::tempdir().unwrap();
    let backup =
        ExecPgDumpBackup::new(db.engine.clone(), PROJECT, "db", "appdb", "app", dir.path());
    let artifact = backup
        .create(&request("20260101T000000Z-v1"))
        .await
        .unwrap();
    backup.verify(&artifact).await.unwrap();
    assert!(artifact.size > 0);
    let mode = std::fs::metadata(&artifact.path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "dumps hold user data");
    assert_eq!(backup.list().await.unwrap(), vec![artifact.clone()]);
    let bytes = std::fs::read(&artifact.path).unwrap();
    assert!(
        bytes.starts_with(b"PGDMP"),
        "binary custom format survived the exec stream"
    );

    // Writes after the backup are undone by the restore.
    psql(
        &db,
        "DELETE FROM bookings WHERE id = 1; INSERT INTO bookings VALUES (3, 'after');",
    )
    .await;
    backup
        .restore(
            &artifact,
            ConfirmDestructive::i_understand_this_replaces_live_data(),
        )
        .await
        .unwrap();
    assert_eq!(
        psql(
            &db,
            "SELECT string_agg(guest, ',' ORDER BY id) FROM bookings"
        )
        .await,
        "before,ação ✓"
    );

    // A non-zero pg_dump is an error and leaves no artifact, complete or partial.
    let wrong_db = ExecPgDumpBackup::new(
        db.engine.clone(),
        PROJECT,
        "db",
        "no_such_db",
        "app",
        dir.path(),
    );
    let err = wrong_db
        .create(&request("20260102T000000Z-v2"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("pg_dump exited with status 1"), "{text}");
    assert!(
        text.contains("no_such_db"),
        "stderr tail is in the error: {text}"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "only the first artifact and its metadata: {names:?}"
    );

    // A tampered artifact is refused before anything is restored.
    let mut tampered = artifact.clone();
    tampered.sha256 = "0".repeat(64);
    assert!(backup.verify(&tampered).await.is_err());

    // A stopped database container is an error, never a warning.
    db.engine
        .stop(&db.id, Duration::from_secs(5))
        .await
        .unwrap();
    let err = backup
        .create(&request("20260103T000000Z-v3"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Part { .. }));
    assert!(err.to_string().contains("not running"), "{err}");
    assert_eq!(backup.list().await.unwrap().len(), 1);
}

/// The rig's S3-compatible server as an object store under a fresh prefix, or
/// `None` (skipped) outside CI when it is not running.
fn s3_store() -> Option<std::sync::Arc<dyn deploykit_core::artifact_store::ArtifactBackend>> {
    use deploykit_core::artifact_store::object::{ObjectDir, ObjectStoreSpec};
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = get("DEPLOYKIT_RIG_S3_ENDPOINT") else {
        if std::env::var_os("CI").is_some() {
            panic!("DEPLOYKIT_RIG_S3_ENDPOINT is not set but CI is: run through script/test");
        }
        eprintln!("skipped: the rig's S3 server is not running (run through script/test)");
        return None;
    };
    let spec = ObjectStoreSpec {
        url: format!(
            "s3://{}/exec-backup-{}",
            get("DEPLOYKIT_RIG_S3_BUCKET").unwrap(),
            std::process::id()
        ),
        endpoint: Some(endpoint),
        region: get("DEPLOYKIT_RIG_S3_REGION"),
        access_key_id: get("DEPLOYKIT_RIG_S3_ACCESS_KEY_ID").map(deploykit_core::Secret::new),
        secret_access_key: get("DEPLOYKIT_RIG_S3_SECRET_ACCESS_KEY")
            .map(deploykit_core::Secret::new),
    };
    Some(std::sync::Arc::new(ObjectDir::connect(&spec).unwrap()))
}

#[tokio::test]
async fn in_container_backup_streams_into_object_storage_and_restores_from_it() {
    let Some(rig) = rig("in_container_backup_s3") else {
        return;
    };
    let Some(store) = s3_store() else {
        return;
    };
    let project = "dk-backup-s3";
    let db = start_db_in(&rig, common::reuseport::free_port(), project).await;
    psql(&db, "CREATE TABLE bookings (id int primary key, guest text); INSERT INTO bookings VALUES (1, 'before');").await;
    let local = tempfile::tempdir().unwrap();
    let backup = ExecPgDumpBackup::new(
        db.engine.clone(),
        project,
        "db",
        "appdb",
        "app",
        local.path(),
    )
    .backend(store);
    let artifact = backup
        .create(&request("20260101T000000Z-v1"))
        .await
        .unwrap();
    assert!(
        artifact.path.to_string_lossy().starts_with("s3://"),
        "{}",
        artifact.path.display()
    );
    assert_eq!(
        std::fs::read_dir(local.path()).unwrap().count(),
        0,
        "nothing was written locally"
    );
    assert_eq!(backup.list().await.unwrap(), vec![artifact.clone()]);
    backup.verify(&artifact).await.unwrap();
    psql(
        &db,
        "DELETE FROM bookings; INSERT INTO bookings VALUES (2, 'after');",
    )
    .await;
    backup
        .restore(
            &artifact,
            ConfirmDestructive::i_understand_this_replaces_live_data(),
        )
        .await
        .unwrap();
    assert_eq!(
        psql(
            &db,
            "SELECT string_agg(guest, ',' ORDER BY id) FROM bookings"
        )
        .await,
        "before",
        "restored by streaming the object back into docker exec pg_restore"
    );
    backup.remove(&artifact).await.unwrap();
    assert!(backup.list().await.unwrap().is_empty());
}
