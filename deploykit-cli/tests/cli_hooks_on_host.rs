//! Hooks through the `deploykit` binary, on the rig's real sshd and PM2: a
//! `pre_deploy` hook on the host gets the `DEPLOYKIT_*` variables, a failing
//! `post_activate` hook rolls the release back (and `on_rollback` runs locally
//! after the undo), and a host hook past its timeout is killed on the host and
//! only warned about at `post_deploy`.

#[path = "common/state_rig.rs"]
mod state_rig;

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use state_rig::{clone_of, deploykit_in, free_port, git, hand_over, ssh_rig, Health, SshRig};

const CONFIG: &str = r#"[environments.staging.target]
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

[[environments.staging.hooks]]
at = "pre_deploy"
on = "hosts"
run = ["sh", "-c", "echo \"$DEPLOYKIT_HOOK $DEPLOYKIT_ENV $DEPLOYKIT_RELEASE prev=$DEPLOYKIT_PREVIOUS\" > hook-pre.txt"]

[[environments.staging.hooks]]
at = "post_activate"
on = "hosts"
run = ["sh", "-c", "echo warming $DEPLOYKIT_RELEASE; test \"$DEPLOYKIT_RELEASE\" != r2 || { echo cache warm-up failed >&2; exit 3; }"]

[[environments.staging.hooks]]
at = "post_deploy"
on = "hosts"
run = ["sleep", "${DK_SLEEP}"]
timeout_secs = 1

[[environments.staging.hooks]]
at = "on_rollback"
on = "local"
run = ["sh", "-c", "echo \"$DEPLOYKIT_OUTCOME $DEPLOYKIT_RELEASE prev=$DEPLOYKIT_PREVIOUS\" > rolled-back.txt"]
"#;

struct Project {
    base: PathBuf,
    origin: PathBuf,
    deploy_to: PathBuf,
    vars: Vec<(String, String)>,
    sleep: String,
    _health: Health,
    rig: SshRig,
}

impl Project {
    fn new() -> Option<Self> {
        let rig = ssh_rig("DEPLOYKIT_RIG_PM2_ROOT")?;
        let base = rig.root.join(format!("hooks-{}", std::process::id()));
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
        std::fs::write(origin.join("deploykit.toml"), CONFIG).unwrap();
        std::fs::write(origin.join(".gitignore"), ".deploykit/\ndist/\n").unwrap();
        std::fs::write(origin.join("VERSION"), "1\n").unwrap();
        git(&origin, &["init", "-q", "-b", "main"]);
        git(&origin, &["add", "-A"]);
        git(&origin, &["commit", "-qm", "v1"]);
        let deploy_to = base.join("srv");
        std::fs::create_dir_all(deploy_to.join("shared")).unwrap();
        hand_over(&base, &rig.user);
        let health = Health::start(true);
        // A duration no other process on the host sleeps for, to find this one.
        let sleep = format!("60.{}", std::process::id());
        let vars = [
            ("DK_SSH", rig.spec()),
            ("DK_DEPLOY_TO", deploy_to.display().to_string()),
            ("DK_APP", format!("dkhooks{}", std::process::id())),
            ("DK_PM2_HOME", base.join("pm2home").display().to_string()),
            ("DK_REPO", format!("file://{}", origin.display())),
            ("DK_KEY", rig.key.clone()),
            ("DK_KNOWN_HOSTS", rig.known_hosts.clone()),
            ("DK_PORT", free_port().to_string()),
            ("DK_HEALTH", health.url.clone()),
            ("DK_SLEEP", sleep.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Some(Self {
            base,
            origin,
            deploy_to,
            vars,
            sleep,
            _health: health,
            rig,
        })
    }

    fn deploy(&self, clone: &tempfile::TempDir, release: &str) -> (i32, String) {
        let out = deploykit_in(clone.path(), &self.vars)
            .args(["deploy", "-e", "staging", "--release", release])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap(), text)
    }

    fn live(&self) -> PathBuf {
        std::fs::read_link(self.deploy_to.join("current")).unwrap()
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.deploy_to.join(file)).unwrap_or_default()
    }

    fn sleeping_on_host(&self) -> bool {
        Std::new("pgrep")
            .args(["-u", &self.rig.user, "-f", &format!("sleep {}", self.sleep)])
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Project {
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

#[test]
fn host_hooks_get_the_run_variables_and_a_failing_post_activate_rolls_back() {
    let Some(p) = Project::new() else {
        return;
    };
    let clone = clone_of(&p.origin);

    let (code, out) = p.deploy(&clone, "r1");
    assert_eq!(code, 0, "{out}");
    assert_eq!(p.live(), Path::new("releases/r1"));
    assert_eq!(p.read("hook-pre.txt"), "pre_deploy staging r1 prev=\n");
    assert!(out.contains("warming r1"), "hook output is shown: {out}");
    // The post_deploy hook outlived its 1 s timeout: killed on the host, a warning.
    assert!(
        out.contains("post_deploy") && out.contains("timed out after 1 s"),
        "{out}"
    );
    assert!(
        !p.sleeping_on_host(),
        "the timed-out hook was killed on the host"
    );

    std::fs::write(p.origin.join("VERSION"), "2\n").unwrap();
    git(&p.origin, &["commit", "-qam", "v2"]);
    hand_over(&p.origin, &p.rig.user);
    git(&clone.path().join("c"), &["pull", "-q"]);
    let (code, out) = p.deploy(&clone, "r2");
    assert_eq!(
        code, 1,
        "a failed post_activate hook is a failed, undone run: {out}"
    );
    assert_eq!(p.read("hook-pre.txt"), "pre_deploy staging r2 prev=r1\n");
    assert!(out.contains("cache warm-up failed"), "{out}");
    assert!(
        out.contains("post_activate") && out.contains("exited 3"),
        "{out}"
    );
    assert_eq!(p.live(), Path::new("releases/r1"), "rolled back to r1");
    assert_eq!(
        std::fs::read_to_string(clone.path().join("c/rolled-back.txt")).unwrap(),
        "rolled_back r2 prev=r1\n",
        "on_rollback ran locally, after the undo"
    );
    let journals: String = std::fs::read_dir(p.deploy_to.join(".deploykit/journal/staging"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        journals.contains(r#""record":"hook","point":"post_activate""#)
            && journals.contains(r#""status":3"#),
        "every hook run is journaled with its exit status: {journals}"
    );
}
