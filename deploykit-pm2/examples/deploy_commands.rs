//! Benchmark (not a test): every SSH command one PM2 host's deploy runs, in order,
//! with its phase and round-trip time, so cutting round trips and `pm2` start-ups
//! can be measured. Needs the rig's sshd and pm2 parts:
//!
//! ```text
//! script/rig-up sshd pm2 -- cargo run -q -p deploykit-pm2 --example deploy_commands
//! ```
//!
//! The sample app (cluster mode, 2 workers) is deployed once unmeasured, then
//! `BENCH_ROUNDS` times (default 3) through the core pipeline with a PM2 probe
//! (settle `BENCH_SETTLE_MS`, default 2000, as the MUVA benchmark) and an HTTP
//! probe. Prints, per round, each command as `cmd <round> <phase> <ms> <status>
//! <pm2?> <what>`, then `phases <round> <phase>=<ms>…` and a summary per phase:
//! commands, `pm2` start-ups, median total milliseconds of the commands.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::app::{policy, spec, AppRepo, Behaviour, HostApp};
use common::recording::{CurrentPhase, RecordingShell};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{Event, EventSink, Events, Outcome, Pipeline, Shell};
use deploykit_pm2::{Pm2Probe, Pm2Target};

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

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let (ssh, pm2) = common::rigs().expect("run via script/rig-up sshd pm2 -- …");
    let rounds = env_num("BENCH_ROUNDS", 3) as u32;
    let settle = Duration::from_millis(env_num("BENCH_SETTLE_MS", 2000));
    let mut repo = AppRepo::create(&pm2.root.join("repos").join("commands"), &ssh.user);
    let app = HostApp::new(&ssh, &pm2, 0, "commands", &repo).await;
    let phase = Arc::new(CurrentPhase::default());
    let shell = Arc::new(RecordingShell::new(
        app.shell.clone(),
        &app.config.pm2,
        phase.clone(),
    ));
    let dyn_shell: Arc<dyn Shell> = shell.clone();
    // Per phase: (commands, pm2 start-ups, total ms) of every measured round.
    let mut summary: BTreeMap<String, Vec<(usize, usize, u64)>> = BTreeMap::new();
    for round in 0..=rounds {
        let version = format!("{}.0.0", round + 1);
        let s = spec(round + 1, &version, &repo.commit(&version, Behaviour::Good));
        let phases = Arc::new(Phases::default());
        let report = Pipeline::new("commands")
            .target(Arc::new(
                Pm2Target::new(dyn_shell.clone(), app.config.clone()).unwrap(),
            ))
            .probe(Arc::new(
                Pm2Probe::new(dyn_shell.clone(), app.config.clone())
                    .instances(2)
                    .settle(settle),
            ))
            .probe(Arc::new(app.http_probe()))
            .policy(policy())
            .events(Events::none().with(phase.clone()).with(phases.clone()))
            .run(&s, &MemoryJournal::default())
            .await
            .unwrap();
        assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
        let ran = shell.take();
        if round == 0 {
            continue; // warm-up: first clone, PM2 daemon start
        }
        let mut per_phase: BTreeMap<String, (usize, usize, u64)> = BTreeMap::new();
        for r in &ran {
            println!(
                "cmd {round} {} {} {} {} {}",
                r.phase,
                r.took.as_millis(),
                r.status.map_or("-".into(), |s| s.to_string()),
                if r.pm2 { "pm2" } else { "-" },
                r.what
            );
            let e = per_phase.entry(r.phase.clone()).or_default();
            e.0 += 1;
            e.1 += usize::from(r.pm2);
            e.2 += r.took.as_millis() as u64;
        }
        for (p, v) in per_phase {
            summary.entry(p).or_default().push(v);
        }
        let phases: Vec<String> = phases
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(p, ms)| format!("{p}={ms}"))
            .collect();
        println!("phases {round} {}", phases.join(" "));
    }
    println!("summary: phase commands pm2-start-ups median-ms-in-commands");
    let (mut all_n, mut all_pm2) = (0, 0);
    for (p, v) in &summary {
        let (n, k) = (v[0].0, v[0].1);
        all_n += n;
        all_pm2 += k;
        println!(
            "summary {p} {n} {k} {}",
            median(v.iter().map(|x| x.2).collect())
        );
    }
    println!("summary total {all_n} {all_pm2}");
    app.finish().await;
}
