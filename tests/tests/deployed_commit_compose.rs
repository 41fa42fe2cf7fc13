//! Compose builds the deployed commit, not the checkout: with the working tree at
//! v4 (plus an uncommitted edit), `deploykit deploy --ref v1` serves v1. Through the
//! binary, against the rig's Docker engine.

use std::path::PathBuf;
use std::process::Command as Std;

mod common;
use common::{free_port, get, run};

struct Rig {
    docker_host: String,
    busybox: String,
}

fn rig() -> Option<Rig> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("DEPLOYKIT_RIG_DOCKER_HOST"),
        get("DEPLOYKIT_RIG_DOCKER_BUSYBOX"),
    ) {
        (Some(docker_host), Some(busybox)) => Some(Rig {
            docker_host,
            busybox,
        }),
        _ => {
            let why =
                "DEPLOYKIT_RIG_DOCKER_* not set: run through script/test, which starts dockerd";
            if std::env::var_os("CI").is_some() {
                panic!("the Docker engine is missing in CI: {why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

struct Stack {
    _dir: tempfile::TempDir,
    root: PathBuf,
    docker_host: String,
    project: String,
}

impl Stack {
    fn git(&self, args: &[&str]) -> String {
        run(Std::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args))
    }

    fn page(&self, version: &str) {
        std::fs::write(self.root.join("www/index.html"), format!("{version}\n")).unwrap();
    }

    fn deploykit(&self) -> assert_cmd::Command {
        let mut c = common::deploykit();
        c.current_dir(&self.root)
            .env("NO_COLOR", "1")
            .env("DOCKER_HOST", &self.docker_host)
            .env_remove("GITHUB_STEP_SUMMARY");
        c
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Std::new("docker-compose")
            .current_dir(&self.root)
            .env("DOCKER_HOST", &self.docker_host)
            .args(["-p", &self.project, "-f", "docker-compose.yml"])
            .args(["--env-file", ".env", "down", "-t", "1", "--rmi", "local"])
            .output();
    }
}

#[test]
fn a_deploy_of_v1_serves_v1_while_the_checkout_is_at_v4() {
    let Some(rig) = rig() else { return };
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    std::fs::create_dir_all(root.join("www")).unwrap();
    let project = format!("dkcommit{}", std::process::id());
    std::fs::write(
        root.join("docker-compose.yml"),
        "version: \"2.4\"\nservices:\n  web:\n    build: .\n    network_mode: host\n    stop_grace_period: 1s\n",
    )
    .unwrap();
    std::fs::write(
        root.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY www /www\n\
             HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD wget -q -O /dev/null http://127.0.0.1:{port}/index.html || exit 1\n\
             CMD [\"httpd\", \"-f\", \"-p\", \"127.0.0.1:{port}\", \"-h\", \"/www\"]\n",
            rig.busybox
        ),
    )
    .unwrap();
    std::fs::write(root.join(".env"), "UNUSED=1\n").unwrap();
    std::fs::write(root.join(".gitignore"), ".deploykit/\nstate/\n.env\n").unwrap();
    std::fs::write(
        root.join("deploykit.toml"),
        format!(
            "[project]\nstate_dir = \"state\"\n\
             [environments.p.target]\nkind = \"compose\"\nproject = \"{project}\"\nfiles = [\"docker-compose.yml\"]\n\
             env_file = \".env\"\nservice = \"web\"\nimage = \"deploykit-test/{project}\"\nhealth_wait_secs = 60\n\
             [[environments.p.probes]]\nkind = \"container\"\n"
        ),
    )
    .unwrap();
    let s = Stack {
        _dir: dir,
        root,
        docker_host: rig.docker_host.clone(),
        project,
    };
    s.git(&["init", "-q", "-b", "main"]);
    s.page("v1");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-qm", "v1"]);
    let v1 = s.git(&["rev-parse", "HEAD"]);
    s.page("v4");
    s.git(&["commit", "-qam", "v4"]);
    // And an uncommitted edit on top of v4.
    std::fs::write(s.root.join("www/extra.html"), "working tree only\n").unwrap();

    let out = s
        .deploykit()
        .args(["deploy", "--env", "p", "--release", "r1", "--ref", &v1])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let (status, body) = get(port, "/index.html").expect("the stack answers");
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "v1", "a deploy of v1 must serve v1's code");
    let extra = get(port, "/extra.html").map(|(s, _)| s);
    assert_eq!(
        extra,
        Some(404),
        "the uncommitted file was built into the image"
    );
    assert!(
        !s.root.join(".deploykit/build-r1").exists(),
        "the exported build context is removed after the build"
    );
}
