//! `deploy --dry-run` as a CI gate: it exits as the real run would start, with the
//! reason, so a pipeline can stop before the deploy job. And the exit codes of a
//! refusal: 5 when something refused before any change, 4 for a held lock, 1 only
//! for a run that failed. On SQLite, no external service needed.

use assert_cmd::Command;
use predicates::prelude::*;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// Environment `d`: SQLite, two SQL migrations, no target; `extra` is appended.
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("migrations");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(
            m.join("0001_notes.sql"),
            "CREATE TABLE notes (id INTEGER PRIMARY KEY);\n",
        )
        .unwrap();
        std::fs::write(m.join("0001_notes.down.sql"), "DROP TABLE notes;\n").unwrap();
        std::fs::write(
            m.join("0002_tags.sql"),
            "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
        )
        .unwrap();
        std::fs::write(m.join("0002_tags.down.sql"), "DROP TABLE tags;\n").unwrap();
        std::fs::write(
            dir.path().join("deploykit.toml"),
            format!(
                "[environments.d.database]\nurl = \"sqlite://{db}\"\n[environments.d.backup]\nkind = \"sqlite\"\ndir = \"backups\"\n\
                 [environments.d.migrations]\nkind = \"sql\"\ndir = \"migrations\"\n{extra}",
                db = dir.path().join("app.db").display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".gitignore"),
            ".deploykit/\nbackups/\napp.db*\n",
        )
        .unwrap();
        let e = Self { dir };
        e.git(&["init", "-q", "-b", "main"]);
        e.commit("v1");
        e
    }

    /// Deploys read migrations from a commit: every change is committed.
    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-qm", message]);
    }

    fn git(&self, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(self.dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    fn deploykit(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("deploykit").unwrap();
        c.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("GITHUB_STEP_SUMMARY")
            .args(args);
        c
    }
}

#[test]
fn drift_refuses_the_dry_run_and_the_deploy_with_5_until_accepted() {
    let e = Env::new("");
    e.deploykit(&["migrate", "apply", "-e", "d"])
        .assert()
        .code(0);
    std::fs::write(
        e.dir.path().join("migrations/0001_notes.sql"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n",
    )
    .unwrap();
    e.commit("edit an applied migration");
    e.deploykit(&["deploy", "-e", "d", "--dry-run"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("changed on disk"));
    e.deploykit(&["deploy", "-e", "d"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("0001_notes"));
    e.deploykit(&["deploy", "-e", "d", "--dry-run", "--accept-drift"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("none pending"));
}

#[test]
fn a_protected_environment_refuses_without_approver_and_with_unallowed_lint() {
    let e = Env::new("[environments.d.gates]\napproval = true\n");
    e.deploykit(&["deploy", "-e", "d", "--dry-run"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("--approve NAME"));
    e.deploykit(&["deploy", "-e", "d"]).assert().code(5);
    e.deploykit(&["deploy", "-e", "d", "--dry-run", "--approve", "ana"])
        .assert()
        .code(0);
    std::fs::write(
        e.dir.path().join("migrations/0003_drop.sql"),
        "DROP TABLE tags;\n",
    )
    .unwrap();
    e.commit("drop");
    e.deploykit(&["deploy", "-e", "d", "--dry-run", "--approve", "ana"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("0003_drop").and(predicate::str::contains("drop-table")));
    let out = e
        .deploykit(&[
            "--json",
            "deploy",
            "-e",
            "d",
            "--dry-run",
            "--approve",
            "ana",
        ])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["exit_code"], 5, "{plan}");
    assert_eq!(plan["refused"].as_array().unwrap().len(), 1, "{plan}");
}

#[test]
fn a_held_lock_makes_the_dry_run_exit_4_naming_the_holder() {
    let e = Env::new("");
    std::fs::create_dir_all(e.dir.path().join(".deploykit/locks")).unwrap();
    let holder = serde_json::json!({"env": "d", "run_id": "run-x", "who": "ana", "host": "ci-runner-7", "pid": 4242, "since": "2026-11-26T10:00:00Z"});
    std::fs::write(
        e.dir.path().join(".deploykit/locks/d.lock"),
        holder.to_string(),
    )
    .unwrap();
    e.deploykit(&["deploy", "-e", "d", "--dry-run"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("locked by ana on ci-runner-7"));
}

#[test]
fn the_dry_run_lists_the_hooks_that_would_run_where_and_with_what_timeout() {
    let e = Env::new(
        "[[environments.d.hooks]]\nat = \"pre_deploy\"\nrun = [\"touch\", \"pre deploy ran\"]\n\
         [[environments.d.hooks]]\nat = \"on_rollback\"\nrun = [\"./scripts/page-oncall.sh\"]\ntimeout_secs = 20\n",
    );
    e.deploykit(&["deploy", "-e", "d", "--dry-run"])
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("hooks (2):")
                .and(predicate::str::contains(
                    "pre_deploy, local (timeout 300s): touch 'pre deploy ran'",
                ))
                .and(predicate::str::contains(
                    "on_rollback, local (timeout 20s): ./scripts/page-oncall.sh",
                )),
        );
    // A dry run changes nothing, hooks included.
    assert!(!e.dir.path().join("pre deploy ran").exists());
    let out = e
        .deploykit(&["--json", "deploy", "-e", "d", "--dry-run"])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["hooks"][0]["at"], "pre_deploy", "{plan}");
    assert_eq!(plan["hooks"][1]["timeout_secs"], 20, "{plan}");
}
