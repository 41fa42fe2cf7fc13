//! Takes one verified pg_dump backup of `$DATABASE_URL` into the directory given as
//! the first argument and prints the artifact, its size and the seconds it took.
//! Used by `script/bench-backup` and `script/bench-backup-store`; also a minimal
//! example of wiring `PgDumpBackup`. `DUMP_COMPRESSION=0..9` sets the zlib level
//! (default 1).
//!
//! With the `object-store` feature the argument may be an object store instead
//! (`s3://bucket/prefix`, with `S3_ENDPOINT`, `S3_REGION`, `AWS_ACCESS_KEY_ID`
//! and `AWS_SECRET_ACCESS_KEY` from the environment, or `file:///path`).
//! `REMOVE_AFTER=1` deletes the artifact once timed (for repeated runs).
//!
//! ```sh
//! DATABASE_URL=postgres://user:pass@127.0.0.1:5432/app \
//!   cargo run --release --example backup_once --features postgres -- /tmp/backups
//! ```

use std::time::Instant;

use deploykit_core::postgres::PgDumpBackup;
use deploykit_core::{Backup, BackupRequest, Commit, DumpCompression, ReleaseId, Secret};

#[tokio::main]
async fn main() {
    let url = Secret::new(std::env::var("DATABASE_URL").expect("DATABASE_URL is set"));
    let dir = std::env::args().nth(1).expect("usage: backup_once DIR");
    let mut backup = PgDumpBackup::new(&url, &dir).expect("valid DATABASE_URL");
    #[cfg(feature = "object-store")]
    if dir.starts_with("s3://") || dir.starts_with("file://") {
        use deploykit_core::artifact_store::object::{ObjectDir, ObjectStoreSpec};
        let spec = ObjectStoreSpec {
            url: dir.clone(),
            endpoint: std::env::var("S3_ENDPOINT").ok(),
            region: std::env::var("S3_REGION").ok(),
            access_key_id: None,
            secret_access_key: None,
        };
        let store = ObjectDir::connect(&spec).expect("a valid store URL");
        backup = backup.backend(std::sync::Arc::new(store));
    }
    if let Ok(level) = std::env::var("DUMP_COMPRESSION") {
        let level = level.parse().expect("DUMP_COMPRESSION is a number");
        backup = backup.compression(DumpCompression::new(level).expect("level 0-9"));
    }
    let request = BackupRequest {
        env: "bench".into(),
        release: ReleaseId::parse("bench").expect("valid id"),
        commit: Commit::parse("0000000").expect("valid commit"),
        branch: None,
    };
    let started = Instant::now();
    match backup.create(&request).await {
        Ok(a) => {
            println!(
                "{} {} {:.3}",
                a.path.display(),
                a.size,
                started.elapsed().as_secs_f64()
            );
            if std::env::var_os("REMOVE_AFTER").is_some() {
                backup.remove(&a).await.expect("remove the artifact");
            }
        }
        Err(e) => {
            eprintln!("backup failed: {e}");
            std::process::exit(1);
        }
    }
}
