//! `deploykit backup push --env E --from DIR`: moves an environment's existing
//! local backups into the object store its config now names, so switching from
//! `dir` to `store` loses no history and needs no other tool. Each artifact
//! keeps its name and metadata and is re-hashed on the way; those of other
//! environments or databases in a shared directory stay where they are.

use std::path::Path;

use anyhow::Result;
use deploykit_core::artifact_store::ArtifactStore;
use deploykit_core::{BackupScope, Ownership};

use super::super::EnvContext;
use crate::cli::PushArgs;
use crate::config::{BackupConfig, ConfigError, DumpFormat};
use crate::exit;
use crate::render::Mode;

/// Runs `backup push`.
pub async fn run(config: &Path, args: &PushArgs, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &args.env, mode).await?;
    let backup = super::backup_of(&ctx)?;
    let cfg = ctx
        .loaded
        .env(&ctx.name)?
        .backup
        .clone()
        .expect("backup_of checked it");
    let ext = match &cfg {
        BackupConfig::PgDump { format, .. } => match format {
            DumpFormat::Custom => "dump",
            DumpFormat::PlainGzip => "sql.gz",
        },
        BackupConfig::ComposeExec { .. } => "dump",
        BackupConfig::Sqlite { .. } => {
            return Err(ConfigError(
                "backup push moves pg_dump and compose_exec backups; sqlite backups stay in their `dir`"
                    .into(),
            )
            .into())
        }
    };
    let (_, store) = crate::wiring::backup_place(&ctx.loaded, &ctx.name, &cfg)?;
    let Some(store) = store else {
        return Err(ConfigError(format!(
            "environment {} keeps its backups in a local `dir`; set `store = \"s3://bucket/prefix\"` \
             (or `file:///path`) in its [backup] first, then push the old directory into it",
            ctx.name
        ))
        .into());
    };
    let to = ArtifactStore::on(store, ext);
    let from_dir = ctx.loaded.resolve(&args.from);
    if !from_dir.is_dir() {
        return Err(ConfigError(format!(
            "{} is not a directory; pass the old backup `dir` with --from",
            from_dir.display()
        ))
        .into());
    }
    let from = ArtifactStore::new(&from_dir, ext);
    let scope = BackupScope::new(ctx.name.clone(), backup.database_id());
    let (mut pushed, mut already, mut foreign) = (Vec::new(), 0usize, 0usize);
    for artifact in from.list().await? {
        if scope.ownership(&artifact) == Ownership::Foreign {
            foreign += 1;
            continue;
        }
        match to.import(&from, &artifact).await? {
            Some(copied) => {
                super::super::say(
                    mode,
                    &format!(
                        "pushed {} to {}",
                        artifact.path.display(),
                        copied.path.display()
                    ),
                    serde_json::json!({"event": "pushed", "from": artifact.path, "to": copied.path}),
                );
                pushed.push(copied);
            }
            None => already += 1,
        }
    }
    super::super::say(
        mode,
        &format!(
            "{} backup(s) pushed to {}, {already} already there, {foreign} of other environments \
             or databases left in {}; the local files were not removed",
            pushed.len(),
            to.location(),
            from_dir.display()
        ),
        serde_json::json!({
            "event": "push",
            "pushed": pushed,
            "already_there": already,
            "other_environments": foreign,
        }),
    );
    Ok(exit::OK)
}
