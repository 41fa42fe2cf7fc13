//! `backup`, `migrate` and `health` through the binary, on SQLite and the bundled
//! demo app: no external service needed.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

struct Db {
    dir: tempfile::TempDir,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("migrations");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("0001_notes.sql"), "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\nINSERT INTO notes (body) VALUES ('kept');\n").unwrap();
        std::fs::write(m.join("0001_notes.down.sql"), "DROP TABLE notes;\n").unwrap();
        std::fs::write(
            m.join("0002_tags.sql"),
            "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
        )
        .unwrap();
        std::fs::write(m.join("0002_tags.down.sql"), "DROP TABLE tags;\n").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.path().join("deploykit.toml"),
            format!(
                "[environments.d.database]\nurl = \"sqlite://{db}\"\n[environments.d.backup]\nkind = \"sqlite\"\ndir = \"backups\"\n\
                 [environments.d.migrations]\nkind = \"sql\"\ndir = \"migrations\"\n[[environments.d.probes]]\nkind = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n",
                db = dir.path().join("app.db").display()
            ),
        )
        .unwrap();
        Self { dir }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("deploykit").unwrap();
        c.current_dir(self.dir.path()).env("NO_COLOR", "1");
        c
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn migrate_status_plan_apply_with_a_backup_first() {
    let db = Db::new();
    db.cmd()
        .args(["migrate", "plan", "-e", "d"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("0001_notes").and(predicate::str::contains("0002_tags")));
    let status = db.json(&["migrate", "status", "-e", "d"]);
    assert_eq!(status["status"]["pending"].as_array().unwrap().len(), 2);
    let applied = db.json(&["migrate", "apply", "-e", "d"]);
    assert_eq!(applied["migrations"].as_array().unwrap().len(), 2);
    assert!(
        applied["backup"]["path"]
            .as_str()
            .unwrap()
            .ends_with(".sqlite"),
        "a backup is taken first: {applied}"
    );
    db.cmd()
        .args(["migrate", "plan", "-e", "d"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("nothing pending"));
}

#[test]
fn an_edited_applied_migration_is_reported_as_drift_and_refuses_to_plan() {
    let db = Db::new();
    db.cmd()
        .args(["migrate", "apply", "-e", "d"])
        .assert()
        .code(0);
    std::fs::write(
        db.dir.path().join("migrations/0001_notes.sql"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, extra TEXT);\n",
    )
    .unwrap();
    db.cmd()
        .args(["migrate", "status", "-e", "d"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("DRIFTED"));
    db.cmd()
        .args(["migrate", "plan", "-e", "d"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("0001"));
}

#[test]
fn backups_create_list_verify_and_restore_only_when_confirmed() {
    let db = Db::new();
    db.cmd()
        .args(["migrate", "apply", "-e", "d"])
        .assert()
        .code(0);
    let created = db.json(&["backup", "create", "-e", "d"]);
    let path = created["artifact"]["path"].as_str().unwrap().to_string();
    let listed = db.json(&["backup", "list", "-e", "d"]);
    assert_eq!(
        listed["artifacts"].as_array().unwrap().len(),
        2,
        "the one `migrate apply` took, and this one"
    );
    db.cmd()
        .args(["backup", "verify", "-e", "d", &path])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ok:"));

    // Restoring without the confirmation flag changes nothing.
    db.cmd()
        .args(["backup", "restore", "-e", "d", &path])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes-replace-live-data"));
    db.cmd()
        .args([
            "backup",
            "restore",
            "-e",
            "d",
            &path,
            "--yes-replace-live-data",
        ])
        .assert()
        .code(0);

    // A corrupted artifact fails verify.
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    db.cmd()
        .args(["backup", "verify", "-e", "d", &path])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAILED"));
    assert!(Path::new(&path).exists());
}

#[test]
fn health_exits_1_when_a_probe_fails_and_0_when_all_pass() {
    let db = Db::new();
    db.cmd()
        .args(["health", "-e", "d"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("Unhealthy"));
    let text = std::fs::read_to_string(db.dir.path().join("deploykit.toml")).unwrap();
    let port: u16 = text
        .rsplit(':')
        .next()
        .unwrap()
        .trim()
        .trim_end_matches('"')
        .parse()
        .unwrap();
    let _listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    db.cmd()
        .args(["health", "-e", "d"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("Healthy"));
}

#[test]
fn migrate_revert_undoes_exactly_what_a_run_applied() {
    let db = Db::new();
    db.cmd()
        .args(["migrate", "apply", "-e", "d"])
        .assert()
        .code(0);
    // The journal of a run that applied 0002 only.
    let journal = db.dir.path().join(".deploykit/journal/d");
    std::fs::create_dir_all(&journal).unwrap();
    let records = [
        serde_json::json!({"record": "run_started", "run_id": "run-a", "env": "d", "release": "r2", "commit": "abc1234", "branch": null, "previous": "r1", "who": "ci", "at": "2026-11-26T10:00:00Z"}),
        serde_json::json!({"record": "intent", "seq": 1, "phase": "migrate", "undo": {"undo": "revert_migrations", "applied": {"migrations": [{"version": "0002", "name": "tags"}], "revision_before": null, "revision_after": null}}, "at": "2026-11-26T10:00:01Z"}),
    ];
    let text: String = records.iter().map(|r| r.to_string() + "\n").collect();
    std::fs::write(journal.join("run-a.jsonl"), text).unwrap();
    db.cmd()
        .args(["migrate", "revert", "-e", "d", "--run", "run-a"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("0002_tags"));
    let status = db.json(&["migrate", "status", "-e", "d"]);
    let applied: Vec<&str> = status["status"]["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        applied,
        vec!["notes"],
        "0001 stays; only the run's migration was reverted"
    );
    db.cmd()
        .args(["migrate", "revert", "-e", "d", "--run", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope"));
}
