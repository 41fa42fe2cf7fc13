//! `deploykit init`: a starting config for a PM2 or a Compose project.

use std::path::Path;

use anyhow::Result;

use crate::cli::{InitArgs, InitKind};
use crate::config::ConfigError;
use crate::exit;

const PM2: &str = r#"# deploykit.toml — a Node app under PM2 on SSH hosts (MUVA style).
# Values like ${DATABASE_URL} come from the environment or [project] env_file.

[project]
name = "my-app"
state_dir = ".deploykit"

[environments.staging.target]
kind = "pm2"
hosts = ["deploy@staging.example.com"]
deploy_to = "/srv/my-app"
app = "my-app"
repo = "git@github.com:me/my-app.git"
ecosystem = "ecosystem.config.js"
install = [["pnpm", "install", "--frozen-lockfile"]]
build = [["pnpm", "run", "build"]]
linked_files = [".env"]
linked_dirs = ["uploads"]
known_hosts = "~/.ssh/known_hosts"

[environments.staging.database]
url = "${DATABASE_URL}"

[environments.staging.backup]
kind = "pg_dump"
dir = "backups"                # on this machine; deploying from CI runners, keep them in
                               # object storage instead (then drop `dir`; docs/CONFIG.md):
# store = "s3://my-bucket/my-app"
# endpoint = "https://…"       # an S3-compatible server; omit for AWS
# access_key_id = "${BACKUP_S3_ACCESS_KEY_ID}"
# secret_access_key = "${BACKUP_S3_SECRET_ACCESS_KEY}"
keep = 7

[environments.staging.migrations]
kind = "sql"
dir = "supabase/migrations"
dialect = "supabase"

[[environments.staging.probes]]
kind = "http"
url = "https://staging.example.com/api/health"
max_latency_ms = 5000
json_status = true

[[environments.staging.probes]]
kind = "pm2"

[environments.staging.policy]
health_deadline_secs = 150
health_attempts = 30
health_interval_secs = 5
backup_max_age_minutes = 10
migration_failure = "down"

# production: copy staging's tables under [environments.production…] and add
[environments.production.gates]
approval = true
"#;

const COMPOSE: &str = r#"# deploykit.toml — a Docker Compose stack (CRM style).

[project]
name = "my-stack"
env_file = ".env"

[environments.production.target]
kind = "compose"
project = "my-stack"
files = ["docker-compose.yml"]
env_file = ".env"
service = "backend"
image = "my-stack-backend"
health_wait_secs = 150
# strategy = "start_first"   # keep the old container serving until the new one is healthy
                             # (no container_name or fixed host port; see docs/CONFIG.md)

[environments.production.backup]
kind = "compose_exec"
service = "db"
database = "app"
user = "postgres"
dir = "backups"                # or `store = "s3://my-bucket/my-stack"` (+ endpoint, keys as
                               # ${VAR}s): backups that outlive this machine; docs/CONFIG.md
keep = 5

[environments.production.migrations]
kind = "compose_run"
up = ["npx", "prisma", "migrate", "deploy"]

[[environments.production.probes]]
kind = "container"

[[environments.production.probes]]
kind = "http"
url = "http://127.0.0.1:3000/api/health"

[environments.production.policy]
health_attempts = 30
health_interval_secs = 5
# Prisma has no down migrations: keep the schema and roll back the code.
migration_failure = "keep"

[environments.production.gates]
approval = true
"#;

/// Writes `deploykit.toml` (refusing to overwrite unless `--force`).
pub fn run(config: &Path, args: &InitArgs) -> Result<u8> {
    if config.exists() && !args.force {
        return Err(ConfigError(format!(
            "{} exists; pass --force to overwrite",
            config.display()
        ))
        .into());
    }
    let text = match args.kind {
        InitKind::Pm2 => PM2,
        InitKind::Compose => COMPOSE,
    };
    std::fs::write(config, text)?;
    println!(
        "wrote {}; edit hosts, paths and probes, then try `deploykit deploy --env <env> --dry-run`",
        config.display()
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn scaffolds_parse_as_configs() {
        for text in [super::PM2, super::COMPOSE] {
            let parsed: Result<crate::config::Config, _> = toml::from_str(text);
            assert!(parsed.is_ok(), "{parsed:?}");
        }
    }
}
