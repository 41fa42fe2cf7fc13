//! What `init` learns from the project it is run in: the PM2 ecosystem file and
//! package.json, the compose file, and the migrations folder.
//!
//! A starting config that already names the app, its build, its services and its
//! migrations is one the user can dry-run at once; a generic template has to be
//! corrected key by key first, and the corrections are where mistakes are made.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// Everything found; `None`/empty where the project does not have it.
#[derive(Debug, Default)]
pub struct ProjectScan {
    /// The project's name: package.json's `name`, else the folder's, made a valid
    /// Compose project and directory name.
    pub name: String,
    /// The PM2 side, when there is an ecosystem file.
    pub pm2: Option<Pm2Scan>,
    /// The Compose side, when there is a compose file.
    pub compose: Option<ComposeScan>,
    /// The migrations, when a known layout is found.
    pub migrations: Option<MigrationsScan>,
    /// The project has a `.env` (the config reads its variables too).
    pub env_file: bool,
    /// Things the user should know about what was (not) read.
    pub notes: Vec<String>,
}

/// From the ecosystem file and package.json.
#[derive(Debug, Default)]
pub struct Pm2Scan {
    /// The ecosystem file's name, relative to the project.
    pub ecosystem: String,
    /// Its apps, in file order.
    pub apps: Vec<EcosystemApp>,
    /// Install command for the lockfile present (`pnpm install --frozen-lockfile`, …).
    pub install: Vec<String>,
    /// `<pm> run build` when package.json has a build script.
    pub build: Option<Vec<String>>,
}

/// One entry of the ecosystem file's `apps`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EcosystemApp {
    /// PM2's app name.
    pub name: String,
    /// `instances` when a number (`"max"` and `-1` depend on the host: not counted).
    pub instances: Option<u64>,
    /// `cwd` as written.
    pub cwd: Option<String>,
}

/// From the compose file.
#[derive(Debug, Default)]
pub struct ComposeScan {
    /// The compose file's name, relative to the project.
    pub file: String,
    /// Its services, in file order.
    pub services: Vec<ComposeService>,
}

/// One service of the compose file.
#[derive(Debug, Default, Clone)]
pub struct ComposeService {
    /// Its key under `services`.
    pub name: String,
    /// It is built from the project (`build:`): the app deploykit ships.
    pub built: bool,
    /// `image:` as written.
    pub image: Option<String>,
    /// It has a HEALTHCHECK in the compose file.
    pub healthcheck: bool,
    /// Why two containers of it cannot run at once (start_first), if they cannot.
    pub start_first_blocker: Option<String>,
    /// Its image is PostgreSQL's: where a `compose_exec` backup runs.
    pub postgres: bool,
    /// `POSTGRES_USER` / `POSTGRES_DB` from its environment, when written.
    pub pg_user: Option<String>,
    /// See `pg_user`.
    pub pg_db: Option<String>,
}

/// The migrations layout found.
#[derive(Debug, Clone, PartialEq)]
pub enum MigrationsScan {
    /// SQL files with a history table in one of core's dialects.
    Sql {
        /// The folder, relative to the project.
        dir: String,
        /// `supabase`, `sqlx` or `deploykit`.
        dialect: &'static str,
        /// How many migration files (ups) it holds.
        count: usize,
    },
    /// Prisma (`prisma/schema.prisma`).
    Prisma,
    /// Alembic (`alembic.ini`), with the folder it is in.
    Alembic {
        /// The folder holding alembic.ini, relative to the project ("." at the top).
        dir: String,
    },
}

const ECOSYSTEM_FILES: &[&str] = &[
    "ecosystem.config.js",
    "ecosystem.config.cjs",
    "ecosystem.config.json",
    "ecosystem.json",
];
const COMPOSE_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// Reads what it can of `dir`; never fails (what cannot be read becomes a note).
pub fn scan(dir: &Path) -> ProjectScan {
    let package: Option<Value> = std::fs::read_to_string(dir.join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut scan = ProjectScan {
        name: package
            .as_ref()
            .and_then(|p| p["name"].as_str())
            .map(str::to_string)
            .or_else(|| {
                dir.canonicalize()
                    .ok()?
                    .file_name()?
                    .to_str()
                    .map(str::to_string)
            })
            .map(|n| slug(&n))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "my-app".into()),
        ..ProjectScan::default()
    };
    if let Some(file) = first_existing(dir, ECOSYSTEM_FILES) {
        let apps = match ecosystem_apps(&dir.join(&file)) {
            Ok(apps) => apps,
            Err(why) => {
                scan.notes.push(format!("{file}: {why}; set `app` by hand"));
                Vec::new()
            }
        };
        let (install, build) = package_commands(dir, package.as_ref());
        scan.pm2 = Some(Pm2Scan {
            ecosystem: file,
            apps,
            install,
            build,
        });
    }
    if let Some(file) = first_existing(dir, COMPOSE_FILES) {
        match compose_services(&dir.join(&file)) {
            Ok(services) => scan.compose = Some(ComposeScan { file, services }),
            Err(why) => scan.notes.push(format!("{file}: {why}")),
        }
    }
    scan.migrations = migrations(dir);
    scan.env_file = dir.join(".env").is_file();
    scan
}

/// `name` as a Compose project and directory name: lowercase letters, digits, `-`
/// and `_`, starting with a letter or digit (`@acme/Web App` becomes `acme-web-app`).
pub(super) fn slug(name: &str) -> String {
    let mapped: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut out = String::new();
    for part in mapped.split('-').filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(part);
    }
    out.trim_start_matches('_').chars().take(63).collect()
}

fn first_existing(dir: &Path, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|n| dir.join(n).is_file())
        .map(|n| n.to_string())
}

