//! From an environment's config to the parts of a pipeline. The only place that
//! knows which adapter implements which `kind`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deploykit_core::artifact_store::object::{ObjectDir, ObjectStoreSpec};
use deploykit_core::artifact_store::ArtifactBackend;
use deploykit_core::command_migrator::{CommandMigrator, MigrationCommands};
use deploykit_core::http::HttpProbe;
use deploykit_core::postgres::{DumpFormat as PgDumpFormat, PgDumpBackup, PgHealthProbe};
use deploykit_core::sql_migrations::{HistoryDialect, SqlMigrator};
use deploykit_core::sqlite::VacuumIntoBackup;
use deploykit_core::tcp::TcpProbe;
use deploykit_core::{Backup, Cmd, CommitTree, HealthProbe, LocalShell, Migrator, Secret, Target};

use crate::config::{
    self, BackupConfig, BackupPlace, Dialect, DumpFormat, Environment, LoadedConfig,
    MigrationsConfig, ProbeConfig, TargetConfig,
};
use crate::hosts::{self, HostShell};
use deploykit_core::shell::SshShell;
use deploykit_core::LocalTarget;
use deploykit_core::{Events, Shell};
use deploykit_core::{Fleet, Rollout};
use deploykit_docker::remote::{connect_over_ssh, DEFAULT_REMOTE_SOCKET};
use deploykit_docker::{
    ComposeCli, ComposeProject, ComposeRunMigrator, ComposeTarget, ContainerHealthProbe, Engine,
    ExecPgDumpBackup, Strategy,
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
}

/// A Compose target and what its backup, migrator and probe share with it.
pub struct ComposeStack {
    /// The target.
    pub target: Arc<ComposeTarget>,
    /// The engine (local, or forwarded over SSH).
    pub engine: Engine,
    /// The project.
    pub project: ComposeProject,
    /// The deployed service.
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
            let app = pm2_app_config(name, pm2)?;
            parts.hosts = hosts::connect(name, pm2, &loaded.base).await?;
            let wrap = |e: deploykit_core::Error| WiringError(format!("environment {name}: {e}"));
            let mut targets: Vec<(String, Arc<dyn Target>)> = Vec::new();
            for (host, shell) in &parts.hosts {
                targets.push((
                    host.clone(),
                    Arc::new(Pm2Target::new(shell.shell(), app.clone()).map_err(wrap)?),
                ));
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
            let stack = compose_stack(loaded, name, compose, events.clone()).await?;
            parts.target = Some(stack.target.clone());
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
                let probe = ContainerHealthProbe::new(
                    stack.engine.clone(),
                    &stack.project.name,
                    &stack.service,
                );
                parts.probes.push(Arc::new(probe));
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

/// Which database an environment's `database.url` names.
enum Database {
    /// `sqlite://path` (or `sqlite:path`).
    Sqlite(PathBuf),
    /// `postgres://…` / `postgresql://…`, kept secret.
    Postgres(Secret),
}

impl Database {
    fn parse(env: &str, url: &str) -> Result<Self, WiringError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(Secret::new(url)));
        }
        Err(WiringError(format!(
            "environment {env}: database.url must start with postgres://, postgresql:// or sqlite:// (got {}://…)",
            url.split("://").next().unwrap_or("?")
        )))
    }
}

fn needs_db<'a>(
    env: &str,
    what: &str,
    db: Option<&'a Database>,
) -> Result<&'a Database, WiringError> {
    db.ok_or_else(|| {
        WiringError(format!(
            "environment {env}: {what} needs [environments.{env}.database] url"
        ))
    })
}

