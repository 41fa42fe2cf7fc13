//! Backups in object storage, on the rig's real PostgreSQL and its S3-compatible
//! server: a backup taken by a deploy from one checkout is listed, verified and
//! restored from another checkout with an empty state dir and no local backup
//! directory (a fresh CI runner); retention keeps N per environment in the
//! bucket; a bucket that is down or missing stops the run before any migration
//! or activation; an upload killed mid-way leaves nothing that lists.

use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::time::{Duration, Instant};

use assert_cmd::Command;

#[path = "common/git_project.rs"]
mod git_project;
use git_project::{free_port, git, stop_local_app};

#[path = "common/s3_rig.rs"]
mod s3_rig;
use s3_rig::{psql, rig, unique, Rig};

/// One checkout: the app repo `app` (or a clone of another checkout's) and a
/// `deploykit.toml` whose environments back up into the object store.
struct Checkout {
    dir: tempfile::TempDir,
    rig: Rig,
}

/// An environment of a config: its name, database URL and app port.
struct Env {
    name: &'static str,
    db: String,
    port: u16,
}

impl Checkout {
    /// A repo whose commit `v1` adds the migration `0001_tags` (with a down).
    fn new(rig: &Rig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("app");
        std::fs::create_dir_all(repo.join("migrations")).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("VERSION"), "v1\n").unwrap();
        std::fs::write(
            repo.join("migrations/0001_tags.sql"),
            "CREATE TABLE tags (id int);\n",
        )
        .unwrap();
        std::fs::write(
            repo.join("migrations/0001_tags.down.sql"),
            "DROP TABLE tags;\n",
        )
        .unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "v1"]);
        git(&repo, &["tag", "v1"]);
        Self {
            dir,
            rig: rig.clone(),
        }
    }

    /// Another checkout of `other`'s repo, as a fresh CI runner has: no state
    /// dir, no backup directory.
    fn clone_of(other: &Checkout) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Std::new("git")
            .args(["clone", "-q"])
            .arg(other.dir.path().join("app"))
            .arg(dir.path().join("app"))
            .output()
            .unwrap();
        assert!(out.status.success(), "git clone");
        Self {
            dir,
            rig: other.rig.clone(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes the config: every env backs up with pg_dump into `store` through
    /// `endpoint`, keeping `keep`; `migrations` adds the repo's SQL migrations.
    fn configure(&self, envs: &[Env], store: &str, endpoint: &str, keep: usize, migrations: bool) {
        let exe = assert_cmd::cargo::cargo_bin("deploykit");
        let mut text = String::new();
        for e in envs {
            text.push_str(&format!(
                "[environments.{n}.target]\nkind = \"local\"\ndeploy_to = \"srv-{n}\"\nrepo = \"app\"\n\
                 start = [{exe:?}, \"demo-app\", \"--port\", \"{{port}}\"]\nport = {port}\n\
                 [environments.{n}.database]\nurl = \"{db}\"\n\
                 [environments.{n}.backup]\nkind = \"pg_dump\"\nstore = \"{store}\"\n\
                 endpoint = \"{endpoint}\"\nregion = \"{region}\"\n\
                 access_key_id = \"${{DK_TEST_S3_ACCESS_KEY}}\"\n\
                 secret_access_key = \"${{DK_TEST_S3_SECRET_KEY}}\"\nkeep = {keep}\n",
                n = e.name,
                exe = exe.to_string_lossy(),
                port = e.port,
                db = e.db,
                region = self.rig.region,
            ));
            if migrations {
                text.push_str(&format!(
                    "[environments.{}.migrations]\nkind = \"sql\"\ndir = \"app/migrations\"\n",
                    e.name
                ));
            }
        }
        std::fs::write(self.path("deploykit.toml"), text).unwrap();
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("deploykit").unwrap();
        c.current_dir(self.dir.path())
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1")
            .env("DK_TEST_S3_ACCESS_KEY", &self.rig.access_key)
            .env("DK_TEST_S3_SECRET_KEY", &self.rig.secret_key);
        c
    }

    /// Runs deploykit; asserts no credential of the store shows in its output.
    fn run(&self, args: &[&str]) -> std::process::Output {
        let out = self.cmd().args(args).output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains(&self.rig.secret_key) && !all.contains(&self.rig.access_key),
            "a store credential leaked into the output of {args:?}: {all}"
        );
        out
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        // Several events may be printed; the last line is the command's answer.
        serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap()
    }

    fn listed(&self, env: &str) -> Vec<String> {
        self.ok_json(&["backup", "list", "-e", env])["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["path"].as_str().unwrap().to_string())
            .collect()
    }

    /// Every file deploykit wrote under this checkout (journals, history):
    /// none holds a store credential.
    fn assert_no_credential_on_disk(&self) {
        for path in files_under(&self.path(".deploykit")) {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert!(
                !text.contains(&self.rig.secret_key) && !text.contains(&self.rig.access_key),
                "{} holds a store credential",
                path.display()
            );
        }
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten() {
            let p = entry.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with("srv-") {
                stop_local_app(&p);
            }
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A database with one table of data written before any deploy.
fn database(rig: &Rig, label: &str) -> String {
    let url = rig.database(label);
    psql(
        &url,
        "create table notes (body text); insert into notes values ('before deploy');",
    );
    url
}

fn tables(url: &str) -> String {
    psql(
        url,
        "select string_agg(tablename, ',' order by tablename) from pg_tables where schemaname = 'public'",
    )
}

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
    // Big enough that the dump spans several 8 MiB parts.
    psql(
        &db,
        "create table big as select g as id, repeat(md5(g::text), 12) as body \
         from generate_series(1, 300000) g",
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
fn backup_push_moves_an_environments_local_backups_into_the_store() {
    let Some(rig) = rig() else { return };
    let store = rig.store_url(&unique("push"));
    let a = Checkout::new(&rig);
    let db = database(&rig, "push");
    let other_db = database(&rig, "push_other");
    // Before: both environments back up into one local directory.
    let local = |env: &str, db: &str| {
        format!(
            "[environments.{env}.database]\nurl = \"{db}\"\n\
             [environments.{env}.backup]\nkind = \"pg_dump\"\ndir = \"backups\"\n"
        )
    };
    std::fs::write(
        a.path("deploykit.toml"),
        local("staging", &db) + &local("production", &other_db),
    )
    .unwrap();
    let mut taken = Vec::new();
    for env in ["staging", "staging", "production"] {
        taken.push(a.ok_json(&["backup", "create", "-e", env])["artifact"]["path"].clone());
    }
    let names: Vec<String> = a
        .listed("staging")
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names.len(), 2);

    // After: staging's backups go to the object store.
    a.configure(
        &[Env {
            name: "staging",
            db: db.clone(),
            port: free_port(),
        }],
        &store,
        &rig.endpoint,
        7,
        false,
    );
    assert!(a.listed("staging").is_empty());
    let pushed = a.ok_json(&["backup", "push", "-e", "staging", "--from", "backups"]);
    assert_eq!(pushed["pushed"].as_array().unwrap().len(), 2, "{pushed}");
    assert_eq!(
        pushed["other_environments"], 1,
        "production's stays: {pushed}"
    );
    let listed = a.listed("staging");
    let listed_names: Vec<String> = listed
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(listed_names, names, "same names, same order");
    a.ok_json(&["backup", "verify", "-e", "staging", &listed[0]]);
    // Again: nothing new to copy.
    let again = a.ok_json(&["backup", "push", "-e", "staging", "--from", "backups"]);
    assert!(again["pushed"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(again["already_there"], 2, "{again}");
}
