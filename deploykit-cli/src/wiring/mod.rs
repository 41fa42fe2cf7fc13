//! From an environment's config to the parts of a pipeline. The only place that
//! knows which adapter implements which `kind`.

use std::sync::Arc;
use std::time::Duration;

use deploykit_core::{Backup, Cmd, HealthProbe, Migrator, Target};

use crate::config::{self, Environment, LoadedConfig, ProbeConfig, TargetConfig};
use crate::hosts::{self, HostShell};
use deploykit_core::shell::SshShell;
use deploykit_core::Events;
use deploykit_core::LocalTarget;
use deploykit_core::{Fleet, Rollout};
use deploykit_docker::{
    ComposeProject, ComposeServices, ComposeTarget, ContainerHealthProbe, Engine,
};
use deploykit_pm2::{Pm2Config as Pm2AppConfig, Pm2Probe, Pm2Target, Source};

/// The parts of one environment, ready to go into a pipeline.
#[derive(Default)]
pub struct Parts {
    /// Where releases go.
    pub target: Option<Arc<dyn Target>>,
    /// The local target, when that is the kind (the demo stops its app at the end).
    pub local: Option<Arc<LocalTarget>>,
    /// How backups are taken.
    pub backup: Option<Arc<dyn Backup>>,
    /// How migrations are applied.
    pub migrator: Option<Arc<dyn Migrator>>,
    /// Health probes.
    pub probes: Vec<Arc<dyn HealthProbe>>,
    /// Host shells opened for this environment (closed by [`Parts::close`]).
    pub hosts: Vec<(String, HostShell)>,
    /// The Compose stack, when that is the target.
    pub compose: Option<ComposeStack>,
    /// The PM2 targets, one per host (also inside `target`): `rollback` tells them
    /// which release already served on their host.
    pub pm2: Vec<Arc<Pm2Target>>,
}

/// A Compose target and what its backup, migrator and probe share with it.
pub struct ComposeStack {
    /// The target of the (first) service: each release's image is made from it,
    /// and migrations and backups use it.
    pub target: Arc<ComposeTarget>,
    /// With `services`: every service, deployed as one release.
    pub services: Option<Arc<ComposeServices>>,
    /// The engine (local, or forwarded over SSH).
    pub engine: Engine,
    /// The project.
    pub project: ComposeProject,
    /// The deployed (first) service.
    pub service: String,
    /// The SSH connection of a remote engine.
    pub ssh: Option<Arc<SshShell>>,
    /// The private directory of a remote engine's forwarded socket (removed when
    /// the stack is dropped).
    pub _socket_dir: Option<tempfile::TempDir>,
}

impl Parts {
    /// Closes SSH master connections; failures are only worth a warning.
    pub async fn close(&self) {
        for (name, host) in &self.hosts {
            if let HostShell::Ssh(ssh) = host {
                if let Err(e) = ssh.close().await {
                    eprintln!("warning: closing the SSH connection to {name}: {e}");
                }
            }
        }
    }
}

/// A config that names something this build cannot do.
#[derive(Debug)]
pub struct WiringError(pub String);

impl std::fmt::Display for WiringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WiringError {}

