//! Two environments whose `[backup]` share one directory, on the rig's real
//! PostgreSQL: each lists only its own backups, and a restore never loads the other
//! environment's data unless `--from-env` names it.

use std::process::Command as Std;

use assert_cmd::Command;
use predicates::prelude::*;

/// The rig's superuser URL; under `CI` a missing server fails the test.
fn rig_url() -> Option<String> {
    match std::env::var("DEPLOYKIT_RIG_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("DEPLOYKIT_RIG_PG_URL is not set but CI is: run the tests through script/test, which starts PostgreSQL");
            }
            eprintln!("skipped: DEPLOYKIT_RIG_PG_URL not set (run through script/test to start PostgreSQL)");
            None
        }
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Std::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Shared {
    dir: tempfile::TempDir,
    staging: String,
    production: String,
}

impl Shared {
    fn new(label: &str) -> Option<Self> {
        let admin = rig_url()?;
        let (base, _) = admin.rsplit_once('/').unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let mut urls = Vec::new();
        for env in ["staging", "production"] {
            let name = format!("dk_{label}_{env}_{}_{nanos}", std::process::id());
            psql(&admin, &format!("create database {name}"));
            let url = format!("{base}/{name}");
            psql(
                &url,
                &format!(
                    "create table notes (body text); insert into notes values ('{env} data');"
                ),
            );
            urls.push(url);
        }
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::new();
        for (env, url) in ["staging", "production"].iter().zip(&urls) {
            config.push_str(&format!(
                "[environments.{env}.database]\nurl = \"{url}\"\n\
                 [environments.{env}.backup]\nkind = \"pg_dump\"\ndir = \"backups\"\nkeep = 2\n"
            ));
        }
        std::fs::write(dir.path().join("deploykit.toml"), config).unwrap();
        Some(Self {
            dir,
            production: urls.pop().unwrap(),
            staging: urls.pop().unwrap(),
        })
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("deploykit").unwrap();
        c.current_dir(self.dir.path()).env("NO_COLOR", "1");
        c
    }

    fn create(&self, env: &str) -> String {
        let out = self
            .cmd()
            .args(["--json", "backup", "create", "-e", env])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["artifact"]["path"].as_str().unwrap().to_string()
    }

    fn listed(&self, env: &str) -> Vec<String> {
        let out = self
            .cmd()
            .args(["--json", "backup", "list", "-e", env])
            .output()
            .unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["path"].as_str().unwrap().to_string())
            .collect()
    }
}

#[test]
fn each_environment_lists_only_its_own_backups() {
    let Some(s) = Shared::new("list") else {
        return;
    };
    let staging = s.create("staging");
    let production = s.create("production");
    assert_eq!(s.listed("staging"), vec![staging]);
    assert_eq!(s.listed("production"), vec![production]);
    s.cmd()
        .args(["backup", "list", "-e", "production"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "1 artifact(s) of other environments",
        ));
}

#[test]
fn restoring_another_environments_backup_is_refused_unless_named() {
    let Some(s) = Shared::new("restore") else {
        return;
    };
    let staging = s.create("staging");
    s.cmd()
        .args([
            "backup",
            "restore",
            "-e",
            "production",
            &staging,
            "--yes-replace-live-data",
        ])
        .assert()
        .code(5)
        .stderr(
            predicate::str::contains("taken in staging")
                .and(predicate::str::contains("--from-env staging")),
        );
    assert_eq!(
        psql(&s.production, "select body from notes"),
        "production data",
        "production's data was not replaced"
    );
    s.cmd()
        .args([
            "backup",
            "restore",
            "-e",
            "production",
            &staging,
            "--yes-replace-live-data",
            "--from-env",
            "qa",
        ])
        .assert()
        .code(5);
    // Named on purpose: allowed.
    s.cmd()
        .args([
            "backup",
            "restore",
            "-e",
            "production",
            &staging,
            "--yes-replace-live-data",
            "--from-env",
            "staging",
        ])
        .assert()
        .code(0);
    assert_eq!(
        psql(&s.production, "select body from notes"),
        "staging data"
    );
    assert_eq!(psql(&s.staging, "select body from notes"), "staging data");
}

#[test]
fn a_backup_from_an_older_version_is_listed_with_a_note_and_restorable() {
    let Some(s) = Shared::new("legacy") else {
        return;
    };
    let path = s.create("production");
    // Older versions recorded the environment but not the database.
    let meta = format!("{path}.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("database_id");
    std::fs::write(&meta, serde_json::to_string(&json).unwrap()).unwrap();
    s.cmd()
        .args(["backup", "list", "-e", "production"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("never pruned automatically"));
    s.cmd()
        .args(["backup", "list", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("no backups"));
    s.cmd()
        .args([
            "backup",
            "restore",
            "-e",
            "production",
            &path,
            "--yes-replace-live-data",
        ])
        .assert()
        .code(0);
}
