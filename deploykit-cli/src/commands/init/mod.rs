//! `deploykit init`: a starting config that already knows the project.
//!
//! It reads the PM2 ecosystem file and package.json, or the compose file, and the
//! migrations folder (see [`scan`]), and writes a config for what it found
//! ([`render`]). The kind comes from `--kind`, else from which of the two files
//! the project has.

mod render;
mod scan;

use std::path::Path;

use anyhow::Result;

use crate::cli::{InitArgs, InitKind};
use crate::config::ConfigError;
use crate::exit;

/// Writes `deploykit.toml` (refusing to overwrite unless `--force`).
pub fn run(config: &Path, args: &InitArgs) -> Result<u8> {
    if config.exists() && !args.force {
        return Err(ConfigError(format!(
            "{} exists; pass --force to overwrite",
            config.display()
        ))
        .into());
    }
    let dir = match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let found = scan::scan(&dir);
    let kind = match (args.kind, &found.pm2, &found.compose) {
        (Some(kind), _, _) => kind,
        (None, Some(_), None) => InitKind::Pm2,
        (None, None, Some(_)) => InitKind::Compose,
        (None, Some(_), Some(_)) => {
            return Err(ConfigError(format!(
                "{} has both a PM2 ecosystem file and a compose file: say which one deploys \
                 with --kind pm2 or --kind compose",
                dir.display()
            ))
            .into())
        }
        (None, None, None) => {
            return Err(ConfigError(format!(
                "{} has no PM2 ecosystem file and no compose file: pass --kind pm2 or \
                 --kind compose for a template",
                dir.display()
            ))
            .into())
        }
    };
    let text = match kind {
        InitKind::Pm2 => render::pm2(&found),
        InitKind::Compose => render::compose(&found),
    };
    std::fs::write(config, text)?;
    println!("wrote {}", config.display());
    for line in summary(&found, kind) {
        println!("  {line}");
    }
    println!(
        "set the ${{VAR}}s it uses, then try `deploykit deploy --env staging --dry-run` \
         (`deploykit config show --env staging` shows what deploykit reads)"
    );
    Ok(exit::OK)
}

/// What was read, one line per source, so the user knows what to check.
fn summary(found: &scan::ProjectScan, kind: InitKind) -> Vec<String> {
    let mut lines = Vec::new();
    match (kind, &found.pm2, &found.compose) {
        (InitKind::Pm2, Some(p), _) => {
            let apps: Vec<&str> = p.apps.iter().map(|a| a.name.as_str()).collect();
            lines.push(format!("{}: app(s) {}", p.ecosystem, apps.join(", ")));
            lines.push(format!("install: {}", p.install.join(" ")));
            if let Some(b) = &p.build {
                lines.push(format!("build: {}", b.join(" ")));
            }
        }
        (InitKind::Compose, _, Some(c)) => {
            let services: Vec<&str> = c.services.iter().map(|s| s.name.as_str()).collect();
            lines.push(format!("{}: services {}", c.file, services.join(", ")));
        }
        _ => lines.push("no project file of that kind found: a template to fill in".into()),
    }
    match &found.migrations {
        Some(scan::MigrationsScan::Sql {
            dir,
            dialect,
            count,
        }) => lines.push(format!(
            "migrations: {count} in {dir} ({dialect} history table)"
        )),
        Some(scan::MigrationsScan::Prisma) => lines.push("migrations: prisma".into()),
        Some(scan::MigrationsScan::Alembic { dir }) => {
            lines.push(format!("migrations: alembic in {dir}"))
        }
        None => lines.push("migrations: none found".into()),
    }
    lines.extend(found.notes.iter().map(|n| format!("note: {n}")));
    lines
}

#[cfg(test)]
mod tests;
