//! The PM2 host lock over the rig's real sshd: two deployers on separate SSH
//! connections (two "machines"), a lease judged by the host's clock, take-over as
//! compare-and-swap, an empty lock left by a crash, and a running pipeline renewing
//! its lease in the background.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{rigs, Pm2Rig, SshRig};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{
    Cmd, DeployLock, Error, HealthProbe, HealthReport, HealthStatus, LeaseTiming, Liveness,
    LockHolder, Outcome, Pipeline, ReleaseId, ReleaseSpec, ShellExt,
};
use deploykit_pm2::{Layout, Pm2HostLock};

struct Host {
    shell: Arc<deploykit_core::shell::SshShell>,
    layout: Layout,
}

impl Host {
    async fn new(ssh: &SshRig, pm2: &Pm2Rig, name: &str) -> Self {
        let shell = Arc::new(ssh.connect(0).await);
        let layout = Layout::new(pm2.root.join(name).join("app")).unwrap();
        Self { shell, layout }
    }

    /// Another deployer: its own SSH connection to the same host.
    async fn other(&self, ssh: &SshRig) -> Pm2HostLock {
        Pm2HostLock::new(Arc::new(ssh.connect(0).await), self.layout.clone())
    }

    fn lock(&self) -> Pm2HostLock {
        Pm2HostLock::new(self.shell.clone(), self.layout.clone())
    }

    fn lock_path(&self) -> String {
        self.layout.lock().to_string_lossy().into_owned()
    }

    async fn sh(&self, cmd: Cmd) -> String {
        self.shell.check("test", &cmd).await.unwrap().stdout_text()
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    )
}

/// A holder as a deploy on a CI runner writes it.
fn runner(run: &str, lease: Duration) -> LockHolder {
    let mut h = LockHolder::this_process("prod", run, "ci").renewed(lease);
    h.host = "ci-runner-7".into();
    h.pid = 4242;
    h
}

#[tokio::test]
async fn a_live_lease_is_refused_an_expired_one_taken_over_once() {
    let Some((ssh, pm2)) = rigs() else { return };
    let host = Host::new(&ssh, &pm2, &unique("lease")).await;
    let a = host.lock();
    let b = host.other(&ssh).await;

    let live = runner("run-a", Duration::from_secs(30));
    a.acquire(&live).await.unwrap();
    let mode = host
        .sh(Cmd::new("stat").args(["-c", "%a"]).arg(host.lock_path()))
        .await;
    assert_eq!(mode.trim(), "600", "owner-only on the host");
    let seen = b.holder().await.unwrap().unwrap();
    assert!(
        matches!(seen.liveness(), Liveness::Alive(_)),
        "{:?}",
        seen.liveness()
    );
    // The holder renews: compare-and-swap on its own acquisition.
    let renewed = live.renewed(Duration::from_secs(30));
    a.replace(&live, Some(&renewed)).await.unwrap();

    // The runner died: by the host's clock its lock was last renewed a minute ago.
    host.sh(Cmd::new("touch").arg("-d").arg("@1").arg(host.lock_path()))
        .await;
    let seen = b.holder().await.unwrap().unwrap();
    match seen.liveness() {
        Liveness::Stale(why) => assert!(why.contains("lease expired"), "{why}"),
        other => panic!("expected stale, got {other:?}"),
    }
    // Two recovers take over at the same time: exactly one wins.
    let c = host.other(&ssh).await;
    let r1 =
        LockHolder::this_process("prod", "run-a", "recover-1").renewed(Duration::from_secs(30));
    let r2 =
        LockHolder::this_process("prod", "run-a", "recover-2").renewed(Duration::from_secs(30));
    let (x, y) = tokio::join!(b.replace(&seen, Some(&r1)), c.replace(&seen, Some(&r2)));
    assert!(x.is_ok() != y.is_ok(), "one winner: {x:?} / {y:?}");
    let loser = if x.is_ok() { y } else { x };
    assert!(matches!(loser, Err(Error::Locked { .. })), "{loser:?}");
    // The dead runner's late renewal cannot take the lock back.
    let err = a.replace(&renewed, Some(&renewed)).await.unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    let now = a.holder().await.unwrap().unwrap();
    assert!(now.who.starts_with("recover-"), "{now}");
    a.release("run-a").await.unwrap();
    assert_eq!(a.holder().await.unwrap(), None);
}

