//! Waiting for the lock and freezing deploys, across processes, with the lock on
//! the PM2 host over the rig's real sshd: `--lock-wait` queues a deploy behind a
//! running one (or a freeze) instead of exiting 4, and gives up at its limit
//! showing who holds the lock and why; `lock acquire --message` freezes deploys
//! until `lock release`, from any machine.

#[path = "common/pm2_project.rs"]
mod pm2_project;
#[path = "common/state_rig.rs"]
mod state_rig;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pm2_project::Pm2Project;
use predicates::prelude::*;
use state_rig::{clone_of, spawn_in};

const FREEZE: &str = "quarter close, no deploys until Monday";
const WHY: &str = "hotfix for the login page";

/// Runs `deploykit args` in `clone` to its end: (exit code, stderr, how long).
fn timed(p: &Pm2Project, clone: &tempfile::TempDir, args: &[&str]) -> (i32, String, Duration) {
    let started = Instant::now();
    let out = p.cmd(clone).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn a_deploy_with_lock_wait_queues_behind_a_running_deploy_and_gives_up_at_its_limit() {
    let Some(p) = Pm2Project::new("lockwait") else {
        return;
    };
    let a = clone_of(&p.origin);
    let b = clone_of(&p.origin);
    p.health.healthy.store(false, Ordering::SeqCst);
    let before = p.health.hits.load(Ordering::SeqCst);
    let mut first = spawn_in(
        a.path(),
        &p.vars,
        &[
            "deploy",
            "-e",
            "staging",
            "--release",
            "r1",
            "--message",
            WHY,
        ],
    );
    p.health.wait_hits_of(&mut first, before, 2);

    // A short wait gives up with exit 4, after waiting, naming the holder.
    let (code, stderr, took) = timed(
        &p,
        &b,
        &[
            "deploy",
            "-e",
            "staging",
            "--release",
            "r2",
            "--lock-wait",
            "2",
        ],
    );
    assert_eq!(code, 4, "{stderr}");
    assert!(took >= Duration::from_secs(2), "{took:?}: {stderr}");
    assert!(
        stderr.contains("waiting for the lock of staging"),
        "{stderr}"
    );
    assert!(stderr.contains("gave up waiting"), "{stderr}");
    // The running deploy's `--message` is on the lock: whoever waits sees why.
    assert!(stderr.contains(WHY), "{stderr}");
    assert!(!p.deploy_to.join("releases/r2").exists());

    // A long wait proceeds once the first deploy ends.
    let mut second = spawn_in(
        b.path(),
        &p.vars,
        &[
            "deploy",
            "-e",
            "staging",
            "--release",
            "r2",
            "--lock-wait",
            "120",
        ],
    );
    std::thread::sleep(Duration::from_secs(4));
    assert!(second.try_wait().unwrap().is_none(), "still waiting");
    assert!(
        !p.deploy_to.join("releases/r2").exists(),
        "nothing staged while waiting"
    );
    p.health.healthy.store(true, Ordering::SeqCst);
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("waiting for the lock of staging"),
        "{stderr}"
    );
    assert_eq!(p.live(), Path::new("releases/r2"));
    // The message is kept with the run, on the host: a third machine's history
    // shows it beside the release.
    let c = clone_of(&p.origin);
    p.cmd(&c)
        .args(["history", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(WHY));
}

#[test]
fn a_freeze_refuses_every_deploy_with_its_message_until_released_from_anywhere() {
    let Some(p) = Pm2Project::new("freeze") else {
        return;
    };
    let a = clone_of(&p.origin);
    p.cmd(&a)
        .args(["lock", "acquire", "-e", "staging", "--message", FREEZE])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("frozen"));
    // The machine that froze is gone; the freeze lives on the state host.
    drop(a);
    let b = clone_of(&p.origin);
    p.cmd(&b)
        .args(["deploy", "-e", "staging", "--release", "r1"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains(FREEZE).and(predicate::str::contains("a freeze by")));
    p.cmd(&b)
        .args(["deploy", "-e", "staging", "--release", "r1", "--dry-run"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains(FREEZE));
    p.cmd(&b)
        .args(["status", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(FREEZE));
    // A freeze is not stale: recover leaves it, and a second freeze is refused.
    p.cmd(&b)
        .args(["recover", "-e", "staging"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("recover leaves a freeze alone"));
    p.cmd(&b)
        .args(["lock", "acquire", "-e", "staging", "-m", "another"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains(FREEZE));

    // Waiting for a freeze gives up at the limit, showing the message.
    let (code, stderr, took) = timed(
        &p,
        &b,
        &[
            "deploy",
            "-e",
            "staging",
            "--release",
            "r1",
            "--lock-wait",
            "2",
        ],
    );
    assert_eq!(code, 4, "{stderr}");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(stderr.contains(FREEZE), "{stderr}");

    // A deploy waiting for it proceeds once it is lifted, without --force.
    let mut waiting = spawn_in(
        b.path(),
        &p.vars,
        &[
            "deploy",
            "-e",
            "staging",
            "--release",
            "r1",
            "--lock-wait",
            "120",
        ],
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(waiting.try_wait().unwrap().is_none(), "still waiting");
    let c = clone_of(&p.origin);
    p.cmd(&c)
        .args(["lock", "release", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("released"));
    let out = waiting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(FREEZE), "the wait said why: {stderr}");
    assert_eq!(p.live(), Path::new("releases/r1"));
    p.cmd(&c)
        .args(["lock", "status", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("free"));
}
