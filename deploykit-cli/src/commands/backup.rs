//! `deploykit backup create|list|verify|restore`.

use std::path::Path;

use anyhow::Result;
use deploykit_core::{
    BackupArtifact, BackupExt, BackupRequest, BackupScope, Commit, ConfirmDestructive, Ownership,
    ReleaseId,
};
use time::OffsetDateTime;

use super::EnvContext;
use crate::cli::{BackupCommand, BackupPick, RestoreArgs};

mod push;
use crate::config::ConfigError;
use crate::exit;
use crate::render::Mode;

/// Runs a backup subcommand.
pub async fn run(config: &Path, cmd: &BackupCommand, mode: Mode) -> Result<u8> {
    match cmd {
        BackupCommand::Create(a) => create(config, &a.env, mode).await,
        BackupCommand::List(a) => list(config, &a.env, mode).await,
        BackupCommand::Verify(p) => verify(config, p, mode).await,
        BackupCommand::Restore(r) => restore(config, r, mode).await,
        BackupCommand::Push(p) => push::run(config, p, mode).await,
    }
}

fn backup_of(ctx: &EnvContext) -> Result<std::sync::Arc<dyn deploykit_core::Backup>> {
    ctx.parts.backup.clone().ok_or_else(|| {
        ConfigError(format!(
            "environment {} has no [backup] configured",
            ctx.name
        ))
        .into()
    })
}

fn show(a: &BackupArtifact) -> String {
    format!(
        "{}  {} bytes  sha256 {}  release {}  {}",
        a.path.display(),
        a.size,
        &a.sha256[..a.sha256.len().min(16)],
        a.release,
        a.created
    )
}

async fn create(config: &Path, env: &str, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, env, mode).await?;
    let backup = backup_of(&ctx)?;
    let release = match &ctx.parts.target {
        Some(t) => t.current().await?,
        None => None,
    };
    let release = release.unwrap_or(ReleaseId::parse("manual")?);
    let request = BackupRequest {
        env: ctx.name.clone(),
        release,
        commit: Commit::parse("manual")?,
        branch: None,
    };
    let artifact = backup.create(&request).await?;
    backup.verify(&artifact).await?;
    super::say(
        mode,
        &format!("created and verified {}", show(&artifact)),
        serde_json::json!({"event": "backup", "artifact": artifact}),
    );
    Ok(exit::OK)
}

async fn list(config: &Path, env: &str, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, env, mode).await?;
    let listing = backup_of(&ctx)?.list_scoped(&ctx.name).await?;
    const UNRECORDED: &str = "taken before deploykit recorded the database: never pruned automatically; remove it by hand when no longer needed";
    if mode == Mode::Json {
        crate::render::json::print_event(serde_json::json!({
            "event": "backups",
            "artifacts": listing.own,
            "unrecorded": listing.unrecorded,
            "unrecorded_note": UNRECORDED,
            "other_environments": listing.foreign,
        }));
        return Ok(exit::OK);
    }
    if listing.own.is_empty() && listing.unrecorded.is_empty() {
        println!("no backups");
    }
    for a in &listing.own {
        println!("{}", show(a));
    }
    for a in &listing.unrecorded {
        println!("{}  (note: {UNRECORDED})", show(a));
    }
    if listing.foreign > 0 {
        println!(
            "{} artifact(s) of other environments or databases share this store and are not shown",
            listing.foreign
        );
    }
    Ok(exit::OK)
}

/// The artifact at `path` (of any environment: the caller checks whose it is),
/// or this environment's newest.
async fn pick(
    backup: &dyn deploykit_core::Backup,
    env: &str,
    path: Option<&Path>,
) -> Result<BackupArtifact> {
    match path {
        Some(p) => backup
            .list()
            .await?
            .into_iter()
            .find(|a| {
                a.path == p || a.path.file_name() == p.file_name() && p.components().count() == 1
            })
            .ok_or_else(|| {
                ConfigError(format!(
                    "{} is not a complete backup in this environment's backup store (see `backup list`)",
                    p.display()
                ))
                .into()
            }),
        None => backup
            .latest(env)
            .await?
            .ok_or_else(|| ConfigError("there are no backups yet".into()).into()),
    }
}

async fn verify(config: &Path, p: &BackupPick, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &p.env, mode).await?;
    let backup = backup_of(&ctx)?;
    let artifact = pick(backup.as_ref(), &ctx.name, p.path.as_deref()).await?;
    match backup.verify(&artifact).await {
        Ok(()) => {
            super::say(
                mode,
                &format!("ok: {}", show(&artifact)),
                serde_json::json!({"event": "verify", "ok": true, "artifact": artifact}),
            );
            Ok(exit::OK)
        }
        Err(e) => {
            super::say(
                mode,
                &format!("FAILED: {e}"),
                serde_json::json!({"event": "verify", "ok": false, "error": e.to_string()}),
            );
            Ok(exit::FAILED)
        }
    }
}

async fn restore(config: &Path, r: &RestoreArgs, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &r.env, mode).await?;
    let backup = backup_of(&ctx)?;
    let artifact = pick(backup.as_ref(), &ctx.name, Some(&r.path)).await?;
    let scope = BackupScope::new(ctx.name.clone(), backup.database_id());
    scope.admit_restore(&artifact, r.from_env.as_deref())?;
    if scope.ownership(&artifact) == Ownership::Unrecorded {
        super::say(
            mode,
            &format!(
                "note: {} was taken in {} before deploykit recorded which database a backup holds",
                artifact.path.display(),
                ctx.name
            ),
            serde_json::json!({"event": "note", "unrecorded_database": artifact.path}),
        );
    }
    if !r.yes_replace_live_data {
        return Err(ConfigError(format!(
            "restoring {} replaces the current contents of {}'s database; pass --yes-replace-live-data to confirm",
            artifact.path.display(),
            ctx.name
        ))
        .into());
    }
    backup.verify(&artifact).await?;
    let started = OffsetDateTime::now_utc();
    backup
        .restore(
            &artifact,
            ConfirmDestructive::i_understand_this_replaces_live_data(),
        )
        .await?;
    let secs = (OffsetDateTime::now_utc() - started).as_seconds_f64();
    super::say(
        mode,
        &format!("restored {} in {secs:.1}s", artifact.path.display()),
        serde_json::json!({"event": "restore", "artifact": artifact}),
    );
    Ok(exit::OK)
}
