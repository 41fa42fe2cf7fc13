//! A PM2 project deployed from several clones against the rig's real sshd: its
//! origin repository, its host directories, a health endpoint the test controls.
#![allow(dead_code)] // each test file uses only some of these

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use crate::state_rig::{deploykit_in, free_port, git, hand_over, ssh_rig, Health, SshRig};

pub const CONFIG: &str = r#"[environments.staging.target]
kind = "pm2"
hosts = ["${DK_SSH}"]
deploy_to = "${DK_DEPLOY_TO}"
app = "${DK_APP}"
pm2_home = "${DK_PM2_HOME}"
repo = "${DK_REPO}"
build = [["node", "build.js"]]
instances = 1
key_file = "${DK_KEY}"
known_hosts = "${DK_KNOWN_HOSTS}"

[environments.staging.target.env]
PORT = "${DK_PORT}"
APP_NAME = "${DK_APP}"
APP_INSTANCES = "1"

[[environments.staging.probes]]
kind = "http"
url = "${DK_HEALTH}"

[environments.staging.policy]
health_attempts = 600
health_interval_secs = 1
health_deadline_secs = 600
"#;

/// An app repository (the origin every clone comes from) and its PM2 host dirs.
pub struct Pm2Project {
    pub base: PathBuf,
    pub origin: PathBuf,
    pub deploy_to: PathBuf,
    pub vars: Vec<(String, String)>,
    pub health: Health,
    pub rig: SshRig,
}

impl Pm2Project {
    pub fn new(label: &str) -> Option<Self> {
        Self::with(label, "", Vec::new())
    }

    /// Like [`new`](Self::new), with `extra` appended to the config and `vars`
    /// added to its variables.
    pub fn with(label: &str, extra: &str, more_vars: Vec<(&str, String)>) -> Option<Self> {
        let rig = ssh_rig("DEPLOYKIT_RIG_PM2_ROOT")?;
        let base = rig
            .root
            .join(format!("state-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let origin = base.join("origin");
        let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/node-app");
        std::fs::create_dir_all(&origin).unwrap();
        for f in [
            "build.js",
            "ecosystem.config.js",
            "package.json",
            "server.js",
        ] {
            std::fs::copy(app.join(f), origin.join(f)).unwrap();
        }
        std::fs::write(origin.join("deploykit.toml"), format!("{CONFIG}{extra}")).unwrap();
        std::fs::write(origin.join(".gitignore"), ".deploykit/\ndist/\n").unwrap();
        std::fs::write(origin.join("VERSION"), "1\n").unwrap();
        git(&origin, &["init", "-q", "-b", "main"]);
        git(&origin, &["add", "-A"]);
        git(&origin, &["commit", "-qm", "v1"]);
        let deploy_to = base.join("srv");
        std::fs::create_dir_all(deploy_to.join("shared")).unwrap();
        hand_over(&base, &rig.user);
        let health = Health::start(true);
        let app_name = format!("dkstate{label}{}", std::process::id());
        let vars = [
            ("DK_SSH", rig.spec()),
            ("DK_DEPLOY_TO", deploy_to.display().to_string()),
            ("DK_APP", app_name),
            ("DK_PM2_HOME", base.join("pm2home").display().to_string()),
            ("DK_REPO", format!("file://{}", origin.display())),
            ("DK_KEY", rig.key.clone()),
            ("DK_KNOWN_HOSTS", rig.known_hosts.clone()),
            ("DK_PORT", free_port().to_string()),
            ("DK_HEALTH", health.url.clone()),
        ]
        .into_iter()
        .chain(more_vars)
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Some(Self {
            base,
            origin,
            deploy_to,
            vars,
            health,
            rig,
        })
    }

    pub fn commit(&self, version: &str) {
        std::fs::write(self.origin.join("VERSION"), format!("{version}\n")).unwrap();
        git(&self.origin, &["commit", "-qam", version]);
        hand_over(&self.origin, &self.rig.user);
    }

    pub fn cmd(&self, clone: &tempfile::TempDir) -> assert_cmd::Command {
        deploykit_in(clone.path(), &self.vars)
    }

    pub fn deploy(&self, clone: &tempfile::TempDir, release: &str) {
        self.cmd(clone)
            .args(["deploy", "-e", "staging", "--release", release])
            .assert()
            .code(0);
    }

    pub fn live(&self) -> PathBuf {
        std::fs::read_link(self.deploy_to.join("current")).unwrap()
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.deploy_to.join(".deploykit/journal/staging")
    }
}

impl Drop for Pm2Project {
    fn drop(&mut self) {
        let _ = Std::new("su")
            .args([&self.rig.user, "-c"])
            .arg(format!(
                "PM2_HOME={} pm2 kill >/dev/null 2>&1",
                self.base.join("pm2home").display()
            ))
            .status();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
