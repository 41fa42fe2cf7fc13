//! Benchmark (not a test): deploykit's Compose deploy and rollback, stop-first (the
//! default) and start-first, against the seeds' hand-written `stop / rm / up`
//! sequence, on the same stack, under continuous HTTP requests. Run through
//! `script/bench-docker`, which starts the rig's engine.
//!
//! Every way runs the same app: tests/apps/reuseport_httpd.rs (binds with
//! `SO_REUSEPORT` under `network_mode: host`, which start-first needs; exits cleanly
//! on SIGTERM), compiled with `rustc` and copied into a FROM-busybox image.
//!
//! Measures, per scenario and round:
//! * failed requests (refused, timed out or not 200) while the deploy runs, and the
//!   longest time between two successful responses (requests go out every 10 ms);
//! * for rollbacks, seconds from the failed health verdict to the previous release
//!   being healthy again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deploykit_core::testing::MemoryJournal;
use deploykit_core::{
    Commit, HealthPolicy, LocalShell, Outcome, Pipeline, Policy, ReleaseId, ReleaseSpec, Shell,
    ShellExt, Target,
};
use deploykit_docker::Strategy;
use deploykit_docker::{
    ComposeCli, ComposeProject, ComposeRunMigrator, ComposeTarget, ContainerHealthProbe, Engine,
    Health,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../tests/common/reuseport.rs"]
mod reuseport;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PORT: u16 = 18401;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let docker_host = std::env::var("DEPLOYKIT_RIG_DOCKER_HOST")?;
    let busybox = std::env::var("DEPLOYKIT_RIG_DOCKER_BUSYBOX")?;
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let engine = Engine::connect(&docker_host, "rig docker engine").await?;
    let shell = LocalShell::new();
    let cli = ComposeCli::detect(&shell).await?;
    let app = reuseport::build_app(&std::env::temp_dir().join("deploykit-bench-app"))?;
    let base = Base { busybox, app };

    let mut rows = Vec::new();
    for round in 1..=rounds {
        for strategy in [Strategy::StopFirst, Strategy::StartFirst] {
            eprintln!("round {round}/{rounds}: deploykit {strategy}");
            rows.push(deploykit_round(&engine, cli, &docker_host, &base, round, strategy).await?);
        }
        eprintln!("round {round}/{rounds}: seeds");
        rows.push(seeds_round(&engine, cli, &docker_host, &base, round).await?);
    }
    println!("| way | round | upgrade: failed / requests | upgrade: longest gap (s) | rollback: failed / requests | rollback: longest gap (s) | failed health -> previous healthy (s) |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} / {} | {:.2} | {} / {} | {:.2} | {:.2} |",
            r.way,
            r.round,
            r.upgrade.failed,
            r.upgrade.total,
            r.upgrade.longest_gap.as_secs_f64(),
            r.rollback.failed,
            r.rollback.total,
            r.rollback.longest_gap.as_secs_f64(),
            r.recovery.as_secs_f64()
        );
    }
    for way in [WAY_STOP_FIRST, WAY_START_FIRST, WAY_SEEDS] {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.way == way).collect();
        let mut rec: Vec<f64> = mine.iter().map(|r| r.recovery.as_secs_f64()).collect();
        rec.sort_by(|a, b| a.total_cmp(b));
        let failed_up: u64 = mine.iter().map(|r| r.upgrade.failed).sum();
        let total_up: u64 = mine.iter().map(|r| r.upgrade.total).sum();
        let failed_rb: u64 = mine.iter().map(|r| r.rollback.failed).sum();
        let total_rb: u64 = mine.iter().map(|r| r.rollback.total).sum();
        let gap_up = mine
            .iter()
            .map(|r| r.upgrade.longest_gap)
            .max()
            .unwrap_or_default();
        let gap_rb = mine
            .iter()
            .map(|r| r.rollback.longest_gap)
            .max()
            .unwrap_or_default();
        println!(
            "\n{way}: upgrade failed {failed_up}/{total_up} requests (longest gap {:.2} s), \
             rollback failed {failed_rb}/{total_rb} (longest gap {:.2} s); \
             failed health -> previous healthy median {:.2} s (min {:.2}, max {:.2})",
            gap_up.as_secs_f64(),
            gap_rb.as_secs_f64(),
            rec[rec.len() / 2],
            rec[0],
            rec[rec.len() - 1]
        );
    }
    Ok(())
}

const WAY_STOP_FIRST: &str = "deploykit stop-first";
const WAY_START_FIRST: &str = "deploykit start-first";
const WAY_SEEDS: &str = "seeds (stop/rm/up)";

/// What every stack's image is made of.
struct Base {
    busybox: String,
    app: std::path::PathBuf,
}

