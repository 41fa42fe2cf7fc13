//! A project deployed from several clones against the rig's real sshd (and PM2 or a
//! Docker engine reached over SSH): each clone is a `git clone` with its own empty
//! `.deploykit/`, like a fresh CI runner.
#![allow(dead_code)] // each test file uses only some of these

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use assert_cmd::Command;

/// The rig's SSH settings and the directory its SSH user can use.
pub struct SshRig {
    pub host: String,
    pub port: String,
    pub user: String,
    pub key: String,
    pub known_hosts: String,
    pub root: PathBuf,
}

impl SshRig {
    /// `user@host:port`.
    pub fn spec(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

/// The rig's sshd (and `root_var`, the directory tests put the SSH user's files
/// in), or `None` outside CI; panics under CI when a part is missing.
pub fn ssh_rig(root_var: &str) -> Option<SshRig> {
    let vars = [
        "DEPLOYKIT_RIG_SSH_HOST",
        "DEPLOYKIT_RIG_SSH_PORT",
        "DEPLOYKIT_RIG_SSH_USER",
        "DEPLOYKIT_RIG_SSH_KEY",
        "DEPLOYKIT_RIG_SSH_KNOWN_HOSTS",
        root_var,
    ];
    let v: Vec<Option<String>> = vars
        .iter()
        .map(|k| std::env::var(k).ok().filter(|s| !s.is_empty()))
        .collect();
    if let Some((name, _)) = vars.iter().zip(&v).find(|(_, x)| x.is_none()) {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is not set: the rig is missing in CI (run through script/rig-up)");
        }
        eprintln!("skipped: {name} is not set (run through script/rig-up)");
        return None;
    }
    let v: Vec<String> = v.into_iter().map(Option::unwrap).collect();
    Some(SshRig {
        host: v[0].clone(),
        port: v[1].clone(),
        user: v[2].clone(),
        key: v[3].clone(),
        known_hosts: v[4].clone(),
        root: v[5].clone().into(),
    })
}

/// Runs a command that must succeed; returns its trimmed stdout. git (and the
/// git it starts to serve a clone) may read repositories the SSH user owns.
pub fn run(cmd: &mut Std) -> String {
    let out = cmd
        .env("GIT_CONFIG_GLOBAL", trusting_git_config())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A git config that trusts every repository: `safe.directory` given by `-c` or
/// `GIT_CONFIG_*` does not reach the `upload-pack` a clone starts.
pub fn trusting_git_config() -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "deploykit-state-tests-{}.gitconfig",
        std::process::id()
    ));
    if !path.exists() {
        std::fs::write(&path, "[safe]\n\tdirectory = *\n").unwrap();
    }
    path
}

/// git with a throwaway identity that reads repositories owned by the SSH user.
pub fn git(repo: &Path, args: &[&str]) -> String {
    run(Std::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "safe.directory=*",
        ])
        .args(args))
}

/// Gives `dir` to the SSH user, as a deploy user's files are on a VPS.
pub fn hand_over(dir: &Path, user: &str) {
    run(Std::new("chown").arg("-R").arg(user).arg(dir));
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A health endpoint the test controls: 503 until `healthy` is set, counting hits.
pub struct Health {
    pub url: String,
    pub healthy: Arc<AtomicBool>,
    pub hits: Arc<AtomicU32>,
}

impl Health {
    /// A server answering 200 (`healthy`) or 503.
    pub fn start(healthy: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let flag = Arc::new(AtomicBool::new(healthy));
        let hits = Arc::new(AtomicU32::new(0));
        let (h, n) = (flag.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 2048];
                let _ = stream.read(&mut buf);
                n.fetch_add(1, Ordering::SeqCst);
                let status = if h.load(Ordering::SeqCst) {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
            }
        });
        Self {
            url,
            healthy: flag,
            hits,
        }
    }

    /// [`wait_hits`](Self::wait_hits), failing at once with the deploy's output if
    /// `deploy` ends first (it failed before verify).
    pub fn wait_hits_of(&self, deploy: &mut std::process::Child, from: u32, n: u32) {
        let started = std::time::Instant::now();
        while self.hits.load(Ordering::SeqCst) < from + n {
            if deploy.try_wait().unwrap().is_some() {
                let mut err = String::new();
                if let Some(mut e) = deploy.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("the deploy ended before verify: {err}");
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(180),
                "the deploy never reached verify"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Waits until the probe has asked at least `n` more times than `from`.
    pub fn wait_hits(&self, from: u32, n: u32) {
        let started = std::time::Instant::now();
        while self.hits.load(Ordering::SeqCst) < from + n {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "the deploy never reached verify"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// A fresh clone of `origin` in a temp dir: its own, empty `.deploykit/`.
pub fn clone_of(origin: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(Std::new("git")
        .args(["-c", "safe.directory=*", "clone", "-q"])
        .arg(origin)
        .arg(dir.path().join("c")));
    dir
}

/// A fresh clone the SSH user owns, in a directory it can reach: a Compose
/// engine over SSH unpacks the release's commit beside the checkout
/// (`.deploykit/build-<release>`), on the host, as that user.
pub fn clone_owned_by(origin: &Path, user: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = clone_of(origin);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Its state_dir, empty, the user's too (deploykit adds root's files to it).
    std::fs::create_dir_all(dir.path().join("c/.deploykit")).unwrap();
    hand_over(&dir.path().join("c"), user);
    dir
}

/// `deploykit` run in clone `dir` with `vars` set.
pub fn deploykit_in(dir: &Path, vars: &[(String, String)]) -> Command {
    let mut c = Command::cargo_bin("deploykit").unwrap();
    c.current_dir(dir.join("c"))
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("GIT_CONFIG_GLOBAL", trusting_git_config());
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

/// The same as a spawned std process (to kill it mid-run).
pub fn spawn_in(dir: &Path, vars: &[(String, String)], args: &[&str]) -> std::process::Child {
    let mut c = Std::new(assert_cmd::cargo::cargo_bin("deploykit"));
    c.current_dir(dir.join("c"))
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("GIT_CONFIG_GLOBAL", trusting_git_config())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in vars {
        c.env(k, v);
    }
    c.spawn().unwrap()
}
