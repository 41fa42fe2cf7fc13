//! The state store of a Compose environment whose engine is reached over `ssh://`
//! (the rig's real sshd and Docker engine): by default its journals and lock live
//! on that host, so two clones (two CI runners) deploying at once are serialised by
//! one lock there, and a fresh clone recovers a run killed mid-deploy.

#[path = "common/state_rig.rs"]
mod state_rig;

use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::sync::atomic::Ordering;

use predicates::prelude::*;
use state_rig::{
    clone_owned_by, deploykit_in, free_port, git, hand_over, run, spawn_in, ssh_rig, Health, SshRig,
};

const CONFIG: &str = r#"[environments.p.target]
kind = "compose"
project = "${DK_PROJECT}"
files = ["docker-compose.yml"]
service = "web"
image = "deploykit-test/${DK_PROJECT}"
host = "ssh://${DK_SSH}"
key_file = "${DK_KEY}"
known_hosts = "${DK_KNOWN_HOSTS}"
engine_socket = "${DK_ENGINE_SOCKET}"
health_wait_secs = 60

[[environments.p.probes]]
kind = "http"
url = "${DK_HEALTH}"

[environments.p.policy]
health_attempts = 600
health_interval_secs = 1
health_deadline_secs = 600
"#;

struct ComposeProject {
    _dir: tempfile::TempDir,
    origin: PathBuf,
    project: String,
    docker_host: String,
    vars: Vec<(String, String)>,
    health: Health,
    rig: SshRig,
}

fn docker_rig() -> Option<(String, String)> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("DEPLOYKIT_RIG_DOCKER_HOST"),
        get("DEPLOYKIT_RIG_DOCKER_BUSYBOX"),
    ) {
        (Some(h), Some(b)) => Some((h, b)),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("DEPLOYKIT_RIG_DOCKER_* not set: the Docker engine is missing in CI");
            }
            eprintln!(
                "skipped: DEPLOYKIT_RIG_DOCKER_* not set (run through script/rig-up docker sshd)"
            );
            None
        }
    }
}

