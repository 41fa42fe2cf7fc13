//! A sample-app deployment for one test: its own git repo (the example Node app),
//! deploy dir, PM2_HOME and port, so tests run side by side without meeting.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deploykit_core::{
    Cmd, Commit, HealthPolicy, HealthProbe, HealthReport, HealthStatus, Policy, ReleaseId,
    ReleaseSpec, Shell, ShellExt,
};
use deploykit_pm2::{commands, Pm2Config, Pm2Probe, Pm2Target, Source};

use super::{Pm2Rig, SshRig};

/// The example app as a git repository the SSH user can read.
pub struct AppRepo {
    pub dir: PathBuf,
    owner: String,
    n: u32,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=deploykit tests",
            "-c",
            "user.email=tests@deploykit.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
            // The repo is handed to the SSH user after each commit (it clones it).
            "-c",
            "safe.directory=*",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What a commit of the sample app should do when deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Good,
    FailBuild,
    CrashOnStart,
    /// Starts, serves, and dies a second later (every time PM2 restarts it): a
    /// reload "succeeds", only the PM2 probe's settle window can tell.
    CrashSoonAfterStart,
    Unhealthy,
}

/// What `CrashSoonAfterStart` appends to the example's `server.js`.
const CRASH_SOON: &str = "\nsetTimeout(() => { console.error('dying a second after start, as requested'); process.exit(1); }, 1000);\n";

impl AppRepo {
    /// A repo at `dir` with the example app, no commits yet, readable by `owner`
    /// (the SSH user, who clones it: git refuses repositories owned by others).
    pub fn create(dir: &Path, owner: &str) -> Self {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/node-app");
        std::fs::create_dir_all(dir).unwrap();
        for entry in std::fs::read_dir(&example).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
            }
        }
        std::fs::write(dir.join(".gitignore"), "dist/\n").unwrap();
        git(dir, &["init", "-q"]);
        Self {
            dir: dir.to_path_buf(),
            owner: owner.to_string(),
            n: 0,
        }
    }

    /// Commits version `version` with `behaviour`; returns the commit hash.
    pub fn commit(&mut self, version: &str, behaviour: Behaviour) -> Commit {
        self.n += 1;
        std::fs::write(self.dir.join("VERSION"), format!("{version}\n")).unwrap();
        for (file, on) in [
            (".fail-build", behaviour == Behaviour::FailBuild),
            (".crash-on-start", behaviour == Behaviour::CrashOnStart),
            (".unhealthy", behaviour == Behaviour::Unhealthy),
        ] {
            let path = self.dir.join(file);
            if on {
                std::fs::write(&path, "on\n").unwrap();
            } else if path.exists() {
                std::fs::remove_file(&path).unwrap();
            }
        }
        let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/node-app/server.js");
        let mut code = std::fs::read_to_string(server).unwrap();
        if behaviour == Behaviour::CrashSoonAfterStart {
            code.push_str(CRASH_SOON);
        }
        std::fs::write(self.dir.join("server.js"), code).unwrap();
        git(&self.dir, &["add", "-A"]);
        git(
            &self.dir,
            &["commit", "-q", "-m", &format!("version {version}")],
        );
        let chown = Command::new("chown")
            .arg("-R")
            .arg(&self.owner)
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(chown.success(), "chown of the test repo");
        Commit::parse(git(&self.dir, &["rev-parse", "HEAD"])).unwrap()
    }
}

/// A release spec for `commit`, with a readable id (`<n>-<version>`), so ids sort
/// in deploy order.
pub fn spec(n: u32, version: &str, commit: &Commit) -> ReleaseSpec {
    ReleaseSpec {
        id: ReleaseId::parse(format!("r{n:03}-{version}")).unwrap(),
        commit: commit.clone(),
        branch: Some("main".into()),
    }
}

