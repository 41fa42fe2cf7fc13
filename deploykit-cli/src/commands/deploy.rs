//! `deploykit deploy`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use deploykit_core::shell::{Cmd, LocalShell, ShellExt};
use deploykit_core::{Commit, Error, ReleaseId, ReleaseSpec};
use time::OffsetDateTime;

use super::EnvContext;
use crate::cli::DeployArgs;
use crate::config::{ConfigError, Environment, LoadedConfig, TargetConfig};
use crate::exit;
use crate::render::Mode;

/// Runs a deploy (or prints its plan) and returns the exit code.
pub async fn run(config: &Path, args: &DeployArgs, mode: Mode) -> Result<u8> {
    let loaded = crate::config::load(config)?;
    let commit =
        resolve_commit(&source_repo(&loaded, loaded.env(&args.env)?), &args.git_ref).await?;
    let id = match &args.release {
        Some(r) => ReleaseId::parse(r.clone())?,
        None => ReleaseId::for_commit(OffsetDateTime::now_utc(), &commit),
    };
    let spec = ReleaseSpec {
        id,
        commit,
        branch: None,
    };
    let mut loaded = loaded;
    loaded.image_tag = args.image_tag.clone();
    loaded.artifact = artifact(&loaded, args, &spec).await?;
    if args.accept_drift {
        loaded.accept_drift = true;
        eprintln!(
            "--accept-drift: applied migrations edited since they ran are taken as they are now"
        );
    }
    let ctx = EnvContext::open_loaded(loaded, &args.env, mode)
        .await?
        .wait_for_lock(&args.wait);
    // Compose builds use the deployed commit's tree as their context: compose files
    // in no repository have no such tree.
    if let Some(first) = ctx
        .parts
        .compose
        .as_ref()
        .and_then(|c| c.project.files.first())
    {
        deploykit_core::CommitTree::repository_of(first)
            .map_err(|e| ConfigError(format!("environment {}: {e}", ctx.name)))?;
    }
    super::compose_check::validate(&ctx).await?;

    if args.dry_run {
        return print_plan(&ctx, &spec, args).await;
    }
    let protected = ctx.env().gates.approval;
    if let Some(refusal) = approval_refusal(&ctx, args) {
        return Err(refusal.into());
    }
    if protected && !args.yes && std::io::stdin().is_terminal() && mode != Mode::Json {
        eprint!(
            "Deploy {} ({}) to {}? [y/N] ",
            spec.id,
            spec.commit.short(),
            ctx.name
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing was changed");
            return Ok(exit::REFUSED);
        }
    }
    let pipeline = ctx
        .pipeline(args.approve.as_deref())
        .message(args.message.clone());
    let report = pipeline.run_in(ctx.store.as_ref(), &spec).await;
    ctx.parts.close().await;
    let report = report?;
    mode.finish(&report);
    crate::notify::announce(ctx.env(), &report).await;
    Ok(exit::for_report(&report))
}

/// The run's tarball for a PM2 target with `source = "artifact"`: built (not in
/// a dry run) and hashed before anything connects; its digest is said once.
async fn artifact(
    loaded: &LoadedConfig,
    args: &DeployArgs,
    spec: &ReleaseSpec,
) -> Result<Option<deploykit_pm2::Tarball>> {
    let env = loaded.env(&args.env)?;
    let Some(TargetConfig::Pm2(pm2)) = &env.target else {
        if args.artifact.is_some() {
            bail!(ConfigError(format!(
                "environment {}: --artifact is for a PM2 target with source = \"artifact\"",
                args.env
            )));
        }
        return Ok(None);
    };
    let request = crate::source_artifact::ArtifactRequest {
        env: &args.env,
        base: &loaded.base,
        given: args.artifact.as_deref(),
        spec,
        build: !args.dry_run,
    };
    let tarball = crate::source_artifact::tarball(pm2, &request)
        .await
        .map_err(ConfigError)?;
    if let Some(t) = &tarball {
        eprintln!(
            "artifact {}: sha256 {}, {} bytes",
            t.path().display(),
            t.sha256(),
            t.size()
        );
    }
    Ok(tarball)
}

/// A protected environment deployed without `--approve`: refused before anything
/// runs (the approver is what the journal records).
fn approval_refusal(ctx: &EnvContext, args: &DeployArgs) -> Option<Error> {
    (ctx.env().gates.approval && args.approve.is_none()).then(|| Error::Refused {
        reason: format!(
            "environment {} is protected and no approver was named",
            ctx.name
        ),
        next: "pass --approve NAME (the approver is recorded in the journal)".into(),
    })
}

/// The repository commits are resolved in: a local target's repo, else the config's directory.
pub fn source_repo(loaded: &LoadedConfig, env: &Environment) -> PathBuf {
    match &env.target {
        Some(TargetConfig::Local { repo, .. }) => loaded.resolve(repo),
        _ => loaded.base.clone(),
    }
}

