//! The upgrade scenario against a "remote" host: compose runs over SSH (the rig's
//! sshd on loopback, a user in the engine socket's group) and the engine is reached
//! through its socket forwarded over the same SSH connection.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{rig, spec, WebStack};
use deploykit_core::shell::{SshConfig, SshShell};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{
    HealthPolicy, Outcome, Pipeline, Policy, ReleaseSpec, RunReport, Shell, ShellExt, Target,
};
use deploykit_docker::remote::connect_over_ssh;
use deploykit_docker::{ComposeRunMigrator, ComposeTarget, ContainerHealthProbe};

struct Ssh {
    config: SshConfig,
    user: String,
}

fn ssh_rig() -> Option<Ssh> {
    let vars = [
        "DEPLOYKIT_RIG_SSH_HOST",
        "DEPLOYKIT_RIG_SSH_PORT",
        "DEPLOYKIT_RIG_SSH_USER",
        "DEPLOYKIT_RIG_SSH_KEY",
        "DEPLOYKIT_RIG_SSH_KNOWN_HOSTS",
    ];
    let v: Vec<Option<String>> = vars.iter().map(|k| std::env::var(k).ok()).collect();
    if let Some((k, _)) = vars.iter().zip(&v).find(|(_, v)| v.is_none()) {
        if std::env::var_os("CI").is_some() {
            panic!("the sshd rig is missing in CI: {k} is not set (run through script/test)");
        }
        eprintln!("skipped remote engine test: {k} is not set (run through script/test)");
        return None;
    }
    let v: Vec<String> = v.into_iter().map(Option::unwrap).collect();
    Some(Ssh {
        config: SshConfig::new(&v[0])
            .port(v[1].parse().unwrap())
            .user(&v[2])
            .key_file(&v[3])
            .known_hosts_file(&v[4]),
        user: v[2].clone(),
    })
}

/// The SSH user owns the project directory, as a deploy user on a VPS would.
fn hand_over(dir: &Path, user: &str) {
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{user}:"), &dir.to_string_lossy()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

async fn deploy(target: Arc<ComposeTarget>, release: &ReleaseSpec) -> RunReport {
    let migrator = ComposeRunMigrator::new(&target, argv(&["/migrate", "up"]))
        .revision_command(argv(&["/migrate", "revision"]))
        .revert_command(argv(&["/migrate", "down", "{revision}"]))
        .run_service("web-migrate")
        .unwrap();
    let probe = ContainerHealthProbe::new(target.engine().clone(), &target.project().name, "web");
    let policy = Policy::default()
        .health(HealthPolicy {
            deadline: Duration::from_secs(60),
            attempts: 60,
            interval: Duration::from_millis(500),
            accept_degraded: false,
        })
        .waive_backup(true);
    Pipeline::new("remote")
        .target(target as Arc<dyn Target>)
        .migrator(Arc::new(migrator))
        .probe(Arc::new(probe))
        .policy(policy)
        .run(release, &MemoryJournal::default())
        .await
        .expect("the run starts")
}

#[tokio::test]
async fn remote_engine_over_ssh_passes_the_upgrade_scenario() {
    let Some(rig) = rig("remote_engine") else {
        return;
    };
    let Some(ssh) = ssh_rig() else { return };
    let stack = WebStack::new(&rig, "dk-remote", common::reuseport::free_port()).await;

    let shell = Arc::new(
        SshShell::connect(&ssh.config)
            .await
            .expect("ssh to the rig"),
    );
    let sockets = tempfile::tempdir().unwrap();
    let local: PathBuf = sockets.path().join("engine.sock");
    let remote_socket = PathBuf::from(rig.docker_host.trim_start_matches("unix://"));
    let engine = connect_over_ssh(&shell, &remote_socket, &local)
        .await
        .expect("engine over ssh");
    assert!(
        engine.location().contains(&ssh.user),
        "{}",
        engine.location()
    );
    let target = Arc::new(stack.target_with(shell.clone() as Arc<dyn Shell>, engine));

    let (v1, v2, v3) = (
        spec("20260101T000000Z-v1"),
        spec("20260102T000000Z-v2"),
        spec("20260103T000000Z-v3"),
    );
    stack.write_release("v1", true, 0);
    hand_over(stack.path(), &ssh.user);
    let report = deploy(target.clone(), &v1).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);

    stack.write_release("v2", true, 0);
    hand_over(stack.path(), &ssh.user);
    let report = deploy(target.clone(), &v2).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert_eq!(target.current().await.unwrap(), Some(v2.id.clone()));
    assert_eq!(stack.page().await.as_deref(), Some("v2"));
    assert_eq!(stack.revision(), "v2");

    // A broken release over the same connection is undone to v2.
    stack.write_release("v3", false, 0);
    hand_over(stack.path(), &ssh.user);
    let report = deploy(target.clone(), &v3).await;
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(target.current().await.unwrap(), Some(v2.id.clone()));
    assert_eq!(stack.page().await.as_deref(), Some("v2"));
    assert_eq!(stack.revision(), "v2");

    // The override files were written on the remote host, by its user.
    let pin = target.pin_file().path;
    assert!(std::fs::read_to_string(&pin)
        .unwrap()
        .contains(v2.id.as_str()));
    drop(target);
    shell.close().await.unwrap();
}

/// The master connection dies (sshd restarted) between two steps of a run: the next
/// command opens a new one, and the engine's socket is forwarded again over it, so
/// the engine answers through the same local path.
#[tokio::test]
async fn a_dropped_ssh_connection_comes_back_with_the_engine_forward() {
    let Some(rig) = rig("remote_engine_reconnect") else {
        return;
    };
    let Some(ssh) = ssh_rig() else { return };
    let shell = SshShell::connect(&ssh.config)
        .await
        .expect("ssh to the rig");
    let sockets = tempfile::tempdir().unwrap();
    let local: PathBuf = sockets.path().join("engine.sock");
    let remote_socket = PathBuf::from(rig.docker_host.trim_start_matches("unix://"));
    let engine = connect_over_ssh(&shell, &remote_socket, &local)
        .await
        .expect("engine over ssh");
    assert!(engine.image_exists(&rig.busybox).await.unwrap());

    let socket = shell.control_socket().expect("a master connection");
    let out = std::process::Command::new("ssh")
        .arg("-S")
        .arg(&socket)
        .args(["-O", "exit", "unused"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        engine.image_exists(&rig.busybox).await.is_err(),
        "with the master gone, the forwarded socket answers nothing"
    );

    // The run's next command reconnects, and with it the forward.
    shell
        .check("test", &deploykit_core::Cmd::new("true"))
        .await
        .expect("the command runs on a new connection");
    assert_ne!(shell.control_socket().unwrap(), socket, "a new master");
    assert!(
        engine.image_exists(&rig.busybox).await.unwrap(),
        "the engine answers through the forward again"
    );
    shell.close().await.unwrap();
}
