//! `deploykit recover` and `lock release` in another process while a deploy is
//! still verifying: both are refused, and the live run ends `succeeded` with one end.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command as Std, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

fn git(repo: &Path, args: &[&str]) {
    let ok = Std::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A health endpoint the test controls: 503 until `healthy` is set, counting requests.
struct Health {
    url: String,
    healthy: Arc<AtomicBool>,
    hits: Arc<AtomicU32>,
}

fn health_server() -> Health {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let healthy = Arc::new(AtomicBool::new(true));
    let hits = Arc::new(AtomicU32::new(0));
    let (h, n) = (healthy.clone(), hits.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            n.fetch_add(1, Ordering::SeqCst);
            let status = if h.load(Ordering::SeqCst) {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
        }
    });
    Health { url, healthy, hits }
}

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(health_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("app");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("VERSION"), "v1\n").unwrap();
        std::fs::write(repo.join("HEALTHY"), "yes\n").unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "v1"]);
        let exe = assert_cmd::cargo::cargo_bin("deploykit");
        let config = format!(
            "[environments.s.target]\nkind = \"local\"\ndeploy_to = \"srv\"\nrepo = \"app\"\n\
             start = [{:?}, \"demo-app\", \"--port\", \"{{port}}\"]\nport = {}\n\
             [[environments.s.probes]]\nkind = \"http\"\nurl = \"{health_url}\"\n\
             [environments.s.policy]\nhealth_attempts = 60\nhealth_interval_secs = 1\nhealth_deadline_secs = 120\n",
            exe.to_string_lossy(),
            free_port()
        );
        std::fs::write(dir.path().join("deploykit.toml"), config).unwrap();
        Self { dir }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("deploykit").unwrap();
        c.current_dir(self.dir.path())
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1");
        c
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn journals(&self) -> Vec<PathBuf> {
        let dir = self.path(".deploykit/journal/s");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        v.sort();
        v
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.path("srv/.deploykit/app.pid")) {
            let _ = Std::new("kill").arg(pid.trim()).status();
        }
    }
}

