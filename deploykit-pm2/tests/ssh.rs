//! The SSH shell against the rig's real sshd: commands over one master connection,
//! stdin, socket forwarding, and the connect errors a human has to act on.

mod common;

use common::SshRig;
use deploykit_core::shell::{HostKeyPolicy, SshConfig, SshShell};
use deploykit_core::{Cmd, Shell, ShellExt};

#[tokio::test]
async fn commands_run_with_argv_quoted_and_stdin_fed() {
    let Some(rig) = SshRig::get() else { return };
    let sh = rig.connect(0).await;
    assert_eq!(
        sh.location(),
        format!("{}@{}:{}", rig.user, rig.host, rig.ports[0])
    );
    let hostile = ["a b", "it's", "$(echo pwned)", "x;y", "`id`", "*"];
    let out = sh
        .check("test", &Cmd::new("printf").arg("%s\\n").args(hostile))
        .await
        .unwrap();
    let lines: Vec<String> = out.stdout_text().lines().map(String::from).collect();
    assert_eq!(lines, hostile);

    let out = sh.run(&Cmd::new("cat"), Some(b"over stdin")).await.unwrap();
    assert_eq!(out.stdout_text(), "over stdin");

    // A big stdin with output at the same time cannot deadlock.
    let big = vec![b'x'; 4 << 20];
    let out = sh.run(&Cmd::new("cat"), Some(&big)).await.unwrap();
    assert_eq!(out.stdout.len(), big.len());

    let out = sh
        .run(
            &Cmd::new("sh")
                .arg("-c")
                .arg("echo $SECRET_ENV; exit 7")
                .env("SECRET_ENV", "v4lue"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.status, 7);
    assert_eq!(out.stdout_text().trim(), "v4lue");

    let err = sh
        .check(
            "build",
            &Cmd::new("sh")
                .arg("-c")
                .arg("echo compiling; echo 'error: boom' >&2; exit 2"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("build failed on dkdeploy@"), "{err}");
    assert!(
        err.contains("status 2") && err.contains("error: boom"),
        "{err}"
    );

    // Many commands share the one master connection, concurrently.
    let runs = (0..20).map(|i| {
        let sh = &sh;
        async move { sh.check("echo", &Cmd::new("echo").arg(i.to_string())).await }
    });
    for (i, out) in futures::future::join_all(runs)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(out.unwrap().stdout_text().trim(), i.to_string());
    }

    sh.close().await.unwrap();
    sh.close().await.unwrap();
    let err = sh.run(&Cmd::new("true"), None).await.unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

#[tokio::test]
async fn a_remote_unix_socket_is_forwarded_over_the_session() {
    let Some(rig) = SshRig::get() else { return };
    let sh = rig.connect(0).await;
    let dir = tempfile::tempdir().unwrap();
    let remote_dir = sh
        .check("mktemp", &Cmd::new("mktemp").arg("-d"))
        .await
        .unwrap()
        .stdout_text()
        .trim()
        .to_string();
    let remote = std::path::PathBuf::from(&remote_dir).join("echo.sock");
    // A tiny remote unix socket server answering one line.
    let script = "const n=require('net');const s=n.createServer(c=>{c.end('hello from remote\\n');s.close();});s.listen(process.argv[1]);setTimeout(()=>process.exit(0),20000);";
    let start = Cmd::new("sh").arg("-c").arg(format!(
            "node -e {} {} </dev/null >/dev/null 2>&1 & for i in $(seq 50); do [ -S {} ] && exit 0; sleep 0.1; done; exit 1",
            deploykit_core::shell::quote(script),
            deploykit_core::shell::quote(&remote.to_string_lossy()),
            deploykit_core::shell::quote(&remote.to_string_lossy()),
        ));
    let server = sh.run(&start, None);
    assert!(
        server.await.unwrap().success(),
        "remote socket server did not start"
    );
    let local = dir.path().join("local.sock");
    sh.forward_unix_socket(&remote, &local).await.unwrap();
    let mut stream = tokio::net::UnixStream::connect(&local).await.unwrap();
    let mut got = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut got)
        .await
        .unwrap();
    assert_eq!(got, "hello from remote\n");
    sh.check("cleanup", &Cmd::new("rm").arg("-rf").arg(&remote_dir))
        .await
        .unwrap();
    sh.close().await.unwrap();
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_by_default() {
    let Some(rig) = SshRig::get() else { return };
    let empty = tempfile::NamedTempFile::new().unwrap();
    let config = SshConfig::new(&rig.host)
        .port(rig.ports[0])
        .user(&rig.user)
        .key_file(&rig.key)
        .known_hosts_file(empty.path());
    let err = SshShell::connect(&config).await.unwrap_err().to_string();
    assert!(err.contains("host key is unknown"), "{err}");
    assert!(
        err.contains(&format!("{}@{}:{}", rig.user, rig.host, rig.ports[0])),
        "{err}"
    );
    assert!(err.contains("ssh-keyscan"), "{err}");

    // accept-new, only when asked: records the key, and the next strict connect works.
    let sh = SshShell::connect(&config.clone().host_keys(HostKeyPolicy::AcceptNew))
        .await
        .unwrap();
    sh.close().await.unwrap();
    let sh = SshShell::connect(&config).await.unwrap();
    sh.close().await.unwrap();
}

#[tokio::test]
async fn a_changed_host_key_is_refused_even_with_accept_new() {
    let Some(rig) = SshRig::get() else { return };
    let other = std::fs::read_to_string(rig.key.with_extension("pub"))
        .or_else(|_| std::fs::read_to_string(format!("{}.pub", rig.key.display())))
        .unwrap();
    let mut fake = tempfile::NamedTempFile::new().unwrap();
    let fields: Vec<&str> = other.split_whitespace().collect();
    use std::io::Write;
    writeln!(
        fake,
        "[{}]:{} {} {}",
        rig.host, rig.ports[0], fields[0], fields[1]
    )
    .unwrap();
    let config = SshConfig::new(&rig.host)
        .port(rig.ports[0])
        .user(&rig.user)
        .key_file(&rig.key)
        .known_hosts_file(fake.path())
        .host_keys(HostKeyPolicy::AcceptNew);
    let err = SshShell::connect(&config).await.unwrap_err().to_string();
    assert!(err.contains("CHANGED"), "{err}");
}

#[tokio::test]
async fn a_wrong_key_gives_a_clear_error() {
    let Some(rig) = SshRig::get() else { return };
    let config = rig.config(0).key_file(&rig.wrong_key);
    let err = SshShell::connect(&config).await.unwrap_err().to_string();
    assert!(err.contains("authentication was refused"), "{err}");
    assert!(err.contains(&rig.wrong_key.display().to_string()), "{err}");
    assert!(err.contains("authorized_keys"), "{err}");
}

#[tokio::test]
async fn an_unreachable_host_is_named() {
    let Some(rig) = SshRig::get() else { return };
    // A port nothing listens on: the rig's instances are consecutive, the one below is free.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = rig.config(0).port(port);
    let err = SshShell::connect(&config).await.unwrap_err().to_string();
    assert!(err.contains(&format!("port {port}")), "{err}");
    assert!(err.contains("sshd is running"), "{err}");
}
