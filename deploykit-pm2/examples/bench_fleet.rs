//! Benchmark (not a test): run by `script/bench`, which starts the rig with enough
//! sshd instances (`RIG_SSHD_INSTANCES`).
//!
//! Deploy wall time of one release to fleets of 1, 5 and 20 PM2 "hosts". Each host
//! is the sample app with its own deploy dir, PM2_HOME (its own PM2 daemon) and port,
//! reached over its own SSH connection to one of the rig's sshd instances (host `i`
//! uses instance `i % instances`). All of them share this machine's CPU and disk,
//! unlike real separate hosts: the figures measure deploykit's fan-out plus the
//! machine's ability to run N builds and N PM2 reloads at once.
//!
//! Environment: `BENCH_FLEET_SIZES` (default `1,5,20`), `BENCH_ROUNDS` (default 3),
//! `BENCH_FLEET_ROUNDS_MAX` (rounds for the largest fleet; default `BENCH_ROUNDS`),
//! `BENCH_FLEET_WORKERS` (PM2 cluster workers per host, default 1).
//!
//! Prints one line per measured deploy, `fleet <n> <parallel> <round> <seconds>
//! <phase>=<ms>…`, for `script/bench` to tabulate.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::app::{spec, AppRepo, Behaviour, HostApp};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{Event, EventSink, Events, HealthProbe, Outcome, Pipeline, Target};
use deploykit_pm2::{Pm2Fleet, Pm2Probe, Rollout};

/// Records each phase's duration.
#[derive(Default)]
struct Phases(Mutex<Vec<(String, u64)>>);

impl EventSink for Phases {
    fn emit(&self, event: &Event) {
        if let Event::PhaseFinished {
            phase, elapsed_ms, ..
        } = event
        {
            self.0
                .lock()
                .unwrap()
                .push((phase.to_string(), *elapsed_ms));
        }
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let (ssh, pm2) = common::rigs().expect("run via script/bench (it starts the rig)");
    let sizes: Vec<usize> = std::env::var("BENCH_FLEET_SIZES")
        .unwrap_or_else(|_| "1,5,20".into())
        .split(',')
        .map(|s| s.trim().parse().expect("BENCH_FLEET_SIZES: numbers"))
        .collect();
    let rounds = env_num("BENCH_ROUNDS", 3);
    let largest = *sizes.iter().max().expect("at least one fleet size");
    let largest_rounds = env_num("BENCH_FLEET_ROUNDS_MAX", rounds);
    let workers = env_num("BENCH_FLEET_WORKERS", 1);

    let mut repo = AppRepo::create(&pm2.root.join("repos").join("fleet"), &ssh.user);
    let mut hosts = Vec::new();
    for i in 0..largest {
        let mut app = HostApp::new(
            &ssh,
            &pm2,
            i % ssh.ports.len(),
            &format!("fleet{i:02}"),
            &repo,
        )
        .await;
        app.config = app.config.clone().env("APP_INSTANCES", workers.to_string());
        hosts.push(app);
    }
    eprintln!(
        "[bench] fleet: {largest} hosts over {} sshd instances, {workers} PM2 worker(s) each",
        ssh.ports.len()
    );

    let mut n = 0;
    // Fleet sizes in increasing order share the hosts: each size first gets one
    // unmeasured deploy so every host in it runs the same release (and its PM2
    // daemon is up), then the measured rounds.
    for &size in &sizes {
        // The CLI's fleet uses Pm2Fleet's default parallelism (8); also measure
        // every host at once when the fleet is larger.
        let mut parallels = vec![8.min(size)];
        if size > 8 {
            parallels.push(size);
        }
        let fleet = |parallel: usize| {
            let targets: Vec<(String, Arc<dyn Target>)> = hosts[..size]
                .iter()
                .enumerate()
                .map(|(i, h)| (format!("host{i}"), Arc::new(h.target()) as Arc<dyn Target>))
                .collect();
            Pm2Fleet::new(targets)
                .rollout(Rollout::AllAtOnce)
                .max_parallel(parallel)
        };
        let probes = || {
            let mut p: Vec<Arc<dyn HealthProbe>> = Vec::new();
            for h in &hosts[..size] {
                p.push(Arc::new(
                    Pm2Probe::new(h.shell.clone(), h.config.clone())
                        .instances(workers)
                        .settle(Duration::from_secs(1)),
                ));
                p.push(Arc::new(h.http_probe()));
            }
            p
        };
        let deploy = |parallel: usize, spec: deploykit_core::ReleaseSpec| {
            let sink = Arc::new(Phases::default());
            let mut pipeline = Pipeline::new("fleet")
                .target(Arc::new(fleet(parallel)))
                .policy(common::app::policy())
                .events(Events::none().with(sink.clone()));
            for p in probes() {
                pipeline = pipeline.probe(p);
            }
            async move {
                let started = Instant::now();
                let report = pipeline.run(&spec, &MemoryJournal::default()).await;
                let took = started.elapsed().as_secs_f64();
                let report = report.expect("the fleet deploy runs");
                assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
                let phases = sink.0.lock().unwrap().clone();
                (took, phases)
            }
        };
        n += 1;
        let warm = spec(
            n,
            &format!("{size}.0.0"),
            &repo.commit(&format!("{size}.0.0"), Behaviour::Good),
        );
        let _ = deploy(parallels[0], warm).await;
        let rounds = if size == largest {
            largest_rounds
        } else {
            rounds
        };
        for &parallel in &parallels {
            for round in 0..rounds {
                n += 1;
                let version = format!("{size}.{parallel}.{round}");
                let s = spec(n, &version, &repo.commit(&version, Behaviour::Good));
                let (took, phases) = deploy(parallel, s).await;
                let phases: Vec<String> =
                    phases.iter().map(|(p, ms)| format!("{p}={ms}")).collect();
                println!(
                    "fleet {size} {parallel} {round} {took:.3} {}",
                    phases.join(" ")
                );
                for h in &hosts[..size] {
                    assert_eq!(
                        h.version().await.as_deref(),
                        Some(version.as_str()),
                        "every host serves the new release"
                    );
                }
            }
        }
    }
    for h in &hosts {
        h.finish().await;
    }
}
