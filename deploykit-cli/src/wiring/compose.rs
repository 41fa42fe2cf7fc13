//! A Compose environment: how it reaches its engine, and its target.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deploykit_core::{CommitTree, HealthProbe, LocalShell};

use crate::config::{self, LoadedConfig};
use crate::hosts::{self};
use deploykit_core::shell::SshShell;
use deploykit_core::{Events, Shell};
use deploykit_docker::remote::{connect_over_ssh, DEFAULT_REMOTE_SOCKET};
use deploykit_docker::{
    ComposeCli, ComposeProject, ComposeServices, ComposeTarget, Engine, Strategy,
};

use super::{ComposeStack, WiringError};

/// How a Compose environment reaches its engine: the shell compose runs in, the
/// engine, the SSH connection and forwarded socket's directory of a remote one, and
/// the `DOCKER_HOST` compose needs.
struct EngineReach {
    shell: Arc<dyn Shell>,
    engine: Engine,
    ssh: Option<Arc<SshShell>>,
    docker_host: Option<String>,
    socket_dir: Option<tempfile::TempDir>,
}

/// Connects to the stack's engine (local socket, or forwarded over SSH) and builds
/// its target.
pub(super) async fn compose_stack(
    loaded: &LoadedConfig,
    env: &str,
    c: &config::ComposeConfig,
    readiness: Vec<Arc<dyn HealthProbe>>,
    events: Events,
) -> Result<ComposeStack, WiringError> {
    let wrap = |e: deploykit_core::Error| WiringError(format!("environment {env}: {e}"));
    let files: Vec<PathBuf> = c.files.iter().map(|f| loaded.resolve(f)).collect();
    let EngineReach {
        shell,
        engine,
        ssh,
        docker_host,
        socket_dir,
    } = match c.host.as_deref() {
        Some(h) if h.starts_with("ssh://") => {
            let spec = &h["ssh://".len()..];
            let mut ssh_config = hosts::parse_ssh(env, spec)?;
            if let Some(k) = &c.key_file {
                ssh_config = ssh_config.key_file(loaded.resolve(k));
            }
            if let Some(k) = &c.known_hosts {
                ssh_config = ssh_config.known_hosts_file(loaded.resolve(k));
            }
            let ssh =
                Arc::new(SshShell::connect(&ssh_config).await.map_err(|e| {
                    WiringError(format!("environment {env}: cannot reach {h}: {e}"))
                })?);
            // A unix socket path holds at most 107 bytes and CI checkouts are deep
            // (`/home/runner/work/<repo>/<repo>/…`): the forwarded socket lives in a
            // short private directory of its own (0700), removed with the stack.
            let socket_dir = tempfile::Builder::new()
                .prefix("deploykit-")
                .tempdir()
                .map_err(|e| {
                    WiringError(format!(
                        "environment {env}: cannot make a directory for the engine's socket \
                         under {}: {e}",
                        std::env::temp_dir().display()
                    ))
                })?;
            let local = socket_dir.path().join(format!("{env}.sock"));
            let remote = c
                .engine_socket
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_REMOTE_SOCKET));
            let engine = connect_over_ssh(&ssh, &remote, &local)
                .await
                .map_err(wrap)?;
            // Compose on the host must talk to the same engine.
            let docker_host = c
                .engine_socket
                .as_ref()
                .map(|s| format!("unix://{}", s.display()));
            EngineReach {
                shell: ssh.clone(),
                engine,
                ssh: Some(ssh),
                docker_host,
                socket_dir: Some(socket_dir),
            }
        }
        other => {
            let host = other
                .map(str::to_string)
                .or_else(|| std::env::var("DOCKER_HOST").ok())
                .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
            let engine = Engine::connect(&host, format!("docker engine {host}"))
                .await
                .map_err(wrap)?;
            EngineReach {
                shell: Arc::new(LocalShell::new()),
                engine,
                ssh: None,
                docker_host: Some(host),
                socket_dir: None,
            }
        }
    };
    let cli = ComposeCli::detect(shell.as_ref()).await.map_err(wrap)?;
    let mut project = ComposeProject::new(&c.project, files, cli).map_err(wrap)?;
    if let Some(f) = &c.env_file {
        project = project.env_file(loaded.resolve(f));
    }
    if let Some(h) = docker_host {
        project = project.docker_host(h);
    }
    let names = c.service_names();
    let target = ComposeTarget::new(
        shell,
        engine.clone(),
        project.clone(),
        c.primary_service(),
        &c.image,
    )
    .map_err(wrap)?
    .health_deadline(Duration::from_secs(c.health_wait_secs))
    .readiness_probes(readiness)
    .strategy(match c.strategy {
        config::ComposeStrategy::Auto => Strategy::Auto,
        config::ComposeStrategy::StopFirst => Strategy::StopFirst,
        config::ComposeStrategy::StartFirst => Strategy::StartFirst,
    })
    .events(events);
    let target = match crate::source_image::image_source(env, c, loaded.image_tag.as_deref())
        .map_err(WiringError)?
    {
        // Built once, in CI: nothing is built on the host.
        Some(source) => target.source(source),
        // Builds use the deployed commit's tree as their context, not the checkout.
        None => match project.files.first().map(|f| CommitTree::repository_of(f)) {
            Some(Ok(repo)) => target.build_from_repository(repo),
            _ => target,
        },
    };
    // Several services: one release image made from the first, every service
    // switched, verified and rolled back together.
    let target = Arc::new(target);
    let services = match names.get(1..) {
        Some(others) if !others.is_empty() => Some(Arc::new(
            ComposeServices::new(target.clone(), others).map_err(wrap)?,
        )),
        _ => None,
    };
    Ok(ComposeStack {
        target,
        services,
        engine,
        project,
        service: c.primary_service().to_string(),
        ssh,
        _socket_dir: socket_dir,
    })
}
