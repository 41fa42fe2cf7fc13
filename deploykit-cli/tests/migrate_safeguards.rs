//! `migrate apply` and `migrate revert` keep the safeguards of a deploy: they take
//! the environment's deploy lock, a protected environment needs `--approve NAME`
//! and refuses unallowed lint findings, and `--run` is a run id, never a path into
//! another environment's journals. On SQLite through the binary: no rig needed.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use deploykit_core::{AppliedSet, Compensation, DeployLock, FileLock, LockHolder, Phase, Record};
use predicates::prelude::*;

struct Db {
    dir: tempfile::TempDir,
}

impl Db {
    /// Environments `d` and `other` on the same SQLite database; `d_extra` is added
    /// to `d`'s table (e.g. `[environments.d.gates]`).
    fn new(d_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("migrations");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(
            m.join("0001_notes.sql"),
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n",
        )
        .unwrap();
        std::fs::write(m.join("0001_notes.down.sql"), "DROP TABLE notes;\n").unwrap();
        let db = dir.path().join("app.db");
        let mut toml = String::new();
        for env in ["d", "other"] {
            toml.push_str(&format!(
                "[environments.{env}.database]\nurl = \"sqlite://{db}\"\n[environments.{env}.backup]\nkind = \"sqlite\"\ndir = \"backups\"\n\
                 [environments.{env}.migrations]\nkind = \"sql\"\ndir = \"migrations\"\n",
                db = db.display()
            ));
        }
        toml.push_str(d_extra);
        std::fs::write(dir.path().join("deploykit.toml"), toml).unwrap();
        Self { dir }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("deploykit").unwrap();
        c.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("GITHUB_STEP_SUMMARY");
        c
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn pending(&self) -> usize {
        let out = self
            .cmd()
            .args(["--json", "migrate", "status", "-e", "d"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["status"]["pending"].as_array().unwrap().len()
    }

    fn backups(&self) -> usize {
        std::fs::read_dir(self.path("backups"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

fn lock_of(db: &Db, env: &str) -> FileLock {
    FileLock::new(db.path(&format!(".deploykit/locks/{env}.lock")))
}

#[tokio::test]
async fn apply_and_revert_wait_for_no_one_else_the_lock_refuses_them() {
    let db = Db::new("");
    let lock = lock_of(&db, "d");
    lock.acquire(&LockHolder::this_process(
        "d",
        "run-of-someone-else",
        "alice",
    ))
    .await
    .unwrap();
    db.cmd()
        .args(["migrate", "apply", "-e", "d"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("locked by alice"));
    assert_eq!(db.pending(), 1, "nothing was applied under another's lock");
    assert_eq!(db.backups(), 0, "no backup was taken either");

    lock.release("run-of-someone-else").await.unwrap();
    db.cmd()
        .args(["migrate", "apply", "-e", "d"])
        .assert()
        .code(0);
    assert_eq!(db.pending(), 0);
    assert!(
        lock.holder().await.unwrap().is_none(),
        "apply releases its lock"
    );

    // A journal of `d` that applied 0001, to revert.
    let run = "20261127T100000Z-000000001-r1";
    write_journal(
        &db.path(&format!(".deploykit/journal/d/{run}.jsonl")),
        run,
        "d",
    );
    lock.acquire(&LockHolder::this_process(
        "d",
        "run-of-someone-else",
        "alice",
    ))
    .await
    .unwrap();
    db.cmd()
        .args(["migrate", "revert", "-e", "d", "--run", run])
        .assert()
        .code(4);
    assert_eq!(db.pending(), 0, "nothing was reverted under another's lock");
    lock.release("run-of-someone-else").await.unwrap();
    db.cmd()
        .args(["migrate", "revert", "-e", "d", "--run", run])
        .assert()
        .code(0);
    assert_eq!(db.pending(), 1);
    assert!(lock.holder().await.unwrap().is_none());
}

#[test]
fn a_protected_environment_needs_an_approver_and_refuses_unallowed_findings() {
    let db = Db::new("[environments.d.gates]\napproval = true\n");
    db.cmd()
        .args(["migrate", "apply", "-e", "d"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--approve"));
    assert_eq!(db.pending(), 1);

    std::fs::write(db.path("migrations/0002_drop.sql"), "DROP TABLE notes;\n").unwrap();
    std::fs::write(
        db.path("migrations/0002_drop.down.sql"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n",
    )
    .unwrap();
    db.cmd()
        .args(["migrate", "apply", "-e", "d", "--approve", "bob"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("0002_drop").and(predicate::str::contains("allow")));
    assert_eq!(db.pending(), 2, "nothing was applied");
    assert_eq!(db.backups(), 0, "refused before the backup");

    std::fs::remove_file(db.path("migrations/0002_drop.sql")).unwrap();
    std::fs::remove_file(db.path("migrations/0002_drop.down.sql")).unwrap();
    db.cmd()
        .args(["migrate", "apply", "-e", "d", "--approve", "bob"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("approved by bob"));
    assert_eq!(db.pending(), 0);

    let run = "20261127T100000Z-000000001-r1";
    write_journal(
        &db.path(&format!(".deploykit/journal/d/{run}.jsonl")),
        run,
        "d",
    );
    db.cmd()
        .args(["migrate", "revert", "-e", "d", "--run", run])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--approve"));
    assert_eq!(db.pending(), 0, "nothing was reverted without approval");
}

#[test]
fn revert_run_is_a_run_id_never_a_path_to_another_environments_journal() {
    let db = Db::new("");
    db.cmd()
        .args(["migrate", "apply", "-e", "d"])
        .assert()
        .code(0);
    let run = "20261127T100000Z-000000001-r1";
    write_journal(
        &db.path(&format!(".deploykit/journal/other/{run}.jsonl")),
        run,
        "other",
    );
    // `d` has journals too, so `journal/d/../other/…` resolves.
    std::fs::create_dir_all(db.path(".deploykit/journal/d")).unwrap();
    for bad in [
        format!("../other/{run}"),
        format!("/{run}"),
        "..".to_string(),
        "-x".to_string(),
    ] {
        db.cmd()
            .args(["migrate", "revert", "-e", "d"])
            .arg(format!("--run={bad}"))
            .assert()
            .code(2)
            .stderr(predicate::str::contains("invalid run id"));
    }
    assert_eq!(db.pending(), 0, "other's journal was not used on d");
    db.cmd()
        .args(["migrate", "revert", "-e", "d", "--run", run])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no run").and(predicate::str::contains("history")));
}

/// A finished run of `env` that applied `0001_notes`, as the journal file it
/// leaves (written directly: some callers already run inside a runtime).
fn write_journal(path: &Path, run: &str, env: &str) {
    let applied: AppliedSet = serde_json::from_value(serde_json::json!({
        "migrations": [{"version": "0001", "name": "notes"}]
    }))
    .unwrap();
    let at = time::OffsetDateTime::now_utc();
    let records = [
        Record::RunStarted {
            run_id: run.into(),
            env: env.into(),
            release: deploykit_core::ReleaseId::parse("r1").unwrap(),
            commit: deploykit_core::Commit::parse("abc1234").unwrap(),
            branch: None,
            previous: None,
            who: "t".into(),
            message: None,
            at,
        },
        Record::Intent {
            seq: 1,
            phase: Phase::Migrate,
            undo: Some(Compensation::RevertMigrations { applied }),
            at,
        },
    ];
    let text: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}