#[tokio::test]
async fn of_two_deployers_exactly_one_acquires_and_an_empty_lock_is_stale_not_free() {
    let Some((ssh, pm2)) = rigs() else { return };
    let host = Host::new(&ssh, &pm2, &unique("race")).await;
    let a = host.lock();
    let b = host.other(&ssh).await;
    let (ha, hb) = (
        runner("run-a", Duration::from_secs(30)),
        runner("run-b", Duration::from_secs(30)),
    );
    let (x, y) = tokio::join!(a.acquire(&ha), b.acquire(&hb));
    assert!(x.is_ok() != y.is_ok(), "one winner: {x:?} / {y:?}");
    let leftovers = host
        .sh(Cmd::new("ls")
            .arg("-a")
            .arg(host.layout.lock().parent().unwrap().to_string_lossy()))
        .await;
    assert!(!leftovers.contains(".tmp"), "{leftovers}");

    // A crash of an older deploykit left the lock empty.
    host.sh(Cmd::new("truncate").args(["-s", "0"]).arg(host.lock_path()))
        .await;
    let held = b
        .holder()
        .await
        .unwrap()
        .expect("an empty lock is not free");
    assert!(held.unreadable.is_some() && held.is_stale(), "{held}");
    let err = b
        .acquire(&runner("run-c", Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Locked { stale: true, .. }), "{err:?}");
    b.replace(&held, None).await.unwrap();
    b.acquire(&runner("run-c", Duration::from_secs(30)))
        .await
        .unwrap();
    b.release("run-c").await.unwrap();
}

/// A probe that takes its time: the run sits in verify.
struct SlowProbe(Duration);

#[async_trait]
impl HealthProbe for SlowProbe {
    fn name(&self) -> &str {
        "slow"
    }
    async fn check(&self) -> HealthReport {
        tokio::time::sleep(self.0).await;
        HealthReport::new("slow", HealthStatus::Healthy, self.0, "ok")
    }
}

#[tokio::test]
async fn a_running_deploy_renews_its_lease_on_the_host() {
    let Some((ssh, pm2)) = rigs() else { return };
    let host = Host::new(&ssh, &pm2, &unique("renew")).await;
    let lock = Arc::new(host.lock());
    let pipeline = Pipeline::new("prod")
        .who("ci")
        .lock(lock.clone())
        // Margins for a loaded machine: a renewal may run a second late, and the
        // check below still comes well after the first lease would have expired.
        .probe(Arc::new(SlowProbe(Duration::from_secs(9))))
        .lease(LeaseTiming {
            lease: Duration::from_secs(3),
            renew_every: Duration::from_millis(500),
        });
    let spec = ReleaseSpec {
        id: ReleaseId::parse("r1").unwrap(),
        commit: deploykit_core::Commit::parse("abc1234").unwrap(),
        branch: None,
    };
    // Connected before the run starts: under load an SSH connect takes seconds,
    // and the check below must still land while the run verifies.
    let other = host.other(&ssh).await;
    let run = tokio::spawn(async move { pipeline.run(&spec, &MemoryJournal::default()).await });
    tokio::time::sleep(Duration::from_secs(6)).await;
    let seen = other.holder().await.unwrap().expect("held while verifying");
    assert!(
        matches!(seen.liveness(), Liveness::Alive(_)),
        "renewed past its 3 s lease: {:?}",
        seen.liveness()
    );
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert_eq!(other.holder().await.unwrap(), None);
}