struct Row {
    way: &'static str,
    round: usize,
    upgrade: Load,
    rollback: Load,
    recovery: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Load {
    total: u64,
    failed: u64,
    /// The longest time between two successful responses (or from the start to the
    /// first, or from the last to the end).
    longest_gap: Duration,
}

/// Requests `GET /` back to back (10 ms apart) until stopped.
struct LoadGen {
    stop: Arc<AtomicBool>,
    total: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Duration>,
}

impl LoadGen {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let total = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, t, f) = (stop.clone(), total.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let mut last_ok = Instant::now();
            let mut longest = Duration::ZERO;
            while !s.load(Ordering::Relaxed) {
                let ok = tokio::time::timeout(Duration::from_secs(1), get_ok(PORT))
                    .await
                    .unwrap_or(false);
                t.fetch_add(1, Ordering::Relaxed);
                if ok {
                    longest = longest.max(last_ok.elapsed());
                    last_ok = Instant::now();
                } else {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            longest.max(last_ok.elapsed())
        });
        Self {
            stop,
            total,
            failed,
            task,
        }
    }

    async fn finish(self) -> Load {
        self.stop.store(true, Ordering::Relaxed);
        let longest_gap = self.task.await.unwrap_or_default();
        Load {
            total: self.total.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            longest_gap,
        }
    }
}

async fn get_ok(port: u16) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    if s.read_to_end(&mut buf).await.is_err() {
        return false;
    }
    buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200")
}

/// A stack like the CRM's: one web service (the reuseport app with a HEALTHCHECK)
/// built by compose, plus a one-off migration service.
struct Stack {
    dir: tempfile::TempDir,
    project: ComposeProject,
    busybox: String,
}

