//! The `deploykit` binary end to end on a local target: every exit code, bad
//! configs, the lock, the JSON stream, and secrets kept out of output.

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;
use predicates::prelude::*;

struct Project {
    dir: tempfile::TempDir,
    port: u16,
}

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

impl Project {
    /// A repo with one commit and a config for env `s` on a local target.
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("app");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("VERSION"), "v1\n").unwrap();
        std::fs::write(repo.join("HEALTHY"), "yes\n").unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "v1"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let exe = assert_cmd::cargo::cargo_bin("deploykit");
        let config = format!(
            "[environments.s.target]\nkind = \"local\"\ndeploy_to = \"srv\"\nrepo = \"app\"\nstart = [{:?}, \"demo-app\", \"--port\", \"{{port}}\"]\nport = {port}\n{extra}",
            exe.to_string_lossy()
        );
        std::fs::write(dir.path().join("deploykit.toml"), config).unwrap();
        Self { dir, port }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("deploykit").unwrap();
        c.current_dir(self.dir.path())
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1");
        c
    }

    fn commit(&self, version: &str, healthy: bool) {
        let repo = self.dir.path().join("app");
        std::fs::write(repo.join("VERSION"), format!("{version}\n")).unwrap();
        std::fs::write(repo.join("HEALTHY"), if healthy { "yes\n" } else { "no\n" }).unwrap();
        git(&repo, &["commit", "-qam", version]);
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
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
fn deploy_succeeds_with_exit_0_and_the_app_serves_the_release() {
    let p = Project::new("");
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("succeeded"));
    assert_eq!(
        std::fs::read_link(p.path("srv/current")).unwrap(),
        Path::new("releases/r1")
    );
    p.cmd()
        .args(["status", "-e", "s"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("live:      r1"));
    p.cmd()
        .args(["history", "-e", "s"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("succeeded"));
    let _ = p.port;
}

#[test]
fn failed_build_rolls_back_with_exit_1_and_keeps_the_live_release() {
    let p = Project::new("");
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0);
    let text = std::fs::read_to_string(p.path("deploykit.toml")).unwrap();
    let text = text.replace(
        "port = ",
        "build = [[\"sh\", \"-c\", \"echo npm ERR! missing script >&2; exit 1\"]]\nport = ",
    );
    std::fs::write(p.path("deploykit.toml"), text).unwrap();
    p.commit("v2", true);
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r2"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("npm ERR! missing script")
                .and(predicate::str::contains("rolled back")),
        );
    assert_eq!(
        std::fs::read_link(p.path("srv/current")).unwrap(),
        Path::new("releases/r1")
    );
    assert!(
        !p.path("srv/releases/r2").exists(),
        "the failed release directory is discarded"
    );
}

