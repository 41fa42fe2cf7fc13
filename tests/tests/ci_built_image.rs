//! Build once in CI, ship the image: a Compose target with `image_source = "pull"`
//! deploys the image CI pushed to a registry (`--image-tag`), and one with
//! `"present"` the image CI loaded onto the engine, with nothing built on the host.
//! Through the binary, against the rig's Docker engine and a real registry
//! (Debian's docker-registry).

use std::path::PathBuf;
use std::process::Command as Std;

mod common;
use common::{free_port, get, run};

struct Rig {
    docker_host: String,
    busybox: String,
    registry: String,
}

fn rig() -> Option<Rig> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("DEPLOYKIT_RIG_DOCKER_HOST"),
        get("DEPLOYKIT_RIG_DOCKER_BUSYBOX"),
        get("DEPLOYKIT_RIG_REGISTRY"),
    ) {
        (Some(docker_host), Some(busybox), Some(registry)) => Some(Rig {
            docker_host,
            busybox,
            registry,
        }),
        _ => {
            let why = "DEPLOYKIT_RIG_DOCKER_* or DEPLOYKIT_RIG_REGISTRY not set: run through \
                       script/test, which starts dockerd and the registry";
            if std::env::var_os("CI").is_some() {
                panic!("a rig part is missing in CI: {why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
    rig: Rig,
    /// Compose project name and image namespace, unique to this process.
    name: String,
}

impl Project {
    fn docker(&self) -> Std {
        let mut c = Std::new("docker");
        c.env("DOCKER_HOST", &self.rig.docker_host);
        c
    }

    /// What CI does: builds the image of `version`, serving on `port`, as `image`.
    fn ci_build(&self, image: &str, version: &str, port: u16) {
        let ctx = self.root.join(format!("ci-{version}"));
        std::fs::create_dir_all(ctx.join("www")).unwrap();
        std::fs::write(ctx.join("www/index.html"), format!("{version}\n")).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            format!(
                "FROM {}\nCOPY www /www\n\
                 HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD wget -q -O /dev/null http://127.0.0.1:{port}/index.html || exit 1\n\
                 CMD [\"httpd\", \"-f\", \"-p\", \"127.0.0.1:{port}\", \"-h\", \"/www\"]\n",
                self.rig.busybox
            ),
        )
        .unwrap();
        run(self.docker().args(["build", "-q", "-t", image]).arg(&ctx));
    }

    fn image_exists(&self, image: &str) -> bool {
        self.docker()
            .args(["image", "inspect", image])
            .output()
            .unwrap()
            .status
            .success()
    }

    fn deploykit(&self) -> assert_cmd::Command {
        let mut c = common::deploykit();
        c.current_dir(&self.root)
            .env("NO_COLOR", "1")
            .env("DOCKER_HOST", &self.rig.docker_host)
            .env_remove("GITHUB_STEP_SUMMARY");
        c
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        for env in ["pulled", "present"] {
            let _ = Std::new("docker-compose")
                .current_dir(&self.root)
                .env("DOCKER_HOST", &self.rig.docker_host)
                .args([
                    "-p",
                    &format!("{}{env}", self.name),
                    "-f",
                    "docker-compose.yml",
                ])
                .args(["down", "-t", "1"])
                .output();
        }
        let images = self
            .docker()
            .args([
                "images",
                "-q",
                "--filter",
                &format!("reference=*{}*", self.name),
            ])
            .output();
        if let Ok(out) = images {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.docker().args(["rmi", "-f", id]).output();
            }
        }
    }
}

fn environment(name: &str, project: &str, source: &str, source_image: &str) -> String {
    format!(
        "[environments.{name}.target]\nkind = \"compose\"\nproject = \"{project}{name}\"\n\
         files = [\"docker-compose.yml\"]\nenv_file = \".env\"\nservice = \"web\"\n\
         image = \"deploykit-test/{project}{name}\"\nimage_source = \"{source}\"\n\
         source_image = \"{source_image}\"\nhealth_wait_secs = 60\nstrategy = \"stop_first\"\n\
         [[environments.{name}.probes]]\nkind = \"container\"\n"
    )
}

/// A project of its own for each test (`test` in its names): the tests of this
/// file run at once in one process, and each one's cleanup removes its names.
fn project(rig: Rig, test: &str) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    std::fs::create_dir_all(&root).unwrap();
    let name = format!("dkci{}{test}", std::process::id());
    // No build: key at all: the image comes from CI.
    std::fs::write(
        root.join("docker-compose.yml"),
        "version: \"2.4\"\nservices:\n  web:\n    image: built-by-ci\n    network_mode: host\n    stop_grace_period: 1s\n",
    )
    .unwrap();
    std::fs::write(root.join(".env"), "UNUSED=1\n").unwrap();
    std::fs::write(
        root.join(".gitignore"),
        ".deploykit/\nstate/\n.env\nci-*/\n",
    )
    .unwrap();
    let registry_image = format!("{}/{name}/web", rig.registry);
    std::fs::write(
        root.join("deploykit.toml"),
        format!(
            "[project]\nstate_dir = \"state\"\n{}{}",
            environment("pulled", &name, "pull", &registry_image),
            environment("present", &name, "present", &format!("{name}/web")),
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
    git(&["commit", "-qm", "app"]);
    Project {
        _dir: dir,
        root,
        rig,
        name,
    }
}

fn served(port: u16) -> String {
    get(port, "/index.html")
        .map(|(_, body)| body.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn an_image_ci_pushed_is_pulled_and_deployed_by_its_tag_without_a_build() {
    let Some(rig) = rig() else { return };
    let p = project(rig, "pull");
    let port = free_port();
    let image = format!("{}/{}/web", p.rig.registry, p.name);
    for version in ["v1", "v2"] {
        let tagged = format!("{image}:{version}");
        p.ci_build(&tagged, version, port);
        run(p.docker().args(["push", "-q", &tagged]));
        // Only the registry has it now: the deploy must pull it. (The service has
        // no build: key, so a build on the host could not have made it.)
        run(p.docker().args(["rmi", &tagged]));
        assert!(!p.image_exists(&tagged));
        let out = p
            .deploykit()
            .args(["deploy", "--env", "pulled", "--image-tag", version])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(served(port), version);
        assert!(p.image_exists(&tagged), "pulled onto the engine");
    }

    // A source_image without a tag needs one from the run: a config error, before
    // anything connects.
    let out = p
        .deploykit()
        .args(["deploy", "--env", "pulled"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--image-tag"), "{stderr}");
    assert_eq!(served(port), "v2");
}

#[test]
fn an_image_ci_loaded_onto_the_engine_is_deployed_and_a_missing_one_changes_nothing() {
    let Some(rig) = rig() else { return };
    let p = project(rig, "present");
    let port = free_port();
    let image = format!("{}/web", p.name);
    p.ci_build(&format!("{image}:ci-1"), "ci-1", port);
    let out = p
        .deploykit()
        .args(["deploy", "--env", "present", "--image-tag", "ci-1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(served(port), "ci-1");

    let out = p
        .deploykit()
        .args(["deploy", "--env", "present", "--image-tag", "ci-2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("{image}:ci-2")), "{stderr}");
    assert!(stderr.contains("docker load"), "{stderr}");
    assert_eq!(served(port), "ci-1", "the live release was never touched");
}
