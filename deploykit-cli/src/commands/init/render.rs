//! The config `init` writes, from what [`super::scan`] found.
//!
//! Shared settings go in `[defaults]`; staging and production differ only in
//! their hosts (or engine) and production's approval gate. Values the project
//! cannot tell (hosts, URLs, credentials) are `${VAR}`s, so the file holds no
//! secret and CI supplies them per environment.

use std::fmt::Write;

use super::scan::{ComposeScan, MigrationsScan, Pm2Scan, ProjectScan};

/// The PM2 config for `scan`.
pub fn pm2(scan: &ProjectScan) -> String {
    let empty = Pm2Scan::default();
    let pm2 = scan.pm2.as_ref().unwrap_or(&empty);
    let mut t = header(scan, "a Node app under PM2 on SSH hosts");
    let app = pm2.apps.first();
    let name = app.map_or(scan.name.as_str(), |a| a.name.as_str());
    let ecosystem = if pm2.ecosystem.is_empty() {
        "ecosystem.config.js"
    } else {
        &pm2.ecosystem
    };
    let _ = writeln!(t, "[defaults.target]\nkind = \"pm2\"");
    let _ = writeln!(t, "deploy_to = \"/srv/{}\"", scan.name);
    let _ = writeln!(t, "app = {}", quote(name));
    if pm2.apps.len() > 1 {
        let all: Vec<String> = pm2.apps.iter().map(|a| quote(&a.name)).collect();
        let _ = writeln!(
            t,
            "# apps = [{}]   # instead of app: switch, verify and roll back every app of {ecosystem} together",
            all.join(", ")
        );
    } else {
        let _ = writeln!(
            t,
            "# apps = [\"web\", \"worker\"]   # instead of app: several apps of {ecosystem}, deployed together"
        );
    }
    if let Some(cwd) = app.and_then(|a| a.cwd.as_deref()) {
        let _ = writeln!(
            t,
            "# {ecosystem} sets cwd = {}: deploykit starts the app from <deploy_to>/current, \
             so cwd must be that path or unset (docs/CONFIG.md)",
            quote(cwd)
        );
    }
    let _ = writeln!(
        t,
        "repo = \"${{DEPLOY_REPO}}\"            # git URL the hosts fetch from; push the commit first"
    );
    let _ = writeln!(t, "ecosystem = {}", quote(ecosystem));
    let install = if pm2.install.is_empty() {
        vec!["npm".to_string(), "install".to_string()]
    } else {
        pm2.install.clone()
    };
    let _ = writeln!(t, "install = [{}]", argv(&install));
    match &pm2.build {
        Some(build) => {
            let _ = writeln!(t, "build = [{}]", argv(build));
        }
        None => {
            let _ = writeln!(
                t,
                "# build = [[\"npm\", \"run\", \"build\"]]   # package.json has no build script"
            );
        }
    }
    t.push_str(ARTIFACT_EXAMPLE);
    if let Some(n) = app.and_then(|a| a.instances) {
        let _ = writeln!(t, "instances = {n}                     # from {ecosystem}");
    }
    t.push_str("linked_files = [\".env\"]\nknown_hosts = \"~/.ssh/known_hosts\"\n\n");
    t.push_str("[defaults.database]\nurl = \"${DATABASE_URL}\"\n\n");
    t.push_str("[defaults.backup]\nkind = \"pg_dump\"\ndir = \"backups\"                # or store = \"s3://bucket/prefix\" (docs/CONFIG.md)\nkeep = 7\n\n");
    migrations(&mut t, scan, false);
    t.push_str("[[defaults.probes]]\nkind = \"http\"\nurl = \"${APP_URL}/api/health\"   # several hosts: \"http://{host}:PORT/api/health\" probes each one\n\n");
    t.push_str("[[defaults.probes]]\nkind = \"pm2\"\n\n");
    t.push_str(&hook_example("hosts", "./current/scripts/warm-cache.sh"));
    t.push_str("[environments.staging.target]\nhosts = [\"${STAGING_SSH}\"]          # deploy@host[:port]\n\n");
    t.push_str("[environments.production.target]\nhosts = [\"${PRODUCTION_SSH}\"]\n\n");
    t.push_str("[environments.production.gates]\napproval = true\n");
    t
}

