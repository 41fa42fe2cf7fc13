//! The MUVA example end to end, through the `deploykit` binary, against the rig:
//! the real Next.js app installed by `pnpm install --frozen-lockfile` and built by
//! `next build` on the host, real PM2 (cluster mode) over a real sshd, a real
//! PostgreSQL with the Supabase history table. Deploy v1, upgrade to v2 with a
//! migration, then a v3 that fails health: rolled back, its migration reverted, v2
//! serving; then a run killed after its migration, finished by `deploykit recover`.
//! Each deploy costs a `next build` (30-60 s on 2 cores), so there are four.

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;

mod common;
use common::{copy_dir, free_port, get, run};

struct Rig {
    ssh_host: String,
    ssh_port: String,
    ssh_user: String,
    ssh_key: String,
    known_hosts: String,
    pm2_root: PathBuf,
    pg_url: String,
    /// The pnpm store the hosts install from (kept between rig runs).
    pnpm_store: String,
    /// The S3 server's endpoint, bucket, region, access key and secret key.
    s3: [String; 5],
}

fn rig() -> Option<Rig> {
    let vars = [
        "DEPLOYKIT_RIG_SSH_HOST",
        "DEPLOYKIT_RIG_SSH_PORT",
        "DEPLOYKIT_RIG_SSH_USER",
        "DEPLOYKIT_RIG_SSH_KEY",
        "DEPLOYKIT_RIG_SSH_KNOWN_HOSTS",
        "DEPLOYKIT_RIG_PM2_ROOT",
        "DEPLOYKIT_RIG_PG_URL",
        "DEPLOYKIT_RIG_PNPM_STORE",
        "DEPLOYKIT_RIG_S3_ENDPOINT",
        "DEPLOYKIT_RIG_S3_BUCKET",
        "DEPLOYKIT_RIG_S3_REGION",
        "DEPLOYKIT_RIG_S3_ACCESS_KEY_ID",
        "DEPLOYKIT_RIG_S3_SECRET_ACCESS_KEY",
    ];
    let v: Vec<Option<String>> = vars
        .iter()
        .map(|k| std::env::var(k).ok().filter(|s| !s.is_empty()))
        .collect();
    if let Some((name, _)) = vars.iter().zip(&v).find(|(_, x)| x.is_none()) {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is not set: the sshd/pm2/postgres/s3 rig is missing in CI (run through script/test)");
        }
        eprintln!("skipped: {name} is not set (run through script/test)");
        return None;
    }
    let v: Vec<String> = v.into_iter().map(Option::unwrap).collect();
    Some(Rig {
        ssh_host: v[0].clone(),
        ssh_port: v[1].clone(),
        ssh_user: v[2].clone(),
        ssh_key: v[3].clone(),
        known_hosts: v[4].clone(),
        pm2_root: v[5].clone().into(),
        pg_url: v[6].clone(),
        pnpm_store: v[7].clone(),
        s3: [
            v[8].clone(),
            v[9].clone(),
            v[10].clone(),
            v[11].clone(),
            v[12].clone(),
        ],
    })
}

struct Muva {
    repo: PathBuf,
    port: u16,
    rig: Rig,
    db_url: String,
}