impl Stack {
    fn new(
        name: &str,
        cli: ComposeCli,
        docker_host: &str,
        base: &Base,
        extra: &str,
    ) -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        reuseport::write_root(dir.path(), &base.app)?;
        let file = dir.path().join("docker-compose.yml");
        std::fs::write(
            &file,
            format!(
                "version: \"2.4\"\nservices:\n  web:\n    build: .\n    network_mode: host\n    stop_grace_period: 1s\n{extra}\
                 \x20 web-migrate:\n    build: .\n    network_mode: host\n"
            ),
        )?;
        std::fs::write(dir.path().join(".env"), "")?;
        let project = ComposeProject::new(name, vec![file], cli)?.docker_host(docker_host);
        Ok(Self {
            dir,
            project,
            busybox: base.busybox.clone(),
        })
    }

    /// A broken release (`healthy = false`) never listens, so its HEALTHCHECK fails.
    fn write_release(&self, version: &str, healthy: bool) -> Result<(), BoxError> {
        std::fs::write(
            self.dir.path().join("Dockerfile"),
            reuseport::dockerfile(&self.busybox, PORT, version, healthy),
        )?;
        Ok(())
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn spec(id: &str) -> Result<ReleaseSpec, BoxError> {
    Ok(ReleaseSpec {
        id: ReleaseId::parse(id)?,
        commit: Commit::parse(format!("{id}0000000"))?,
        branch: None,
    })
}

async fn deploykit_round(
    engine: &Engine,
    cli: ComposeCli,
    docker_host: &str,
    base: &Base,
    round: usize,
    strategy: Strategy,
) -> Result<Row, BoxError> {
    let name = match strategy {
        Strategy::StartFirst => format!("bench-dksf-{round}"),
        _ => format!("bench-dk-{round}"),
    };
    reset(engine, &name).await;
    let stack = Stack::new(&name, cli, docker_host, base, "")?;
    let target = Arc::new(
        ComposeTarget::new(
            Arc::new(LocalShell::new()),
            engine.clone(),
            stack.project.clone(),
            "web",
            &format!("deploykit-bench/{name}"),
        )?
        .health_deadline(Duration::from_secs(60))
        .strategy(strategy),
    );
    let (v1, v2, v3) = (
        spec("20260101T000000Z-v1")?,
        spec("20260102T000000Z-v2")?,
        spec("20260103T000000Z-v3")?,
    );
    stack.write_release("v1", true)?;
    target.prepare(&v1).await?;
    target.activate(Some(&v1.id)).await?;

    // Upgrade v1 -> v2 through the pipeline, under load.
    stack.write_release("v2", true)?;
    let load = LoadGen::start();
    let migrator =
        ComposeRunMigrator::new(&target, vec!["true".into()]).run_service("web-migrate")?;
    let probe = ContainerHealthProbe::new(engine.clone(), &name, "web");
    let policy = Policy::default()
        .health(HealthPolicy {
            deadline: Duration::from_secs(60),
            attempts: 120,
            interval: Duration::from_millis(500),
            accept_degraded: false,
        })
        .waive_backup(true)
        .migration_failure(deploykit_core::MigrationFailurePolicy::Keep);
    let report = Pipeline::new("bench")
        .target(target.clone() as Arc<dyn Target>)
        .migrator(Arc::new(migrator))
        .probe(Arc::new(probe))
        .policy(policy)
        .run(&v2, &MemoryJournal::default())
        .await?;
    let upgrade = load.finish().await;
    if report.outcome != Outcome::Succeeded {
        return Err(format!("deploykit upgrade failed: {:?}", report.error).into());
    }

    // A broken v3: activate fails on its HEALTHCHECK, then v2 is re-activated.
    stack.write_release("v3", false)?;
    target.prepare(&v3).await?;
    let load = LoadGen::start();
    if target.activate(Some(&v3.id)).await.is_ok() {
        return Err("the broken release was reported healthy".into());
    }
    let failed_at = Instant::now();
    target.activate(Some(&v2.id)).await?;
    let recovery = failed_at.elapsed();
    let rollback = load.finish().await;
    cleanup(&stack, engine).await;
    Ok(Row {
        way: match strategy {
            Strategy::StartFirst => WAY_START_FIRST,
            _ => WAY_STOP_FIRST,
        },
        round,
        upgrade,
        rollback,
        recovery,
    })
}

async fn seeds_round(
    engine: &Engine,
    cli: ComposeCli,
    docker_host: &str,
    base: &Base,
    round: usize,
) -> Result<Row, BoxError> {
    let name = format!("bench-seed-{round}");
    let image = format!("deploykit-bench/{name}");
    let container = format!("{name}-backend");
    reset(engine, &name).await;
    let stack = Stack::new(
        &name,
        cli,
        docker_host,
        base,
        &format!("    image: {image}:latest\n    container_name: {container}\n"),
    )?;
    let sh = LocalShell::new();
    let docker = |args: &[&str]| {
        deploykit_core::Cmd::new("docker")
            .args(args.iter().copied())
            .env("DOCKER_HOST", docker_host)
    };
    // The seed's `up` is plain `compose up -d --no-deps backend`, no pin file: an
    // empty override keeps ComposeProject's builder usable.
    let empty = stack.path().join("empty.yml");
    std::fs::write(&empty, "version: \"2.4\"\n")?;

    stack.write_release("v1", true)?;
    sh.check("seed", &stack.project.build("web")).await?;
    sh.check("seed", &stack.project.up("web", &empty)).await?;
    wait_health(engine, &name, Health::Healthy).await?;

    // Upgrade, as deploy-production.yml does it, under load.
    stack.write_release("v2", true)?;
    let load = LoadGen::start();
    seed_deploy(&sh, &stack, &empty, &docker, &image, &container).await?;
    wait_health(engine, &name, Health::Healthy).await?;
    let upgrade = load.finish().await;

    // A broken v3 the same way; the health check fails; the seed rolls back.
    stack.write_release("v3", false)?;
    let load = LoadGen::start();
    seed_deploy(&sh, &stack, &empty, &docker, &image, &container).await?;
    wait_health(engine, &name, Health::Unhealthy).await?;
    let failed_at = Instant::now();
    sh.check(
        "seed",
        &docker(&[
            "tag",
            &format!("{image}:rollback"),
            &format!("{image}:latest"),
        ]),
    )
    .await?;
    let _ = sh.run(&docker(&["stop", &container]), None).await?;
    let _ = sh.run(&docker(&["rm", "-f", &container]), None).await?;
    sh.check("seed", &stack.project.up("web", &empty)).await?;
    wait_health(engine, &name, Health::Healthy).await?;
    let recovery = failed_at.elapsed();
    let rollback = load.finish().await;
    cleanup(&stack, engine).await;
    Ok(Row {
        way: WAY_SEEDS,
        round,
        upgrade,
        rollback,
        recovery,
    })
}

/// The seeds' deploy step: keep `:rollback`, build, stop, rm, up (no migration:
/// the bench's app has none, and the seed runs it only after the switch anyway).
async fn seed_deploy(
    sh: &LocalShell,
    stack: &Stack,
    empty: &Path,
    docker: &impl Fn(&[&str]) -> deploykit_core::Cmd,
    image: &str,
    container: &str,
) -> Result<(), BoxError> {
    sh.check(
        "seed",
        &docker(&[
            "tag",
            &format!("{image}:latest"),
            &format!("{image}:rollback"),
        ]),
    )
    .await?;
    sh.check("seed", &stack.project.build("web")).await?;
    let _ = sh.run(&docker(&["stop", container]), None).await?;
    let _ = sh.run(&docker(&["rm", "-f", container]), None).await?;
    sh.check("seed", &stack.project.up("web", empty)).await?;
    Ok(())
}

/// Polls the engine every 500 ms (ComposeTarget's interval) for `want`.
async fn wait_health(engine: &Engine, project: &str, want: Health) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(c) = engine.service_container(project, "web").await? {
            if c.health == Some(want) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("{project}: no {want:?} container within 60 s").into())
}

/// Removes the project's containers and the repository's tags, so an earlier run's
/// images (the engine's data outlives the rig) are never reused as "releases".
async fn cleanup(stack: &Stack, engine: &Engine) {
    reset(engine, &stack.project.name).await;
}

async fn reset(engine: &Engine, project: &str) {
    for service in ["web", "web-migrate"] {
        if let Ok(all) = engine.service_containers(project, service).await {
            for c in all {
                let _ = engine.remove(&c.id).await;
            }
        }
    }
    let repo = format!("deploykit-bench/{project}");
    if let Ok(tags) = engine.tags_of(&repo).await {
        for tag in tags {
            let _ = engine.untag(&format!("{repo}:{tag}")).await;
        }
    }
}
