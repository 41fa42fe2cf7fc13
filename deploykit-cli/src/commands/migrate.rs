//! `deploykit migrate status|plan|apply|revert`.

use std::path::Path;

use std::sync::Arc;

use anyhow::Result;
use deploykit_core::{
    AppliedSet, BackupRequest, Commit, Compensation, Migrator, Record, ReleaseId, ReleaseSpec,
};

use super::migrate_guard as guard;
use super::migrate_source;
use super::EnvContext;
use crate::cli::MigrateCommand;
use crate::config::ConfigError;
use crate::exit;
use crate::render::Mode;

/// Runs a migrate subcommand.
pub async fn run(config: &Path, cmd: &MigrateCommand, mode: Mode) -> Result<u8> {
    // Migrations are read from a commit, as a deploy reads them: `--ref`'s, or for a
    // revert the commit of the run being reverted (see `migrate_source`).
    if let MigrateCommand::Lint(a) = cmd {
        // Offline: no environment is opened, no database or host is reached.
        return super::migrate_lint::run(config, a, mode).await;
    }
    let loaded = crate::config::load(config)?;
    let (env, release) = match cmd {
        MigrateCommand::Lint(_) => unreachable!("linted above, offline"),
        MigrateCommand::Status(a) | MigrateCommand::Plan(a) => (
            &a.env,
            migrate_source::for_ref(&loaded, &a.env, a.from.git_ref.as_deref()).await?,
        ),
        MigrateCommand::Apply(a) => (
            &a.env,
            migrate_source::for_ref(&loaded, &a.env, a.from.git_ref.as_deref()).await?,
        ),
        MigrateCommand::Revert(r) => {
            loaded.env(&r.env)?;
            let records = guard::run_records(&loaded, &r.env, &r.run).await?;
            (&r.env, migrate_source::for_run(&loaded, &r.env, &records)?)
        }
    };
    let wait = match cmd {
        MigrateCommand::Apply(a) => a.wait,
        MigrateCommand::Revert(r) => r.wait,
        _ => crate::cli::LockWaitArg { lock_wait: None },
    };
    let ctx = EnvContext::open(config, env, mode)
        .await?
        .wait_for_lock(&wait);
    // A compose_run migrator runs in a container of a release's image: outside a
    // deploy only `revert --run` has one (the run's).
    let migrator = match (&ctx.env().migrations, &release, ctx.parts.migrator.clone()) {
        (Some(crate::config::MigrationsConfig::ComposeRun { .. }), None, _) | (Some(_), _, None) => {
            return Err(ConfigError(format!(
                "environment {}'s migrations run in a container of the release being deployed; use `deploykit deploy`",
                ctx.name
            ))
            .into())
        }
        (None, _, _) => {
            return Err(ConfigError(format!("environment {} has no [migrations] configured", ctx.name)).into())
        }
        (Some(_), _, Some(m)) => m,
    };
    match cmd {
        MigrateCommand::Lint(_) => unreachable!("linted above, offline"),
        MigrateCommand::Status(_) => {
            let s = migrator.status(release.as_ref()).await?;
            if mode == Mode::Json {
                crate::render::json::print_event(
                    serde_json::json!({"event": "migrations", "status": s}),
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
            let plan = migrator.plan(release.as_ref()).await?;
            if mode == Mode::Json {
                crate::render::json::print_event(
                    serde_json::json!({"event": "plan", "migrations": plan}),
                );
            } else if plan.is_empty() {
                println!("nothing pending");
            } else {
                for line in crate::render::plan_lines(&plan, "  ", "      ") {
                    println!("{line}");
                }
            }
            Ok(exit::OK)
        }
        MigrateCommand::Apply(a) => {
            let approver = guard::approval(&ctx, "apply migrations", a.approve.as_deref())?;
            guard::locked(
                &ctx,
                "migrate-apply",
                apply(&ctx, migrator, release.as_ref(), approver),
            )
            .await
        }
        MigrateCommand::Revert(r) => {
            let records = guard::run_records(&ctx.loaded, &ctx.name, &r.run).await?;
            let approver = guard::approval(&ctx, "revert migrations", r.approve.as_deref())?;
            guard::locked(
                &ctx,
                "migrate-revert",
                revert(&ctx, migrator, &records, release.as_ref(), &r.run, approver),
            )
            .await
        }
    }
}

/// Backs up, then applies what is pending: under the lock, after the same gates as a
/// deploy, and the plan read under the lock so nobody changes it in between.
async fn apply(
    ctx: &EnvContext,
    migrator: Arc<dyn Migrator>,
    release: Option<&ReleaseSpec>,
    approver: Option<&str>,
) -> Result<u8> {
    let mode = ctx.mode;
    let plan = migrator.plan(release).await?;
    if plan.is_empty() {
        super::say(
            mode,
            "nothing pending",
            serde_json::json!({"event": "applied", "migrations": []}),
        );
        return Ok(exit::OK);
    }
    guard::lint(ctx, &plan)?;
    let backup = ctx.parts.backup.clone().ok_or_else(|| {
        ConfigError("applying migrations needs a [backup] to take one first; run them through `deploy` or configure a backup".into())
    })?;
    if let Some(name) = approver {
        eprintln!("approved by {name}");
    }
    let request = BackupRequest {
        env: ctx.name.clone(),
        release: ReleaseId::parse("migrate")?,
        // The commit the migrations were read from; "manual" outside a repository.
        commit: match release {
            Some(spec) => spec.commit.clone(),
            None => Commit::parse("manual")?,
        },
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
        serde_json::json!({"event": "applied", "migrations": names, "backup": artifact, "approver": approver}),
    );
    Ok(exit::OK)
}

/// Reverts the migrations run `run` (journal at `path`) applied, where applied.
async fn revert(
    ctx: &EnvContext,
    migrator: Arc<dyn Migrator>,
    records: &[Record],
    release: Option<&ReleaseSpec>,
    run: &str,
    approver: Option<&str>,
) -> Result<u8> {
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
    let Some(mut set) = set else {
        return Err(ConfigError(format!("run {run} applied no migrations")).into());
    };
    if let Some(name) = approver {
        eprintln!("approved by {name}");
    }
    // A journal written before applied sets named their release: the run's.
    if set.release.is_none() {
        set.release = release.cloned();
    }
    migrator.revert(&set).await?;
    let names: Vec<String> = set.migrations.iter().map(|m| m.to_string()).collect();
    super::say(
        ctx.mode,
        &format!("reverted (where applied): {}", names.join(", ")),
        serde_json::json!({"event": "reverted", "migrations": names, "approver": approver}),
    );
    Ok(exit::OK)
}