impl Muva {
    fn git(&self, args: &[&str]) -> String {
        run(Std::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "safe.directory=*",
            ])
            .args(args))
    }

    fn commit(&self, version: &str) -> String {
        std::fs::write(self.repo.join("VERSION"), format!("{version}\n")).unwrap();
        self.git(&["add", "-A"]);
        self.git(&["commit", "-qm", version]);
        run(Std::new("chown")
            .arg("-R")
            .arg(&self.rig.ssh_user)
            .arg(&self.repo));
        self.git(&["rev-parse", "HEAD"])
    }

    fn deploykit(&self) -> Command {
        Command::from_std(self.deploykit_std())
    }

    /// The `deploykit` binary with the example's environment, as a plain process
    /// (for a run the test kills).
    fn deploykit_std(&self) -> Std {
        let mut c = Std::new(common::deploykit_bin());
        c.current_dir(&self.repo)
            .env("NO_COLOR", "1")
            .env_remove("GITHUB_STEP_SUMMARY")
            // The repo belongs to the SSH user who clones it; let root's git read it.
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "safe.directory")
            .env("GIT_CONFIG_VALUE_0", "*")
            .env("MUVA_REPO", format!("file://{}", self.repo.display()))
            .env(
                "MUVA_STAGING_SSH",
                format!(
                    "{}@{}:{}",
                    self.rig.ssh_user, self.rig.ssh_host, self.rig.ssh_port
                ),
            )
            .env(
                "MUVA_STAGING_URL",
                format!("http://127.0.0.1:{}", self.port),
            )
            .env("MUVA_PORT", self.port.to_string())
            .env("MUVA_SSH_KEY_FILE", &self.rig.ssh_key)
            .env("MUVA_KNOWN_HOSTS", &self.rig.known_hosts)
            .env("SUPABASE_STAGING_DB_URL", &self.db_url)
            .env(
                "MUVA_BACKUP_STORE",
                format!("s3://{}/muva-e2e-{}", self.rig.s3[1], std::process::id()),
            )
            .env("MUVA_BACKUP_S3_ENDPOINT", &self.rig.s3[0])
            .env("MUVA_BACKUP_S3_REGION", &self.rig.s3[2])
            .env("MUVA_BACKUP_S3_ACCESS_KEY_ID", &self.rig.s3[3])
            .env("MUVA_BACKUP_S3_SECRET_ACCESS_KEY", &self.rig.s3[4]);
        c
    }

    fn psql(&self, sql: &str) -> String {
        run(Std::new("psql").arg(&self.db_url).args(["-qtAc", sql]))
    }
}

/// The version the app serves: `/api/health`'s JSON, checked against the page,
/// which renders it too. `None` when nothing answers.
fn served(port: u16) -> Option<String> {
    let (status, body) = get(port, "/api/health")?;
    let json: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/api/health is not JSON ({e}): {status} {body}"));
    let version = json["version"].as_str()?.to_string();
    let (_, page) = get(port, "/")?;
    assert!(
        page.contains(&format!("<p id=\"version\">{version}</p>")),
        "the page renders {version}: {page}"
    );
    Some(version)
}

