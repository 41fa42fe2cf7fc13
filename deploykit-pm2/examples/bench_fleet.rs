//! Benchmark (not a test): run by `script/bench`, which starts the rig with enough
//! sshd instances (`RIG_SSHD_INSTANCES`).
//!
//! Deploy wall time of one release to fleets of 1, 5 and 20 PM2 "hosts". Each host
//! is the sample app with its own deploy dir, PM2_HOME (its own PM2 daemon) and port,
//! reached over its own SSH connection to one of the rig's sshd instances (host `i`
//! uses instance `i % instances`); each fleet size has its own hosts. All of them share this machine's CPU and disk,
//! unlike real separate hosts: the figures measure deploykit's fan-out plus the
//! machine's ability to run N builds and N PM2 reloads at once.
//!
//! Environment: `BENCH_FLEET_SIZES` (default `1,5,20`), `BENCH_ROUNDS` (default 3),
//! `BENCH_FLEET_ROUNDS_MAX` (rounds for the largest fleet; default `BENCH_ROUNDS`),
//! `BENCH_FLEET_WORKERS` (PM2 cluster workers per host, default 1).
//!
//! Prints one line per measured deploy, `fleet <n> <parallel> <round> <seconds>
//! <phase>=<ms>… cpu=<ms> own=<ms>` (`cpu`: the whole machine's busy CPU time during
//! the deploy; `own`: this process's, i.e. deploykit's own share), and before each round `load fleet <round> <busy cores>` (the machine's
//! load over 2 s with nothing of this benchmark running), for `script/bench`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::app::{spec, AppRepo, Behaviour, HostApp};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{
    Event, EventSink, Events, HealthProbe, Outcome, Pipeline, ReleaseSpec, Target,
};
use deploykit_core::{Fleet, Rollout};
use deploykit_pm2::Pm2Probe;

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

/// Deploys `spec` to `set` as one fleet (`parallel` hosts at a time) with a PM2 and
/// an HTTP probe per host; returns the wall time and each phase's duration.
async fn deploy(
    set: &[HostApp],
    parallel: usize,
    workers: usize,
    spec: ReleaseSpec,
) -> (f64, Vec<(String, u64)>) {
    let targets: Vec<(String, Arc<dyn Target>)> = set
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("host{i}"), Arc::new(h.target()) as Arc<dyn Target>))
        .collect();
    let fleet = Fleet::new(targets)
        .rollout(Rollout::AllAtOnce)
        .max_parallel(parallel);
    let sink = Arc::new(Phases::default());
    let mut pipeline = Pipeline::new("fleet")
        .target(Arc::new(fleet))
        .policy(common::app::policy())
        .events(Events::none().with(sink.clone()));
    for h in set {
        let pm2: Arc<dyn HealthProbe> = Arc::new(
            Pm2Probe::new(h.shell.clone(), h.config.clone())
                .instances(workers)
                .settle(Duration::from_secs(1)),
        );
        pipeline = pipeline.probe(pm2).probe(Arc::new(h.http_probe()));
    }
    let (started, busy, own) = (Instant::now(), machine_busy_ms(), own_cpu_ms());
    let report = pipeline.run(&spec, &MemoryJournal::default()).await;
    let took = started.elapsed().as_secs_f64();
    let busy = machine_busy_ms() - busy;
    let own = own_cpu_ms() - own;
    let report = report.expect("the fleet deploy runs");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let mut phases = sink.0.lock().unwrap().clone();
    phases.push(("cpu".into(), busy));
    phases.push(("own".into(), own));
    (took, phases)
}

/// The whole machine's (busy, all) CPU ticks so far (`/proc/stat`; busy is all
/// but idle and iowait).
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    (busy, ticks.iter().sum())
}

/// Busy CPU time of the whole machine so far, in milliseconds, so a run can say
/// how much CPU N hosts' work took (USER_HZ is 100 on Linux).
fn machine_busy_ms() -> u64 {
    machine_ticks().0 * 10
}

/// CPU time this process (deploykit's pipeline, fleet fan-out, SSH multiplexing and
/// probes) has used so far, in milliseconds (`/proc/self/stat` utime + stime):
/// the part of a fleet deploy that is deploykit's own, as opposed to the hosts'
/// builds and PM2 reloads that share this machine.
fn own_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name's closing parenthesis; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    fields.iter().sum::<u64>() * 10
}

/// How many cores were busy over 2 s with none of this benchmark's work running:
/// the load others put on the shared machine around a round.
async fn background_load() -> f64 {
    let (b0, t0) = machine_ticks();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (b1, t1) = machine_ticks();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (b1 - b0) as f64 / (t1 - t0).max(1) as f64 * cores as f64
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
    // Each fleet size gets its own hosts (disjoint sets), so the sizes' rounds can
    // alternate (machine load drifts; other work may share it) while every fleet
    // stays on one release.
    let total: usize = sizes.iter().sum();
    let mut hosts = Vec::new();
    for i in 0..total {
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
        "[bench] fleet: {total} hosts over {} sshd instances, {workers} PM2 worker(s) each",
        ssh.ports.len()
    );
    let mut fleets: Vec<(usize, &[HostApp])> = Vec::new();
    let mut from = 0;
    for &size in &sizes {
        fleets.push((size, &hosts[from..from + size]));
        from += size;
    }
    // Fleet's default parallelism is 8 (what the CLI uses); fleets larger than
    // that are also measured with every host at once.
    let mut runs: Vec<(usize, &[HostApp], usize)> = Vec::new();
    for &(size, set) in &fleets {
        runs.push((size, set, 8.min(size)));
        if size > 8 {
            runs.push((size, set, size));
        }
    }

    let mut n = 0;
    let mut next = |version: &str| {
        n += 1;
        spec(n, version, &repo.commit(version, Behaviour::Good))
    };
    // Warm-up: the first deploy of every fleet (clone, PM2 daemon start), unmeasured.
    for &(size, set) in &fleets {
        let _ = deploy(set, 8.min(size), workers, next(&format!("{size}.0.0"))).await;
    }
    for round in 0..rounds.max(largest_rounds) {
        println!("load fleet {round} {:.2}", background_load().await);
        for &(size, set, parallel) in &runs {
            let limit = if size == largest {
                largest_rounds
            } else {
                rounds
            };
            if round >= limit {
                continue;
            }
            let version = format!("{size}.{parallel}.{round}");
            let (took, phases) = deploy(set, parallel, workers, next(&version)).await;
            let phases: Vec<String> = phases.iter().map(|(p, ms)| format!("{p}={ms}")).collect();
            println!(
                "fleet {size} {parallel} {round} {took:.3} {}",
                phases.join(" ")
            );
            for h in set {
                assert_eq!(
                    h.version().await.as_deref(),
                    Some(version.as_str()),
                    "every host serves the new release"
                );
            }
        }
    }
    for h in &hosts {
        h.finish().await;
    }
}
