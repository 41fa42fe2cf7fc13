//! The MUVA pipeline in code: one SSH connection to the VPS, a PM2 cluster app in
//! release directories, Supabase migrations with the Supabase CLI's history table,
//! a verified pg_dump before migrating, and the seeds' probes.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use deploykit_core::http::{install_crypto_provider, HttpProbe};
use deploykit_core::postgres::PgDumpBackup;
use deploykit_core::shell::{SshConfig, SshShell};
use deploykit_core::sql_migrations::{HistoryDialect, SqlMigrator};
use deploykit_core::{
    Cmd, Commit, Events, FileLock, LocalStore, Pipeline, Policy, ReleaseId, ReleaseSpec, Secret,
};
use deploykit_examples::{exit_code, var, Lines};
use deploykit_pm2::{Pm2Config, Pm2Probe, Pm2Target, Source};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    install_crypto_provider();
    let commit = Commit::parse(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: muva-deploy <commit>"))?,
    )?;
    let ssh = Arc::new(
        SshShell::connect(
            &SshConfig::parse_destination(&var("MUVA_HOST")?)?
                .key_file(var("MUVA_KEY")?)
                .known_hosts_file(var("MUVA_KNOWN_HOSTS")?),
        )
        .await?,
    );
    let database = Secret::new(var("DATABASE_URL")?);
    let url = var("MUVA_URL")?;

    let app = Pm2Config::new(
        "muva",
        "/srv/muva",
        Source::Git {
            repo: var("MUVA_REPO")?,
        },
    )
    .build_step(Cmd::new("npm").args(["ci"]))
    .build_step(Cmd::new("npm").args(["run", "build"]));
    let pipeline = Pipeline::new("staging")
        .target(Arc::new(Pm2Target::new(ssh.clone(), app.clone())?))
        .backup(Arc::new(PgDumpBackup::new(&database, "backups/staging")?))
        .migrator(Arc::new(SqlMigrator::postgres(
            &database,
            "supabase/migrations",
            HistoryDialect::Supabase,
        )?))
        .probe(Arc::new(
            HttpProbe::get(format!("{url}/api/health"))?
                .max_latency(Duration::from_secs(5))
                .json_status(true),
        ))
        .probe(Arc::new(
            HttpProbe::get(format!("{url}/api/health/db"))?.max_latency(Duration::from_secs(1)),
        ))
        .probe(Arc::new(
            HttpProbe::get(format!("{url}/"))?.max_latency(Duration::from_secs(3)),
        ))
        .probe(Arc::new(Pm2Probe::new(ssh.clone(), app).instances(2)))
        .policy(Policy::default())
        .lock(Arc::new(FileLock::new(".deploykit/locks/staging.lock")))
        .events(Events::none().with(Arc::new(Lines)));

    let spec = ReleaseSpec {
        id: ReleaseId::for_commit(time::OffsetDateTime::now_utc(), &commit),
        commit,
        branch: None,
    };
    let report = pipeline
        .run_in(&LocalStore::in_dir(".deploykit/journal/staging"), &spec)
        .await;
    ssh.close().await?;
    std::process::exit(exit_code(report?.outcome));
}
