//! What one PM2 host's deploy costs in SSH round trips and `pm2` start-ups (each a
//! Node start-up on the host, the bulk of a deploy's CPU there), counted with a
//! recording shell over the rig's real sshd and PM2. Counts, not times: these
//! keep merged commands from coming apart again.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::app::{policy, spec, AppRepo, Behaviour, HostApp};
use common::recording::{CurrentPhase, Ran, RecordingShell};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{Event, EventSink, Events, Outcome, Pipeline, Shell};
use deploykit_pm2::{Pm2Probe, Pm2Target};

/// Counts the PM2 probe's rounds (one health attempt each).
#[derive(Default)]
struct Pm2Rounds(AtomicU32);

impl EventSink for Pm2Rounds {
    fn emit(&self, event: &Event) {
        if let Event::HealthAttempt { probe, .. } = event {
            if probe.starts_with("pm2 ") {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

fn in_phase<'a>(ran: &'a [Ran], phase: &str) -> Vec<&'a Ran> {
    ran.iter().filter(|r| r.phase == phase).collect()
}

#[tokio::test]
async fn a_deploy_runs_few_commands_and_few_pm2_start_ups_per_host() {
    let Some((ssh, pm2)) = common::rigs() else {
        return;
    };
    let name = "round-trips";
    let mut repo = AppRepo::create(&pm2.root.join("repos").join(name), &ssh.user);
    let app = HostApp::new(&ssh, &pm2, 0, name, &repo).await;
    let phase = Arc::new(CurrentPhase::default());
    let shell = Arc::new(RecordingShell::new(
        app.shell.clone(),
        &app.config.pm2,
        phase.clone(),
    ));
    let on: Arc<dyn Shell> = shell.clone();
    let rounds = Arc::new(Pm2Rounds::default());
    let deploy = |n: u32, version: &str, commit| {
        let s = spec(n, version, &commit);
        let pipeline = Pipeline::new("test")
            .target(Arc::new(
                Pm2Target::new(on.clone(), app.config.clone()).unwrap(),
            ))
            .probe(Arc::new(
                Pm2Probe::new(on.clone(), app.config.clone())
                    .instances(2)
                    .settle(std::time::Duration::from_secs(2)),
            ))
            .probe(Arc::new(app.http_probe()))
            .policy(policy())
            .events(Events::none().with(phase.clone()).with(rounds.clone()));
        async move {
            let report = pipeline.run(&s, &MemoryJournal::default()).await.unwrap();
            assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
        }
    };
    deploy(1, "1.0.0", repo.commit("1.0.0", Behaviour::Good)).await;
    shell.take();
    rounds.0.store(0, Ordering::SeqCst);
    deploy(2, "2.0.0", repo.commit("2.0.0", Behaviour::Good)).await;
    let rounds = rounds.0.load(Ordering::SeqCst) as usize;
    let ran = shell.take();
    assert!(ran.iter().all(|r| r.status == Some(0)), "{ran:#?}");

    // Prepare: begin (layout, prepared?, current), fetch, checkout, the linked
    // paths (one `.env` and one `logs/`) together, the build, seal.
    let prepare = in_phase(&ran, "prepare");
    assert_eq!(prepare.len(), 6, "{prepare:#?}");
    assert_eq!(prepare[4].what, "npm run", "{prepare:#?}");
    assert!(prepare.iter().all(|r| !r.pm2), "{prepare:#?}");

    // Activate: where `current` points (remembered for the undo), one switch
    // (prepared? + link + rename), then the reload gate: a snapshot, the canary
    // started and judged (one or two snapshots), and only then the reload, the
    // canary deleted, and save.
    let activate = in_phase(&ran, "activate");
    let what: Vec<&str> = activate.iter().map(|r| r.what.as_str()).collect();
    assert!(what[1].starts_with("sh -c"), "{what:?}");
    assert_eq!(&what[2..4], ["pm2 jlist", "pm2 startOrReload"], "{what:?}");
    let judged = what.len() - 7;
    assert!((1..=2).contains(&judged), "{what:?}");
    assert!(
        what[4..4 + judged].iter().all(|w| *w == "pm2 jlist"),
        "{what:?}"
    );
    assert_eq!(
        &what[4 + judged..],
        ["pm2 startOrReload", "pm2 delete", "pm2 save"],
        "{what:?}"
    );

    // Verify: only clocked `pm2 jlist` snapshots, at most three per probe round
    // (normally two right after a reload, one for a settled app); the HTTP probe
    // runs here, not on the host.
    let verify = in_phase(&ran, "verify");
    assert!(
        verify.iter().all(|r| r.what == "pm2 jlist" && r.pm2),
        "{verify:#?}"
    );
    assert!(rounds >= 1);
    assert!(
        (rounds..=3 * rounds).contains(&verify.len()),
        "{rounds} round(s): {verify:#?}"
    );

    // Before and after the phases: the live release and the staged ones (core's
    // pipeline), and prune's list and live release.
    assert_eq!(ran.len(), 6 + what.len() + verify.len() + 4, "{ran:#?}");
    app.finish().await;
}