#[test]
fn recover_and_lock_release_refuse_a_deploy_that_is_still_verifying() {
    let health = health_server();
    let p = Project::new(&health.url);
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0);

    let repo = p.path("app");
    std::fs::write(repo.join("VERSION"), "v2\n").unwrap();
    git(&repo, &["commit", "-qam", "v2"]);
    // r2's verify keeps failing (and retrying) until the test says otherwise.
    health.healthy.store(false, Ordering::SeqCst);
    let before = health.hits.load(Ordering::SeqCst);
    let deploy = Std::new(assert_cmd::cargo::cargo_bin("deploykit"))
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .args(["deploy", "-e", "s", "--release", "r2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while health.hits.load(Ordering::SeqCst) < before + 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the deploy never reached verify"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    p.cmd()
        .args(["recover", "-e", "s"])
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("not recovering")
                .and(predicate::str::contains("alive"))
                .and(predicate::str::contains("--force")),
        );
    p.cmd()
        .args(["lock", "release", "-e", "s"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("alive"));
    p.cmd()
        .args(["status", "-e", "s"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("alive: its lease"));

    health.healthy.store(true, Ordering::SeqCst);
    let out = deploy.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("succeeded"), "{stderr}");
    assert_eq!(
        std::fs::read_link(p.path("srv/current")).unwrap(),
        Path::new("releases/r2"),
        "r2 is what serves"
    );
    let last = p.journals().pop().unwrap();
    let text = std::fs::read_to_string(&last).unwrap();
    assert_eq!(
        text.matches("\"record\":\"run_finished\"").count(),
        1,
        "{text}"
    );
    assert!(!text.contains("undo_intent"), "nothing was undone: {text}");
    p.cmd()
        .args(["lock", "status", "-e", "s"])
        .assert()
        .stdout(predicate::str::contains("free"));
}

#[test]
fn a_lock_without_a_lease_from_another_machine_needs_force_which_says_what_it_overrides() {
    let health = health_server();
    let p = Project::new(&health.url);
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0);
    // An older deploykit on a CI runner left this: nothing here can tell if it is alive.
    std::fs::create_dir_all(p.path("srv/releases/r2")).unwrap();
    let legacy = serde_json::json!({"env": "s", "run_id": "run-ci", "who": "ci", "host": "ci-runner-7", "pid": 77, "since": "2026-11-26T10:00:00Z"});
    std::fs::write(p.path(".deploykit/locks/s.lock"), legacy.to_string()).unwrap();
    let journal = [
        serde_json::json!({"record": "run_started", "run_id": "run-ci", "env": "s", "release": "r2", "commit": "abc1234", "branch": null, "previous": "r1", "who": "ci", "at": "2026-11-26T10:00:00Z"}),
        serde_json::json!({"record": "intent", "seq": 1, "phase": "prepare", "undo": {"undo": "discard_release", "release": "r2"}, "at": "2026-11-26T10:00:01Z"}),
    ];
    let text: String = journal.iter().map(|j| j.to_string() + "\n").collect();
    std::fs::write(p.path(".deploykit/journal/s/run-ci.jsonl"), text).unwrap();
    p.cmd()
        .args(["recover", "-e", "s"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("no lease"));
    assert!(p.path("srv/releases/r2").exists(), "nothing was undone");
    p.cmd()
        .args(["recover", "-e", "s", "--force"])
        .assert()
        .code(0)
        .stderr(
            predicate::str::contains("--force: overriding the lock of ci on ci-runner-7")
                .and(predicate::str::contains("discard staged release r2")),
        );
    assert!(!p.path("srv/releases/r2").exists());
    assert!(!p.path(".deploykit/locks/s.lock").exists());
}

#[test]
fn an_empty_lock_file_left_by_a_crash_is_reported_and_released_without_force() {
    let health = health_server();
    let p = Project::new(&health.url);
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0);
    std::fs::write(p.path(".deploykit/locks/s.lock"), b"").unwrap();
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r2"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("empty").and(predicate::str::contains("lock release")));
    p.cmd()
        .args(["lock", "release", "-e", "s"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("released"));
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r2"])
        .assert()
        .code(0);
}

/// The lock a CI runner left when it was killed after journaling its run's end but
/// before releasing the lock: `recover` has no run to finish, yet every later
/// deploy was refused until someone ran `lock release` by hand.
fn lock_left_by_finished_run(p: &Project, expires_at: &str) -> String {
    let finished = p.journals().pop().expect("r1's journal");
    let run_id = finished.file_stem().unwrap().to_string_lossy().into_owned();
    let holder = serde_json::json!({"env": "s", "run_id": run_id, "who": "ci", "host": "ci-runner-7",
        "pid": 77, "since": "2026-11-26T10:00:00Z", "token": "t0k3n",
        "lease": {"secs": 30, "renewed_at": "2026-11-26T10:00:00Z", "expires_at": expires_at}});
    std::fs::write(p.path(".deploykit/locks/s.lock"), holder.to_string()).unwrap();
    run_id
}

#[test]
fn recover_releases_a_stale_lock_whose_run_already_finished() {
    let health = health_server();
    let p = Project::new(&health.url);
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0);
    let run_id = lock_left_by_finished_run(&p, "2026-11-26T10:00:30Z");
    p.cmd()
        .args(["recover", "-e", "s"])
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("released the lock")
                .and(predicate::str::contains(&run_id))
                .and(predicate::str::contains("lease expired")),
        );
    assert!(!p.path(".deploykit/locks/s.lock").exists());
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r2"])
        .assert()
        .code(0);
}

#[test]
fn recover_leaves_a_live_lock_of_a_finished_run_alone() {
    let health = health_server();
    let p = Project::new(&health.url);
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0);
    // Its lease still runs: the process may be between its end and its release.
    lock_left_by_finished_run(&p, "2099-01-01T00:00:00Z");
    p.cmd()
        .args(["recover", "-e", "s"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("nothing to recover"))
        .stderr(predicate::str::contains("alive"));
    assert!(p.path(".deploykit/locks/s.lock").exists());
}
