//! The CRM pipeline in code: a Compose stack on the local engine, the backend
//! built and tagged per release, Prisma run in a one-off container of the new
//! image before the switch, pg_dump inside the db container, and a rollback to the
//! previous tag when the new container is not healthy.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deploykit_core::http::{install_crypto_provider, HttpProbe};
use deploykit_core::{
    Commit, Events, FileLock, LocalShell, LocalStore, MigrationFailurePolicy, Pipeline, Policy,
    ReleaseId, ReleaseSpec,
};
use deploykit_docker::{
    ComposeCli, ComposeProject, ComposeRunMigrator, ComposeTarget, ContainerHealthProbe, Engine,
    ExecPgDumpBackup,
};
use deploykit_examples::{exit_code, var, Lines};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    install_crypto_provider();
    let commit = Commit::parse(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: crm-deploy <commit>"))?,
    )?;
    let dir = PathBuf::from(var("CRM_DIR")?);
    let docker_host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let shell = Arc::new(LocalShell::new());
    let engine = Engine::connect(&docker_host, format!("docker engine {docker_host}")).await?;
    let cli = ComposeCli::detect(shell.as_ref()).await?;
    let project = ComposeProject::new("crm", vec![dir.join("docker-compose.yml")], cli)?
        .docker_host(&docker_host);
    let target = ComposeTarget::new(shell, engine.clone(), project, "backend", "crm-backend")?
        .health_deadline(Duration::from_secs(150));

    let release = ReleaseId::for_commit(time::OffsetDateTime::now_utc(), &commit);
    let migrator = ComposeRunMigrator::new(
        &target,
        vec!["/app/bin/prisma".into(), "migrate".into(), "deploy".into()],
    )
    .run_service("backend-migrate")?
    .revision_command(vec![
        "/app/bin/prisma".into(),
        "migrate".into(),
        "status".into(),
    ]);
    let policy = Policy::default()
        .migration_failure(MigrationFailurePolicy::Keep)
        .keep_backups(5);
    let pipeline = Pipeline::new("production")
        .backup(Arc::new(ExecPgDumpBackup::new(
            engine.clone(),
            "crm",
            "db",
            "crm",
            "crm",
            dir.join("backups"),
        )))
        .migrator(Arc::new(migrator))
        .probe(Arc::new(ContainerHealthProbe::new(
            engine, "crm", "backend",
        )))
        .probe(Arc::new(
            HttpProbe::get(format!("{}/api/health", var("CRM_URL")?))?.json_status(true),
        ))
        .target(Arc::new(target))
        .policy(policy)
        .lock(Arc::new(FileLock::new(
            dir.join(".deploykit/locks/production.lock"),
        )))
        .events(Events::none().with(Arc::new(Lines)));

    let spec = ReleaseSpec {
        id: release,
        commit,
        branch: None,
    };
    let report = pipeline
        .run_in(
            &LocalStore::in_dir(dir.join(".deploykit/journal/production")),
            &spec,
        )
        .await?;
    std::process::exit(exit_code(report.outcome));
}
