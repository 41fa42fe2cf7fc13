//! A Compose project whose `web` service runs the `SO_REUSEPORT` test app, and a
//! recorder of its containers' engine events: shared by the start-first and
//! strategy tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::EventsOptionsBuilder;
use deploykit_core::LocalShell;
use deploykit_docker::{ComposeCli, ComposeProject, ComposeTarget, ContainerState, Strategy};
use futures::StreamExt;

use super::{http_get, reset, reuseport, Rig};

/// A compose project whose `web` service runs the reuseport app on 127.0.0.1:`port`.
pub struct ReuseportStack {
    pub dir: tempfile::TempDir,
    pub project: ComposeProject,
    pub port: u16,
    pub base: String,
    pub repo: String,
}

impl ReuseportStack {
    /// `service_extra` is appended to the `web` service (YAML, four-space indent);
    /// `{port}` in it is replaced by the stack's port.
    pub async fn new(rig: &Rig, name: &str, service_extra: &str) -> Self {
        Self::on_network(rig, name, "host", service_extra).await
    }

    /// Like [`new`](Self::new), with the service on `network_mode: <network>`.
    pub async fn on_network(rig: &Rig, name: &str, network: &str, service_extra: &str) -> Self {
        let port = reuseport::free_port();
        let service_extra = service_extra.replace("{port}", &port.to_string());
        let dir = tempfile::tempdir().unwrap();
        let app = reuseport::build_app(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
            .expect("compile the reuseport test app");
        reuseport::write_root(dir.path(), &app).unwrap();
        let compose = dir.path().join("docker-compose.yml");
        std::fs::write(
            &compose,
            format!(
                "version: \"2.4\"\nservices:\n  web:\n    build: .\n    network_mode: {network}\n    \
                 stop_grace_period: 5s\n{service_extra}"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join(".env"), "").unwrap();
        let cli = ComposeCli::detect(&LocalShell::new()).await.unwrap();
        let project = ComposeProject::new(name, vec![compose], cli)
            .unwrap()
            .docker_host(&rig.docker_host);
        let repo = format!("deploykit-test/{name}");
        reset(rig, name, &repo).await;
        Self {
            dir,
            project,
            port,
            base: rig.busybox.clone(),
            repo,
        }
    }

    pub fn write_release(&self, version: &str, ready: bool) {
        self.write_dockerfile(&reuseport::dockerfile(
            &self.base, self.port, version, ready,
        ));
    }

    /// Writes the build context's Dockerfile.
    pub fn write_dockerfile(&self, text: &str) {
        std::fs::write(self.dir.path().join("Dockerfile"), text).unwrap();
    }

    /// A start-first target of the stack's `web` service.
    pub async fn target(&self, rig: &Rig) -> ComposeTarget {
        ComposeTarget::new(
            Arc::new(LocalShell::new()),
            rig.engine().await,
            self.project.clone(),
            "web",
            &self.repo,
        )
        .unwrap()
        .health_deadline(Duration::from_secs(60))
        .poll_interval(Duration::from_millis(200))
        .strategy(Strategy::StartFirst)
    }

    pub async fn containers(&self, target: &ComposeTarget) -> Vec<ContainerState> {
        target
            .engine()
            .service_containers(&self.project.name, "web")
            .await
            .unwrap()
    }

    pub async fn page(&self) -> Option<String> {
        http_get(self.port, "/").await
    }
}

/// Records the engine's container events of a compose project as (action, container id).
pub struct EventLog {
    seen: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventLog {
    pub fn start(docker: &bollard::Docker, project: &str) -> Self {
        // From a second ago, so nothing is lost while the stream connects.
        let since = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 1)
        .to_string();
        let filters = HashMap::from([
            ("type", vec!["container".to_string()]),
            (
                "label",
                vec![format!("com.docker.compose.project={project}")],
            ),
        ]);
        let options = EventsOptionsBuilder::new()
            .since(&since)
            .filters(&filters)
            .build();
        let mut stream = docker.events(Some(options));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(e)) = stream.next().await {
                let id = e.actor.and_then(|a| a.id).unwrap_or_default();
                into.lock()
                    .unwrap()
                    .push((e.action.unwrap_or_default(), id));
            }
        });
        Self { seen, task }
    }

    /// Waits (up to a minute, a deadline and not an assertion on time) until an
    /// event matching `want(action, id)` was seen, then returns everything seen.
    pub async fn until(self, want: impl Fn(&str, &str) -> bool) -> Vec<(String, String)> {
        for _ in 0..600 {
            if self.seen.lock().unwrap().iter().any(|(a, i)| want(a, i)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.task.abort();
        let seen = self.seen.lock().unwrap().clone();
        seen
    }
}
