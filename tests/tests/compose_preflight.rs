//! Mistakes in the compose side are config errors found before anything runs: a
//! compose file that does not parse, and a service (of the target, the backup or
//! the migrations) that the file does not have. Before, the unknown service was
//! found by the build, after the lock and the backup. Through the binary, against
//! the rig's Docker engine.

use std::path::{Path, PathBuf};
use std::process::Command as Std;

mod common;
use common::run;

fn docker_host() -> Option<String> {
    match std::env::var("DEPLOYKIT_RIG_DOCKER_HOST") {
        Ok(h) if !h.is_empty() => Some(h),
        _ => {
            let why =
                "DEPLOYKIT_RIG_DOCKER_HOST not set: run through script/test, which starts dockerd";
            if std::env::var_os("CI").is_some() {
                panic!("the Docker engine is missing in CI: {why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// A committed project whose compose file has one service, `web`, and a
/// deploykit.toml with `target_extra` in its environment `p`. A `service`
/// written as a TOML list (`["web", "worker"]`) is the target's `services`.
fn project(dir: &Path, compose: &str, service: &str, extra: &str) -> PathBuf {
    let root = dir.join("app");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("docker-compose.yml"), compose).unwrap();
    std::fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(root.join(".env"), "").unwrap();
    std::fs::write(root.join(".gitignore"), "state/\n").unwrap();
    std::fs::write(
        root.join("deploykit.toml"),
        format!(
            "[project]\nstate_dir = \"state\"\n\
             [environments.p.target]\nkind = \"compose\"\nproject = \"dkpre{}\"\n\
             files = [\"docker-compose.yml\"]\n{services}\nimage = \"deploykit-test/dkpre\"\n{extra}",
            std::process::id(),
            services = if service.starts_with('[') {
                format!("services = {service}")
            } else {
                format!("service = \"{service}\"")
            },
        ),
    )
    .unwrap();
    let git = |args: &[&str]| {
        run(Std::new("git")
            .arg("-C")
            .arg(&root)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args))
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "v1"]);
    root
}

const COMPOSE: &str = "version: \"2.4\"\nservices:\n  web:\n    build: .\n    network_mode: host\n";

fn deploy(root: &Path, host: &str, dry_run: bool) -> std::process::Output {
    let mut c = common::deploykit();
    c.current_dir(root)
        .env("DOCKER_HOST", host)
        .env_remove("GITHUB_STEP_SUMMARY")
        .args(["deploy", "--env", "p", "--release", "r1", "--yes"]);
    if dry_run {
        c.arg("--dry-run");
    }
    c.output().unwrap()
}

/// Nothing ran: no run journal was started.
fn assert_no_run(root: &Path) {
    let journals = root.join("state/journal/p");
    let runs = std::fs::read_dir(&journals).map(|d| d.count()).unwrap_or(0);
    assert_eq!(runs, 0, "a run was started in {}", journals.display());
}

#[test]
fn an_unknown_service_is_a_config_error_before_the_run() {
    let Some(host) = docker_host() else { return };
    for (service, extra, named) in [
        ("webb", "", "webb"),
        // Each of several services is checked.
        ("[\"web\", \"worker\"]", "", "worker"),
        (
            "web",
            "[environments.p.backup]\nkind = \"compose_exec\"\nservice = \"db\"\ndatabase = \"app\"\nuser = \"app\"\ndir = \"backups\"\n",
            "db",
        ),
        (
            "web",
            "[environments.p.migrations]\nkind = \"compose_run\"\nservice = \"web-migrate\"\nup = [\"true\"]\n",
            "web-migrate",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = project(dir.path(), COMPOSE, service, extra);
        for dry_run in [true, false] {
            let out = deploy(&root, &host, dry_run);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{named}, dry run {dry_run}: {stderr}");
            assert!(
                stderr.contains(&format!("\"{named}\"")) && stderr.contains("web"),
                "the error names the missing service and the ones there are: {stderr}"
            );
            assert_no_run(&root);
            assert!(!root.join("backups").exists(), "no backup was taken");
        }
    }
}

#[test]
fn a_compose_file_that_does_not_parse_is_a_config_error_naming_it() {
    let Some(host) = docker_host() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broken = "version: \"2.4\"\nservices:\n  web:\n    build: .\n   network_mode: host\n";
    let root = project(dir.path(), broken, "web", "");
    let out = deploy(&root, &host, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("docker-compose.yml"), "{stderr}");
    assert_no_run(&root);
}
