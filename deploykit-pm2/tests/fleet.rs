//! One release to three hosts (three sshd instances), one of which fails to
//! activate: every host ends back on the previous release, serving it.

mod common;

use std::sync::Arc;

use common::app::{policy, spec, AppRepo, Behaviour, HostApp};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{Cmd, Outcome, Phase, Pipeline, ShellExt, Target};
use deploykit_core::{Fleet, Rollout};

/// A `pm2` wrapper that refuses `startOrReload` of the release named in the file
/// `refuse` next to it, as a host whose PM2 is broken would.
const FLAKY_PM2: &str = r#"#!/bin/sh
here="$(dirname "$0")"
if [ "$1" = startOrReload ] && [ -f "$here/refuse" ] && [ "$(cat "$here/refuse")" = "$DEPLOYKIT_RELEASE" ]; then
  echo "simulated: PM2 on this host cannot start $DEPLOYKIT_RELEASE" >&2
  exit 1
fi
exec pm2 "$@"
"#;

#[tokio::test]
async fn three_hosts_with_one_failing_are_all_rolled_back() {
    let Some((ssh, pm2)) = common::rigs() else {
        return;
    };
    assert!(ssh.ports.len() >= 3, "the rig starts three sshd instances");
    let mut repo = AppRepo::create(&pm2.root.join("repos").join("fleet"), &ssh.user);
    let mut hosts = Vec::new();
    for n in 0..3 {
        hosts.push(HostApp::new(&ssh, &pm2, n, &format!("fleet-h{n}"), &repo).await);
    }
    // Host 3 runs PM2 through the wrapper.
    let wrapper = pm2.root.join("fleet-h2").join("pm2-flaky");
    let install = Cmd::new("sh")
        .arg("-c")
        .arg("printf '%s' \"$2\" > \"$1\" && chmod +x \"$1\"")
        .arg("sh")
        .arg(wrapper.to_string_lossy())
        .arg(FLAKY_PM2);
    hosts[2].shell.check("setup", &install).await.unwrap();
    hosts[2].config.pm2 = wrapper.to_string_lossy().into_owned();

    let pipeline = {
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
        let fleet = Fleet::new(targets)
            .rollout(Rollout::Rolling { batch: 1 })
            .max_parallel(2);
        let mut p = Pipeline::new("fleet")
            .target(Arc::new(fleet))
            .policy(policy());
        for h in &hosts {
            p = p
                .probe(Arc::new(h.pm2_probe()))
                .probe(Arc::new(h.http_probe()));
        }
        p
    };

    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let report = pipeline.run(&v1, &MemoryJournal::default()).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    for h in &hosts {
        assert_eq!(h.version().await.as_deref(), Some("1.0.0"));
    }

    let v2 = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::Good));
    let refuse = pm2.root.join("fleet-h2").join("refuse");
    let arm = Cmd::new("sh")
        .arg("-c")
        .arg("printf '%s' \"$2\" > \"$1\"")
        .arg("sh")
        .arg(refuse.to_string_lossy())
        .arg(v2.id.as_str());
    hosts[2].shell.check("setup", &arm).await.unwrap();

    let report = pipeline.run(&v2, &MemoryJournal::default()).await.unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.failed_phase, Some(Phase::Activate));
    let error = report.error.clone().unwrap();
    assert!(error.contains("host3"), "{error}");
    assert!(error.contains("cannot start r002-2.0.0"), "{error}");
    assert!(
        error.contains("Switched 3 host(s) back to r001-1.0.0"),
        "{error}"
    );
    for (n, h) in hosts.iter().enumerate() {
        let t = h.target();
        assert_eq!(
            t.current().await.unwrap(),
            Some(v1.id.clone()),
            "host{}",
            n + 1
        );
        assert!(!t.list().await.unwrap().contains(&v2.id), "host{}", n + 1);
        assert_eq!(
            h.wait_version("1.0.0").await.as_deref(),
            Some("1.0.0"),
            "host{} serves the previous release",
            n + 1
        );
    }
    for h in &hosts {
        h.finish().await;
    }
}