impl ComposeProject {
    fn new(label: &str) -> Option<Self> {
        let rig = ssh_rig("DEPLOYKIT_RIG_SSH_USER")?;
        let (docker_host, busybox) = docker_rig()?;
        let dir = tempfile::tempdir().unwrap();
        let origin = dir.path().join("origin");
        std::fs::create_dir_all(origin.join("www")).unwrap();
        let port = free_port();
        std::fs::write(
            origin.join("docker-compose.yml"),
            "version: \"2.4\"\nservices:\n  web:\n    build: .\n    network_mode: host\n    stop_grace_period: 1s\n",
        )
        .unwrap();
        std::fs::write(
            origin.join("Dockerfile"),
            format!(
                "FROM {busybox}\nCOPY www /www\n\
                 HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD wget -q -O /dev/null http://127.0.0.1:{port}/index.html || exit 1\n\
                 CMD [\"httpd\", \"-f\", \"-p\", \"127.0.0.1:{port}\", \"-h\", \"/www\"]\n"
            ),
        )
        .unwrap();
        std::fs::write(origin.join("www/index.html"), "v1\n").unwrap();
        std::fs::write(origin.join("deploykit.toml"), CONFIG).unwrap();
        std::fs::write(origin.join(".gitignore"), ".deploykit/\n.env\n").unwrap();
        git(&origin, &["init", "-q", "-b", "main"]);
        git(&origin, &["add", "-A"]);
        git(&origin, &["commit", "-qm", "v1"]);
        hand_over(&origin, &rig.user);
        let project = format!("dkstate{label}{}", std::process::id());
        let health = Health::start(true);
        let vars = [
            ("DK_PROJECT", project.clone()),
            ("DK_SSH", rig.spec()),
            ("DK_KEY", rig.key.clone()),
            ("DK_KNOWN_HOSTS", rig.known_hosts.clone()),
            (
                "DK_ENGINE_SOCKET",
                docker_host.trim_start_matches("unix://").to_string(),
            ),
            ("DK_HEALTH", health.url.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Some(Self {
            _dir: dir,
            origin,
            project,
            docker_host,
            vars,
            health,
            rig,
        })
    }

    /// A fresh clone (a new CI runner) with the deploy-time `.env` compose reads.
    fn clone(&self) -> tempfile::TempDir {
        let d = clone_owned_by(&self.origin, &self.rig.user);
        std::fs::write(d.path().join("c/.env"), "UNUSED=1\n").unwrap();
        hand_over(&d.path().join("c/.env"), &self.rig.user);
        d
    }

    fn cmd(&self, clone: &tempfile::TempDir) -> assert_cmd::Command {
        deploykit_in(clone.path(), &self.vars)
    }

    /// The state directory on the host: under the SSH user's home.
    fn host_state(&self) -> PathBuf {
        let home = run(Std::new("getent").args(["passwd", &self.rig.user]));
        let home = home.split(':').nth(5).unwrap().to_string();
        Path::new(&home)
            .join(".deploykit/compose")
            .join(&self.project)
    }

    fn commit(&self, version: &str) {
        std::fs::write(self.origin.join("www/index.html"), format!("{version}\n")).unwrap();
        git(&self.origin, &["commit", "-qam", version]);
        hand_over(&self.origin, &self.rig.user);
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = Std::new("docker-compose")
            .current_dir(&self.origin)
            .env("DOCKER_HOST", &self.docker_host)
            .args(["-p", &self.project, "-f", "docker-compose.yml"])
            .args(["down", "-t", "1", "--rmi", "all"])
            .output();
        let _ = std::fs::remove_dir_all(self.host_state());
    }
}

#[test]
fn two_clones_deploying_at_once_one_proceeds_the_other_exits_4_naming_the_holder() {
    let Some(p) = ComposeProject::new("lock") else {
        return;
    };
    let a = p.clone();
    let b = p.clone();
    p.health.healthy.store(false, Ordering::SeqCst);
    let before = p.health.hits.load(Ordering::SeqCst);
    let mut deploy = spawn_in(a.path(), &p.vars, &["deploy", "-e", "p", "--release", "r1"]);
    p.health.wait_hits_of(&mut deploy, before, 2);

    let c = p.clone();
    let out = p
        .cmd(&c)
        .args(["--json", "lock", "status", "-e", "p"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let holder_run = v["holder"]["run_id"].as_str().expect("held").to_string();
    let holder_host = v["holder"]["host"].as_str().unwrap().to_string();
    assert!(holder_run.ends_with("-r1"), "{v}");

    p.cmd(&b)
        .args(["deploy", "-e", "p", "--release", "r1b"])
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains(holder_run.as_str())
                .and(predicate::str::contains(holder_host.as_str())),
        );

    p.health.healthy.store(true, Ordering::SeqCst);
    let out = deploy.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.cmd(&b)
        .args(["history", "-e", "p"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("r1").and(predicate::str::contains("succeeded")));
    assert!(
        p.host_state().join("journal/p").is_dir(),
        "the journals live on the host"
    );
}

#[test]
fn a_fresh_clone_recovers_a_compose_deploy_killed_mid_run() {
    let Some(p) = ComposeProject::new("recover") else {
        return;
    };
    let a = p.clone();
    p.cmd(&a)
        .args(["deploy", "-e", "p", "--release", "r1"])
        .assert()
        .code(0);
    p.commit("v2");
    git(&a.path().join("c"), &["pull", "-q"]);
    p.health.healthy.store(false, Ordering::SeqCst);
    let before = p.health.hits.load(Ordering::SeqCst);
    let mut deploy = spawn_in(a.path(), &p.vars, &["deploy", "-e", "p", "--release", "r2"]);
    p.health.wait_hits_of(&mut deploy, before, 2);
    deploy.kill().unwrap();
    deploy.wait().unwrap();
    drop(a);
    p.health.healthy.store(true, Ordering::SeqCst);

    let d = p.clone();
    p.cmd(&d)
        .args(["recover", "-e", "p"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("run rolled_back"));
    p.cmd(&d)
        .args(["status", "-e", "p"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("r1"));
}

/// A CI runner's checkout is deep (`/home/runner/work/<repo>/<repo>/…`) and a unix
/// socket path holds at most 107 bytes: the engine's socket, forwarded over SSH,
/// used to live under the checkout's state_dir, so every command failed to connect.
#[test]
fn a_checkout_deep_in_a_runners_workspace_still_reaches_the_engine_over_ssh() {
    use std::os::unix::fs::PermissionsExt;
    let Some(p) = ComposeProject::new("deep") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let deep = dir
        .path()
        .join("home-runner-work-a-rather-long-repository-name")
        .join("a-rather-long-repository-name-again");
    std::fs::create_dir_all(&deep).unwrap();
    run(Std::new("git")
        .args(["-c", "safe.directory=*", "clone", "-q"])
        .arg(&p.origin)
        .arg(deep.join("c")));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    hand_over(dir.path(), &p.rig.user);
    assert!(
        deep.join("c/.deploykit/sockets/p-4194304.sock")
            .as_os_str()
            .len()
            > 107
    );
    deploykit_in(&deep, &p.vars)
        .args(["status", "-e", "p"])
        .assert()
        .code(0);
}
