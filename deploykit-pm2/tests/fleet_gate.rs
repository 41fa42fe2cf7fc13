//! A rolling deploy to three PM2 hosts in batches of one, each batch gated by its
//! hosts' probes: the second host fails its health gate, so the first host is
//! switched back, the second too, and the third is never touched.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::app::{policy, spec, AppRepo, Behaviour, HostApp};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{Cmd, Fleet, Outcome, Phase, Pipeline, Rollout, ShellExt, Target};
use deploykit_pm2::commands;

/// Each instance's identity on the host (pm_id, restarts, start time).
async fn identities(h: &HostApp) -> Vec<(u32, u64, Option<u64>)> {
    let out = h
        .shell
        .check("test", &commands::jlist(&h.config))
        .await
        .unwrap();
    deploykit_pm2::jlist::parse_snapshot(&out.stdout_text())
        .unwrap()
        .processes
        .into_iter()
        .map(|p| (p.pm_id, p.pm2_env.restart_time, p.pm2_env.pm_uptime))
        .collect()
}

/// The hosts as a gated rolling fleet, and a pipeline verifying every host.
fn pipeline(hosts: &[HostApp]) -> Pipeline {
    let targets = hosts
        .iter()
        .enumerate()
        .map(|(n, h)| {
            (
                format!("host{}", n + 1),
                Arc::new(h.target()) as Arc<dyn Target>,
            )
        })
        .collect();
    let mut fleet = Fleet::new(targets)
        .rollout(Rollout::Rolling { batch: 1 })
        .gate_rounds(3, Duration::from_millis(500));
    let mut p = Pipeline::new("fleet-gate").policy(policy());
    for (n, h) in hosts.iter().enumerate() {
        let name = format!("host{}", n + 1);
        let http = Arc::new(h.http_probe());
        let pm2 = Arc::new(h.pm2_probe());
        fleet = fleet.gate(&name, pm2.clone()).unwrap();
        fleet = fleet.gate(&name, http.clone()).unwrap();
        p = p.probe(pm2).probe(http);
    }
    p.target(Arc::new(fleet))
}

#[tokio::test]
async fn a_batch_failing_its_gate_switches_back_the_batches_before_and_never_starts_the_next() {
    let Some((ssh, pm2)) = common::rigs() else {
        return;
    };
    assert!(ssh.ports.len() >= 3, "the rig starts three sshd instances");
    let mut repo = AppRepo::create(&pm2.root.join("repos").join("fleet-gate"), &ssh.user);
    let mut hosts = Vec::new();
    for n in 0..3 {
        hosts.push(HostApp::new(&ssh, &pm2, n, &format!("fleet-gate-h{n}"), &repo).await);
    }
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let report = pipeline(&hosts)
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");

    // Host 2 links a `.unhealthy` marker into its next release (the app's health
    // endpoint answers 503 while it exists): its gate fails right after its batch
    // is switched, while its previous release stays healthy.
    let marker = hosts[1].config.deploy_to.join("shared").join(".unhealthy");
    hosts[1]
        .shell
        .check("setup", &Cmd::new("touch").arg(marker.to_string_lossy()))
        .await
        .unwrap();
    hosts[1].config.linked_files.push(".unhealthy".into());
    let untouched = identities(&hosts[2]).await;
    let v2 = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::Good));
    let report = pipeline(&hosts)
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.failed_phase, Some(Phase::Activate), "{report:#?}");
    let error = report.error.clone().unwrap();
    assert!(
        error.contains("host2: not healthy after 3 tries"),
        "{error}"
    );
    assert!(error.contains("status 503"), "{error}");
    assert!(
        error.contains("batch 2 of 3 failed its health gate"),
        "{error}"
    );
    assert!(
        error.contains("Switched 2 host(s) back to r001-1.0.0"),
        "{error}"
    );
    for (n, h) in hosts.iter().enumerate() {
        assert_eq!(
            h.target().current().await.unwrap(),
            Some(v1.id.clone()),
            "host{}",
            n + 1
        );
        assert_eq!(
            h.wait_version("1.0.0").await.as_deref(),
            Some("1.0.0"),
            "host{} serves the previous release",
            n + 1
        );
    }
    // Host 3 was never switched to v2: the pipeline's undo reactivates v1 on
    // every host (one reload of v1 there: each worker restarted once), where a
    // switch to v2 and back would have restarted each worker twice.
    let after = identities(&hosts[2]).await;
    assert_eq!(after.len(), untouched.len(), "{after:?}");
    for ((id, restarts, _), (id0, restarts0, _)) in after.iter().zip(&untouched) {
        assert_eq!(id, id0);
        assert!(
            *restarts <= restarts0 + 1,
            "host3 #{id} restarted {} times: switched to v2 and back",
            restarts - restarts0
        );
    }
    for h in &hosts {
        h.finish().await;
    }
}
