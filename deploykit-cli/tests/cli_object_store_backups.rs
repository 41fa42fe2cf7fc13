//! Backups in object storage, on the rig's real PostgreSQL and its S3-compatible
//! server: a backup taken by a deploy from one checkout is listed, verified and
//! restored from another checkout with an empty state dir and no local backup
//! directory (a fresh CI runner); retention keeps N per environment in the
//! bucket; a bucket that is down or missing stops the run before any migration
//! or activation; an upload killed mid-way leaves nothing that lists.
//! (`backup push`, which moves local backups into a store: cli_backup_push.rs.)

use std::process::Command as Std;
use std::time::{Duration, Instant};

#[path = "common/git_project.rs"]
mod git_project;
use git_project::free_port;

#[path = "common/s3_rig.rs"]
mod s3_rig;
use s3_rig::{psql, rig, unique, Rig};

#[path = "common/s3_checkout.rs"]
mod s3_checkout;
use s3_checkout::{database, tables, Checkout, Env};

#[test]
fn a_backup_taken_from_one_checkout_is_listed_verified_and_restored_from_a_fresh_one() {
    let Some(rig) = rig() else { return };
    let store = rig.store_url(&unique("fresh"));
    let a = Checkout::new(&rig);
    let db = database(&rig, "fresh");
    let staging = Env {
        name: "staging",
        db: db.clone(),
        port: free_port(),
    };
    a.configure(&[staging], &store, &rig.endpoint, 7, true);
    let deployed = a.run(&["deploy", "-e", "staging", "--release", "r1", "--ref", "v1"]);
    assert_eq!(
        deployed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    assert_eq!(
        tables(&db),
        "deploykit_migrations,notes,tags",
        "the deploy migrated"
    );
    a.assert_no_credential_on_disk();

    // A fresh runner: another clone, empty state dir, no backup directory.
    let b = Checkout::clone_of(&a);
    b.configure(
        &[Env {
            name: "staging",
            db: db.clone(),
            port: free_port(),
        }],
        &store,
        &rig.endpoint,
        7,
        true,
    );
    assert!(!b.path(".deploykit").exists() && !b.path("backups").exists());
    let listed = b.listed("staging");
    assert_eq!(listed.len(), 1, "the deploy's backup: {listed:?}");
    assert!(
        listed[0].starts_with(&format!("{store}/staging/")),
        "{listed:?}"
    );
    let verified = b.ok_json(&["backup", "verify", "-e", "staging", &listed[0]]);
    assert_eq!(verified["ok"], true, "{verified}");

    psql(&db, "update notes set body = 'changed after the backup'");
    b.ok_json(&[
        "backup",
        "restore",
        "-e",
        "staging",
        &listed[0],
        "--yes-replace-live-data",
    ]);
    assert_eq!(psql(&db, "select body from notes"), "before deploy");
    assert_eq!(tables(&db), "notes", "the backup predates the migration");
    assert!(!b.path("backups").exists(), "nothing was kept locally");
    b.assert_no_credential_on_disk();
}

#[test]
fn retention_keeps_n_per_environment_in_the_store_and_never_touches_another() {
    let Some(rig) = rig() else { return };
    let store = rig.store_url(&unique("prune"));
    let a = Checkout::new(&rig);
    let staging_db = database(&rig, "prune_staging");
    let production_db = database(&rig, "prune_production");
    // No migrations: every deploy then takes a backup, and commit prunes.
    a.configure(
        &[
            Env {
                name: "staging",
                db: staging_db,
                port: free_port(),
            },
            Env {
                name: "production",
                db: production_db,
                port: free_port(),
            },
        ],
        &store,
        &rig.endpoint,
        2,
        false,
    );
    let deploy = |env: &str, release: &str| {
        let out = a.run(&["deploy", "-e", env, "--release", release, "--ref", "v1"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    deploy("production", "p1");
    let production = a.listed("production");
    assert_eq!(production.len(), 1);
    let mut taken = Vec::new();
    for release in ["s1", "s2", "s3", "s4"] {
        deploy("staging", release);
        taken.extend(a.listed("staging"));
        // Same-second backups get distinct names; keep a gap for the order.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let staging = a.listed("staging");
    assert_eq!(staging.len(), 2, "keep = 2 in the store: {staging:?}");
    taken.sort();
    taken.dedup();
    assert_eq!(taken.len(), 4, "four backups were taken: {taken:?}");
    assert_eq!(staging, taken[2..].to_vec(), "the newest two are kept");
    assert_eq!(
        a.listed("production"),
        production,
        "staging's retention left production's backup alone"
    );
    // A fresh clone sees the same store.
    let b = Checkout::clone_of(&a);
    std::fs::copy(a.path("deploykit.toml"), b.path("deploykit.toml")).unwrap();
    assert_eq!(b.listed("staging"), staging);
}

/// `endpoint` and `store` of a store that cannot be written: the deploy fails
/// at the backup, names the store and the next step, migrates and activates
/// nothing; with `relist`, no backup lists afterwards through the rig's
/// working endpoint.
fn a_broken_store_stops_before_any_side_effect(
    rig: &Rig,
    store: &str,
    endpoint: &str,
    relist: bool,
) {
    let a = Checkout::new(rig);
    let db = database(rig, "broken");
    let port = free_port();
    let env = |db: &str| Env {
        name: "staging",
        db: db.to_string(),
        port,
    };
    a.configure(&[env(&db)], store, endpoint, 7, true);
    let started = Instant::now();
    let out = a.run(&["deploy", "-e", "staging", "--release", "r1", "--ref", "v1"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "a dead store is reported promptly"
    );
    let said = format!("{stdout}{stderr}");
    assert!(said.contains(store), "the message names the store: {said}");
    assert!(
        said.contains("check that the store is reachable"),
        "and the next step: {said}"
    );
    assert_eq!(tables(&db), "notes", "nothing was migrated");
    assert!(
        !a.path("srv-staging/current").exists(),
        "nothing was activated"
    );
    a.assert_no_credential_on_disk();
    if relist {
        a.configure(&[env(&db)], store, &rig.endpoint, 7, true);
        assert!(a.listed("staging").is_empty(), "nothing lists as a backup");
    }
}

#[test]
fn a_store_that_is_down_stops_the_deploy_before_migrating_or_activating() {
    let Some(rig) = rig() else { return };
    let store = rig.store_url(&unique("down"));
    let dead = format!("http://127.0.0.1:{}", free_port());
    a_broken_store_stops_before_any_side_effect(&rig, &store, &dead, true);
}

#[test]
fn a_missing_bucket_stops_the_deploy_before_migrating_or_activating() {
    let Some(rig) = rig() else { return };
    let store = format!("s3://{}/{}", unique("dk-missing").replace('_', "-"), "p");
    a_broken_store_stops_before_any_side_effect(&rig, &store, &rig.endpoint, false);
}

#[test]
fn an_upload_killed_mid_way_leaves_nothing_that_lists() {
    let Some(rig) = rig() else { return };
    let prefix = unique("killed");
    let store = rig.store_url(&prefix);
    let a = Checkout::new(&rig);
    let db = database(&rig, "killed");
    // Big enough that the dump spans several 8 MiB parts *after compression*: random
    // hex, not a repeated string. A repeated md5 compressed to about two parts, so under
    // load the whole upload could finish between the first part showing and the kill,
    // and the test then saw a finished backup (CI, stop 19).
    psql(
        &db,
        "create table big as select g as id, \
         array_to_string(array(select md5(g::text || i::text || random()::text) \
                               from generate_series(1, 12) i), '') as body \
         from generate_series(1, 200000) g",
    );
    a.configure(
        &[Env {
            name: "staging",
            db,
            port: free_port(),
        }],
        &store,
        &rig.endpoint,
        7,
        false,
    );
    let mut child = Std::new(assert_cmd::cargo::cargo_bin("deploykit"))
        .current_dir(a.dir.path())
        .env("DK_TEST_S3_ACCESS_KEY", &rig.access_key)
        .env("DK_TEST_S3_SECRET_KEY", &rig.secret_key)
        .args(["backup", "create", "-e", "staging"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let uploading = loop {
        if rig.parts_uploaded(&prefix) > 0 {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let pid = child.id();
    let dumps = s3_rig::children_named(pid, "pg_dump");
    let _ = Std::new("kill").args(["-9", &pid.to_string()]).status();
    let status = child.wait().unwrap();
    for dump in dumps {
        let _ = Std::new("kill").args(["-9", &dump.to_string()]).status();
    }
    assert!(uploading, "the upload never had a part in flight");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed while uploading, not after finishing"
    );
    assert!(
        a.listed("staging").is_empty(),
        "a killed upload lists as a backup"
    );
}

#[test]
fn a_failed_migration_under_policy_restore_is_undone_from_the_store() {
    let Some(rig) = rig() else { return };
    let store = rig.store_url(&unique("undo"));
    let a = Checkout::new(&rig);
    // v2: the first migration applies, the second fails.
    let repo = a.path("app");
    std::fs::write(
        repo.join("migrations/0002_broken.sql"),
        "CREATE TABLE half (id int);\nSELECT * FROM no_such_table;\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("migrations/0002_broken.down.sql"),
        "DROP TABLE half;\n",
    )
    .unwrap();
    git_project::git(&repo, &["add", "-A"]);
    git_project::git(&repo, &["commit", "-q", "-m", "v2"]);
    git_project::git(&repo, &["tag", "v2"]);
    let db = database(&rig, "undo");
    a.configure(
        &[Env {
            name: "staging",
            db: db.clone(),
            port: free_port(),
        }],
        &store,
        &rig.endpoint,
        7,
        true,
    );
    let mut text = std::fs::read_to_string(a.path("deploykit.toml")).unwrap();
    text.push_str("[environments.staging.policy]\nmigration_failure = \"restore\"\n");
    std::fs::write(a.path("deploykit.toml"), text).unwrap();
    psql(&db, "insert into notes values ('second row')");

    let out = a.run(&["deploy", "-e", "staging", "--release", "r2", "--ref", "v2"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("rolled back"), "{said}");
    assert_eq!(
        tables(&db),
        "notes",
        "the pre-deploy backup was restored from the store: {said}"
    );
    assert_eq!(
        psql(&db, "select string_agg(body, ',' order by body) from notes"),
        "before deploy,second row"
    );
    assert_eq!(
        a.listed("staging").len(),
        1,
        "the backup stays in the store"
    );
}
