//! The rig's two-node swarm (script/rig/swarm.sh) and services on it that run the
//! `SO_REUSEPORT` test app, for the Swarm target's tests.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use deploykit_core::ReleaseId;
use deploykit_docker::{Engine, SwarmTarget};

use super::reuseport;

/// What the rig's swarm part started.
pub struct SwarmRig {
    /// The manager's engine (unix://…).
    pub manager: String,
    /// The worker's engine.
    pub worker: String,
    /// The busybox base image, on both nodes.
    pub busybox: String,
}

/// The rig's swarm, or `None` (with a printed reason) outside CI; panics in CI.
pub fn swarm_rig(test: &str) -> Option<SwarmRig> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("DEPLOYKIT_RIG_SWARM_HOST"),
        get("DEPLOYKIT_RIG_SWARM_WORKER_HOST"),
        get("DEPLOYKIT_RIG_SWARM_BUSYBOX"),
    ) {
        (Some(manager), Some(worker), Some(busybox)) => Some(SwarmRig {
            manager,
            worker,
            busybox,
        }),
        _ => {
            let why = "DEPLOYKIT_RIG_SWARM_* not set: run through script/test (or \
                       script/rig-up swarm -- …), which starts the two-node swarm";
            if std::env::var_os("CI").is_some() {
                panic!("{test}: the swarm is missing in CI: {why}");
            }
            eprintln!("skipped {test}: {why}");
            None
        }
    }
}

/// Runs `script` with `sh -c`, panicking with its output if it fails.
pub fn sh(script: &str) {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One service `name` of the rig's swarm whose releases are images `repo:<id>` of
/// the reuseport app serving 127.0.0.1:`port`.
///
/// Why the reuseport app and not busybox httpd: both nodes of the rig share the
/// machine's loopback (services use the `host` network), and the Swarm target
/// updates start-first, so a new task binds the port while the old one (on either
/// node) still holds it. That works only for an app that binds with
/// `SO_REUSEPORT`, which busybox httpd does not; no placement can separate them.
pub struct SwarmService {
    pub name: String,
    pub repo: String,
    pub port: u16,
    ctx: tempfile::TempDir,
}

impl SwarmService {
    /// A fresh name per process and test (several checkouts and tests share
    /// nothing but the machine; the swarm is this checkout's own).
    pub fn new(rig: &SwarmRig, test: &str) -> Self {
        let name = format!("dk-{test}-{}", std::process::id());
        let service = Self {
            repo: format!("deploykit-test/{name}"),
            name,
            port: reuseport::free_port(),
            ctx: tempfile::tempdir().unwrap(),
        };
        sh(&format!(
            "docker -H {} service rm {} >/dev/null 2>&1 || true",
            rig.manager, service.name
        ));
        let app = reuseport::build_app(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
            .expect("compile the reuseport test app");
        reuseport::write_root(service.ctx.path(), &app).unwrap();
        service
    }

    /// The image of `release`.
    pub fn image(&self, release: &ReleaseId) -> String {
        format!("{}:{release}", self.repo)
    }

    /// Builds the image of `release` (serving `version`; `ready = false` never
    /// turns healthy) on the manager and loads it into the worker: no registry.
    pub fn build(&self, rig: &SwarmRig, release: &ReleaseId, version: &str, ready: bool) {
        std::fs::write(
            self.ctx.path().join("Dockerfile"),
            reuseport::dockerfile(&rig.busybox, self.port, version, ready),
        )
        .unwrap();
        let image = self.image(release);
        sh(&format!(
            "docker -H {m} build -q -t {image} {ctx} >/dev/null && \
             docker -H {m} save {image} | docker -H {w} load >/dev/null",
            m = rig.manager,
            w = rig.worker,
            ctx = self.ctx.path().display()
        ));
    }

    /// Creates the service by hand (as `docker stack deploy` would have) running
    /// `image` with `replicas` tasks, one per node at most at rest.
    pub fn create(&self, rig: &SwarmRig, image: &str, replicas: u32, env: &[&str]) {
        let env: String = env.iter().map(|e| format!(" --env {e}")).collect();
        sh(&format!(
            "docker -H {m} service create --detach --quiet --name {name} --network host \
             --replicas {replicas}{env} --stop-grace-period 2s {image} >/dev/null",
            m = rig.manager,
            name = self.name
        ));
    }

    /// A target of the service on the manager.
    pub async fn target(&self, rig: &SwarmRig) -> SwarmTarget {
        let engine = Engine::connect(&rig.manager, "rig swarm manager")
            .await
            .expect("connect to the swarm manager");
        SwarmTarget::new(engine, &self.name, &self.repo)
            .unwrap()
            .health_deadline(Duration::from_secs(90))
            .poll_interval(Duration::from_millis(300))
    }

    /// The page the service answers, or `None`.
    pub async fn page(&self) -> Option<String> {
        super::http_get(self.port, "/").await
    }

    /// Removes the service (the test's end; also a failed test's leftovers go with
    /// the rig's stop).
    pub fn remove(&self, rig: &SwarmRig) {
        sh(&format!(
            "docker -H {} service rm {} >/dev/null 2>&1 || true",
            rig.manager, self.name
        ));
    }
}
