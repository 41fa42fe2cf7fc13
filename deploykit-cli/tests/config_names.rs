//! Names that become paths are refused when the config loads: an environment
//! named `../x` is a config error (exit 2) naming its key, and nothing is staged,
//! journaled or locked. No rig needed.

use std::path::Path;
use std::process::Command as Std;

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

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == ".git") {
                    continue;
                }
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Stops the app a deploy that should have been refused started anyway.
struct StopApp(std::path::PathBuf);

impl Drop for StopApp {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("srv/.deploykit/app.pid")) {
            let _ = Std::new("kill").arg(pid.trim()).status();
        }
    }
}

#[test]
fn an_environment_named_dot_dot_is_a_config_error_before_anything_runs() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("project");
    let _stop = StopApp(dir.clone());
    let repo = dir.join("app");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("VERSION"), "v1\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "v1"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exe = assert_cmd::cargo::cargo_bin("deploykit");
    std::fs::write(
        dir.join("deploykit.toml"),
        format!(
            "[environments.\"../x\".target]\nkind = \"local\"\ndeploy_to = \"srv\"\nrepo = \"app\"\n\
             start = [{:?}, \"demo-app\", \"--port\", \"{{port}}\"]\nport = {port}\n",
            exe.to_string_lossy()
        ),
    )
    .unwrap();
    let before = files(root.path());
    for args in [
        &["deploy", "-e", "../x", "--release", "r1"][..],
        &["migrate", "status", "-e", "../x"][..],
        &["lock", "status", "-e", "../x"][..],
    ] {
        Command::cargo_bin("deploykit")
            .unwrap()
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .env_remove("GITHUB_STEP_SUMMARY")
            .args(args)
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains("environments.\"../x\"")
                    .and(predicate::str::contains("invalid environment name")),
            );
    }
    assert_eq!(
        files(root.path()),
        before,
        "nothing was staged, journaled or locked"
    );
}

#[test]
fn compose_service_and_services_together_are_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploykit.toml"),
        "[environments.prod.target]\nkind = \"compose\"\nproject = \"crm\"\n\
         files = [\"docker-compose.yml\"]\nservice = \"web\"\nservices = [\"web\", \"worker\"]\n\
         image = \"crm-backend\"\n",
    )
    .unwrap();
    let before = files(dir.path());
    Command::cargo_bin("deploykit")
        .unwrap()
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .args(["deploy", "-e", "prod", "--release", "r1"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("environments.prod.target")
                .and(predicate::str::contains("not both")),
        );
    assert_eq!(files(dir.path()), before, "nothing was written");
}