/// The apps of an ecosystem file. A `.js` file is a program, so node evaluates it
/// (as PM2 itself does); a `.json` one is read directly.
fn ecosystem_apps(path: &Path) -> Result<Vec<EcosystemApp>, String> {
    let value: Value = if path.extension().is_some_and(|e| e == "json") {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?
    } else {
        let script = "const m = require(process.argv[1]); \
                      process.stdout.write(JSON.stringify(m && m.apps ? m : (m.default || m)))";
        let out = run_with_timeout(
            Command::new("node").arg("-e").arg(script).arg(path),
            Duration::from_secs(10),
        )
        .map_err(|e| format!("cannot evaluate it with node ({e})"))?;
        serde_json::from_str(&out).map_err(|e| format!("node printed no JSON: {e}"))?
    };
    let apps = value["apps"].as_array().cloned().unwrap_or_default();
    if apps.is_empty() {
        return Err("no `apps` in it".into());
    }
    Ok(apps
        .iter()
        .filter_map(|a| {
            Some(EcosystemApp {
                name: a["name"].as_str()?.to_string(),
                instances: a["instances"].as_u64().filter(|n| *n > 0),
                cwd: a["cwd"].as_str().map(str::to_string),
            })
        })
        .collect())
}

fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            if !status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                return Err(err.lines().next().unwrap_or("failed").to_string());
            }
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            return Err(format!("no answer in {}s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The install command for the lockfile present, and the build script's command.
fn package_commands(dir: &Path, package: Option<&Value>) -> (Vec<String>, Option<Vec<String>>) {
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (pm, install) = if dir.join("pnpm-lock.yaml").is_file() {
        ("pnpm", argv(&["pnpm", "install", "--frozen-lockfile"]))
    } else if dir.join("yarn.lock").is_file() {
        ("yarn", argv(&["yarn", "install", "--frozen-lockfile"]))
    } else if dir.join("package-lock.json").is_file() {
        ("npm", argv(&["npm", "ci"]))
    } else {
        ("npm", argv(&["npm", "install"]))
    };
    let build = package
        .and_then(|p| p["scripts"]["build"].as_str())
        .map(|_| argv(&[pm, "run", "build"]));
    (install, build)
}

fn compose_services(path: &Path) -> Result<Vec<ComposeService>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let doc: Value = serde_saphyr::from_str(&text).map_err(|e| format!("not valid YAML: {e}"))?;
    let Some(services) = doc["services"].as_object() else {
        return Err("no `services` in it".into());
    };
    Ok(services
        .iter()
        .map(|(name, s)| {
            let image = s["image"].as_str().map(str::to_string);
            let env = |key: &str| match &s["environment"] {
                Value::Object(m) => m.get(key).and_then(Value::as_str).map(str::to_string),
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .find_map(|i| i.strip_prefix(key)?.strip_prefix('=').map(str::to_string)),
                _ => None,
            };
            ComposeService {
                name: name.clone(),
                built: !s["build"].is_null(),
                postgres: image.as_deref().is_some_and(|i| i.contains("postgres")),
                image,
                healthcheck: s["healthcheck"].is_object()
                    && s["healthcheck"]["disable"].as_bool() != Some(true),
                start_first_blocker: start_first_blocker(s),
                pg_user: env("POSTGRES_USER"),
                pg_db: env("POSTGRES_DB"),
            }
        })
        .collect())
}

/// Why two containers of the service cannot run at once, as start_first needs.
fn start_first_blocker(service: &Value) -> Option<String> {
    if let Some(name) = service["container_name"].as_str() {
        return Some(format!("container_name: {name}"));
    }
    if service["network_mode"].as_str() == Some("host") {
        return Some("network_mode: host (a second container binds its port only if the app sets SO_REUSEPORT; if it does, set strategy = \"start_first\")".into());
    }
    let ports = service["ports"].as_array()?;
    ports.iter().find_map(|p| {
        let fixed = match p {
            // "8080:80", "127.0.0.1:8080:80"; a bare "80" gets a random host port.
            Value::String(s) => s.contains(':'),
            Value::Number(_) => false,
            Value::Object(o) => o.get("published").is_some_and(|v| !v.is_null()),
            _ => false,
        };
        fixed.then(|| format!("fixed host port {}", p.as_str().unwrap_or("(published)")))
    })
}

/// The migrations layout: supabase/, prisma/, alembic.ini, or sqlx-style files.
fn migrations(dir: &Path) -> Option<MigrationsScan> {
    let supabase = dir.join("supabase/migrations");
    if supabase.is_dir() {
        return Some(MigrationsScan::Sql {
            dir: "supabase/migrations".into(),
            dialect: "supabase",
            count: sql_ups(&supabase),
        });
    }
    if dir.join("prisma/schema.prisma").is_file() {
        return Some(MigrationsScan::Prisma);
    }
    for sub in [".", "api", "backend", "app", "server"] {
        if dir.join(sub).join("alembic.ini").is_file() {
            return Some(MigrationsScan::Alembic { dir: sub.into() });
        }
    }
    for sub in ["migrations", "db/migrations"] {
        let path = dir.join(sub);
        let count = sql_ups(&path);
        if count > 0 {
            let sqlx =
                std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.contains("sqlx"));
            return Some(MigrationsScan::Sql {
                dir: sub.into(),
                dialect: if sqlx { "sqlx" } else { "deploykit" },
                count,
            });
        }
    }
    None
}

/// Files of `dir` named `<digits>_<name>.sql` (or `.up.sql`), not down scripts.
fn sql_ups(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| PathBuf::from(e.file_name()))
        .filter_map(|p| p.to_str().map(str::to_string))
        .filter(|n| {
            n.ends_with(".sql")
                && !n.ends_with(".down.sql")
                && n.split('_')
                    .next()
                    .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
        })
        .count()
}
