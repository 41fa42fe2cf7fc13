//! `services = ["web", "worker"]` through the binary, against the rig's Docker
//! engine: a deploy switches both, `status` and `logs` show both, and a release
//! whose worker dies on start-up is rolled back (exit 1) with both services on
//! the previous release's images.

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

    /// Commits release `version`: web serves it; the worker runs for good, or
    /// dies a second after it starts.
    fn commit(&self, version: &str, worker_ok: bool) {
        std::fs::write(self.root.join("www/index.html"), format!("{version}\n")).unwrap();
        let worker = if worker_ok {
            format!("#!/bin/sh\necho \"DKSVC worker {version} started\"\nexec sleep 3600\n")
        } else {
            "#!/bin/sh\necho 'DKSVC worker: no queue' >&2\nsleep 1\nexit 3\n".to_string()
        };
        std::fs::write(self.root.join("worker"), worker).unwrap();
        self.git(&["add", "-A"]);
        self.git(&["commit", "-qm", version]);
    }

    fn deploykit(&self, args: &[&str]) -> std::process::Output {
        let mut c = common::deploykit();
        c.current_dir(&self.root)
            .env("NO_COLOR", "1")
            .env("DOCKER_HOST", &self.docker_host)
            .env_remove("GITHUB_STEP_SUMMARY")
            .args(args)
            .output()
            .unwrap()
    }

    fn status(&self) -> String {
        let out = self.deploykit(&["status", "--env", "p"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
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
fn web_and_worker_deploy_show_and_roll_back_together() {
    let Some(rig) = rig() else { return };
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    std::fs::create_dir_all(root.join("www")).unwrap();
    let project = format!("dksvc{}", std::process::id());
    std::fs::write(
        root.join("docker-compose.yml"),
        "version: \"2.4\"\nservices:\n  web:\n    build: .\n    network_mode: host\n    stop_grace_period: 1s\n  \
         worker:\n    build: .\n    network_mode: host\n    stop_grace_period: 1s\n    command: [\"/worker\"]\n    \
         healthcheck:\n      disable: true\n",
    )
    .unwrap();
    std::fs::write(
        root.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY www /www\nCOPY worker /worker\nRUN chmod +x /worker\n\
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
             env_file = \".env\"\nservices = [\"web\", \"worker\"]\nimage = \"deploykit-test/{project}\"\n\
             health_wait_secs = 60\n\
             [[environments.p.probes]]\nkind = \"container\"\n\
             [environments.p.policy]\nhealth_attempts = 20\nhealth_interval_secs = 1\nhealth_deadline_secs = 20\n"
        ),
    )
    .unwrap();
    let s = Stack {
        _dir: dir,
        root,
        docker_host: rig.docker_host.clone(),
        project: project.clone(),
    };
    s.git(&["init", "-q", "-b", "main"]);
    s.commit("v1", true);
    let out = s.deploykit(&["deploy", "--env", "p", "--release", "r1", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let web_r1 = format!("deploykit-test/{project}:r1");
    let worker_r1 = format!("deploykit-test/{project}-worker:r1");
    let status = s.status();
    assert!(
        status.contains(&format!("web: {project}_web_1 ({web_r1}) running"))
            || status.contains(&format!("web: {project}-web-1 ({web_r1}) running")),
        "{status}"
    );
    assert!(
        status.contains(&format!("({worker_r1}) running")),
        "{status}"
    );
    let logs = s.deploykit(&["logs", "--env", "p"]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("DKSVC worker v1 started"), "{text}");

    s.commit("v2", false);
    let out = s.deploykit(&["deploy", "--env", "p", "--release", "r2", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "rolled back: {stderr}");
    assert!(stderr.contains("DKSVC worker: no queue"), "{stderr}");
    let status = s.status();
    assert!(status.contains(&format!("({web_r1}) running")), "{status}");
    assert!(
        status.contains(&format!("({worker_r1}) running")),
        "{status}"
    );
    let (code, body) = get(port, "/index.html").expect("web serves");
    assert_eq!((code, body.trim()), (200, "v1"));
}
