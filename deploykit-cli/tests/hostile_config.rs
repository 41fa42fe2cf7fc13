//! Hostile values in a PM2 target's config (shell metacharacters in the app name,
//! environment variable names and host, paths escaping the release) are refused
//! with exit 2 before anything happens: no connection is attempted (the host given
//! is unreachable, yet the error names the bad value, not the host), no journal or
//! lock is written, and no injected command ever runs. No rig needed.

use std::path::Path;
use std::process::Command as Std;

use assert_cmd::Command;
use predicates::prelude::*;

/// A project directory with one commit and a PM2 environment `s` whose target table
/// gets `target_extra`; the host is 127.0.0.1:1, where nothing listens.
struct Project {
    dir: tempfile::TempDir,
    commit: String,
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Std::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Project {
    fn new(target: &[(&str, &str)], env_table: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(dir.path().join(".gitignore"), ".deploykit/\n").unwrap();
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-qm", "app"]);
        let commit = git(dir.path(), &["rev-parse", "HEAD"]);
        let mut fields = vec![
            ("hosts", "[\"deploy@127.0.0.1:1\"]".to_string()),
            ("deploy_to", format!("{:?}", dir.path().join("srv"))),
            ("app", "\"shop\"".into()),
            ("repo", format!("{:?}", dir.path())),
            ("key_file", "\"missing_key\"".into()),
            ("known_hosts", "\"missing_known_hosts\"".into()),
        ];
        for (k, v) in target {
            match fields.iter_mut().find(|(name, _)| name == k) {
                Some(field) => field.1 = v.to_string(),
                None => fields.push((k, v.to_string())),
            }
        }
        let mut toml = String::from("[environments.s.target]\nkind = \"pm2\"\n");
        for (k, v) in fields {
            toml.push_str(&format!("{k} = {v}\n"));
        }
        toml.push_str(env_table);
        std::fs::write(dir.path().join("deploykit.toml"), toml).unwrap();
        Self { dir, commit }
    }

    /// Runs `deploy`, expects exit 2 with `message` (and not a connection error, which
    /// would mean a connection was tried first), and checks nothing happened.
    fn refused(&self, message: &str) {
        self.refused_as(message, predicate::str::contains("cannot reach").not());
    }

    fn refused_as(&self, message: &str, also: impl predicates::Predicate<str>) {
        let evidence = self.dir.path().join("pwned");
        Command::cargo_bin("deploykit")
            .unwrap()
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("DK_HOSTILE_EVIDENCE", &evidence)
            .args(["deploy", "-e", "s", "--ref", &self.commit])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message).and(also));
        assert!(!evidence.exists(), "an injected command ran");
        assert!(
            !self.dir.path().join(".deploykit/journal").exists(),
            "a run was started"
        );
        assert!(
            !self.dir.path().join("srv").exists(),
            "the deploy dir was touched"
        );
    }
}

#[test]
fn a_hostile_pm2_app_name_is_refused_before_connecting() {
    Project::new(&[("app", "\"shop;touch $DK_HOSTILE_EVIDENCE\"")], "")
        .refused("invalid pm2 app name");
    Project::new(&[("app", "\"$(touch $DK_HOSTILE_EVIDENCE)\"")], "")
        .refused("invalid pm2 app name");
    Project::new(&[("app", "\"--help\"")], "").refused("invalid pm2 app name");
}

#[test]
fn linked_paths_and_ecosystem_outside_the_release_are_refused_before_connecting() {
    Project::new(&[("linked_files", "[\"../../../etc/passwd\"]")], "")
        .refused("invalid linked file");
    Project::new(&[("linked_dirs", "[\"/var/log\"]")], "").refused("invalid linked dir");
    Project::new(&[("ecosystem", "\"../other/ecosystem.config.js\"")], "")
        .refused("invalid ecosystem file");
}

#[test]
fn a_hostile_environment_variable_name_is_refused_before_connecting() {
    Project::new(
        &[],
        "[environments.s.target.env]\n\"A;touch $DK_HOSTILE_EVIDENCE\" = \"x\"\n",
    )
    .refused("invalid environment variable name");
}

#[test]
fn a_hostile_host_is_refused_without_running_anything() {
    Project::new(
        &[(
            "hosts",
            "[\"deploy@127.0.0.1;touch $DK_HOSTILE_EVIDENCE:22\"]",
        )],
        "",
    )
    .refused_as(
        "invalid ssh host",
        predicate::str::contains("connect failed").not(),
    );
    Project::new(&[("hosts", "[\"-oProxyCommand=touch:22\"]")], "").refused_as(
        "invalid ssh host",
        predicate::str::contains("connect failed").not(),
    );
}

#[test]
fn a_hostile_release_id_is_refused_for_a_pm2_target_too() {
    let p = Project::new(&[], "");
    Command::cargo_bin("deploykit")
        .unwrap()
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .args([
            "deploy",
            "-e",
            "s",
            "--ref",
            &p.commit,
            "--release",
            "r1$(id)",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid release id"));
    assert!(!p.dir.path().join(".deploykit/journal").exists());
}