fn backup_part(
    loaded: &LoadedConfig,
    env: &str,
    backup: &BackupConfig,
    db: Option<&Database>,
    compose: Option<&ComposeStack>,
) -> Result<Arc<dyn Backup>, WiringError> {
    let wrap = |e: deploykit_core::Error| WiringError(format!("environment {env}: {e}"));
    match backup {
        BackupConfig::Sqlite { dir, .. } => match needs_db(env, "backup kind sqlite", db)? {
            Database::Sqlite(path) => Ok(Arc::new(VacuumIntoBackup::new(
                loaded.resolve(path),
                loaded.resolve(dir),
            ))),
            Database::Postgres(_) => Err(WiringError(format!(
                "environment {env}: backup kind sqlite needs a sqlite:// database"
            ))),
        },
        BackupConfig::PgDump {
            format,
            compression,
            ..
        } => match needs_db(env, "backup kind pg_dump", db)? {
            Database::Postgres(url) => {
                let format = match format {
                    DumpFormat::Custom => PgDumpFormat::Custom,
                    DumpFormat::PlainGzip => PgDumpFormat::PlainGzip,
                };
                let (dir, store) = backup_place(loaded, env, backup)?;
                let mut part = PgDumpBackup::new(url, dir)
                    .map_err(wrap)?
                    .format(format)
                    .compression(*compression);
                if let Some(store) = store {
                    part = part.backend(store);
                }
                Ok(Arc::new(part))
            }
            Database::Sqlite(_) => Err(WiringError(format!(
                "environment {env}: backup kind pg_dump needs a postgres:// database"
            ))),
        },
        BackupConfig::ComposeExec {
            service,
            database,
            user,
            compression,
            ..
        } => {
            let stack = compose.ok_or_else(|| {
                WiringError(format!(
                    "environment {env}: backup kind compose_exec needs a compose target"
                ))
            })?;
            let (dir, store) = backup_place(loaded, env, backup)?;
            let mut part = ExecPgDumpBackup::new(
                stack.engine.clone(),
                &stack.project.name,
                service,
                database,
                user,
                dir,
            )
            .compression(*compression);
            if let Some(store) = store {
                part = part.backend(store);
            }
            Ok(Arc::new(part))
        }
    }
}

/// The local directory of a backup (resolved against the config file), and its
/// object store when `store` is set (the directory is then unused).
pub(crate) fn backup_place(
    loaded: &LoadedConfig,
    env: &str,
    backup: &BackupConfig,
) -> Result<(PathBuf, Option<Arc<dyn ArtifactBackend>>), WiringError> {
    match backup
        .place()
        .map_err(|e| WiringError(format!("environment {env}: backup: {e}")))?
    {
        BackupPlace::Dir(dir) => Ok((loaded.resolve(&dir), None)),
        BackupPlace::Store {
            url,
            endpoint,
            region,
            access_key_id,
            secret_access_key,
        } => {
            let spec = ObjectStoreSpec {
                url,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
            };
            let store = ObjectDir::connect(&spec)
                .map_err(|e| WiringError(format!("environment {env}: {e}")))?;
            Ok((PathBuf::new(), Some(Arc::new(store))))
        }
    }
}

fn migrator_part(
    loaded: &LoadedConfig,
    env: &str,
    migrations: &MigrationsConfig,
    db: Option<&Database>,
    compose: Option<&ComposeStack>,
) -> Result<Option<Arc<dyn Migrator>>, WiringError> {
    let wrap = |e: deploykit_core::Error| WiringError(format!("environment {env}: {e}"));
    // In a git repository, each call reads the commit of the release it concerns;
    // outside one there is no commit, and the directory is read as it is.
    let in_repository = |path: &std::path::Path| CommitTree::repository_of(path).is_ok();
    match migrations {
        MigrationsConfig::Sql { dir, dialect } => {
            let dialect = match dialect {
                Dialect::Deploykit => HistoryDialect::Deploykit,
                Dialect::Supabase => HistoryDialect::Supabase,
                Dialect::Sqlx => HistoryDialect::Sqlx,
            };
            let mut migrator = match needs_db(env, "migrations kind sql", db)? {
                Database::Sqlite(path) => SqlMigrator::sqlite_with_dialect(
                    loaded.resolve(path),
                    loaded.resolve(dir),
                    dialect,
                )
                .map_err(wrap)?,
                Database::Postgres(url) => {
                    SqlMigrator::postgres(url, loaded.resolve(dir), dialect).map_err(wrap)?
                }
            };
            if in_repository(&loaded.resolve(dir)) {
                migrator = migrator.from_release_commits();
            }
            migrator = migrator.allow_drift(loaded.accept_drift);
            Ok(Some(Arc::new(migrator)))
        }
        MigrationsConfig::Command {
            up,
            current,
            down,
            base_revision,
            dir,
        } => {
            let dir = loaded.resolve(dir);
            let cmd = |what: &str, argv: &[String]| -> Result<Cmd, WiringError> {
                let (program, args) = argv.split_first().ok_or_else(|| {
                    WiringError(format!("environment {env}: migrations.{what} is empty"))
                })?;
                Ok(Cmd::new(program).args(args.iter().cloned()).cwd(&dir))
            };
            let commands = MigrationCommands {
                up: cmd("up", up)?,
                current: cmd("current", current)?,
                down_to: cmd("down", down)?,
                pending: None,
                base_revision: Some(base_revision.clone()),
            };
            // The tool reads its migrations from its working directory: each call
            // runs it in an export of the deployed commit, not in the checkout.
            let mut migrator = CommandMigrator::new(Arc::new(LocalShell::new()), commands);
            if in_repository(&dir) {
                migrator = migrator.from_release_commits();
            }
            Ok(Some(Arc::new(migrator)))
        }
        MigrationsConfig::ComposeRun {
            service,
            up,
            current,
            down,
        } => {
            let stack = compose.ok_or_else(|| {
                WiringError(format!(
                    "environment {env}: migrations kind compose_run needs a compose target"
                ))
            })?;
            // The one-off container runs the image of the release each call concerns.
            let mut m = ComposeRunMigrator::new(&stack.target, up.clone());
            if let Some(service) = service {
                m = m.run_service(service).map_err(wrap)?;
            }
            if let Some(current) = current {
                m = m.revision_command(current.clone());
            }
            if let Some(down) = down {
                m = m.revert_command(down.clone());
            }
            Ok(Some(Arc::new(m)))
        }
    }
}

