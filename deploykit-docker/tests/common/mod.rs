//! Shared helpers for the integration tests: the rig's engine, throwaway Compose
//! stacks built from the rig's busybox image, and a tiny HTTP GET.
#![allow(dead_code, unreachable_pub)]

pub mod reuseport;
pub mod reuseport_stack;
pub mod swarm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use deploykit_core::{Commit, LocalShell, ReleaseId, ReleaseSpec, Shell};
use deploykit_docker::{ComposeCli, ComposeProject, ComposeTarget, Engine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the rig started.
pub struct Rig {
    pub docker_host: String,
    pub busybox: String,
    pub postgres: String,
}

/// The rig's engine, or `None` (with a printed reason) outside CI; panics in CI.
pub fn rig(test: &str) -> Option<Rig> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("DEPLOYKIT_RIG_DOCKER_HOST"),
        get("DEPLOYKIT_RIG_DOCKER_BUSYBOX"),
        get("DEPLOYKIT_RIG_DOCKER_POSTGRES"),
    ) {
        (Some(docker_host), Some(busybox), Some(postgres)) => Some(Rig {
            docker_host,
            busybox,
            postgres,
        }),
        _ => {
            let why =
                "DEPLOYKIT_RIG_DOCKER_* not set: run through script/test, which starts dockerd";
            if std::env::var_os("CI").is_some() {
                panic!("{test}: the Docker engine is missing in CI: {why}");
            }
            eprintln!("skipped {test}: {why}");
            None
        }
    }
}

impl Rig {
    pub async fn engine(&self) -> Engine {
        Engine::connect(&self.docker_host, "rig docker engine")
            .await
            .expect("connect to the rig's docker engine")
    }

    /// A bollard client of the rig's engine, for what tests inspect beyond
    /// deploykit's own API (events, forced removal).
    pub async fn bollard(&self) -> bollard::Docker {
        bollard::Docker::connect_with_unix(&self.docker_host, 120, bollard::API_DEFAULT_VERSION)
            .expect("connect to the rig's docker engine")
            .negotiate_version()
            .await
            .expect("negotiate the engine's API version")
    }
}

pub fn spec(id: &str) -> ReleaseSpec {
    ReleaseSpec {
        id: ReleaseId::parse(id).unwrap(),
        commit: Commit::parse(format!("{id}0000000")).unwrap(),
        branch: Some("main".into()),
    }
}

/// A web service served by busybox httpd on 127.0.0.1:`port`, built by compose
/// from a context whose content the test changes between releases.
pub struct WebStack {
    pub dir: tempfile::TempDir,
    pub project: ComposeProject,
    pub port: u16,
    pub rig_busybox: String,
    pub repo: String,
}

impl WebStack {
    pub async fn new(rig: &Rig, name: &str, port: u16) -> Self {
        Self::with_services(rig, name, port, "").await
    }

    /// Like `new`, with more services appended to the compose file (YAML under
    /// `services:`, indented two spaces).
    pub async fn with_services(rig: &Rig, name: &str, port: u16, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let compose = dir.path().join("docker-compose.yml");
        std::fs::write(
            &compose,
            format!("version: \"2.4\"\n\
             services:\n\
             \x20 web:\n    build: .\n    network_mode: host\n    stop_grace_period: 1s\n    volumes:\n      - ./state:/state\n\
             \x20 # One-off migration containers (compose v1 cannot `run` a host-network\n\
             \x20 # service that has a running container).\n\
             \x20 web-migrate:\n    build: .\n    network_mode: host\n    volumes:\n      - ./state:/state\n{extra}"),
        )
        .unwrap();
        std::fs::write(dir.path().join(".env"), "UNUSED=1\n").unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let shell = LocalShell::new();
        let cli = ComposeCli::detect(&shell).await.expect("compose installed");
        let project = ComposeProject::new(name, vec![compose], cli)
            .unwrap()
            .env_file(dir.path().join(".env"))
            .docker_host(&rig.docker_host);
        let stack = Self {
            dir,
            project,
            port,
            rig_busybox: rig.busybox.clone(),
            repo: format!("deploykit-test/{name}"),
        };
        reset(rig, name, &stack.repo).await;
        stack
    }

