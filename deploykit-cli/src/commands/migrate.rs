//! `deploykit migrate status|plan|apply|revert`.

use std::path::Path;

use anyhow::Result;
use deploykit_core::{AppliedSet, BackupRequest, Commit, Compensation, Record, ReleaseId};

use super::EnvContext;
use crate::cli::MigrateCommand;
use crate::config::ConfigError;
use crate::exit;
use crate::render::Mode;

/// Runs a migrate subcommand.
pub async fn run(config: &Path, cmd: &MigrateCommand, mode: Mode) -> Result<u8> {
    let env = match cmd {
        MigrateCommand::Status(a) | MigrateCommand::Plan(a) | MigrateCommand::Apply(a) => &a.env,
        MigrateCommand::Revert(r) => &r.env,
    };
    let ctx = EnvContext::open(config, env, mode).await?;
    let migrator = ctx.parts.migrator.clone().ok_or_else(|| match ctx.env().migrations {
        Some(_) => ConfigError(format!(
            "environment {}'s migrations run in a container of the release being deployed; use `deploykit deploy`",
            ctx.name
        )),
        None => ConfigError(format!("environment {} has no [migrations] configured", ctx.name)),
    })?;
    match cmd {
        MigrateCommand::Status(_) => {
            let s = migrator.status().await?;
            if mode == Mode::Json {
                println!(
                    "{}",
                    serde_json::json!({"event": "migrations", "status": s})
                );
            } else {
                for (label, list) in [
                    ("applied", &s.applied),
                    ("pending", &s.pending),
                    ("missing on disk", &s.missing),
                    ("DRIFTED", &s.drifted),
                ] {
                    for m in list {
                        println!("  {label:<16} {m}");
                    }
                }
                if s.applied.is_empty() && s.pending.is_empty() {
                    println!("  no migrations");
                }
            }
            Ok(if s.drifted.is_empty() && s.missing.is_empty() {
                exit::OK
            } else {
                exit::FAILED
            })
        }
        MigrateCommand::Plan(_) => {
            let plan = migrator.plan().await?;
            if mode == Mode::Json {
                println!(
                    "{}",
                    serde_json::json!({"event": "plan", "migrations": plan})
                );
            } else if plan.is_empty() {
                println!("nothing pending");
            } else {
                for m in &plan.migrations {
                    println!(
                        "  {}{}",
                        m.id,
                        if m.reversible {
                            ""
                        } else {
                            "  (no down script)"
                        }
                    );
                    for f in &m.findings {
                        println!(
                            "      lint {}: {}{}",
                            f.rule,
                            f.message,
                            if m.allowed { " (allowed)" } else { "" }
                        );
                    }
                }
            }
            Ok(exit::OK)
        }
        MigrateCommand::Apply(_) => {
            let plan = migrator.plan().await?;
            if plan.is_empty() {
                super::say(
                    mode,
                    "nothing pending",
                    serde_json::json!({"event": "applied", "migrations": []}),
                );
                return Ok(exit::OK);
            }
            let backup = ctx.parts.backup.clone().ok_or_else(|| {
                ConfigError("applying migrations needs a [backup] to take one first; run them through `deploy` or configure a backup".into())
            })?;
            let request = BackupRequest {
                env: ctx.name.clone(),
                release: ReleaseId::parse("migrate")?,
                commit: Commit::parse("manual")?,
                branch: None,
            };
            let artifact = backup.create(&request).await?;
            backup.verify(&artifact).await?;
            eprintln!("backup: {}", artifact.path.display());
            let applied = migrator.apply(&plan).await?;
            let names: Vec<String> = applied.migrations.iter().map(|m| m.to_string()).collect();
            super::say(
                mode,
                &format!("applied: {}", names.join(", ")),
                serde_json::json!({"event": "applied", "migrations": names, "backup": artifact}),
            );
            Ok(exit::OK)
        }
        MigrateCommand::Revert(r) => {
            let path = ctx.journals().path_of(&r.run);
            let records = deploykit_core::journal::read_records(&path)?;
            let set: Option<AppliedSet> = records.iter().find_map(|rec| match rec {
                Record::Intent {
                    undo:
                        Some(
                            Compensation::RevertMigrations { applied }
                            | Compensation::KeepSchema { applied },
                        ),
                    ..
                } => Some(applied.clone()),
                _ => None,
            });
            let Some(set) = set else {
                return Err(ConfigError(format!("run {} applied no migrations", r.run)).into());
            };
            migrator.revert(&set).await?;
            let names: Vec<String> = set.migrations.iter().map(|m| m.to_string()).collect();
            super::say(
                mode,
                &format!("reverted (where applied): {}", names.join(", ")),
                serde_json::json!({"event": "reverted", "migrations": names}),
            );
            Ok(exit::OK)
        }
    }
}