/// Builds the environment's parts, bound to no release: everything that reads the
/// project's files (migrations, build contexts, migration tools) reads them, per
/// call, from the commit of the release that call concerns, never from the working
/// tree.
pub async fn parts(
    loaded: &LoadedConfig,
    name: &str,
    env: &Environment,
    events: Events,
) -> Result<Parts, WiringError> {
    let mut parts = Parts::default();
    let mut fleet_hosts: Vec<(String, Arc<dyn Target>)> = Vec::new();
    // The probes of one host (the PM2 probe, probes whose address names `{host}`):
    // a rolling fleet's batch gate.
    let mut host_probes: Vec<(String, Arc<dyn HealthProbe>)> = Vec::new();
    match &env.target {
        None => {}
        Some(TargetConfig::Local {
            deploy_to,
            repo,
            build,
            start,
            port,
        }) => {
            let t = Arc::new(LocalTarget::new(
                loaded.resolve(deploy_to),
                loaded.resolve(repo),
                build.clone(),
                start.clone(),
                *port,
            ));
            parts.local = Some(t.clone());
            parts.target = Some(t);
        }
        Some(TargetConfig::Pm2(pm2)) => {
            // Every value bound for remote paths and command lines is checked before
            // the first connection: a hostile config never reaches a host.
            let mut app = pm2_app_config(name, pm2)?;
            if let Source::Artifact { tarball } = &mut app.source {
                tarball.clone_from(&loaded.artifact);
            }
            parts.hosts = hosts::connect(name, pm2, &loaded.base).await?;
            let wrap = |e: deploykit_core::Error| WiringError(format!("environment {name}: {e}"));
            let mut targets: Vec<(String, Arc<dyn Target>)> = Vec::new();
            for (host, shell) in &parts.hosts {
                let t = Arc::new(Pm2Target::new(shell.shell(), app.clone()).map_err(wrap)?);
                parts.pm2.push(t.clone());
                targets.push((host.clone(), t));
            }
            if targets.len() == 1 {
                parts.target = Some(targets.remove(0).1);
            } else {
                // Built once the probes are known: each host's own probes gate
                // its batch.
                fleet_hosts = targets;
            }
        }
        Some(TargetConfig::Compose(compose)) => {
            // A start-first container without a HEALTHCHECK replaces the old one
            // only once the probes that ask the app itself pass.
            let readiness = env
                .probes
                .iter()
                .filter(|p| matches!(p, ProbeConfig::Http { .. } | ProbeConfig::Tcp { .. }))
                .map(|p| probe_part(name, p, None))
                .collect::<Result<Vec<_>, _>>()?;
            let stack = compose_stack(loaded, name, compose, readiness, events.clone()).await?;
            parts.target = Some(match &stack.services {
                Some(services) => services.clone() as Arc<dyn Target>,
                None => stack.target.clone(),
            });
            if let Some(ssh) = &stack.ssh {
                parts.hosts.push((
                    compose.host.clone().unwrap_or_default(),
                    HostShell::Ssh(ssh.clone()),
                ));
            }
            parts.compose = Some(stack);
        }
    }
    let database = env
        .database
        .as_ref()
        .map(|d| Database::parse(name, d.url.expose()))
        .transpose()?;
    if let Some(backup) = &env.backup {
        parts.backup = Some(backup_part(
            loaded,
            name,
            backup,
            database.as_ref(),
            parts.compose.as_ref(),
        )?);
    }
    if let Some(migrations) = &env.migrations {
        parts.migrator = migrator_part(
            loaded,
            name,
            migrations,
            database.as_ref(),
            parts.compose.as_ref(),
        )?;
    }
    for probe in &env.probes {
        match probe {
            ProbeConfig::Pm2 { settle_secs } => {
                let Some(TargetConfig::Pm2(pm2)) = &env.target else {
                    return Err(WiringError(format!(
                        "environment {name}: probe kind pm2 needs a pm2 target"
                    )));
                };
                let app = pm2_app_config(name, pm2)?;
                for (host, shell) in &parts.hosts {
                    let mut p = Pm2Probe::new(shell.shell(), app.clone())
                        .settle(Duration::from_secs(*settle_secs));
                    if let Some(n) = pm2.instances {
                        p = p.instances(n);
                    }
                    let p: Arc<dyn HealthProbe> = Arc::new(p);
                    host_probes.push((host.clone(), p.clone()));
                    parts.probes.push(p);
                }
            }
            ProbeConfig::Container => {
                let stack = parts.compose.as_ref().ok_or_else(|| {
                    WiringError(format!(
                        "environment {name}: probe kind container needs a compose target"
                    ))
                })?;
                match &stack.services {
                    // Every service, each judged by what the live release runs.
                    Some(services) => {
                        for probe in services.container_probes() {
                            parts.probes.push(Arc::new(probe));
                        }
                    }
                    None => parts.probes.push(Arc::new(ContainerHealthProbe::new(
                        stack.engine.clone(),
                        &stack.project.name,
                        &stack.service,
                    ))),
                }
            }
            other if hosts::names_host(other) => {
                if parts.hosts.is_empty() {
                    return Err(WiringError(format!(
                        "environment {name}: a probe names {{host}}, but the target has no hosts to put there; write the address instead"
                    )));
                }
                for (host, _) in &parts.hosts {
                    let one = hosts::for_host(other, host);
                    let p = probe_part(name, &one, database.as_ref())?;
                    host_probes.push((host.clone(), p.clone()));
                    parts.probes.push(p);
                }
            }
            other => parts
                .probes
                .push(probe_part(name, other, database.as_ref())?),
        }
    }
    if let Some(TargetConfig::Pm2(pm2)) = &env.target {
        if !fleet_hosts.is_empty() {
            let rollout = if pm2.batch == 0 {
                Rollout::AllAtOnce
            } else {
                Rollout::Rolling { batch: pm2.batch }
            };
            let health = env.policy.to_policy(false, None).health;
            let mut fleet = Fleet::new(fleet_hosts)
                .rollout(rollout)
                .gate_rounds(health.attempts, health.interval);
            if let Some(n) = pm2.max_parallel {
                fleet = fleet.max_parallel(n);
            }
            for (host, probe) in host_probes {
                fleet = fleet
                    .gate(&host, probe)
                    .map_err(|e| WiringError(format!("environment {name}: {e}")))?;
            }
            parts.target = Some(Arc::new(fleet));
        }
    }
    Ok(parts)
}

