//! `deploykit migrate lint`: the destructive-change lint as a CI gate.
//!
//! It runs where a pull request is checked: no database, no hosts, no secrets. So
//! it reads only the migrations settings of the config (an environment whose
//! `${DATABASE_URL}` is unset still has a migrations directory), and the files as
//! the commit `--ref` has them, as a deploy of that commit would apply them.

use std::path::{Path, PathBuf};

use anyhow::Result;
use deploykit_core::sql_migrations::lint_migrations;
use deploykit_core::{CommitTree, PlannedMigration};

use super::deploy::{resolve_commit, source_repo};
use crate::cli::MigrateLintArgs;
use crate::config::{ConfigError, LoadedConfig, MigrationsConfig};
use crate::exit;
use crate::render::Mode;

/// One migrations directory's result.
struct Linted {
    dir: PathBuf,
    origin: String,
    migrations: Vec<PlannedMigration>,
}

/// Lints every SQL migration of `--ref` (default HEAD) for `--env`, or for every
/// environment with SQL migrations; exit 1 on a finding without an allow marker.
pub async fn run(config: &Path, args: &MigrateLintArgs, mode: Mode) -> Result<u8> {
    let loaded = crate::config::load(config)?;
    let dirs = sql_dirs(&loaded, args.env.as_deref())?;
    let mut results = Vec::new();
    for (env, dir) in dirs {
        let environment = &loaded.config.environments[&env];
        let repo = source_repo(&loaded, environment);
        let tree = match (CommitTree::repository_of(&repo), &args.from.git_ref) {
            (Ok(_), git_ref) => {
                let commit = resolve_commit(&repo, git_ref.as_deref().unwrap_or("HEAD")).await?;
                Some(CommitTree::open(&repo, commit)?)
            }
            (Err(_), None) => None,
            (Err(_), Some(r)) => {
                return Err(ConfigError(format!(
                    "--ref {r}: {} is not in a git repository; run without --ref to lint the \
                     directory as it is",
                    repo.display()
                ))
                .into())
            }
        };
        let origin = match &tree {
            Some(t) => format!("commit {}", t.commit().short()),
            None => "the working directory".to_string(),
        };
        let migrations = lint_migrations(&dir, tree.as_ref())?;
        results.push(Linted {
            dir,
            origin,
            migrations,
        });
    }
    let refused: usize = results
        .iter()
        .flat_map(|r| &r.migrations)
        .filter(|m| !m.findings.is_empty() && !m.allowed)
        .count();
    if mode == Mode::Json {
        for r in &results {
            crate::render::json::print_event(serde_json::json!({
                "event": "lint", "dir": r.dir, "origin": r.origin, "migrations": r.migrations,
            }));
        }
    } else {
        print_plain(&results, refused);
    }
    Ok(if refused == 0 { exit::OK } else { exit::FAILED })
}

/// The SQL migrations directories to lint (one per distinct directory), with an
/// environment that uses each.
fn sql_dirs(loaded: &LoadedConfig, env: Option<&str>) -> Result<Vec<(String, PathBuf)>> {
    let envs: Vec<&String> = match env {
        Some(name) => {
            let (key, _) = loaded
                .config
                .environments
                .get_key_value(name)
                .ok_or_else(|| {
                    loaded
                        .env(name)
                        .err()
                        .unwrap_or_else(|| ConfigError(name.into()))
                })?;
            vec![key]
        }
        None => loaded.config.environments.keys().collect(),
    };
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    for name in envs {
        if let Some(MigrationsConfig::Sql { dir, .. }) =
            &loaded.config.environments[name].migrations
        {
            let dir = loaded.resolve(dir);
            if !dirs.iter().any(|(_, d)| *d == dir) {
                dirs.push((name.clone(), dir));
            }
        }
    }
    if dirs.is_empty() {
        return Err(ConfigError(format!(
            "{}: no environment{} has SQL migrations (kind = \"sql\") to lint; migration tools \
             (command, compose_run) are linted by their own tooling",
            loaded.path.display(),
            env.map(|e| format!(" named {e}")).unwrap_or_default()
        ))
        .into());
    }
    Ok(dirs)
}

fn print_plain(results: &[Linted], refused: usize) {
    for r in results {
        println!(
            "{} ({}): {} migration(s)",
            r.dir.display(),
            r.origin,
            r.migrations.len()
        );
        for m in r.migrations.iter().filter(|m| !m.findings.is_empty()) {
            let verdict = if m.allowed {
                "allowed by marker"
            } else {
                "NOT ALLOWED"
            };
            println!("  {} ({verdict})", m.id);
            for f in &m.findings {
                println!("    {}: {}", f.rule, f.message);
            }
        }
    }
    if refused == 0 {
        println!("lint: no finding without an allow marker");
    } else {
        println!(
            "lint: {refused} migration(s) with findings and no allow marker; if the change is \
             intended, add `-- deploykit:allow <rule>` to the file (protected environments \
             refuse them otherwise)"
        );
    }
}
