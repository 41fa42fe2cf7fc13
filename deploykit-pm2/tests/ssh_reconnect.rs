//! The SSH shell when its master connection dies, against the rig's real sshd: a
//! command that never reached the host is sent again on a new connection; a command
//! cut off midway fails (it may have run) and the next one gets a new connection.

mod common;

use std::path::Path;
use std::time::Duration;

use common::SshRig;
use deploykit_core::{Cmd, Shell, ShellExt};

/// Ends the master connection behind `socket`, as a dropped connection would.
fn kill_master(socket: &Path) {
    let out = std::process::Command::new("ssh")
        .arg("-S")
        .arg(socket)
        .args(["-O", "exit", "unused"])
        .output()
        .expect("run ssh -O exit");
    assert!(
        out.status.success(),
        "ssh -O exit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The client port of the SSH connection a command ran over.
async fn connection(sh: &dyn Shell) -> String {
    let out = sh
        .check(
            "test",
            &Cmd::new("sh").arg("-c").arg("echo $SSH_CONNECTION"),
        )
        .await
        .unwrap();
    out.stdout_text().trim().to_string()
}

#[tokio::test]
async fn a_dead_master_is_replaced_and_cut_off_commands_fail_without_a_resend() {
    let Some(rig) = SshRig::get() else { return };
    let sh = rig.connect(0).await;
    let first = connection(&sh).await;

    // The master dies while nothing runs (sshd restarted between two steps): the next
    // command never reached the host, so it runs on a new connection.
    kill_master(&sh.control_socket().unwrap());
    let second = connection(&sh).await;
    assert_ne!(first, second, "a new connection carries the command");

    // The master dies while a command runs: that command fails and says it may have
    // run; it is not sent again (it would have written a second line).
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let marker = dir.path().join("started");
    // A sleep only this test runs (other tests and checkouts share the host's user).
    let sleep = format!("sleep 30.{}", std::process::id());
    let script = format!("echo run >> \"$1\"; {sleep}");
    let socket = sh.control_socket().unwrap();
    let long = Cmd::new("sh")
        .arg("-c")
        .arg(&script)
        .arg("sh")
        .arg(marker.to_str().unwrap());
    let killer = async {
        for _ in 0..600 {
            if marker.exists() {
                kill_master(&socket);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the long command never started");
    };
    let (result, ()) = tokio::join!(sh.run(&long, None), killer);
    let err = result.expect_err("a command cut off by the dropped connection fails");
    let text = err.to_string();
    assert!(text.contains("may or may not have run"), "{text}");
    assert!(text.contains(&rig.host), "names the host: {text}");

    let third = connection(&sh).await;
    assert_ne!(second, third, "what follows runs on a new connection");
    let runs = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(
        runs.lines().count(),
        1,
        "the cut-off command was not sent again"
    );
    // Leave no sleeping process behind on the host.
    let _ = sh.run(&Cmd::new("pkill").args(["-f", &sleep]), None).await;
    sh.close().await.unwrap();
}