mod backup;
mod compose;
mod database;
mod migrator;
mod probe;

use backup::backup_part;
pub(crate) use backup::backup_place;
use compose::compose_stack;
use database::{needs_db, Database};
use migrator::migrator_part;
use probe::probe_part;

/// The per-host PM2 app settings from the environment's target table.
pub(super) fn pm2_app_config(
    env: &str,
    pm2: &config::Pm2Config,
) -> Result<Pm2AppConfig, WiringError> {
    let cmd = |argv: &Vec<String>| -> Result<Cmd, WiringError> {
        let (program, args) = argv.split_first().ok_or_else(|| {
            WiringError(format!(
                "environment {env}: an install/build command is empty"
            ))
        })?;
        Ok(Cmd::new(program).args(args.iter().cloned()))
    };
    crate::source_artifact::check_source(env, pm2).map_err(WiringError)?;
    let source = match pm2.source {
        config::Pm2Source::Git => Source::Git {
            repo: pm2.repo.clone(),
        },
        config::Pm2Source::Artifact => Source::Artifact { tarball: None },
    };
    let names = pm2.app_names();
    let mut app = Pm2AppConfig::new(&names[0], &pm2.deploy_to, source);
    for other in &names[1..] {
        app = app.with_app(other);
    }
    app.ecosystem = pm2.ecosystem.clone();
    app.linked_files = pm2.linked_files.clone();
    app.linked_dirs = pm2.linked_dirs.clone();
    app.adopt_running = pm2.adopt_running;
    for argv in pm2.install.iter().chain(&pm2.build) {
        app = app.build_step(cmd(argv)?);
    }
    if let Some(home) = &pm2.pm2_home {
        app = app.pm2_home(home);
    }
    for (k, v) in &pm2.env {
        app = app.env(k, v.expose());
    }
    app.validate()
        .map_err(|e| WiringError(format!("environment {env}: {e}")))?;
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_become_one_pm2_config_with_every_app_first_one_first() {
        let pm2: config::Pm2Config = toml::from_str(
            "hosts = [\"local\"]\ndeploy_to = \"/srv/a\"\nrepo = \"r\"\napps = [\"web\", \"worker\"]\n",
        )
        .unwrap();
        let app = pm2_app_config("s", &pm2).unwrap();
        assert_eq!(app.app, "web");
        assert_eq!(app.app_names(), ["web", "worker"]);
        let one: config::Pm2Config = toml::from_str(
            "hosts = [\"local\"]\ndeploy_to = \"/srv/a\"\nrepo = \"r\"\napp = \"web\"\n",
        )
        .unwrap();
        assert_eq!(pm2_app_config("s", &one).unwrap().app_names(), ["web"]);
    }
}
