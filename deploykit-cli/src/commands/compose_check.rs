//! The compose side of a config, checked before a deploy does anything.
//!
//! A compose file that does not parse, or a service name that is not in it (the
//! target's, the backup's, the migrations'), used to surface in the middle of a
//! run: the unknown service only when the build asked for it, after the lock and
//! the backup. `compose config` reads the files exactly as the run will (env file
//! interpolated), so asking it first turns those mistakes into config errors
//! (exit 2) with nothing started.

use anyhow::Result;
use deploykit_core::shell::{LocalShell, Shell, ShellExt};
use serde_json::Value;

use super::EnvContext;
use crate::config::{BackupConfig, ConfigError, MigrationsConfig, TargetConfig};

/// Refuses the environment's compose files when they do not parse or lack a
/// service the config names. A no-op for other targets.
pub async fn validate(ctx: &EnvContext) -> Result<()> {
    let Some(stack) = &ctx.parts.compose else {
        return Ok(());
    };
    let files: Vec<String> = stack
        .project
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let local = LocalShell::new();
    let shell: &dyn Shell = match &stack.ssh {
        Some(ssh) => ssh.as_ref(),
        None => &local,
    };
    let out = shell
        .check("compose config", &stack.project.config())
        .await
        .map_err(|e| {
            ConfigError(format!(
                "environment {}: compose cannot read {}: {e}\nfix the file (`docker compose config` \
                 shows the same error); nothing was run",
                ctx.name,
                files.join(", ")
            ))
        })?;
    let resolved: Value = serde_saphyr::from_str(&out.stdout_text()).map_err(|e| {
        ConfigError(format!(
            "environment {}: cannot read `compose config` output for {}: {e}",
            ctx.name,
            files.join(", ")
        ))
    })?;
    let present: Vec<&str> = resolved["services"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for (key, service) in needed(ctx) {
        if !present.contains(&service.as_str()) {
            return Err(ConfigError(format!(
                "environment {}: {key} = \"{service}\" is not a service of {} (its services: {}); \
                 fix the name in deploykit.toml or the compose file; nothing was run",
                ctx.name,
                files.join(", "),
                present.join(", ")
            ))
            .into());
        }
    }
    Ok(())
}

/// The services the config names, with the key that names each.
fn needed(ctx: &EnvContext) -> Vec<(&'static str, String)> {
    let env = ctx.env();
    let mut needed = Vec::new();
    if let Some(TargetConfig::Compose(c)) = &env.target {
        let key = if c.services.is_some() {
            "target.services"
        } else {
            "target.service"
        };
        for service in c.service_names() {
            needed.push((key, service.to_string()));
        }
    }
    if let Some(BackupConfig::ComposeExec { service, .. }) = &env.backup {
        needed.push(("backup.service", service.clone()));
    }
    if let Some(MigrationsConfig::ComposeRun {
        service: Some(service),
        ..
    }) = &env.migrations
    {
        needed.push(("migrations.service", service.clone()));
    }
    needed
}