    /// Writes the build context of a release: the page says `version`; the
    /// HEALTHCHECK passes only when `healthy`; `/migrate` exits `migrate_exit`.
    pub fn write_release(&self, version: &str, healthy: bool, migrate_exit: i32) {
        let ctx = self.dir.path();
        let www = ctx.join("www");
        let _ = std::fs::remove_dir_all(&www);
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), format!("{version}\n")).unwrap();
        if healthy {
            std::fs::write(www.join("healthy"), "ok\n").unwrap();
        }
        std::fs::write(
            ctx.join("migrate"),
            format!(
                "#!/bin/sh\n\
                 # A migration tool whose database is /state/revision.\n\
                 case \"$1\" in\n\
                 up) echo \"applying migrations of {version}\"\n\
                     if [ {migrate_exit} != 0 ]; then echo 'ERROR: column \"guest\" already exists' >&2; exit {migrate_exit}; fi\n\
                     echo {version} > /state/revision ;;\n\
                 down) echo \"$2\" > /state/revision ;;\n\
                 revision) cat /state/revision 2>/dev/null || echo base ;;\n\
                 *) echo \"usage: migrate up|down REV|revision\" >&2; exit 64 ;;\n\
                 esac\n"
            ),
        )
        .unwrap();
        let port = self.port;
        std::fs::write(
            ctx.join("Dockerfile"),
            format!(
                "FROM {base}\n\
                 COPY www /www\n\
                 COPY migrate /migrate\n\
                 RUN chmod +x /migrate\n\
                 HEALTHCHECK --interval=1s --timeout=2s --retries=2 \
                 CMD test -f /www/healthy && wget -q -O /dev/null http://127.0.0.1:{port}/index.html || exit 1\n\
                 CMD [\"httpd\", \"-f\", \"-p\", \"127.0.0.1:{port}\", \"-h\", \"/www\"]\n",
                base = self.rig_busybox
            ),
        )
        .unwrap();
    }

    pub async fn target(&self, rig: &Rig) -> ComposeTarget {
        self.target_with(Arc::new(LocalShell::new()), rig.engine().await)
    }

    pub fn target_with(&self, shell: Arc<dyn Shell>, engine: Engine) -> ComposeTarget {
        ComposeTarget::new(shell, engine, self.project.clone(), "web", &self.repo)
            .unwrap()
            .health_deadline(std::time::Duration::from_secs(60))
    }

    /// The page's first line, or `None` if nothing answers.
    pub async fn page(&self) -> Option<String> {
        http_get(self.port, "/index.html").await
    }

    /// The revision the stack's "database" is at.
    pub fn revision(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("state/revision"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "base".into())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes what an earlier run of the same test left on a long-lived engine.
pub async fn reset(rig: &Rig, project: &str, repo: &str) {
    let engine = rig.engine().await;
    let docker = rig.bollard().await;
    let filters = HashMap::from([(
        "label",
        vec![format!("com.docker.compose.project={project}")],
    )]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    for c in docker.list_containers(Some(options)).await.unwrap() {
        let rm = RemoveContainerOptionsBuilder::new().force(true).build();
        let _ = docker.remove_container(&c.id.unwrap(), Some(rm)).await;
    }
    for tag in engine.tags_of(repo).await.unwrap() {
        let rm = RemoveImageOptionsBuilder::new().force(true).build();
        let _ = docker
            .remove_image(&format!("{repo}:{tag}"), Some(rm), None)
            .await;
    }
}

/// GET `path` from 127.0.0.1:`port` over HTTP/1.0; the body's first line.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    Some(body.lines().next().unwrap_or("").to_string())
}

pub fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub fn pathbuf(p: &str) -> PathBuf {
    PathBuf::from(p)
}
