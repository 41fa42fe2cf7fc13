//! Hooks through the `deploykit` binary, on the rig's real sshd and PM2: a
//! `pre_deploy` hook on the host gets the `DEPLOYKIT_*` variables, a failing
//! `post_activate` hook rolls the release back (and `on_rollback` runs locally
//! after the undo), and a host hook past its timeout is killed on the host and
//! only warned about at `post_deploy`.

#[path = "common/pm2_project.rs"]
mod pm2_project;
#[path = "common/state_rig.rs"]
mod state_rig;

use std::path::Path;
use std::process::Command as Std;

use pm2_project::Pm2Project;
use state_rig::{clone_of, deploykit_in, git, hand_over};

const HOOKS: &str = r#"
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
    p: Pm2Project,
    sleep: String,
}

impl std::ops::Deref for Project {
    type Target = Pm2Project;

    fn deref(&self) -> &Pm2Project {
        &self.p
    }
}

impl Project {
    fn new() -> Option<Self> {
        // A duration no other process on the host sleeps for, to find this one.
        let sleep = format!("60.{}", std::process::id());
        let p = Pm2Project::with("hooks", HOOKS, vec![("DK_SLEEP", sleep.clone())])?;
        Some(Self { p, sleep })
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
