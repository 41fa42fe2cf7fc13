//! A real deploy under `strace`: creating the journal and the lock fsyncs their
//! directories, so a power loss cannot forget that a run (or its lock) exists.

use std::path::Path;
use std::process::Command as Std;

fn git(repo: &Path, args: &[&str]) {
    let ok = Std::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

fn strace_available() -> bool {
    let ok = Std::new("strace")
        .args(["-f", "-e", "trace=fsync", "-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "strace is needed for this test under CI"
        );
        eprintln!("skipped: strace is not available");
    }
    ok
}

/// Whether some process opened a path ending in `suffix` and then fsynced that
/// descriptor (before closing it).
fn opened_and_fsynced(trace: &str, suffix: &str) -> bool {
    let quoted = format!("{suffix}\"");
    let lines: Vec<&str> = trace.lines().collect();
    lines.iter().enumerate().any(|(i, line)| {
        let Some(rest) = line.split_once(&quoted).map(|(_, r)| r) else {
            return false;
        };
        if !line.contains("openat(") {
            return false;
        }
        let pid = line.split_whitespace().next().unwrap_or("");
        let Some(fd) = rest
            .rsplit("= ")
            .next()
            .and_then(|f| f.trim().parse::<i32>().ok())
        else {
            return false;
        };
        let call = format!("fsync({fd})");
        lines[i + 1..]
            .iter()
            .take_while(|l| !(l.starts_with(pid) && l.contains(&format!("close({fd})"))))
            .any(|l| l.starts_with(pid) && l.contains(&call))
    })
}

#[test]
fn creating_the_journal_and_the_lock_fsyncs_their_directories() {
    if !strace_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("app");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("VERSION"), "v1\n").unwrap();
    std::fs::write(repo.join("HEALTHY"), "yes\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "v1"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exe = assert_cmd::cargo::cargo_bin("deploykit");
    std::fs::write(
        dir.path().join("deploykit.toml"),
        format!(
            "[environments.s.target]\nkind = \"local\"\ndeploy_to = \"srv\"\nrepo = \"app\"\n\
             start = [{:?}, \"demo-app\", \"--port\", \"{{port}}\"]\nport = {port}\n",
            exe.to_string_lossy()
        ),
    )
    .unwrap();
    let trace = dir.path().join("trace.txt");
    let out = Std::new("strace")
        .args(["-f", "-b", "execve", "-e", "trace=openat,fsync,close", "-o"])
        .arg(&trace)
        .arg(&exe)
        .args(["deploy", "-e", "s", "--release", "r1"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    if let Ok(pid) = std::fs::read_to_string(dir.path().join("srv/.deploykit/app.pid")) {
        let _ = Std::new("kill").arg(pid.trim()).status();
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    for d in [".deploykit/journal/s", ".deploykit/locks"] {
        assert!(
            opened_and_fsynced(&text, d),
            "{d} was not fsynced after a file was created in it"
        );
    }
}
