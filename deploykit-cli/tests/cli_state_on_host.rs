//! The state store on the environment's host (PM2 over the rig's real sshd): a CI
//! runner is thrown away after each job, so every command from a fresh clone with
//! an empty `.deploykit/` must see the journals, history and lock of runs deployed
//! from another clone, and a journal that cannot be written on the host stops the
//! run before any side effect it did not record.

#[path = "common/pm2_project.rs"]
mod pm2_project;
#[path = "common/state_rig.rs"]
mod state_rig;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use pm2_project::Pm2Project;
use predicates::prelude::*;
use state_rig::{clone_of, free_port, git, spawn_in};

#[test]
fn recover_from_a_fresh_clone_finishes_a_run_killed_mid_deploy() {
    let Some(p) = Pm2Project::new("recover") else {
        return;
    };
    let a = clone_of(&p.origin);
    p.deploy(&a, "r1");
    p.commit("2");
    git(&a.path().join("c"), &["pull", "-q"]);
    p.health.healthy.store(false, Ordering::SeqCst);
    let before = p.health.hits.load(Ordering::SeqCst);
    let mut deploy = spawn_in(
        a.path(),
        &p.vars,
        &["deploy", "-e", "staging", "--release", "r2"],
    );
    p.health.wait_hits_of(&mut deploy, before, 2);
    deploy.kill().unwrap(); // SIGKILL
    deploy.wait().unwrap();
    assert_eq!(p.live(), Path::new("releases/r2"), "killed after activate");
    // The runner that deployed is gone, with its checkout and its state.
    drop(a);
    p.health.healthy.store(true, Ordering::SeqCst);

    let b = clone_of(&p.origin);
    assert!(!b.path().join("c/.deploykit").exists());
    p.cmd(&b)
        .args(["status", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("r2"));
    p.cmd(&b)
        .args(["recover", "-e", "staging"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("run rolled_back"));
    assert_eq!(
        p.live(),
        Path::new("releases/r1"),
        "back on the old release"
    );
    p.cmd(&b)
        .args(["lock", "status", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("free"));
    p.cmd(&b)
        .args(["recover", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("nothing to recover"));
    // Journals on the host are the deploy user's alone.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&p.journal_dir()), 0o700);
    for e in std::fs::read_dir(p.journal_dir()).unwrap() {
        assert_eq!(mode(&e.unwrap().path()), 0o600);
    }
}

#[test]
fn history_status_and_rollback_from_a_fresh_clone_see_runs_of_another_clone() {
    let Some(p) = Pm2Project::new("history") else {
        return;
    };
    let a = clone_of(&p.origin);
    p.deploy(&a, "r1");
    p.commit("2");
    git(&a.path().join("c"), &["pull", "-q"]);
    p.deploy(&a, "r2");
    drop(a);

    let c = clone_of(&p.origin);
    p.cmd(&c)
        .args(["history", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("r1").and(predicate::str::contains("r2")));
    p.cmd(&c)
        .args(["status", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("r2").and(predicate::str::contains("succeeded")));
    p.cmd(&c)
        .args(["rollback", "-e", "staging"])
        .assert()
        .code(0);
    assert_eq!(p.live(), Path::new("releases/r1"));
    let d = clone_of(&p.origin);
    let out = p
        .cmd(&d)
        .args(["--json", "history", "-e", "staging"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 3, "{v}");
}

#[test]
fn a_journal_the_host_cannot_write_stops_the_run_before_or_interrupted_with_the_next_step() {
    let Some(p) = Pm2Project::new("unwritable") else {
        return;
    };
    let a = clone_of(&p.origin);
    p.deploy(&a, "r1");
    p.commit("2");
    git(&a.path().join("c"), &["pull", "-q"]);

    // The host's journal directory cannot be written: nothing starts.
    let dir = p.journal_dir();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    p.cmd(&a)
        .args(["deploy", "-e", "staging", "--release", "r2"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(&p.rig.host));
    assert_eq!(p.live(), Path::new("releases/r1"));
    assert!(
        !p.deploy_to.join("releases/r2").exists(),
        "no release staged by a run whose journal could not be written"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    // The journal becomes unwritable mid-run (in verify): the run ends
    // `interrupted`, names the host and says to recover; a fresh clone recovers.
    p.health.healthy.store(false, Ordering::SeqCst);
    let before = p.health.hits.load(Ordering::SeqCst);
    let mut deploy = spawn_in(
        a.path(),
        &p.vars,
        &["deploy", "-e", "staging", "--release", "r3"],
    );
    p.health.wait_hits_of(&mut deploy, before, 2);
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if std::fs::read_to_string(&path).unwrap().contains("\"r3\"") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
    }
    p.health.healthy.store(true, Ordering::SeqCst);
    let out = deploy.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        stderr.contains(&p.rig.host),
        "names the state host: {stderr}"
    );
    assert!(
        stderr.contains("deploykit recover --env staging"),
        "{stderr}"
    );
    for e in std::fs::read_dir(&dir).unwrap() {
        std::fs::set_permissions(e.unwrap().path(), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let b = clone_of(&p.origin);
    p.cmd(&b)
        .args(["recover", "-e", "staging"])
        .assert()
        .code(0);
    assert_eq!(p.live(), Path::new("releases/r1"));
}

#[test]
fn state_import_moves_local_journals_to_the_host_once() {
    let Some(p) = Pm2Project::new("import") else {
        return;
    };
    let a = clone_of(&p.origin);
    // Deployed by a deploykit that kept its state locally.
    let config = a.path().join("c/deploykit.toml");
    let plain = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{plain}\n[environments.staging.state]\nstore = \"local\"\n"),
    )
    .unwrap();
    p.deploy(&a, "r1");
    assert!(a.path().join("c/.deploykit/journal/staging").is_dir());
    std::fs::write(&config, plain).unwrap();
    p.cmd(&a)
        .args(["history", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("r1").not());
    p.cmd(&a)
        .args(["state", "import", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("imported 1 run(s)"));
    p.cmd(&a)
        .args(["state", "import", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("imported 0 run(s)")
                .and(predicate::str::contains("1 already there")),
        );
    let b = clone_of(&p.origin);
    p.cmd(&b)
        .args(["history", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("r1"));
    p.cmd(&b)
        .args(["status", "-e", "staging"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("r1"));
}

#[test]
fn two_clones_deploying_the_same_pm2_env_at_once_one_proceeds_the_other_exits_4() {
    let Some(p) = Pm2Project::new("twoclones") else {
        return;
    };
    let a = clone_of(&p.origin);
    let b = clone_of(&p.origin);
    p.health.healthy.store(false, Ordering::SeqCst);
    let before = p.health.hits.load(Ordering::SeqCst);
    let mut deploy = spawn_in(
        a.path(),
        &p.vars,
        &["deploy", "-e", "staging", "--release", "r1"],
    );
    p.health.wait_hits_of(&mut deploy, before, 2);
    let out = p
        .cmd(&b)
        .args(["--json", "lock", "status", "-e", "staging"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = v["holder"]["run_id"].as_str().expect("held").to_string();
    let host = v["holder"]["host"].as_str().unwrap().to_string();
    p.cmd(&b)
        .args(["deploy", "-e", "staging", "--release", "r1b"])
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains(run.as_str()).and(predicate::str::contains(host.as_str())),
        );
    p.health.healthy.store(true, Ordering::SeqCst);
    let out = deploy.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !p.deploy_to.join("releases/r1b").exists(),
        "the refused run staged nothing"
    );
}

#[test]
fn a_state_host_that_is_down_is_named_and_nothing_reads_or_changes_elsewhere() {
    let Some(mut p) = Pm2Project::new("down") else {
        return;
    };
    let a = clone_of(&p.origin);
    p.deploy(&a, "r1");
    // The host stops answering (a port nobody listens on).
    let down = format!("{}@127.0.0.1:{}", p.rig.user, free_port());
    p.vars.push(("DK_SSH".into(), down.clone()));
    for args in [
        &["deploy", "-e", "staging", "--release", "r2"][..],
        &["history", "-e", "staging"],
        &["recover", "-e", "staging"],
        &["status", "-e", "staging"],
    ] {
        p.cmd(&a)
            .args(args)
            .assert()
            .failure()
            .stderr(predicate::str::contains(down.as_str()));
    }
    assert_eq!(p.live(), Path::new("releases/r1"));
}