#[test]
fn json_output_is_one_object_per_line_ending_with_the_outcome() {
    let p = Project::new("");
    let out = p
        .cmd()
        .args(["--json", "deploy", "-e", "s", "--release", "r1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert_eq!(lines.first().unwrap()["event"], "run_started");
    assert!(lines
        .iter()
        .any(|l| l["event"] == "phase_finished" && l["phase"] == "activate"));
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "outcome");
    assert_eq!(last["outcome"], "succeeded");
    assert_eq!(last["release"], "r1");
    // Every line says when it happened, so a CI log read later has the timeline.
    for l in &lines {
        let at = l["at"]
            .as_str()
            .unwrap_or_else(|| panic!("no \"at\" in {l}"));
        assert!(
            at.starts_with("20") && at.ends_with('Z') && at.contains('T'),
            "{l}"
        );
    }
    let status = p
        .cmd()
        .args(["--json", "status", "-e", "s"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["at"].is_string(), "{status}");
}

#[test]
fn a_held_lock_exits_4_naming_the_holder() {
    let p = Project::new("");
    std::fs::create_dir_all(p.path(".deploykit/locks")).unwrap();
    let holder = serde_json::json!({"env": "s", "run_id": "run-x", "who": "ana", "host": "ci-runner-7", "pid": 4242, "since": "2026-11-26T10:00:00Z"});
    std::fs::write(p.path(".deploykit/locks/s.lock"), holder.to_string()).unwrap();
    p.cmd()
        .args(["deploy", "-e", "s"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "locked by ana on ci-runner-7 (pid 4242, run run-x)",
        ));
    p.cmd()
        .args(["lock", "status", "-e", "s"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ana"));
    p.cmd()
        .args(["lock", "release", "-e", "s"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("--force"));
    p.cmd()
        .args(["lock", "release", "-e", "s", "--force"])
        .assert()
        .code(0);
    p.cmd().args(["deploy", "-e", "s"]).assert().code(0);
}

#[test]
fn bad_configs_exit_2_with_file_line_and_what_is_allowed() {
    let p = Project::new("[environments.s.policy]\nhealth_atempts = 3\n");
    p.cmd().args(["deploy", "-e", "s"]).assert().code(2).stderr(
        predicate::str::contains("deploykit.toml")
            .and(predicate::str::contains("line 8"))
            .and(predicate::str::contains("health_attempts")),
    );

    let p = Project::new("[environments.s.notify]\nwebhook = \"${DK_CLI_TEST_UNSET_HOOK}\"\n");
    p.cmd()
        .args(["deploy", "-e", "s"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("DK_CLI_TEST_UNSET_HOOK"));

    let p = Project::new("");
    p.cmd()
        .args(["deploy", "-e", "production"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("defined: s"));
    p.cmd().args(["deploy"]).assert().code(2);
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "a;rm -rf /"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid release id"));
}

#[test]
fn protected_environments_need_an_approver_who_is_recorded() {
    let p = Project::new("[environments.s.gates]\napproval = true\n");
    p.cmd()
        .args(["deploy", "-e", "s"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("--approve NAME"));
    p.cmd()
        .args(["deploy", "-e", "s", "--approve", "ana", "--yes"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("approved by: ana"));
    p.cmd()
        .args(["history", "-e", "s"])
        .assert()
        .stdout(predicate::str::contains("ana"));
}

#[test]
fn secrets_never_reach_output() {
    let p = Project::new("[environments.s.database]\nurl = \"${DK_CLI_TEST_DB}\"\n[environments.s.notify]\nwebhook = \"https://hooks.example/T0/B0/xoxb-very-secret-token\"\n");
    let out = p
        .cmd()
        .args(["config", "show"])
        .env(
            "DK_CLI_TEST_DB",
            "postgres://app:hunter2-db-password@db/app",
        )
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("xoxb-very-secret-token"),
        "{text}"
    );
    let out = p
        .cmd()
        .args(["--json", "config", "show"])
        .env(
            "DK_CLI_TEST_DB",
            "postgres://app:hunter2-db-password@db/app",
        )
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
}

#[test]
fn config_show_env_prints_the_environment_with_defaults_merged_and_secrets_redacted() {
    let p = Project::new(
        "[defaults.database]\nurl = \"${DK_CLI_TEST_DB}\"\n\
         [defaults.policy]\nhealth_attempts = 30\nhealth_interval_secs = 5\n\
         [environments.staging]\n\
         [environments.production.policy]\nhealth_attempts = 60\n",
    );
    let show = |env: &str| {
        let out = p
            .cmd()
            .args(["config", "show", "--env", env])
            .env(
                "DK_CLI_TEST_DB",
                "postgres://app:hunter2-db-password@db/app",
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let prod = show("production");
    assert!(prod.contains("[environments.production.policy]"), "{prod}");
    assert!(prod.contains("health_attempts = 60"), "{prod}");
    assert!(prod.contains("health_interval_secs = 5"), "{prod}");
    assert!(prod.contains("url = \"[redacted]\""), "{prod}");
    assert!(
        !prod.contains("hunter2") && !prod.contains("staging"),
        "{prod}"
    );
    let staging = show("staging");
    assert!(staging.contains("health_attempts = 30"), "{staging}");
    p.cmd()
        .args(["config", "show", "--env", "nope"])
        .env("DK_CLI_TEST_DB", "x")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("production"));
}

#[test]
fn secrets_check_applies_the_seeds_rules_without_printing_values() {
    let p = Project::new("");
    std::fs::write(p.path(".env.production"), "JWT_SECRET=tooshort-jwt\nPOSTGRES_PASSWORD=changeme\nREDIS_PASSWORD=a-long-enough-redis-password\n").unwrap();
    p.cmd()
        .args(["secrets", "check", "--file", ".env.production"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("JWT_SECRET is 12 characters; at least 32 required")
                .and(predicate::str::contains(
                    "POSTGRES_PASSWORD holds a default or placeholder value",
                ))
                .and(predicate::str::contains("tooshort-jwt").not())
                .and(predicate::str::contains("REDIS_PASSWORD").not()),
        );
    std::fs::write(
        p.path(".env.ok"),
        "JWT_SECRET=0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    p.cmd()
        .args(["secrets", "check", "--file", ".env.ok"])
        .assert()
        .code(0);
}

#[test]
fn rollback_finds_the_previous_release_in_the_journals_when_nothing_is_live() {
    let p = Project::new("");
    // Nothing recorded yet: the rollback cannot proceed, refused before any change (5).
    p.cmd()
        .args(["rollback", "-e", "s"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("no successful run recorded"));
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0);
    p.commit("v2", true);
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r2"])
        .assert()
        .code(0);
    // The live release is gone (nothing is live): the journal of the last good run
    // still says what was live before it.
    std::fs::remove_file(p.path("srv/current")).unwrap();
    p.cmd().args(["rollback", "-e", "s"]).assert().code(0);
    assert_eq!(
        std::fs::read_link(p.path("srv/current")).unwrap(),
        Path::new("releases/r1")
    );
}

#[test]
fn rollback_goes_back_to_the_previous_release_without_rebuilding() {
    let p = Project::new("");
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0);
    p.commit("v2", true);
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r2"])
        .assert()
        .code(0);
    p.cmd()
        .args(["rollback", "-e", "s"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("already staged; prepare skipped"));
    assert_eq!(
        std::fs::read_link(p.path("srv/current")).unwrap(),
        Path::new("releases/r1")
    );
    p.cmd()
        .args(["rollback", "-e", "s", "--to", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no longer staged"));
}

#[test]
fn recover_finishes_a_run_whose_process_died() {
    let p = Project::new("");
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0);
    // A run that died after staging r2: its journal has intents and no end; its lock remains.
    std::fs::create_dir_all(p.path("srv/releases/r2")).unwrap();
    // It ran on another machine, so only its lease, long expired, shows it is dead.
    let dead = serde_json::json!({"env": "s", "run_id": "run-dead", "who": "ci", "host": "elsewhere", "pid": 1, "since": "2026-11-26T10:00:00Z",
        "token": "tdead", "lease": {"secs": 30, "renewed_at": "2026-11-26T10:00:00Z", "expires_at": "2026-11-26T10:00:30Z"}});
    std::fs::write(p.path(".deploykit/locks/s.lock"), dead.to_string()).unwrap();
    let journal = [
        serde_json::json!({"record": "run_started", "run_id": "run-dead", "env": "s", "release": "r2", "commit": "abc1234", "branch": null, "previous": "r1", "who": "ci", "at": "2026-11-26T10:00:00Z"}),
        serde_json::json!({"record": "intent", "seq": 1, "phase": "prepare", "undo": {"undo": "discard_release", "release": "r2"}, "at": "2026-11-26T10:00:01Z"}),
    ];
    let text: String = journal.iter().map(|j| j.to_string() + "\n").collect();
    std::fs::write(p.path(".deploykit/journal/s/run-dead.jsonl"), text).unwrap();
    p.cmd()
        .args(["status", "-e", "s"])
        .assert()
        .stdout(predicate::str::contains("deploykit recover --env s"));
    p.cmd()
        .args(["recover", "-e", "s"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("discard staged release r2"));
    assert!(!p.path("srv/releases/r2").exists());
    assert!(
        !p.path(".deploykit/locks/s.lock").exists(),
        "recover released the dead run's lock"
    );
    p.cmd()
        .args(["recover", "-e", "s"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("nothing to recover"));
}

#[test]
fn init_writes_a_config_that_loads_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::cargo_bin("deploykit").unwrap();
    c.current_dir(dir.path())
        .args(["init", "--kind", "compose"])
        .assert()
        .code(0);
    let mut c = Command::cargo_bin("deploykit").unwrap();
    c.current_dir(dir.path())
        .args(["init", "--kind", "pm2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    // The values the project cannot tell are ${VAR}s, each named when unset.
    let mut c = Command::cargo_bin("deploykit").unwrap();
    c.current_dir(dir.path())
        .args(["config", "show", "--env", "staging"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("STAGING_DOCKER_HOST"));
    let mut c = Command::cargo_bin("deploykit").unwrap();
    c.current_dir(dir.path())
        .args(["config", "show", "--env", "staging"])
        .env("STAGING_DOCKER_HOST", "unix:///run/docker.sock")
        .env("APP_URL", "http://127.0.0.1:3000")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("kind = \"compose\""));
}

#[test]
fn help_lists_every_command_and_the_exit_codes() {
    let mut c = Command::cargo_bin("deploykit").unwrap();
    let out = c.arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "deploy", "rollback", "status", "history", "backup", "migrate", "health", "recover",
        "lock", "secrets", "init", "demo",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
    assert!(text.contains("4 environment locked"));
    assert!(text.contains("5 refused before any change"));
}

#[test]
fn github_step_summary_gets_a_markdown_report() {
    let p = Project::new("");
    let summary = p.path("summary.md");
    p.cmd()
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("### deploykit: r1 to `s`"), "{md}");
    assert!(md.contains("| activate |"), "{md}");
}

/// A one-shot HTTP server that records the first request body.
fn webhook_server() -> (String, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hooks/T0/secret-path-token",
        listener.local_addr().unwrap().port()
    );
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some(head_end) = text.find("\r\n\r\n") {
                let len = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= head_end + 4 + len {
                    break;
                }
            }
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .unwrap();
        String::from_utf8_lossy(&buf).to_string()
    });
    (url, handle)
}

#[test]
fn a_rollback_is_announced_to_the_webhook() {
    let (url, server) = webhook_server();
    let p = Project::new(&format!(
        "[environments.s.notify]\nwebhook = \"{url}\"\non = [\"rollback\"]\n"
    ));
    let text = std::fs::read_to_string(p.path("deploykit.toml")).unwrap();
    let text = text.replace("port = ", "build = [[\"false\"]]\nport = ");
    std::fs::write(p.path("deploykit.toml"), text).unwrap();
    let out = p
        .cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let request = server.join().unwrap();
    assert!(
        request.starts_with("POST /hooks/T0/secret-path-token"),
        "{request}"
    );
    let body: serde_json::Value =
        serde_json::from_str(request.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("r1 failed on s in prepare and was rolled back"),
        "{text}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("secret-path-token"), "{stderr}");
}

#[test]
fn demo_deploys_v1_v2_then_rolls_back_the_broken_v3_and_cleans_up() {
    let mut c = Command::cargo_bin("deploykit").unwrap();
    let out = c.arg("demo").env("NO_COLOR", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("revert migrations 0003_create_archive"),
        "{stderr}"
    );
    let last_schema = stderr
        .lines()
        .rfind(|l| l.starts_with("schema now: "))
        .unwrap();
    assert_eq!(
        last_schema, "schema now: 0001_create_notes, 0002_create_tags",
        "v3's migration was reverted"
    );
    let dir = stderr
        .lines()
        .find_map(|l| l.strip_prefix("demo directory: "))
        .unwrap()
        .to_string();
    assert!(
        !std::path::Path::new(&dir).exists(),
        "the demo cleans up after itself"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("change-failure rate: 33%"), "{stdout}");
}

#[test]
fn a_failed_undo_exits_3_keeps_the_lock_and_recover_finishes_once_fixed() {
    let p = Project::new("");
    let port = p.port;
    let text = std::fs::read_to_string(p.path("deploykit.toml")).unwrap();
    // v2's build sabotages the previous release, so switching back to it fails.
    let text = text.replace(
        "port = ",
        "build = [[\"sh\", \"-c\", \"if [ -f SABOTAGE ]; then rm -rf ../r1; fi\"]]\nport = ",
    ) + &format!(
        "[[environments.s.probes]]\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/api/health\"\njson_status = true\n\
         [environments.s.policy]\nhealth_attempts = 3\nhealth_interval_secs = 1\nhealth_deadline_secs = 5\n"
    );
    std::fs::write(p.path("deploykit.toml"), text).unwrap();
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r1"])
        .assert()
        .code(0);

    std::fs::write(p.path("app/SABOTAGE"), "on\n").unwrap();
    git(&p.path("app"), &["add", "SABOTAGE"]);
    p.commit("v2", false);
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r2"])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("ROLLBACK FAILED")
                .and(predicate::str::contains("deploykit recover --env s")),
        );
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r3"])
        .assert()
        .code(4);
    p.cmd()
        .args(["status", "-e", "s"])
        .assert()
        .stdout(predicate::str::contains("rollback_failed"));

    // A human puts r1 back (here: rebuilds its directory), then recovers.
    let repo = p.path("app");
    let first = Std::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["rev-list", "--max-parents=0", "HEAD"])
        .output()
        .unwrap();
    let first = String::from_utf8(first.stdout).unwrap().trim().to_string();
    std::fs::create_dir_all(p.path("srv/releases/r1")).unwrap();
    let tar = Std::new("sh")
        .arg("-c")
        .arg(format!(
            "git -C {} archive {first} | tar -x -C {}",
            repo.display(),
            p.path("srv/releases/r1").display()
        ))
        .status()
        .unwrap();
    assert!(tar.success());
    p.cmd().args(["recover", "-e", "s"]).assert().code(0);
    assert_eq!(
        std::fs::read_link(p.path("srv/current")).unwrap(),
        Path::new("releases/r1")
    );
    p.cmd()
        .args(["deploy", "-e", "s", "--release", "r4", "--dry-run"])
        .assert()
        .code(0);
    p.cmd()
        .args(["lock", "status", "-e", "s"])
        .assert()
        .stdout(predicate::str::contains("free"));
}