/// `git rev-parse` of `git_ref` in `repo`: deploys always name an exact commit.
pub async fn resolve_commit(repo: &Path, git_ref: &str) -> Result<Commit> {
    if git_ref.starts_with('-') {
        bail!(ConfigError(format!("--ref {git_ref:?} is not a git ref")));
    }
    let cmd = Cmd::new("git")
        .arg("-C")
        .arg(repo.to_string_lossy())
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{git_ref}^{{commit}}"));
    let out = LocalShell::new()
        .check("resolve ref", &cmd)
        .await
        .with_context(|| {
            format!(
                "cannot resolve --ref {git_ref} to a commit in {}",
                repo.display()
            )
        })?;
    Ok(Commit::parse(out.stdout_text().trim())?)
}

/// Prints what a deploy would do and exits as the real run would start: 0 when it
/// would go ahead, else the code of the refusal it would meet (a missing approval
/// or lint in a protected environment, drift: 5; a held lock: 4), with the reason.
/// A CI job can then gate on `deploy --dry-run`.
async fn print_plan(ctx: &EnvContext, spec: &ReleaseSpec, args: &DeployArgs) -> Result<u8> {
    let current = match &ctx.parts.target {
        Some(t) => t.current().await?,
        None => None,
    };
    // Drift makes the plan itself a refusal (exit 5, with what to do).
    let plan = match &ctx.parts.migrator {
        Some(m) => Some(m.plan(Some(spec)).await?),
        None => None,
    };
    let mut refusals: Vec<(u8, String)> = Vec::new();
    if let Some(e) = approval_refusal(ctx, args) {
        refusals.push((exit::REFUSED, e.to_string()));
    }
    if let Some(holder) = ctx.lock().holder().await? {
        refusals.push((
            exit::LOCKED,
            format!(
                "environment {} is locked by {holder}{}: a deploy now exits 4 (see `deploykit lock status`)",
                ctx.name,
                super::lock::liveness_note(&holder)
            ),
        ));
    }
    if let Some(p) = &plan {
        if let Err(e) = super::migrate_guard::lint(ctx, p) {
            refusals.push((exit::REFUSED, format!("{e:#}")));
        }
    }
    let code = refusals.first().map_or(exit::OK, |(code, _)| *code);
    let env = ctx.env();
    if ctx.mode == Mode::Json {
        let v = serde_json::json!({
            "event": "plan",
            "env": ctx.name,
            "release": spec.id,
            "commit": spec.commit,
            "current": current,
            "migrations": plan,
            "backup": env.backup.is_some(),
            "probes": env.probes.len(),
            "protected": env.gates.approval,
            "hooks": env.hooks.iter().map(|h| {
                let hook = h.to_hook();
                serde_json::json!({
                    "at": hook.point.as_str(),
                    "on": h.on,
                    "run": hook_line(&hook.argv),
                    "timeout_secs": hook.timeout.as_secs(),
                })
            }).collect::<Vec<_>>(),
            "refused": refusals.iter().map(|(_, why)| why).collect::<Vec<_>>(),
            "exit_code": code,
        });
        crate::render::json::print_event(v);
        return Ok(code);
    }
    println!("Plan for {} (dry run: nothing will change)", ctx.name);
    println!("  release:   {} (commit {})", spec.id, spec.commit);
    println!(
        "  live now:  {}",
        current
            .map(|c| c.to_string())
            .unwrap_or_else(|| "nothing (first deploy)".into())
    );
    println!(
        "  backup:    {}",
        if env.backup.is_some() {
            "yes, before migrating"
        } else {
            "none configured"
        }
    );
    match plan {
        Some(p) if !p.is_empty() => {
            println!("  migrations ({}):", p.migrations.len());
            for line in crate::render::plan_lines(&p, "    - ", "        ") {
                println!("{line}");
            }
        }
        Some(_) => println!("  migrations: none pending"),
        None => println!("  migrations: none configured"),
    }
    println!("  probes:    {}", env.probes.len());
    println!(
        "  protected: {}",
        if env.gates.approval {
            "yes (needs --approve NAME)"
        } else {
            "no"
        }
    );
    if !env.hooks.is_empty() {
        println!("  hooks ({}):", env.hooks.len());
        for h in &env.hooks {
            let hook = h.to_hook();
            println!(
                "    - {}, {} (timeout {}s): {}",
                hook.point,
                h.on,
                hook.timeout.as_secs(),
                hook_line(&hook.argv)
            );
        }
    }
    for (_, why) in &refusals {
        eprintln!("a deploy now would be refused: {why}");
    }
    Ok(code)
}

/// A hook's argv as one readable line, quoted like a shell would need it, with
/// any credential in it masked (a plan is printed in CI logs).
fn hook_line(argv: &[String]) -> String {
    let line: Vec<String> = argv
        .iter()
        .map(|a| deploykit_core::shell::quote(a))
        .collect();
    deploykit_core::redact(&line.join(" "), &[])
}
