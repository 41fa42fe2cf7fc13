//! `deploykit rollback` to a release a run verified on these hosts reloads the
//! workers without the reload gate's canary (the release already served here),
//! keeps the lock, the journal and the undo, and `rollback_canary = true` brings
//! the canary back. Over the rig's real sshd and PM2, in cluster mode.

#[path = "common/pm2_project.rs"]
mod pm2_project;
#[path = "common/state_rig.rs"]
mod state_rig;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pm2_project::Pm2Project;
use predicates::prelude::*;
use state_rig::{clone_of, git, spawn_in};

/// How many times PM2 started the app's canary (its daemon log says so for
/// every process it starts).
fn canary_starts(p: &Pm2Project) -> usize {
    let log = std::fs::read_to_string(p.base.join("pm2home/pm2.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("-deploykit-canary:") && l.contains("starting in"))
        .count()
}

/// Rewrites the clone's config (a test's own tuning of one value).
fn edit_config(clone: &tempfile::TempDir, from: &str, to: &str) {
    let file = clone.path().join("c/deploykit.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(from), "{from:?} not in the config");
    std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn rollback_to_a_verified_release_skips_the_canary_and_keeps_lock_journal_and_undo() {
    let Some(p) = Pm2Project::new("rbcanary") else {
        return;
    };
    let a = clone_of(&p.origin);
    p.deploy(&a, "r1");
    p.commit("2");
    git(&a.path().join("c"), &["pull", "-q"]);
    let before = canary_starts(&p);
    p.deploy(&a, "r2");
    // The upgrade went through the gate: this is what a rollback now skips.
    assert_eq!(
        canary_starts(&p),
        before + 1,
        "the deploy of r2 ran a canary"
    );

    // Back to r1, which a run verified on this host: no canary.
    let before = canary_starts(&p);
    p.cmd(&a)
        .args(["rollback", "-e", "staging"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("succeeded"));
    assert_eq!(p.live(), Path::new("releases/r1"));
    assert_eq!(canary_starts(&p), before, "the rollback started no canary");

    // The operator who wants the canary on rollbacks too gets it back.
    edit_config(&a, "instances = 1", "instances = 1\nrollback_canary = true");
    let before = canary_starts(&p);
    p.cmd(&a)
        .args(["rollback", "-e", "staging"])
        .assert()
        .code(0);
    assert_eq!(p.live(), Path::new("releases/r2"));
    assert_eq!(canary_starts(&p), before + 1, "rollback_canary = true");

    // A rolled-back-to release that does not come up is undone, as before: the
    // release live before the rollback is live again, and the run says so. The
    // health endpoint fails the rollback's three verify attempts and answers again
    // for the undo's.
    edit_config(&a, "rollback_canary = true", "rollback_canary = false");
    edit_config(&a, "health_attempts = 600", "health_attempts = 3");
    p.health.healthy.store(false, Ordering::SeqCst);
    let before = p.health.hits.load(Ordering::SeqCst);
    let mut rollback = spawn_in(a.path(), &p.vars, &["rollback", "-e", "staging"]);
    p.health.wait_hits_of(&mut rollback, before, 3);
    std::thread::sleep(Duration::from_millis(100));
    p.health.healthy.store(true, Ordering::SeqCst);
    let out = rollback.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("rolled_back"), "{err}");
    assert_eq!(p.live(), Path::new("releases/r2"), "the undo went back");
    // The lock was released and every run is in the journal on the host.
    p.cmd(&a)
        .args(["lock", "status", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("free"));
    let out = p
        .cmd(&a)
        .args(["--json", "history", "-e", "staging"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 5, "{v}");
}
