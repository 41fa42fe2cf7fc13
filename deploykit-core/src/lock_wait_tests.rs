//! The wait loop over a real file lock, in paused time: it waits for a live holder,
//! gives up at the limit naming the holder's message, and never waits on a stale one.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::event::CollectingSink;
use crate::FileLock;

fn setup() -> (tempfile::TempDir, Arc<dyn DeployLock>) {
    let dir = tempfile::tempdir().unwrap();
    let lock: Arc<dyn DeployLock> = Arc::new(FileLock::new(dir.path().join("prod.lock")));
    (dir, lock)
}

fn waiting(lock: &Arc<dyn DeployLock>, secs: u64) -> (WaitingLock, Arc<CollectingSink>) {
    let sink = Arc::new(CollectingSink::default());
    let events = Events::none().with(sink.clone());
    let w = WaitingLock::new(
        lock.clone(),
        LockWait::up_to(Duration::from_secs(secs)),
        events,
    );
    (w, sink)
}

fn waits(sink: &CollectingSink) -> Vec<(u64, String)> {
    sink.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::LockWaiting {
                holder,
                waited_secs,
                ..
            } => Some((waited_secs, holder.to_string())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_second_deploy_waits_for_a_freeze_and_takes_the_lock_once_it_is_lifted() {
    let (_dir, lock) = setup();
    let freeze = LockHolder::freeze("prod", "ana", "release freeze until Monday");
    lock.acquire(&freeze).await.unwrap();
    let lifter = lock.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(25)).await;
        lifter.replace(&freeze, None).await.unwrap();
    });
    let (w, sink) = waiting(&lock, 60);
    let started = Instant::now();
    let me = LockHolder::this_process("prod", "run-2", "bo");
    w.acquire(&me).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(25) && waited < Duration::from_secs(30),
        "{waited:?}"
    );
    assert_eq!(lock.holder().await.unwrap().unwrap().run_id, "run-2");
    let said = waits(&sink);
    assert!(said.len() >= 3, "a line every 10 s: {said:?}");
    assert!(
        said.iter()
            .all(|(_, h)| h.contains("release freeze until Monday")),
        "{said:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_gives_up_at_the_limit_with_the_holders_message() {
    let (_dir, lock) = setup();
    let holder = LockHolder::this_process("prod", "run-1", "ana")
        .renewed(Duration::from_secs(600))
        .with_message(Some("hotfix for the login page".into()));
    lock.acquire(&holder).await.unwrap();
    let (w, _sink) = waiting(&lock, 2);
    let started = Instant::now();
    let err = w
        .acquire(&LockHolder::this_process("prod", "run-2", "bo"))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(matches!(err, Error::Locked { stale: false, .. }), "{err:?}");
    assert!(
        err.to_string().contains("hotfix for the login page"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_lock_is_refused_at_once_not_waited_on() {
    let (_dir, lock) = setup();
    let mut dead = LockHolder::this_process("prod", "run-1", "ana");
    dead.pid = u32::MAX - 1;
    lock.acquire(&dead).await.unwrap();
    let (w, sink) = waiting(&lock, 600);
    let started = Instant::now();
    let err = w
        .acquire(&LockHolder::this_process("prod", "run-2", "bo"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(err, Error::Locked { stale: true, .. }), "{err:?}");
    assert!(waits(&sink).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_freeze_is_alive_without_a_lease_or_a_process() {
    let (_dir, lock) = setup();
    let mut freeze = LockHolder::freeze("prod", "ana", "quarter close");
    freeze.pid = u32::MAX - 1; // the `lock acquire` that set it has exited
    lock.acquire(&freeze).await.unwrap();
    let held = lock.holder().await.unwrap().unwrap();
    assert!(held.freeze && !held.is_stale(), "{:?}", held.liveness());
    assert!(held.to_string().contains("a freeze by ana"), "{held}");
    assert!(held.to_string().contains("quarter close"), "{held}");
    let (_w, sink) = waiting(&lock, 3);
    let events = Events::none().with(sink.clone());
    let started = Instant::now();
    wait_while_held(
        lock.as_ref(),
        "prod",
        LockWait::up_to(Duration::from_secs(3)),
        &events,
    )
    .await
    .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(!waits(&sink).is_empty());
}
