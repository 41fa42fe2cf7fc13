//! Benchmark (not a test): run by `script/bench-state`, which starts the rig.
//!
//! What keeping the run journal on the environment's host costs, on the rig's
//! sshd + PM2 with the sample app:
//! 1. the time per journal record: appended and fsynced on the host over the
//!    run's multiplexed SSH connection (`HostStore`), vs a local file
//!    (`LocalStore`), over the same connection the target uses;
//! 2. the time per deploy: the same PM2 deploy journaled on the host vs locally,
//!    alternated round by round so load drifts hit both alike.
//!
//! Prints a Markdown section on stdout.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::app::{policy, spec, AppRepo, Behaviour, HostApp};
use deploykit_core::{
    Commit, HostStore, LocalStore, Outcome, Phase, Pipeline, Record, ReleaseId, Shell, StateStore,
};
use time::OffsetDateTime;

const RECORDS: usize = 200;

fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (
        mean,
        v[v.len() / 2],
        v[(v.len() * 95 / 100).min(v.len() - 1)],
    )
}

/// Milliseconds per append of `RECORDS` records to a new run of `store`.
async fn per_record(store: &dyn StateStore, run: &str) -> Vec<f64> {
    let journal = store.journal(run).await.unwrap();
    let at = OffsetDateTime::now_utc();
    journal
        .append(&Record::RunStarted {
            run_id: run.into(),
            env: "bench".into(),
            release: ReleaseId::parse("rel-1").unwrap(),
            commit: Commit::parse("abc1234").unwrap(),
            branch: None,
            previous: None,
            who: "bench".into(),
            message: None,
            at,
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    for seq in 1..=RECORDS as u32 {
        let record = Record::Intent {
            seq,
            phase: Phase::Prepare,
            undo: None,
            at,
        };
        let t = Instant::now();
        journal.append(&record).await.unwrap();
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out
}

#[tokio::main]
async fn main() {
    let (ssh, pm2) = common::rigs().expect("run via script/bench-state (it starts the rig)");
    let mut repo = AppRepo::create(&pm2.root.join("repos").join("benchstate"), &ssh.user);
    let app = HostApp::new(&ssh, &pm2, 0, "benchstate", &repo).await;
    let host_dir = app.config.deploy_to.join(".deploykit");
    let host = HostStore::new(app.shell.clone(), &host_dir, "bench");
    let local_dir = tempfile::tempdir().unwrap();
    let local = LocalStore::in_dir(local_dir.path().join("journal/bench"));

    // 0. The transport alone: one command that does nothing, over the same connection.
    let mut nothing = Vec::new();
    for _ in 0..RECORDS {
        let t = Instant::now();
        app.shell
            .run(&deploykit_core::Cmd::new("true"), None)
            .await
            .unwrap();
        nothing.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (t_mean, t_p50, t_p95) = stats(nothing);

    // 1. Per record.
    let (h_mean, h_p50, h_p95) = stats(per_record(&host, "20260101T000000Z-host").await);
    let (l_mean, l_p50, l_p95) = stats(per_record(&local, "20260101T000000Z-local").await);

    // 2. Per deploy, alternating stores.
    let mut n = 0;
    let mut deploy = |version: &str| {
        n += 1;
        spec(n, version, &repo.commit(version, Behaviour::Good))
    };
    let pipeline = || {
        Pipeline::new("bench")
            .target(Arc::new(app.target()))
            .probe(Arc::new(app.pm2_probe()))
            .probe(Arc::new(app.http_probe()))
            .policy(policy())
    };
    let first = deploy("1.0.0");
    let r = pipeline().run_in(&local, &first).await.unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:#?}");
    let (mut on_host, mut on_local, mut records) = (Vec::new(), Vec::new(), 0);
    for round in 0..rounds() {
        for (i, store) in [&host as &dyn StateStore, &local].into_iter().enumerate() {
            let s = deploy(&format!("2.{round}.{i}"));
            let t = Instant::now();
            let r = pipeline().run_in(store, &s).await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(r.outcome, Outcome::Succeeded, "{r:#?}");
            if i == 0 {
                on_host.push(secs);
            } else {
                on_local.push(secs);
            }
        }
    }
    if let Some(last) = host.runs().await.unwrap().last() {
        records = last.records.len();
    }
    app.finish().await;
    let (dh, dh50, _) = stats(on_host.clone());
    let (dl, dl50, _) = stats(on_local.clone());
    let added_record = h_mean - l_mean;
    let added_deploy = dh - dl;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("## State store on the host\n");
    println!(
        "Command: `BENCH_ROUNDS={} script/bench-state` ({} UTC; load average at the end: {}).\n",
        rounds(),
        OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" / ")
    );
    println!("| measure | host store (SSH, fsync on the host) | local store | added |");
    println!("|---|---|---|---|");
    println!(
        "| per journal record, mean / p50 / p95 ({RECORDS} appends) | {h_mean:.2} / {h_p50:.2} / {h_p95:.2} ms | {l_mean:.2} / {l_p50:.2} / {l_p95:.2} ms | {added_record:.2} ms per record (goal < 10 ms) |"
    );
    println!(
        "| for scale: one `true` over the same SSH connection, mean / p50 / p95 | {t_mean:.2} / {t_p50:.2} / {t_p95:.2} ms | | |"
    );
    println!(
        "| PM2 deploy wall time, mean / median of {} ({records} records each) | {dh:.2} / {dh50:.2} s | {dl:.2} / {dl50:.2} s | {:+.2} s = {:+.1} % of a deploy (goal < 3 %) |",
        on_host.len(),
        added_deploy,
        100.0 * added_deploy / dl
    );
    println!(
        "\nExpected added time per deploy from the per-record figure: {records} × {added_record:.2} ms = {:.0} ms ({:.1} % of the local-store deploy).",
        records as f64 * added_record,
        100.0 * records as f64 * added_record / 1000.0 / dl
    );
}
