//! `source = "artifact"` through the `deploykit` binary, on the rig's real sshd
//! and PM2: `artifact_build` builds the tarball here from the deployed commit,
//! `deploy --artifact PATH` ships one CI built, the host records the digest with
//! the release (and `status` shows it), a missing tarball is a config error before anything changes, and
//! `rollback` goes back to the earlier artifact release.

#[path = "common/pm2_project.rs"]
mod pm2_project;
#[path = "common/state_rig.rs"]
mod state_rig;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command as Std;

use pm2_project::Pm2Project;
use state_rig::{clone_of, git, hand_over, run};

/// The target's git source, as `pm2_project::CONFIG` writes it.
const GIT_SOURCE: &str = "repo = \"${DK_REPO}\"\nbuild = [[\"node\", \"build.js\"]]\n";

/// The same target built once, here: `dist/` is built and packed with the code,
/// and the hosts run nothing but the app.
const ARTIFACT_SOURCE: &str = r#"source = "artifact"
artifact = "out/release.tar.gz"
artifact_build = [
  ["node", "build.js"],
  ["sh", "-c", "mkdir -p out && tar -czf \"$DEPLOYKIT_ARTIFACT\" --exclude=./out --exclude=./.git --exclude=./.deploykit ."],
]
"#;

fn project() -> Option<Pm2Project> {
    let p = Pm2Project::new("artifact")?;
    let config = p.origin.join("deploykit.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(GIT_SOURCE), "{text}");
    std::fs::write(&config, text.replace(GIT_SOURCE, ARTIFACT_SOURCE)).unwrap();
    std::fs::write(p.origin.join(".gitignore"), ".deploykit/\ndist/\nout/\n").unwrap();
    git(&p.origin, &["commit", "-qam", "ship a tarball"]);
    hand_over(&p.origin, &p.rig.user);
    Some(p)
}

fn var<'a>(p: &'a Pm2Project, name: &str) -> &'a str {
    &p.vars.iter().find(|(k, _)| k == name).unwrap().1
}

/// What the app answers on `/` (its version), if it answers.
fn served(p: &Pm2Project) -> Option<String> {
    let port: u16 = var(p, "DK_PORT").parse().unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.trim().to_string())
}

fn sha256_of(file: &Path) -> String {
    let out = run(Std::new("sha256sum").arg(file));
    out.split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_tarball_built_once_is_shipped_checked_recorded_and_rolled_back_to() {
    let Some(p) = project() else {
        return;
    };
    let clone = clone_of(&p.origin);

    // artifact_build runs here, at the deployed commit; the host builds nothing.
    let out = p
        .cmd(&clone)
        .args(["deploy", "-e", "staging", "--release", "r1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let built = clone.path().join("c/out/release.tar.gz");
    let digest = sha256_of(&built);
    assert!(stderr.contains(&format!("sha256 {digest}")), "{stderr}");
    assert_eq!(served(&p).as_deref(), Some("1"));
    let r1 = p.deploy_to.join("releases/r1");
    assert_eq!(
        std::fs::read_to_string(r1.join("ARTIFACT")).unwrap().trim(),
        format!("sha256:{digest}")
    );
    let head = git(&clone.path().join("c"), &["rev-parse", "HEAD"]);
    assert_eq!(
        std::fs::read_to_string(r1.join("REVISION")).unwrap().trim(),
        head.trim()
    );
    assert!(!p.deploy_to.join(".deploykit/upload-r1.tar.gz").exists());
    // The run's journal (on the host) says which bytes went out.
    let journaled = std::fs::read_dir(p.journal_dir())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(
        journaled.contains(&format!("staged r1 from artifact sha256:{digest}")),
        "{journaled}"
    );

    // A tarball that is not there: a config error, nothing changed.
    let out = p
        .cmd(&clone)
        .args(["deploy", "-e", "staging", "--release", "r2"])
        .args(["--artifact", "no-such.tar.gz"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-such.tar.gz does not exist"), "{stderr}");
    assert_eq!(p.live(), Path::new("releases/r1"));
    assert!(!p.deploy_to.join("releases/r2").exists());

    // v2, built by "CI" into a file of its own: --artifact ships it as it is.
    p.commit("2");
    run(Std::new("git")
        .arg("-C")
        .arg(clone.path().join("c"))
        .args(["pull", "-q", "--ff-only"]));
    let ci = tempfile::tempdir().unwrap();
    let v2 = ci.path().join("app-v2.tar.gz");
    let tree = clone.path().join("c");
    run(Std::new("node").arg("build.js").current_dir(&tree));
    run(Std::new("tar")
        .arg("-czf")
        .arg(&v2)
        .args([
            "--exclude=./out",
            "--exclude=./.git",
            "--exclude=./.deploykit",
        ])
        .arg("-C")
        .arg(&tree)
        .arg("."));
    let out = p
        .cmd(&clone)
        .args(["deploy", "-e", "staging", "--release", "r2", "--artifact"])
        .arg(&v2)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(served(&p).as_deref(), Some("2"));
    assert_eq!(
        std::fs::read_to_string(p.deploy_to.join("releases/r2/ARTIFACT"))
            .unwrap()
            .trim(),
        format!("sha256:{}", sha256_of(&v2))
    );
    // artifact_build did not run: the tarball it writes is still v1's.
    assert_eq!(sha256_of(&built), digest);

    // Rolling back needs no tarball: r1 is still unpacked on the host.
    let out = p
        .cmd(&clone)
        .args(["rollback", "-e", "staging"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(p.live(), Path::new("releases/r1"));
    assert_eq!(served(&p).as_deref(), Some("1"));
    // status shows the digest recorded with the live release.
    let out = p
        .cmd(&clone)
        .args(["status", "-e", "staging"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("artifact:  sha256:{digest}")),
        "{stdout}"
    );
}

#[test]
fn artifact_settings_that_contradict_the_source_are_config_errors() {
    let Some(p) = Pm2Project::with("artifact-conflict", "", Vec::new()) else {
        return;
    };
    let clone = clone_of(&p.origin);
    // A git target given a tarball: refused before anything connects.
    let out = p
        .cmd(&clone)
        .args(["deploy", "-e", "staging", "--artifact", "x.tar.gz"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("set source = \"artifact\""), "{stderr}");
    assert!(!p.deploy_to.join("releases").exists());
}
