//! `deploykit backup create|list|verify|restore`.

use std::path::Path;

use anyhow::Result;
use deploykit_core::{
    BackupArtifact, BackupExt, BackupRequest, Commit, ConfirmDestructive, ReleaseId,
};
use time::OffsetDateTime;

use super::EnvContext;
use crate::cli::{BackupCommand, BackupPick, RestoreArgs};
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
    let all = backup_of(&ctx)?.list().await?;
    if mode == Mode::Json {
        println!(
            "{}",
            serde_json::json!({"event": "backups", "artifacts": all})
        );
    } else if all.is_empty() {
        println!("no backups");
    } else {
        for a in &all {
            println!("{}", show(a));
        }
    }
    Ok(exit::OK)
}

async fn pick(backup: &dyn deploykit_core::Backup, path: Option<&Path>) -> Result<BackupArtifact> {
    let all = backup.list().await?;
    match path {
        Some(p) => all
            .into_iter()
            .find(|a| {
                a.path == p || a.path.file_name() == p.file_name() && p.components().count() == 1
            })
            .ok_or_else(|| {
                ConfigError(format!(
                    "{} is not a complete backup of this environment (see `backup list`)",
                    p.display()
                ))
                .into()
            }),
        None => backup
            .latest()
            .await?
            .ok_or_else(|| ConfigError("there are no backups yet".into()).into()),
    }
}

async fn verify(config: &Path, p: &BackupPick, mode: Mode) -> Result<u8> {
    let ctx = EnvContext::open(config, &p.env, mode).await?;
    let backup = backup_of(&ctx)?;
    let artifact = pick(backup.as_ref(), p.path.as_deref()).await?;
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
    let artifact = pick(backup.as_ref(), Some(&r.path)).await?;
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
