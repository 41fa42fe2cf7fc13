//! `deploykit demo`: the real pipeline on this machine with no external service.
//!
//! It builds a throwaway git repository with three versions of a tiny app (the
//! bundled `demo-app`), an SQLite database with migrations and backups, and a
//! local target with release directories, then deploys v1, upgrades to v2 (with a
//! migration), deploys a broken v3 that fails health and is rolled back (release
//! and schema back to v2), and prints the history. It cleans up after itself.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use deploykit_core::shell::{Cmd, LocalShell, ShellExt};
use deploykit_core::{History, Outcome, ReleaseId, ReleaseSpec};
use time::OffsetDateTime;

use super::deploy::resolve_commit;
use super::EnvContext;
use crate::cli::DemoArgs;
use crate::exit;
use crate::render::Mode;

struct Version {
    label: &'static str,
    healthy: bool,
    migration: Option<(&'static str, &'static str, &'static str)>,
    expect: Outcome,
}

const VERSIONS: &[Version] = &[
    Version {
        label: "v1",
        healthy: true,
        migration: Some((
            "0001_create_notes",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\nINSERT INTO notes (body) VALUES ('written before any upgrade');\n",
            "DROP TABLE notes;\n",
        )),
        expect: Outcome::Succeeded,
    },
    Version {
        label: "v2",
        healthy: true,
        migration: Some((
            "0002_create_tags",
            "CREATE TABLE tags (id INTEGER PRIMARY KEY, note_id INTEGER NOT NULL REFERENCES notes(id), name TEXT NOT NULL);\n",
            "DROP TABLE tags;\n",
        )),
        expect: Outcome::Succeeded,
    },
    Version {
        label: "v3",
        healthy: false,
        migration: Some((
            "0003_create_archive",
            "CREATE TABLE archive (id INTEGER PRIMARY KEY, note_id INTEGER NOT NULL, archived_at TEXT NOT NULL);\n",
            "DROP TABLE archive;\n",
        )),
        expect: Outcome::RolledBack,
    },
];

/// Runs the demo; exit 0 when every step ended as the demo expects.
pub async fn run(args: &DemoArgs, mode: Mode) -> Result<u8> {
    let dir = tempfile::Builder::new()
        .prefix("deploykit-demo-")
        .tempdir()
        .context("create the demo directory")?;
    let root = dir.path().to_path_buf();
    let result = run_in(&root, mode).await;
    if args.keep {
        let kept = dir.keep();
        eprintln!("demo files kept in {}", kept.display());
    }
    result
}

async fn run_in(root: &Path, mode: Mode) -> Result<u8> {
    let repo = root.join("app");
    let commits = build_repo(&repo).await?;
    let port = free_port()?;
    let config = root.join("deploykit.toml");
    std::fs::write(&config, demo_config(root, port)?)?;
    narrate(
        mode,
        &format!(
            "demo directory: {}\napp on http://127.0.0.1:{port}/api/health",
            root.display()
        ),
    );

    let mut ok = true;
    let mut local = None;
    for (version, commit) in VERSIONS.iter().zip(&commits) {
        // As CI would: check the commit out, so its migrations are the ones on disk.
        LocalShell::new()
            .check(
                "demo",
                &git(&repo).args(["checkout", "-q", commit.as_str()]),
            )
            .await?;
        let ctx = EnvContext::open(&config, "demo", mode).await?;
        local = ctx.parts.local.clone();
        let commit = resolve_commit(&repo, commit).await?;
        let spec = ReleaseSpec {
            id: ReleaseId::for_commit(OffsetDateTime::now_utc(), &commit),
            commit,
            branch: Some("main".into()),
        };
        narrate(
            mode,
            &format!(
                "\n=== deploying {} ({}){} ===",
                version.label,
                spec.id,
                if version.healthy {
                    ""
                } else {
                    " — this one fails its health check"
                }
            ),
        );
        let report = ctx.pipeline(None).run_in(ctx.store.as_ref(), &spec).await?;
        mode.finish(&report);
        if report.outcome != version.expect {
            ok = false;
            eprintln!(
                "demo: {} ended {} but {} was expected",
                version.label, report.outcome, version.expect
            );
            break;
        }
        if let Some(m) = &ctx.parts.migrator {
            let s = m.status(None).await?;
            let applied: Vec<String> = s.applied.iter().map(|m| m.to_string()).collect();
            narrate(mode, &format!("schema now: {}", applied.join(", ")));
        }
    }
    if let Some(local) = &local {
        local.stop().await?;
    }
    let ctx = EnvContext::open(&config, "demo", mode).await?;
    narrate(mode, "");
    super::history::print(
        &History::from_runs(&ctx.store.runs().await?),
        "demo",
        1,
        mode,
    );
    if ok {
        narrate(
            mode,
            "\ndemo finished: v1 and v2 deployed, broken v3 rolled back to v2 (code and schema).",
        );
        Ok(exit::OK)
    } else {
        Ok(exit::FAILED)
    }
}

fn narrate(mode: Mode, text: &str) {
    if mode != Mode::Json {
        eprintln!("{text}");
    }
}

fn git(repo: &Path) -> Cmd {
    Cmd::new("git").arg("-C").arg(repo.to_string_lossy())
}

/// A git repository with one commit per demo version; returns the commits.
async fn build_repo(repo: &Path) -> Result<Vec<String>> {
    let sh = LocalShell::new();
    std::fs::create_dir_all(repo.join("migrations"))?;
    sh.check("demo", &git(repo).args(["init", "-q", "-b", "main"]))
        .await
        .context("the demo needs git")?;
    for version in VERSIONS {
        std::fs::write(repo.join("VERSION"), format!("{}\n", version.label))?;
        std::fs::write(
            repo.join("HEALTHY"),
            if version.healthy { "yes\n" } else { "no\n" },
        )?;
        if let Some((name, up, down)) = version.migration {
            std::fs::write(repo.join("migrations").join(format!("{name}.sql")), up)?;
            std::fs::write(
                repo.join("migrations").join(format!("{name}.down.sql")),
                down,
            )?;
        }
        sh.check("demo", &git(repo).args(["add", "-A"])).await?;
        let commit = git(repo)
            .args([
                "-c",
                "user.name=deploykit demo",
                "-c",
                "user.email=demo@deploykit.invalid",
                "commit",
                "-q",
                "-m",
            ])
            .arg(format!("demo {}", version.label));
        sh.check("demo", &commit).await?;
    }
    let out = sh
        .check("demo", &git(repo).args(["log", "--reverse", "--format=%H"]))
        .await?;
    let commits: Vec<String> = out.stdout_text().lines().map(str::to_string).collect();
    if commits.len() != VERSIONS.len() {
        bail!(
            "the demo repository has {} commits, expected {}",
            commits.len(),
            VERSIONS.len()
        );
    }
    Ok(commits)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn demo_config(root: &Path, port: u16) -> Result<String> {
    let exe: PathBuf = std::env::current_exe().context("find the deploykit binary")?;
    let q = |p: &Path| toml::Value::String(p.to_string_lossy().into_owned()).to_string();
    Ok(format!(
        r#"# Written by `deploykit demo`.
[project]
name = "demo"
state_dir = "state"

[environments.demo.target]
kind = "local"
deploy_to = "srv"
repo = "app"
start = [{exe}, "demo-app", "--port", "{{port}}"]
port = {port}

[environments.demo.database]
url = {db}

[environments.demo.backup]
kind = "sqlite"
dir = "backups"
keep = 7

[environments.demo.migrations]
kind = "sql"
dir = "app/migrations"

[[environments.demo.probes]]
kind = "http"
url = "http://127.0.0.1:{port}/api/health"
json_status = true
max_latency_ms = 2000

[environments.demo.policy]
health_deadline_secs = 5
health_attempts = 5
health_interval_secs = 1
"#,
        exe = q(&exe),
        db = q(Path::new(&format!(
            "sqlite://{}",
            root.join("demo.db").display()
        ))),
    ))
}
