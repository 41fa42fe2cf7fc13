//! When verify fails on a PM2 host, the output shows the last lines the new
//! release's workers printed (read from PM2's log files over SSH before the undo),
//! with deploykit's secrets redacted; `deploykit logs` prints them on demand.

#[path = "common/pm2_project.rs"]
mod pm2_project;
#[path = "common/state_rig.rs"]
mod state_rig;

use std::path::Path;

use pm2_project::Pm2Project;
use state_rig::{clone_of, git, hand_over};

const DISTINCT: &str = "DKLOGS: cannot open the payments socket";

#[test]
fn a_release_failing_verify_shows_what_its_workers_printed_and_is_rolled_back() {
    let Some(mut p) = Pm2Project::new("logs") else {
        return;
    };
    // The app's own health endpoint: v2 answers 503 (its `.unhealthy` file), v1 200.
    let port = p
        .vars
        .iter()
        .find(|(k, _)| k == "DK_PORT")
        .unwrap()
        .1
        .clone();
    p.vars.push((
        "DK_HEALTH".into(),
        format!("http://127.0.0.1:{port}/api/health"),
    ));
    let a = clone_of(&p.origin);
    // Verify gives up after 3 rounds, not the shared config's 600.
    let config = a.path().join("c/deploykit.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("health_attempts = 600", "health_attempts = 3"),
    )
    .unwrap();
    p.deploy(&a, "r1");

    // v2 prints a distinctive line, and its config with a password, on stderr;
    // then it answers its health checks with 503.
    std::fs::write(p.origin.join(".unhealthy"), "").unwrap();
    git(&p.origin, &["add", ".unhealthy"]);
    let server = std::fs::read_to_string(p.origin.join("server.js")).unwrap();
    std::fs::write(
        p.origin.join("server.js"),
        format!(
            "console.error({DISTINCT:?});\nconsole.error('using postgres://app:s3cretpassw0rd@db/app');\n{server}"
        ),
    )
    .unwrap();
    git(&p.origin, &["commit", "-qam", "v2 prints why it fails"]);
    hand_over(&p.origin, &p.rig.user);
    git(&a.path().join("c"), &["pull", "-q"]);
    let out = p
        .cmd(&a)
        .args(["deploy", "-e", "staging", "--release", "r2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "rolled back: {stderr}");
    assert!(stderr.contains(DISTINCT), "the workers' stderr: {stderr}");
    assert!(stderr.contains("stderr"), "names the stream: {stderr}");
    assert!(
        !stderr.contains("s3cretpassw0rd"),
        "no password leaves: {stderr}"
    );
    let logs_at = stderr.find(DISTINCT).unwrap();
    let undo_at = stderr.find("[undo]").expect("an undo");
    assert!(logs_at < undo_at, "read before the undo: {stderr}");
    assert_eq!(p.live(), Path::new("releases/r1"));

    // On demand, from the hosts.
    let out = p
        .cmd(&a)
        .args(["logs", "-e", "staging", "--release", "r2", "--lines", "50"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(DISTINCT), "{stdout}");
    assert!(!stdout.contains("s3cretpassw0rd"), "{stdout}");
}