/// Building once (in CI, or here) instead of on every host, commented out: the
/// lines replace `repo`, `install` and `build`.
const ARTIFACT_EXAMPLE: &str = r#"# Or build once (CI, or here) and ship one tarball to every host, checked by its sha256
# there (docs/CONFIG.md, "Tarballs built once"): replace repo, install and build with
# source = "artifact"
# artifact = "out/release.tar.gz"      # or per run: deploykit deploy --artifact PATH
# artifact_build = [["npm", "run", "build"], ["sh", "-c", "mkdir -p out && tar -czf \"$DEPLOYKIT_ARTIFACT\" --exclude=./out --exclude=./.git ."]]
"#;

/// The Compose config for `scan`.
pub fn compose(scan: &ProjectScan) -> String {
    let empty = ComposeScan::default();
    let compose = scan.compose.as_ref().unwrap_or(&empty);
    let mut t = header(scan, "a Docker Compose stack");
    let app = compose
        .services
        .iter()
        .find(|s| s.built)
        .or_else(|| compose.services.iter().find(|s| !s.postgres));
    let db = compose.services.iter().find(|s| s.postgres);
    let file = if compose.file.is_empty() {
        "docker-compose.yml"
    } else {
        &compose.file
    };
    let service = app.map_or("backend", |s| s.name.as_str());
    t.push_str("[defaults.target]\nkind = \"compose\"\n");
    let _ = writeln!(t, "project = {}", quote(&scan.name));
    let _ = writeln!(t, "files = [{}]", quote(file));
    let _ = writeln!(t, "service = {}", quote(service));
    // Other services of the app (a worker) can ship with it as one release.
    let mut together = vec![quote(service)];
    together.extend(
        compose
            .services
            .iter()
            .filter(|s| !s.postgres && s.name != service && (s.built || s.image.is_none()))
            .map(|s| quote(&s.name)),
    );
    if together.len() == 1 {
        together.push(quote("worker"));
    }
    let _ = writeln!(
        t,
        "# services = [{}]   # instead of service: deployed as one release, one image made \
         from the first (docs/CONFIG.md \"Several Compose services\")",
        together.join(", ")
    );
    let image = app
        .and_then(|s| s.image.as_deref())
        .map(|i| i.split(':').next().unwrap_or(i).to_string())
        .unwrap_or_else(|| format!("{}-{service}", scan.name));
    let _ = writeln!(
        t,
        "image = {}   # a repository without a tag: deploykit tags each release",
        quote(&image)
    );
    // No strategy key: auto decides at each deploy, from compose config, and says
    // why when it cannot start first. The comment previews what it will do.
    match app.and_then(|s| s.start_first_blocker.as_deref()) {
        Some(why) => {
            let _ = writeln!(
                t,
                "# strategy auto (the default) deploys {service} stop_first: it has {why}, so two \
                 containers of it cannot run at once; change that (put a proxy in front) to deploy \
                 without a gap"
            );
        }
        None => {
            let _ = writeln!(
                t,
                "# strategy auto (the default) deploys {service} start_first: the old container \
                 serves until the new one is healthy"
            );
        }
    }
    t.push('\n');
    match db {
        Some(db) => {
            t.push_str("[defaults.backup]\nkind = \"compose_exec\"\n");
            let _ = writeln!(t, "service = {}", quote(&db.name));
            let _ = writeln!(t, "database = {}", quote(db.pg_db.as_deref().or(db.pg_user.as_deref()).unwrap_or("postgres")));
            let _ = writeln!(t, "user = {}", quote(db.pg_user.as_deref().unwrap_or("postgres")));
            t.push_str("dir = \"backups\"\nkeep = 5\n\n");
        }
        None => t.push_str("# no PostgreSQL service in the compose file: add [defaults.backup] (docs/CONFIG.md)\n\n"),
    }
    migrations(&mut t, scan, true);
    if app.is_some_and(|s| s.healthcheck) {
        t.push_str("[[defaults.probes]]\nkind = \"container\"   # the service's HEALTHCHECK\n\n");
    }
    t.push_str("[[defaults.probes]]\nkind = \"http\"\nurl = \"${APP_URL}/api/health\"\n\n");
    t.push_str(&hook_example("local", "./scripts/warm-cache.sh"));
    t.push_str("[environments.staging.target]\nhost = \"${STAGING_DOCKER_HOST}\"   # ssh://deploy@host or unix:///…\n\n");
    t.push_str("[environments.production.target]\nhost = \"${PRODUCTION_DOCKER_HOST}\"\n\n");
    t.push_str("[environments.production.gates]\napproval = true\n");
    t
}