/// A free TCP port on loopback, below the kernel's ephemeral range (32768 and up):
/// a port the kernel hands out could be taken by one of the many outgoing
/// connections (SSH, probes) before the app binds it, which a 20-host fleet did.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    // Different processes start at different places (tests and benchmarks may
    // run side by side); the bind check skips ports in use.
    let start = 20_000 + (std::process::id() % 400) as u16 * 20;
    loop {
        let port = start + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 4_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One app on one (SSH) host, for one test.
pub struct HostApp {
    pub shell: Arc<deploykit_core::shell::SshShell>,
    pub config: Pm2Config,
    pub port: u16,
}

impl HostApp {
    /// Sets up `<root>/<name>` on host `n`: deploy dir, PM2 home, `shared/.env`.
    pub async fn new(ssh: &SshRig, pm2: &Pm2Rig, n: usize, name: &str, repo: &AppRepo) -> Self {
        let shell = Arc::new(ssh.connect(n).await);
        let base = pm2.root.join(name);
        let deploy_to = base.join("app");
        let port = free_port();
        let mut config = Pm2Config::new(
            name,
            &deploy_to,
            Source::Git {
                repo: format!("file://{}", repo.dir.display()),
            },
        )
        .build_step(Cmd::new("npm").args(["run", "build", "--silent"]))
        .env("PORT", port.to_string())
        .env("APP_NAME", name)
        .env("DATABASE_URL", "postgres://app:db-pa55word@127.0.0.1/app")
        .pm2_home(base.join("pm2home").to_string_lossy());
        config.linked_files = vec![".env".into()];
        config.linked_dirs = vec!["logs".into()];
        let shared = deploy_to.join("shared");
        shell
            .check(
                "setup",
                &Cmd::new("mkdir").arg("-p").arg(shared.to_string_lossy()),
            )
            .await
            .unwrap();
        shell
            .check(
                "setup",
                &Cmd::new("sh")
                    .arg("-c")
                    .arg("printf 'SECRET_TOKEN=not-for-logs\\n' > \"$1\"")
                    .arg("sh")
                    .arg(shared.join(".env").to_string_lossy()),
            )
            .await
            .unwrap();
        Self {
            shell,
            config,
            port,
        }
    }

    pub fn target(&self) -> Pm2Target {
        Pm2Target::new(self.shell.clone(), self.config.clone()).unwrap()
    }

    pub fn pm2_probe(&self) -> Pm2Probe {
        self.pm2_probe_on(self.shell.clone())
    }

    /// The same PM2 probe over another shell (e.g. one that records commands).
    pub fn pm2_probe_on(&self, shell: Arc<dyn Shell>) -> Pm2Probe {
        Pm2Probe::new(shell, self.config.clone())
            .instances(2)
            .settle(Duration::from_secs(3))
    }

    pub fn http_probe(&self) -> HttpProbe {
        HttpProbe::new(self.port, "/api/health")
    }

    /// GET `path` once: status and body.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path).await
    }

    /// The version `/` answers with, if the app answers.
    pub async fn version(&self) -> Option<String> {
        match self.get("/").await {
            Some((200, body)) => Some(body.trim().to_string()),
            _ => None,
        }
    }

    /// Waits (bounded) until `/` answers with `version`; the last answer otherwise.
    pub async fn wait_version(&self, version: &str) -> Option<String> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.version().await;
            if v.as_deref() == Some(version) || Instant::now() > until {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops this test's PM2 daemon and closes the SSH session.
    pub async fn finish(&self) {
        let _ = self
            .shell
            .run(&commands::kill_daemon(&self.config), None)
            .await;
        let _ = self.shell.close().await;
    }

    pub async fn exists(&self, path: &Path) -> bool {
        self.shell
            .run(
                &Cmd::new("test").arg("-e").arg(path.to_string_lossy()),
                None,
            )
            .await
            .unwrap()
            .success()
    }
}

/// A deploy policy for tests: short health rounds, nothing timed in assertions.
pub fn policy() -> Policy {
    Policy::default().health(HealthPolicy {
        deadline: Duration::from_secs(90),
        attempts: 6,
        interval: Duration::from_secs(1),
        accept_degraded: false,
    })
}

/// One plain HTTP/1.0 GET over a raw socket (core's HTTP probe is a separate feature).
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|x| x.1.to_string())?;
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .ok()
        .flatten()
}

/// `GET <path>` must answer 200.
pub struct HttpProbe {
    port: u16,
    path: String,
    name: String,
}

impl HttpProbe {
    pub fn new(port: u16, path: &str) -> Self {
        Self {
            port,
            path: path.into(),
            name: format!("http GET {path} on port {port}"),
        }
    }
}

#[async_trait]
impl HealthProbe for HttpProbe {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> HealthReport {
        let started = Instant::now();
        let (status, detail) = match http_get(self.port, &self.path).await {
            Some((200, body)) => (HealthStatus::Healthy, body),
            Some((code, body)) => (HealthStatus::Unhealthy, format!("status {code}: {body}")),
            None => (HealthStatus::Unhealthy, "no answer".into()),
        };
        HealthReport::new(&self.name, status, started.elapsed(), detail)
    }
}
