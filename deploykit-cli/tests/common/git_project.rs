//! Helpers shared by the tests that deploy a real git project on the local target
//! with SQLite: git with a fixed identity, a free port, the database's tables, and
//! stopping the app a test started.
#![allow(dead_code)] // each test file uses only some of these

use std::path::Path;
use std::process::Command as Std;

/// Runs git in `repo` with a throwaway identity; asserts success, returns stdout.
pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Std::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The tables of the SQLite database at `db` (python3's sqlite3: no extra tool).
pub fn sqlite_tables(db: &Path) -> Vec<String> {
    let out = Std::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); \
             print('\\n'.join(r[0] for r in db.execute(\"select name from sqlite_master where type='table' order by name\")))",
        )
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Stops the local target's app under `deploy_to`, if a test left it running.
pub fn stop_local_app(deploy_to: &Path) {
    if let Ok(pid) = std::fs::read_to_string(deploy_to.join(".deploykit/app.pid")) {
        let _ = Std::new("kill").arg(pid.trim()).status();
    }
}