/// A commented hook, so the option is seen where the config is written; `on` and
/// the script's path fit the target kind (a PM2 host runs it in `deploy_to`).
pub(super) fn hook_example(on: &str, script: &str) -> String {
    format!(
        "# Hooks: argv commands at pre_deploy, post_migrate, post_activate, post_deploy or\n\
         # on_rollback, on this machine (local) or the target's hosts; they get DEPLOYKIT_ENV,\n\
         # DEPLOYKIT_RELEASE, DEPLOYKIT_PREVIOUS, DEPLOYKIT_OUTCOME, DEPLOYKIT_HOOK (docs/CONFIG.md).\n\
         # [[defaults.hooks]]\n\
         # at = \"post_activate\"          # a failure here rolls the release back\n\
         # on = \"{on}\"\n\
         # run = [\"{script}\", \"--quick\"]\n\
         # timeout_secs = 120             # (300)\n\n"
    )
}

fn header(scan: &ProjectScan, what: &str) -> String {
    let mut t = format!(
        "# deploykit.toml for {what}, written by `deploykit init` from the project's files.\n\
         # ${{VAR}}s come from the environment (CI secrets) or [project] env_file.\n"
    );
    for note in &scan.notes {
        let _ = writeln!(t, "# note: {note}");
    }
    let _ = writeln!(t, "\n[project]\nname = {}", quote(&scan.name));
    if scan.env_file {
        t.push_str("env_file = \".env\"               # ${VAR}s may come from it too\n");
    }
    t.push('\n');
    t
}

fn migrations(t: &mut String, scan: &ProjectScan, in_container: bool) {
    let kind = if in_container {
        "compose_run"
    } else {
        "command"
    };
    match &scan.migrations {
        Some(MigrationsScan::Sql {
            dir,
            dialect,
            count,
        }) => {
            let _ = writeln!(
                t,
                "[defaults.migrations]   # {count} migration(s) in {dir}\nkind = \"sql\"\ndir = {}\ndialect = \"{dialect}\"\n\n[defaults.policy]\nmigration_failure = \"down\"\n",
                quote(dir)
            );
        }
        Some(MigrationsScan::Prisma) if in_container => {
            t.push_str("[defaults.migrations]   # prisma/ (the Prisma CLI must be in the app image)\nkind = \"compose_run\"\nup = [\"npx\", \"prisma\", \"migrate\", \"deploy\"]\n\n[defaults.policy]\n# Prisma has no down migrations: keep the schema and roll back the code.\nmigration_failure = \"keep\"\n\n");
        }
        Some(MigrationsScan::Prisma) => {
            t.push_str("# prisma/ found: Prisma has no down migrations or revision command that\n# deploykit can track on a host; run `npx prisma migrate deploy` in `build` and\n# keep the schema on rollback, or see docs/CONFIG.md.\n\n");
        }
        Some(MigrationsScan::Alembic { dir }) => {
            let _ = writeln!(t, "[defaults.migrations]   # alembic in {dir}\nkind = \"{kind}\"");
            t.push_str("up = [\"alembic\", \"upgrade\", \"head\"]\ncurrent = [\"alembic\", \"current\"]\ndown = [\"alembic\", \"downgrade\", \"{revision}\"]\n");
            if !in_container && dir != "." {
                let _ = writeln!(t, "dir = {}", quote(dir));
            }
            t.push_str("\n[defaults.policy]\nmigration_failure = \"down\"\n\n");
        }
        None => t.push_str("# no migrations folder found (supabase/, prisma/, alembic.ini, migrations/): add\n# [defaults.migrations] when there is one (docs/CONFIG.md)\n\n"),
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn argv(a: &[String]) -> String {
    let items: Vec<String> = a.iter().map(|s| quote(s)).collect();
    format!("[{}]", items.join(", "))
}