fn probe_part(
    env: &str,
    probe: &ProbeConfig,
    db: Option<&Database>,
) -> Result<Arc<dyn HealthProbe>, WiringError> {
    let wrap = |e: deploykit_core::Error| WiringError(format!("environment {env}: {e}"));
    match probe {
        ProbeConfig::Http {
            url,
            expect_status,
            max_latency_ms,
            json_status,
        } => Ok(Arc::new(
            HttpProbe::get(url.clone())
                .map_err(wrap)?
                .expect_status(*expect_status)
                .max_latency(Duration::from_millis(*max_latency_ms))
                .json_status(*json_status),
        )),
        ProbeConfig::Tcp { address } => Ok(Arc::new(TcpProbe::new(address.clone()))),
        ProbeConfig::Postgres {
            max_latency_ms,
            tables,
            rls_tables,
        } => match needs_db(env, "probe kind postgres", db)? {
            Database::Postgres(url) => Ok(Arc::new(
                PgHealthProbe::new(url)
                    .map_err(wrap)?
                    .max_latency(Duration::from_millis(*max_latency_ms))
                    .require_tables(tables.clone())
                    .require_rls(rls_tables.clone()),
            )),
            Database::Sqlite(_) => Err(WiringError(format!(
                "environment {env}: probe kind postgres needs a postgres:// database"
            ))),
        },
        ProbeConfig::Pm2 { .. } => Err(WiringError(format!(
            "environment {env}: probe kind pm2 needs a pm2 target"
        ))),
        ProbeConfig::Container => Err(WiringError(format!(
            "environment {env}: probe kind container needs a compose target"
        ))),
    }
}

/// Connects to the stack's engine (local socket, or forwarded over SSH) and builds
/// its target.
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

async fn compose_stack(
    loaded: &LoadedConfig,
    env: &str,
    c: &config::ComposeConfig,
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
    let target = ComposeTarget::new(shell, engine.clone(), project.clone(), &c.service, &c.image)
        .map_err(wrap)?
        .health_deadline(Duration::from_secs(c.health_wait_secs))
        .strategy(match c.strategy {
            config::ComposeStrategy::StopFirst => Strategy::StopFirst,
            config::ComposeStrategy::StartFirst => Strategy::StartFirst,
        })
        .events(events);
    // Builds use the deployed commit's tree as their context, not the checkout.
    let target = match project.files.first().map(|f| CommitTree::repository_of(f)) {
        Some(Ok(repo)) => target.build_from_repository(repo),
        _ => target,
    };
    Ok(ComposeStack {
        target: Arc::new(target),
        engine,
        project,
        service: c.service.clone(),
        ssh,
        _socket_dir: socket_dir,
    })
}

/// The per-host PM2 app settings from the environment's target table.
fn pm2_app_config(env: &str, pm2: &config::Pm2Config) -> Result<Pm2AppConfig, WiringError> {
    let cmd = |argv: &Vec<String>| -> Result<Cmd, WiringError> {
        let (program, args) = argv.split_first().ok_or_else(|| {
            WiringError(format!(
                "environment {env}: an install/build command is empty"
            ))
        })?;
        Ok(Cmd::new(program).args(args.iter().cloned()))
    };
    let mut app = Pm2AppConfig::new(
        &pm2.app,
        &pm2.deploy_to,
        Source::Git {
            repo: pm2.repo.clone(),
        },
    );
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
