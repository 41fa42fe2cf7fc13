//! A trusted release (one that already served on the host: what `deploykit
//! rollback` goes back to) is reloaded without the reload gate's canary, and a
//! trusted release that no longer comes up is still caught by verify and undone,
//! back to the release live before, over the rig's real sshd and PM2.

mod common;

use std::sync::Arc;

use common::app::{policy, spec, AppRepo, Behaviour, HostApp};
use common::recording::{CurrentPhase, Ran, RecordingShell};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{Events, Outcome, Phase, Pipeline, Shell, Target};
use deploykit_pm2::Pm2Target;

fn what(ran: &[Ran], phase: &str) -> Vec<String> {
    ran.iter()
        .filter(|r| r.phase == phase)
        .map(|r| r.what.clone())
        .collect()
}

fn canaries(ran: &[Ran]) -> Vec<String> {
    ran.iter()
        .filter(|r| r.command.contains("deploykit-canary"))
        .map(|r| r.command.clone())
        .collect()
}

#[tokio::test]
async fn a_trusted_release_reloads_without_a_canary_and_is_still_undone_when_it_fails() {
    let Some((ssh, pm2)) = common::rigs() else {
        return;
    };
    let name = "trusted";
    let mut repo = AppRepo::create(&pm2.root.join("repos").join(name), &ssh.user);
    let app = HostApp::new(&ssh, &pm2, 0, name, &repo).await;
    let phase = Arc::new(CurrentPhase::default());
    let shell = Arc::new(RecordingShell::new(
        app.shell.clone(),
        &app.config.pm2,
        phase.clone(),
    ));
    let on: Arc<dyn Shell> = shell.clone();
    let pipeline = |target: Arc<Pm2Target>| {
        Pipeline::new("test")
            .target(target)
            .probe(Arc::new(app.pm2_probe_on(on.clone())))
            .probe(Arc::new(app.http_probe()))
            .policy(policy())
            .events(Events::none().with(phase.clone()))
    };
    let target = || Arc::new(Pm2Target::new(on.clone(), app.config.clone()).unwrap());
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let v2 = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::Good));
    for s in [&v1, &v2] {
        let report = pipeline(target())
            .run(s, &MemoryJournal::default())
            .await
            .unwrap();
        assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    }
    let ran = shell.take();
    assert!(
        !canaries(&ran).is_empty(),
        "v2 went through the gate: {ran:#?}"
    );

    // Back to v1, which served here: the switch, then the reload at once.
    let back = target();
    back.trust(&v1.id);
    let report = pipeline(back)
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    assert_eq!(app.wait_version("1.0.0").await.as_deref(), Some("1.0.0"));
    let ran = shell.take();
    assert_eq!(canaries(&ran), Vec::<String>::new(), "{ran:#?}");
    let activate = what(&ran, "activate");
    assert_eq!(
        activate[2..],
        ["pm2 startOrReload", "pm2 save"],
        "no snapshot, canary or judgement before the reload: {activate:?}"
    );

    // A trusted release whose workers now die a second after start: verify sees
    // it, and the undo reloads v1 (no canary for it either: it served a moment ago).
    let v3 = spec(
        3,
        "3.0.0",
        &repo.commit("3.0.0", Behaviour::CrashSoonAfterStart),
    );
    let staged = target();
    staged.prepare(&v3).await.unwrap();
    staged.trust(&v3.id);
    let report = pipeline(staged.clone())
        .run(&v3, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.failed_phase, Some(Phase::Verify), "{report:#?}");
    assert_eq!(staged.current().await.unwrap(), Some(v1.id.clone()));
    assert_eq!(app.wait_version("1.0.0").await.as_deref(), Some("1.0.0"));
    let ran = shell.take();
    assert_eq!(canaries(&ran), Vec::<String>::new(), "{ran:#?}");
    app.finish().await;
}
