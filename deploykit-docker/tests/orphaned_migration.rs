//! A deploy killed while its `compose run` migration runs leaves that container
//! running in the engine. The revert that `recover` runs must wait for it: reading
//! the revision earlier would see the old one, "undo" nothing, and let the orphan
//! commit the new schema under the old release.

mod common;

use std::time::{Duration, Instant};

use common::{rig, spec, WebStack};
use deploykit_core::{AppliedSet, LocalShell, Migrator, Target};
use deploykit_docker::{ComposeRunMigrator, PinFile};

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[tokio::test]
async fn the_revert_waits_for_a_migration_a_killed_run_left_running() {
    let Some(rig) = rig("orphaned_migration") else {
        return;
    };
    let stack = WebStack::new(&rig, "dk-orphan", common::reuseport::free_port()).await;
    let target = stack.target(&rig).await;
    let engine = rig.engine().await;
    let v2 = spec("20260102T000000Z-v2");
    stack.write_release("v2", true, 0);
    // A slow migration: long enough to still run when the revert starts.
    let tool = stack.path().join("migrate");
    let slow = std::fs::read_to_string(&tool)
        .unwrap()
        .replace("up) echo", "up) sleep 4; echo");
    std::fs::write(&tool, slow).unwrap();
    target.prepare(&v2).await.unwrap();
    let migrator = ComposeRunMigrator::new(&target, argv(&["/migrate", "up"]))
        .revision_command(argv(&["/migrate", "revision"]))
        .revert_command(argv(&["/migrate", "down", "{revision}"]))
        .run_service("web-migrate")
        .unwrap();

    // The killed run: the migration started through compose, whose client then died.
    let pin = PinFile::new(
        target.state_dir_path(),
        &stack.project.name,
        "web-migrate",
        "orphan-test",
    );
    pin.write(&LocalShell::new(), "web-migrate", &target.image_of(&v2.id))
        .await
        .unwrap();
    let cmd = stack
        .project
        .run("web-migrate", &pin.path, &argv(&["/migrate", "up"]));
    let mut client = std::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v.expose())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start docker-compose run");
    let started = Instant::now();
    while engine
        .running_oneoff_ids(&stack.project.name, "web-migrate")
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the one-off container never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.kill().unwrap();
    let _ = client.wait();
    assert_eq!(stack.revision(), "base", "the orphan has not committed yet");

    // recover's undo: back to the revision before the run.
    let applied = AppliedSet {
        migrations: vec![migrator.step_id()],
        revision_before: Some("base".into()),
        revision_after: None,
        origin: None,
        release: Some(v2.clone()),
    };
    migrator.revert(&applied).await.unwrap();

    // Whatever the orphan does, it is over by now (or the test waits for it).
    let waited = Instant::now();
    while !engine
        .running_oneoff_ids(&stack.project.name, "web-migrate")
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "orphan never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stack.revision(),
        "base",
        "the revert ran after the orphaned migration, so the old revision stands"
    );
}
