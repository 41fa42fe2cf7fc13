//! A [`Target`] on this machine: release directories exported from a git
//! repository, a `current` symlink, and one app process started from `current`.
//!
//! It is what `deploykit demo` deploys to, and what a small app run without PM2 can
//! use; it lives in core (not the CLI) so an embedder can deploy to this machine
//! without writing a target. The layout matches the PM2 target's: `releases/<id>/`, `current`, `.deploykit/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::release::{ReleaseId, ReleaseSpec};
use crate::shell::{Cmd, LocalShell, Shell, ShellExt};
use crate::target::Target;
use async_trait::async_trait;

/// Release directories plus one supervised process.
#[derive(Debug, Clone)]
pub struct LocalTarget {
    deploy_to: PathBuf,
    repo: PathBuf,
    build: Vec<Vec<String>>,
    start: Vec<String>,
    port: u16,
    shell: LocalShell,
}

impl LocalTarget {
    /// A target rooted at `deploy_to`, exporting commits from `repo`.
    pub fn new(
        deploy_to: PathBuf,
        repo: PathBuf,
        build: Vec<Vec<String>>,
        start: Vec<String>,
        port: u16,
    ) -> Self {
        Self {
            deploy_to,
            repo,
            build,
            start,
            port,
            shell: LocalShell::new(),
        }
    }

    fn releases(&self) -> PathBuf {
        self.deploy_to.join("releases")
    }

    fn release_dir(&self, id: &ReleaseId) -> PathBuf {
        self.releases().join(id.as_str())
    }

    fn current_link(&self) -> PathBuf {
        self.deploy_to.join("current")
    }

    fn pid_file(&self) -> PathBuf {
        self.deploy_to.join(".deploykit").join("app.pid")
    }

    fn location(&self) -> String {
        format!("local:{}", self.deploy_to.display())
    }

    fn io(&self, step: &str, what: &str, e: std::io::Error) -> Error {
        Error::part(step, self.location(), format!("{what}: {e}"))
    }

    /// Stops the app process if one runs (TERM, then KILL after 5 s).
    pub async fn stop(&self) -> Result<()> {
        let Ok(text) = std::fs::read_to_string(self.pid_file()) else {
            return Ok(());
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            return Ok(());
        };
        let alive = |pid: i32| Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
        if alive(pid) {
            let _ = self
                .shell
                .run(&Cmd::new("kill").arg("-TERM").arg(pid.to_string()), None)
                .await;
            for _ in 0..50 {
                if !alive(pid) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if alive(pid) {
                let _ = self
                    .shell
                    .run(&Cmd::new("kill").arg("-KILL").arg(pid.to_string()), None)
                    .await;
            }
        }
        let _ = std::fs::remove_file(self.pid_file());
        Ok(())
    }

    fn start_process(&self, dir: &Path) -> Result<()> {
        let argv: Vec<String> = self
            .start
            .iter()
            .map(|a| a.replace("{port}", &self.port.to_string()))
            .collect();
        let (program, args) = argv.split_first().ok_or_else(|| {
            Error::part("activate", self.location(), "the start command is empty")
        })?;
        let log_path = self.deploy_to.join(".deploykit").join("app.log");
        let log = crate::private_fs::open_append(&log_path)
            .map_err(|e| self.io("activate", "open app log", e))?;
        let err_log = log
            .try_clone()
            .map_err(|e| self.io("activate", "open app log", e))?;
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("PORT", self.port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                self.io(
                    "activate",
                    &format!("start `{}`", Cmd::new(program).args(args.iter().cloned())),
                    e,
                )
            })?;
        crate::private_fs::write(&self.pid_file(), child.id().to_string().as_bytes())
            .map_err(|e| self.io("activate", "write pid file", e))?;
        Ok(())
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[async_trait]
impl Target for LocalTarget {
    async fn current(&self) -> Result<Option<ReleaseId>> {
        match std::fs::read_link(self.current_link()) {
            Ok(target) => {
                let name = target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                ReleaseId::parse(name).map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("current", "read the current link", e)),
        }
    }

    async fn prepare(&self, spec: &ReleaseSpec) -> Result<()> {
        let dir = self.release_dir(&spec.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| self.io("prepare", "create the release directory", e))?;
        crate::private_fs::create_dir_all(&self.deploy_to.join(".deploykit"))
            .map_err(|e| self.io("prepare", "create .deploykit", e))?;
        let tar = self
            .deploy_to
            .join(".deploykit")
            .join(format!("{}.tar", spec.id));
        let repo = self.repo.to_string_lossy().into_owned();
        let archive = Cmd::new("git")
            .args(["-C", &repo, "archive", "--format=tar", "-o"])
            .arg(tar.to_string_lossy())
            .arg(spec.commit.as_str());
        self.shell.check("prepare", &archive).await?;
        let extract = Cmd::new("tar")
            .arg("-xf")
            .arg(tar.to_string_lossy())
            .arg("-C")
            .arg(dir.to_string_lossy());
        let extracted = self.shell.check("prepare", &extract).await;
        let _ = std::fs::remove_file(&tar);
        extracted?;
        for argv in &self.build {
            let Some((program, args)) = argv.split_first() else {
                continue;
            };
            self.shell
                .check(
                    "prepare",
                    &Cmd::new(program).args(args.iter().cloned()).cwd(&dir),
                )
                .await?;
        }
        Ok(())
    }

    async fn activate(&self, release: Option<&ReleaseId>) -> Result<()> {
        if let Some(id) = release {
            if !self.release_dir(id).is_dir() {
                return Err(Error::part(
                    "activate",
                    self.location(),
                    format!("release {id} is not staged"),
                ));
            }
        }
        self.stop().await?;
        let link = self.current_link();
        match release {
            Some(id) => {
                let tmp = self.deploy_to.join(".current.tmp");
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(Path::new("releases").join(id.as_str()), &tmp)
                    .map_err(|e| self.io("activate", "create the new link", e))?;
                std::fs::rename(&tmp, &link)
                    .map_err(|e| self.io("activate", "swap the current link", e))?;
                self.start_process(&self.release_dir(id))
            }
            None => match std::fs::remove_file(&link) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.io("activate", "remove the current link", e)),
            },
        }
    }

    async fn discard(&self, release: &ReleaseId) -> Result<()> {
        if self.current().await?.as_ref() == Some(release) {
            return Err(Error::part(
                "discard",
                self.location(),
                format!("release {release} is live and was not removed"),
            ));
        }
        match std::fs::remove_dir_all(self.release_dir(release)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("discard", "remove the release directory", e)),
        }
    }

    async fn list(&self) -> Result<Vec<ReleaseId>> {
        let entries = match std::fs::read_dir(self.releases()) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("list", "read releases", e)),
        };
        let mut ids: Vec<ReleaseId> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| ReleaseId::parse(e.file_name().to_string_lossy().into_owned()).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}
