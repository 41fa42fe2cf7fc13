//! The CRM and Cabañas examples end to end, through the `deploykit` binary, against
//! the rig's Docker engine: a real compose stack (backend + PostgreSQL), migrations
//! in one-off containers of the new image, in-container backups, and rollbacks to
//! the previous image tag.

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;

mod common;
use common::{copy_dir, free_port, get, run};

struct Rig {
    docker_host: String,
    postgres_image: String,
}

fn rig() -> Option<Rig> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("DEPLOYKIT_RIG_DOCKER_HOST"),
        get("DEPLOYKIT_RIG_DOCKER_POSTGRES"),
    ) {
        (Some(docker_host), Some(postgres_image)) => Some(Rig {
            docker_host,
            postgres_image,
        }),
        _ => {
            let why =
                "DEPLOYKIT_RIG_DOCKER_* not set: run through script/test, which starts dockerd";
            if std::env::var_os("CI").is_some() {
                panic!("the Docker engine is missing in CI: {why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// The rig's Debian python image (FastAPI, uvicorn, Alembic from Debian) that
/// examples/cabanas builds `FROM`, loaded by script/rig/images.sh.
fn python_image() -> Option<String> {
    match std::env::var("DEPLOYKIT_RIG_IMAGE_PYTHON") {
        Ok(image) if !image.is_empty() => Some(image),
        _ => {
            let why = "DEPLOYKIT_RIG_IMAGE_PYTHON not set: run through script/test, whose images part loads it";
            if std::env::var_os("CI").is_some() {
                panic!("the rig's python image is missing in CI: {why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Adds a real Alembic revision file to examples/cabanas' copy at `root`.
fn alembic_revision(root: &Path, rev: &str, down_revision: &str, up_sql: &str, down_sql: &str) {
    std::fs::write(
        root.join(format!("api/alembic/versions/{rev}_change.py")),
        format!(
            "from alembic import op\n\nrevision = {rev:?}\ndown_revision = {down_revision:?}\n\
             branch_labels = None\ndepends_on = None\n\n\n\
             def upgrade() -> None:\n    op.execute({up_sql:?})\n\n\n\
             def downgrade() -> None:\n    op.execute({down_sql:?})\n"
        ),
    )
    .unwrap();
}

/// Breaks the API's database check, so `/api/v1/healthz` answers 503 unhealthy.
fn break_health(root: &Path) {
    let main = root.join("api/app/main.py");
    let text = std::fs::read_to_string(&main).unwrap();
    let broken = text.replace(
        "HEALTH_QUERY = \"SELECT count(*) FROM cabins\"",
        "HEALTH_QUERY = \"SELECT count(*) FROM no_such_table\"",
    );
    assert_ne!(text, broken, "the health query moved in app/main.py");
    std::fs::write(main, broken).unwrap();
}

/// A copy of an example as its own git repository, with the rig's images and ports.
struct Stack {
    _dir: tempfile::TempDir,
    root: PathBuf,
    rig: Rig,
    project: String,
    files: Vec<String>,
    db_port: u16,
}

impl Stack {
    fn new(rig: Rig, example: &str, env: &[(&str, String)], project: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(example);
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples")
                .join(example),
            &root,
        );
        let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(root.join(".env"), text).unwrap();
        std::fs::write(root.join(".gitignore"), ".deploykit/\nbackups/\n").unwrap();
        run(Std::new("git")
            .arg("-C")
            .arg(&root)
            .args(["init", "-q", "-b", "main"]));
        let db_port = env
            .iter()
            .find(|(k, _)| k.ends_with("_DB_PORT"))
            .unwrap()
            .1
            .parse()
            .unwrap();
        let s = Self {
            _dir: dir,
            root,
            rig,
            project: project.to_string(),
            files: vec!["docker-compose.yml".into()],
            db_port,
        };
        s.commit("initial");
        s
    }

    fn commit(&self, message: &str) -> String {
        let git = |args: &[&str]| {
            run(Std::new("git")
                .arg("-C")
                .arg(&self.root)
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args))
        };
        git(&["add", "-A"]);
        git(&["commit", "-qm", message, "--allow-empty"]);
        git(&["rev-parse", "HEAD"])
    }

    fn compose(&self, args: &[&str]) -> String {
        let mut cmd = Std::new("docker-compose");
        cmd.current_dir(&self.root)
            .env("DOCKER_HOST", &self.rig.docker_host)
            .args(["-p", &self.project]);
        for f in &self.files {
            cmd.args(["-f", f]);
        }
        run(cmd.args(["--env-file", ".env"]).args(args))
    }

    fn start_db(&self, user: &str) {
        self.compose(&["up", "-d", "db"]);
        for _ in 0..120 {
            let ok = Std::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.db_port.to_string(),
                    "-U",
                    user,
                    "-d",
                    user,
                    "-qtAc",
                    "select 1",
                ])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let logs = self.compose(&["logs", "--no-color", "--tail", "30", "db"]);
        panic!("the example's db service did not come up:\n{logs}");
    }

    fn psql(&self, user: &str, sql: &str) -> String {
        run(Std::new("psql").args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.db_port.to_string(),
            "-U",
            user,
            "-d",
            user,
            "-qtAc",
            sql,
        ]))
    }

    fn deploykit(&self) -> Command {
        let mut c = common::deploykit();
        c.current_dir(&self.root)
            .env("NO_COLOR", "1")
            .env("DOCKER_HOST", &self.rig.docker_host)
            .env_remove("GITHUB_STEP_SUMMARY");
        c
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let mut cmd = Std::new("docker-compose");
        cmd.current_dir(&self.root)
            .env("DOCKER_HOST", &self.rig.docker_host)
            .args(["-p", &self.project]);
        for f in &self.files {
            cmd.args(["-f", f]);
        }
        let _ = cmd
            .args([
                "--env-file",
                ".env",
                "down",
                "-v",
                "--remove-orphans",
                "-t",
                "1",
            ])
            .output();
    }
}

#[test]
fn crm_example_migrates_before_the_switch_and_rolls_back_to_the_previous_tag() {
    let Some(rig) = rig() else { return };
    let (port, db_port) = (free_port(), free_port());
    let project = format!("crm-e2e-{}", std::process::id());
    let env = [
        ("CRM_PROJECT", project.clone()),
        ("CRM_PORT", port.to_string()),
        ("CRM_DB_PORT", db_port.to_string()),
        ("CRM_DB_IMAGE", rig.postgres_image.clone()),
        ("CRM_BASE_IMAGE", rig.postgres_image.clone()),
    ];
    let s = Stack::new(rig, "crm", &env, &project);
    // Faster probes for the test than the seeds' 30 × 5 s.
    let toml = std::fs::read_to_string(s.root.join("deploykit.toml"))
        .unwrap()
        .replace("health_interval_secs = 5", "health_interval_secs = 1");
    std::fs::write(s.root.join("deploykit.toml"), toml).unwrap();
    let v1 = s.commit("v1");
    s.start_db("crm");

    // v1: the first deploy; migrations run in a one-off container of the new image.
    let out = s
        .deploykit()
        .args(["deploy", "--env", "production", "--ref", &v1])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(get(port, "/").unwrap().1.contains("crm 1.0.0"));
    // network_mode: host keeps strategy auto on stop_first, said once per deploy.
    assert_eq!(stderr.matches("stop_first is used").count(), 1, "{stderr}");
    assert!(stderr.contains("SO_REUSEPORT"), "{stderr}");
    assert_eq!(
        s.psql("crm", "SELECT count(*) FROM _prisma_migrations"),
        "2"
    );
    let backups = s
        .deploykit()
        .args(["--json", "backup", "list", "--env", "production"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&backups.stdout).unwrap();
    assert_eq!(
        listed["artifacts"].as_array().unwrap().len(),
        1,
        "an in-container pg_dump before migrating"
    );
    s.deploykit()
        .args(["backup", "verify", "--env", "production"])
        .assert()
        .code(0);

    // v2: a migration that fails. The live container is never replaced.
    std::fs::write(s.root.join("backend/VERSION"), "crm 2.0.0\n").unwrap();
    let bad = s
        .root
        .join("backend/prisma/migrations/20260112100000_broken");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("migration.sql"),
        "ALTER TABLE leads ADD COLUMN source text;\n",
    )
    .unwrap();
    let v2 = s.commit("v2 with a failing migration");
    let out = s
        .deploykit()
        .args(["--json", "deploy", "--env", "production", "--ref", &v2])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = common::outcome(&out);
    assert_eq!(last["failed_phase"], "migrate", "{last}");
    assert!(
        last["error"].as_str().unwrap().contains("already exists"),
        "{last}"
    );
    assert!(
        get(port, "/").unwrap().1.contains("crm 1.0.0"),
        "v1 kept serving"
    );

    // v3: the migration is fixed, but the new container never turns healthy.
    std::fs::remove_dir_all(&bad).unwrap();
    std::fs::write(s.root.join("backend/VERSION"), "crm 3.0.0\n").unwrap();
    let dockerfile = std::fs::read_to_string(s.root.join("backend/Dockerfile")).unwrap();
    std::fs::write(
        s.root.join("backend/Dockerfile"),
        dockerfile.replace(
            "/api/health\" || exit 1",
            "/api/broken\" && false || exit 1",
        ),
    )
    .unwrap();
    let v3 = s.commit("v3 unhealthy");
    let out = s
        .deploykit()
        .args(["--json", "deploy", "--env", "production", "--ref", &v3])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = common::outcome(&out);
    assert_eq!(last["outcome"], "rolled_back", "{last}");
    let mut serving = None;
    for _ in 0..40 {
        serving = get(port, "/");
        if serving.as_ref().is_some_and(|r| r.1.contains("crm 1.0.0")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(
        serving.unwrap().1.contains("crm 1.0.0"),
        "the previous tag serves again"
    );
    s.deploykit()
        .args(["history", "--env", "production"])
        .assert()
        .code(0);
}

#[test]
fn cabanas_example_accepts_degraded_and_downgrades_exactly_on_rollback() {
    let Some(rig) = rig() else { return };
    let Some(python) = python_image() else { return };
    let (port, db_port) = (free_port(), free_port());
    let project = format!("cabanas-e2e-{}", std::process::id());
    let env = [
        ("CABANAS_PROJECT", project.clone()),
        ("CABANAS_PORT", port.to_string()),
        ("CABANAS_DB_PORT", db_port.to_string()),
        ("CABANAS_DB_IMAGE", rig.postgres_image.clone()),
        ("CABANAS_BASE_IMAGE", python),
    ];
    let s = Stack::new(rig, "cabanas", &env, &project);
    let toml = std::fs::read_to_string(s.root.join("deploykit.toml"))
        .unwrap()
        .replace("health_interval_secs = 3", "health_interval_secs = 1");
    std::fs::write(s.root.join("deploykit.toml"), toml).unwrap();
    let v1 = s.commit("v1");
    s.start_db("cabanas");
    let revision = || s.psql("cabanas", "SELECT version_num FROM alembic_version");

    // v1: WhatsApp is not configured, so the API is degraded: deployed, with a warning.
    let out = s
        .deploykit()
        .args(["deploy", "--env", "production", "--ref", &v1])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("is degraded"), "{stderr}");
    let (status, body) = get(port, "/api/v1/healthz").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"whatsapp\":\"degraded\""), "{body}");
    assert!(body.contains("\"database\":\"healthy\""), "{body}");
    assert_eq!(revision(), "d4e5f6", "real `alembic upgrade head`");

    // v2: an upgrade with a real Alembic revision.
    alembic_revision(
        &s.root,
        "g7h8i9",
        "d4e5f6",
        "CREATE TABLE reviews (id serial PRIMARY KEY, body text)",
        "DROP TABLE reviews",
    );
    std::fs::write(s.root.join("api/VERSION"), "cabanas 2.4.0\n").unwrap();
    let v2 = s.commit("v2");
    let out = s
        .deploykit()
        .args(["deploy", "--env", "production", "--ref", &v2])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(revision(), "g7h8i9");
    assert!(get(port, "/").unwrap().1.contains("cabanas 2.4.0"));

    // v3: another revision, and an API whose database check fails (503 unhealthy).
    alembic_revision(
        &s.root,
        "j1k2l3",
        "g7h8i9",
        "ALTER TABLE reviews ADD COLUMN stars int",
        "ALTER TABLE reviews DROP COLUMN stars",
    );
    break_health(&s.root);
    std::fs::write(s.root.join("api/VERSION"), "cabanas 2.5.0\n").unwrap();
    let v3 = s.commit("v3 broken");
    let out = s
        .deploykit()
        .args(["--json", "deploy", "--env", "production", "--ref", &v3])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = common::outcome(&out);
    assert_eq!(last["outcome"], "rolled_back", "{last}");
    assert_eq!(
        revision(),
        "g7h8i9",
        "`alembic downgrade` to the revision recorded before the run"
    );
    assert_eq!(
        s.psql(
            "cabanas",
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'reviews' AND column_name = 'stars'"
        ),
        "0"
    );
    let mut serving = None;
    for _ in 0..40 {
        serving = get(port, "/");
        if serving
            .as_ref()
            .is_some_and(|r| r.1.contains("cabanas 2.4.0"))
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(
        serving.unwrap().1.contains("cabanas 2.4.0"),
        "v2 serves again"
    );
}

/// The newest run journal's record count (0 before the run starts).
fn journal_len(root: &Path, before: &[PathBuf]) -> usize {
    let dir = root.join(".deploykit/journal/production");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| !before.contains(p))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn recover_reverts_compose_run_migrations_of_a_killed_deploy() {
    let Some(rig) = rig() else { return };
    let (port, db_port) = (free_port(), free_port());
    let project = format!("cabanas-kill-{}", std::process::id());
    let Some(python) = python_image() else { return };
    let env = [
        ("CABANAS_PROJECT", project.clone()),
        ("CABANAS_PORT", port.to_string()),
        ("CABANAS_DB_PORT", db_port.to_string()),
        ("CABANAS_DB_IMAGE", rig.postgres_image.clone()),
        ("CABANAS_BASE_IMAGE", python),
    ];
    let s = Stack::new(rig, "cabanas", &env, &project);
    let v1 = s.commit("v1");
    s.start_db("cabanas");
    s.deploykit()
        .args(["deploy", "--env", "production", "--ref", &v1])
        .assert()
        .code(0);

    // v2's revision is slow, so the deploy is still migrating when it is killed.
    alembic_revision(
        &s.root,
        "g7h8i9",
        "d4e5f6",
        "SELECT pg_sleep(5); CREATE TABLE reviews (id serial PRIMARY KEY)",
        "DROP TABLE reviews",
    );
    let v2 = s.commit("v2");
    let journals = s.root.join(".deploykit/journal/production");
    let before: Vec<PathBuf> = std::fs::read_dir(&journals)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut child = Std::new(common::deploykit_bin())
        .current_dir(&s.root)
        .env("DOCKER_HOST", &s.rig.docker_host)
        .args(["deploy", "--env", "production", "--ref", &v2])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the journal records the migrate intent (after backup and prepare:
    // run_started, 2 intents, 2 outcomes, then the migrate intent).
    while journal_len(&s.root, &before) < 6 && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The one-off migration container outlives the killed process; once it ends, its
    // revision is committed and only a real downgrade gets back to v1's schema.
    for _ in 0..600 {
        let running = run(Std::new("docker")
            .env("DOCKER_HOST", &s.rig.docker_host)
            .args(["ps", "-q", "--filter"])
            .arg(format!("label=com.docker.compose.project={project}"))
            .args(["--filter", "label=com.docker.compose.oneoff=True"]));
        if running.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let out = s
        .deploykit()
        .args(["recover", "--env", "production"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "recover reverts the migrations with the killed release's image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.psql("cabanas", "SELECT version_num FROM alembic_version"),
        "d4e5f6"
    );
    assert_eq!(
        s.psql("cabanas", "SELECT to_regclass('reviews') IS NULL"),
        "t"
    );
    // Nothing is left locked: the next deploy goes through.
    s.deploykit()
        .args(["deploy", "--env", "production", "--ref", &v1])
        .assert()
        .code(0);
}

#[test]
fn rollback_finds_the_previous_release_in_the_journals_when_the_live_container_was_stopped() {
    let Some(rig) = rig() else { return };
    let (port, db_port) = (free_port(), free_port());
    let project = format!("crm-dead-{}", std::process::id());
    let env = [
        ("CRM_PROJECT", project.clone()),
        ("CRM_PORT", port.to_string()),
        ("CRM_DB_PORT", db_port.to_string()),
        ("CRM_DB_IMAGE", rig.postgres_image.clone()),
        ("CRM_BASE_IMAGE", rig.postgres_image.clone()),
    ];
    let s = Stack::new(rig, "crm", &env, &project);
    let toml = std::fs::read_to_string(s.root.join("deploykit.toml"))
        .unwrap()
        .replace("health_interval_secs = 5", "health_interval_secs = 1");
    std::fs::write(s.root.join("deploykit.toml"), toml).unwrap();

    // Nothing deployed yet: rollback cannot proceed, refused before any change (5):
    // not a failed run (1), nor a usage error (2).
    let out = s
        .deploykit()
        .args(["rollback", "--env", "production"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let deploy = |reference: &str| {
        let out = s
            .deploykit()
            .args(["deploy", "--env", "production", "--ref", reference])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let v1 = s.commit("v1");
    s.start_db("crm");
    deploy(&v1);
    std::fs::write(s.root.join("backend/VERSION"), "crm 4.0.0\n").unwrap();
    deploy(&s.commit("v4"));
    assert!(get(port, "/").unwrap().1.contains("crm 4.0.0"));

    // The web container dies (stopped by hand): nothing serves, nothing is "live".
    s.compose(&["stop", "-t", "1", "backend"]);
    assert!(get(port, "/").is_none());
    let out = s
        .deploykit()
        .args(["rollback", "--env", "production"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        get(port, "/").unwrap().1.contains("crm 1.0.0"),
        "the release before the last good deploy serves"
    );
}