/// The journal files on the host (the example keeps its state there).
fn journals(deploy_to: &Path) -> Vec<PathBuf> {
    let dir = deploy_to.join(".deploykit/journal/staging");
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

impl Drop for Muva {
    fn drop(&mut self) {
        let home = self.rig.pm2_root.join("muva-e2e/pm2home");
        let _ = Std::new("su")
            .args([&self.rig.ssh_user, "-c"])
            .arg(format!(
                "PM2_HOME={} pm2 kill >/dev/null 2>&1",
                home.display()
            ))
            .status();
    }
}

#[test]
fn muva_example_deploys_upgrades_and_rolls_back_a_broken_release() {
    let Some(rig) = rig() else { return };
    let base = rig.pm2_root.join("muva-e2e");
    let _ = std::fs::remove_dir_all(&base);
    let repo = base.join("repo");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // MUVA's repository: the Next.js app, its lockfile, its deploykit.toml and its
    // supabase/migrations. (A local `pnpm install` in examples/muva is not copied.)
    copy_dir(&root.join("examples/muva"), &repo);
    let _ = std::fs::remove_dir_all(repo.join("node_modules"));
    let _ = std::fs::remove_dir_all(repo.join(".next"));
    // The example deploys to /srv/muva; on the test host it goes under the rig's root.
    let deploy_to = base.join("srv");
    std::fs::create_dir_all(deploy_to.join("shared")).unwrap();
    std::fs::write(
        deploy_to.join("shared/.env.local"),
        "SUPABASE_ANON_KEY=not-for-logs\n",
    )
    .unwrap();
    // The SSH user owns the test's directory (deploy dir, PM2 home), as on a real host.
    run(Std::new("chown").arg("-R").arg(&rig.ssh_user).arg(&base));
    // PM2 state of this test under the rig's root, so the rig's stop kills it.
    let toml = std::fs::read_to_string(repo.join("deploykit.toml")).unwrap();
    let toml = toml.replacen(
        "app = \"muva\"",
        &format!(
            "app = \"muva\"\npm2_home = \"{}\"",
            base.join("pm2home").display()
        ),
        1,
    );
    let toml = toml.replace("/srv/muva", &deploy_to.to_string_lossy());
    let toml = toml
        .replace("settle_secs = 5", "settle_secs = 2")
        .replace("health_interval_secs = 5", "health_interval_secs = 1")
        .replace("health_attempts = 30", "health_attempts = 20");
    // The hosts' `pnpm install` takes packages from the rig's store (downloaded once).
    let toml = toml.replacen(
        "NEXT_TELEMETRY_DISABLED = \"1\"",
        &format!(
            "NEXT_TELEMETRY_DISABLED = \"1\"\nnpm_config_store_dir = \"{}\"",
            rig.pnpm_store
        ),
        1,
    );
    std::fs::write(repo.join("deploykit.toml"), toml).unwrap();

    let db = format!("muva_e2e_{}", std::process::id());
    run(Std::new("psql")
        .arg(&rig.pg_url)
        .args(["-qc", &format!("DROP DATABASE IF EXISTS {db}")]));
    run(Std::new("psql")
        .arg(&rig.pg_url)
        .args(["-qc", &format!("CREATE DATABASE {db}")]));
    let db_url = rig
        .pg_url
        .rsplit_once('/')
        .map(|(head, _)| format!("{head}/{db}"))
        .unwrap();
    run(Std::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["init", "-q", "-b", "main"]));
    let m = Muva {
        repo,
        port: free_port(),
        rig,
        db_url,
    };

    // v1: first deploy.
    let v1 = m.commit("1.0.0");
    let out = m
        .deploykit()
        .args(["deploy", "--env", "staging", "--ref", &v1])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(served(m.port), Some("1.0.0".into()));
    assert_eq!(
        m.psql("SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM supabase_migrations.schema_migrations"),
        "20251101090000:create_accommodations,20251102140530:create_bookings",
        "history written in the Supabase CLI's table"
    );
    assert!(!stderr.contains("not-for-logs"));

    // v2 adds a migration (with its down script).
    std::fs::write(
        m.repo
            .join("supabase/migrations/20251110100000_add_reviews.sql"),
        "CREATE TABLE reviews (id bigserial PRIMARY KEY, body text);\n",
    )
    .unwrap();
    std::fs::write(
        m.repo
            .join("supabase/migrations/20251110100000_add_reviews.down.sql"),
        "DROP TABLE reviews;\n",
    )
    .unwrap();
    let v2 = m.commit("2.0.0");
    m.deploykit()
        .args(["deploy", "--env", "staging", "--ref", &v2])
        .assert()
        .code(0);
    assert_eq!(served(m.port), Some("2.0.0".into()));
    assert_eq!(m.psql("SELECT to_regclass('reviews') IS NOT NULL"), "t");

    // v3: another migration, and an app that answers unhealthy.
    std::fs::write(
        m.repo
            .join("supabase/migrations/20251111100000_add_tags.sql"),
        "CREATE TABLE tags (id bigserial PRIMARY KEY);\n",
    )
    .unwrap();
    std::fs::write(
        m.repo
            .join("supabase/migrations/20251111100000_add_tags.down.sql"),
        "DROP TABLE tags;\n",
    )
    .unwrap();
    std::fs::write(m.repo.join(".unhealthy"), "on\n").unwrap();
    let v3 = m.commit("3.0.0");
    let out = m
        .deploykit()
        .args(["--json", "deploy", "--env", "staging", "--ref", &v3])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = common::outcome(&out);
    assert_eq!(last["outcome"], "rolled_back");
    assert_eq!(last["failed_phase"], "verify");
    assert_eq!(served(m.port), Some("2.0.0".into()), "v2 serves again");
    assert_eq!(
        m.psql("SELECT to_regclass('tags') IS NULL"),
        "t",
        "v3's migration was reverted"
    );
    assert_eq!(
        m.psql("SELECT count(*) FROM supabase_migrations.schema_migrations"),
        "3"
    );
    let listed = m
        .deploykit()
        .args(["--json", "backup", "list", "--env", "staging"])
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let backups = listed["artifacts"].as_array().unwrap().len();
    assert!(
        backups >= 2,
        "a verified backup before each migrating deploy, in the bucket ({backups}): {listed}"
    );
    assert!(
        !m.repo.join("backups").exists(),
        "nothing of the backups is kept on the deploying machine"
    );

    // The lock lives on the host (so laptops and CI runners see each other) and is free.
    m.deploykit()
        .args(["lock", "status", "--env", "staging"])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("free"));
    assert!(!m.repo.join("../srv/.deploykit/lock.json").exists());
    m.deploykit()
        .args(["history", "--env", "staging"])
        .assert()
        .code(0);
    m.deploykit()
        .args(["rollback", "--env", "staging"])
        .assert()
        .code(0);
    assert_eq!(
        served(m.port),
        Some("1.0.0".into()),
        "rolled back to v1 without a rebuild"
    );

    // The live release dies: its workers are stopped by hand, so `pm2 jlist` shows
    // them stopped and nothing answers. Rollback exists for this moment: it finds the
    // release before the last good run in the journals and brings it back.
    let home = m.rig.pm2_root.join("muva-e2e/pm2home");
    run(Std::new("su").args([&m.rig.ssh_user, "-c"]).arg(format!(
        "PM2_HOME={} pm2 stop muva >/dev/null",
        home.display()
    )));
    assert_eq!(get(m.port, "/api/health"), None, "nothing serves");
    let out = m
        .deploykit()
        .args(["rollback", "--env", "staging"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        served(m.port),
        Some("2.0.0".into()),
        "the release before the last good run (the rollback to v1) serves"
    );

    // v4: a migration, and the deploying process is killed (a cancelled CI job) right
    // after the migration committed, before the run could finish or undo anything.
    std::fs::write(
        m.repo
            .join("supabase/migrations/20251112100000_add_photos.sql"),
        "CREATE TABLE photos (id bigserial PRIMARY KEY);\n",
    )
    .unwrap();
    std::fs::write(
        m.repo
            .join("supabase/migrations/20251112100000_add_photos.down.sql"),
        "DROP TABLE photos;\n",
    )
    .unwrap();
    std::fs::remove_file(m.repo.join(".unhealthy")).unwrap();
    let v4 = m.commit("4.0.0");
    let before = journals(&deploy_to);
    let mut child = m
        .deploykit_std()
        .args(["deploy", "--env", "staging", "--ref", &v4])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let migrated = |line: &str| {
        line.contains(r#""record":"outcome""#) && line.contains(r#""phase":"migrate""#)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let done = journals(&deploy_to)
            .iter()
            .filter(|p| !before.contains(p))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .any(|t| t.lines().any(migrated));
        if done || child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the deploy was still running when its migration committed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(m.psql("SELECT to_regclass('photos') IS NOT NULL"), "t");
    let out = m
        .deploykit()
        .args(["recover", "--env", "staging"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        m.psql("SELECT to_regclass('photos') IS NULL"),
        "t",
        "recover ran the killed run's down script"
    );
    assert_eq!(
        m.psql("SELECT count(*) FROM supabase_migrations.schema_migrations"),
        "3"
    );
    assert_eq!(served(m.port), Some("2.0.0".into()), "v2 serves again");
    m.deploykit()
        .args(["lock", "status", "--env", "staging"])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("free"));
}
