//! A checkout of a project whose environments back up into the rig's object
//! store: a git repo `app` (or a clone of another checkout's, as a fresh CI runner
//! has), a `deploykit.toml`, and the store's credentials given as `${VAR}`s that
//! must never show in output or on disk.
#![allow(dead_code)] // each test file uses only some of these

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;

use super::git_project::{git, stop_local_app};
use super::s3_rig::{psql, Rig};

/// One checkout: the app repo `app` (or a clone of another checkout's) and a
/// `deploykit.toml` whose environments back up into the object store.
pub struct Checkout {
    /// The checkout's directory.
    pub dir: tempfile::TempDir,
    rig: Rig,
}

/// An environment of a config: its name, database URL and app port.
pub struct Env {
    /// The environment's name.
    pub name: &'static str,
    /// Its database URL.
    pub db: String,
    /// Its app's port.
    pub port: u16,
}

impl Checkout {
    /// A repo whose commit `v1` adds the migration `0001_tags` (with a down).
    pub fn new(rig: &Rig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("app");
        std::fs::create_dir_all(repo.join("migrations")).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("VERSION"), "v1\n").unwrap();
        std::fs::write(
            repo.join("migrations/0001_tags.sql"),
            "CREATE TABLE tags (id int);\n",
        )
        .unwrap();
        std::fs::write(
            repo.join("migrations/0001_tags.down.sql"),
            "DROP TABLE tags;\n",
        )
        .unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "v1"]);
        git(&repo, &["tag", "v1"]);
        Self {
            dir,
            rig: rig.clone(),
        }
    }

    /// Another checkout of `other`'s repo, as a fresh CI runner has: no state
    /// dir, no backup directory.
    pub fn clone_of(other: &Checkout) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Std::new("git")
            .args(["clone", "-q"])
            .arg(other.dir.path().join("app"))
            .arg(dir.path().join("app"))
            .output()
            .unwrap();
        assert!(out.status.success(), "git clone");
        Self {
            dir,
            rig: other.rig.clone(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes the config: every env backs up with pg_dump into `store` through
    /// `endpoint`, keeping `keep`; `migrations` adds the repo's SQL migrations.
    pub fn configure(
        &self,
        envs: &[Env],
        store: &str,
        endpoint: &str,
        keep: usize,
        migrations: bool,
    ) {
        let exe = assert_cmd::cargo::cargo_bin("deploykit");
        let mut text = String::new();
        for e in envs {
            text.push_str(&format!(
                "[environments.{n}.target]\nkind = \"local\"\ndeploy_to = \"srv-{n}\"\nrepo = \"app\"\n\
                 start = [{exe:?}, \"demo-app\", \"--port\", \"{{port}}\"]\nport = {port}\n\
                 [environments.{n}.database]\nurl = \"{db}\"\n\
                 [environments.{n}.backup]\nkind = \"pg_dump\"\nstore = \"{store}\"\n\
                 endpoint = \"{endpoint}\"\nregion = \"{region}\"\n\
                 access_key_id = \"${{DK_TEST_S3_ACCESS_KEY}}\"\n\
                 secret_access_key = \"${{DK_TEST_S3_SECRET_KEY}}\"\nkeep = {keep}\n",
                n = e.name,
                exe = exe.to_string_lossy(),
                port = e.port,
                db = e.db,
                region = self.rig.region,
            ));
            if migrations {
                text.push_str(&format!(
                    "[environments.{}.migrations]\nkind = \"sql\"\ndir = \"app/migrations\"\n",
                    e.name
                ));
            }
        }
        std::fs::write(self.path("deploykit.toml"), text).unwrap();
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("deploykit").unwrap();
        c.current_dir(self.dir.path())
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1")
            .env("DK_TEST_S3_ACCESS_KEY", &self.rig.access_key)
            .env("DK_TEST_S3_SECRET_KEY", &self.rig.secret_key);
        c
    }

    /// Runs deploykit; asserts no credential of the store shows in its output.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let out = self.cmd().args(args).output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains(&self.rig.secret_key) && !all.contains(&self.rig.access_key),
            "a store credential leaked into the output of {args:?}: {all}"
        );
        out
    }

    pub fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        // Several events may be printed; the last line is the command's answer.
        serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap()
    }

    pub fn listed(&self, env: &str) -> Vec<String> {
        self.ok_json(&["backup", "list", "-e", env])["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["path"].as_str().unwrap().to_string())
            .collect()
    }

    /// Every file deploykit wrote under this checkout (journals, history):
    /// none holds a store credential.
    pub fn assert_no_credential_on_disk(&self) {
        for path in files_under(&self.path(".deploykit")) {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert!(
                !text.contains(&self.rig.secret_key) && !text.contains(&self.rig.access_key),
                "{} holds a store credential",
                path.display()
            );
        }
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten() {
            let p = entry.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with("srv-") {
                stop_local_app(&p);
            }
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A database with one table of data written before any deploy.
pub fn database(rig: &Rig, label: &str) -> String {
    let url = rig.database(label);
    psql(
        &url,
        "create table notes (body text); insert into notes values ('before deploy');",
    );
    url
}

pub fn tables(url: &str) -> String {
    psql(
        url,
        "select string_agg(tablename, ',' order by tablename) from pg_tables where schemaname = 'public'",
    )
}
