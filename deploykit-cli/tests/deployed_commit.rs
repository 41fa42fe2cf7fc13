//! Deploy the commit, not the checkout: with uncommitted or newer files in the
//! working tree, a deploy of `--ref X` plans, applies and reverts exactly X's
//! migrations, runs X's migration tool, and `recover` reverts with the down
//! scripts of the commit that was deployed after the checkout has moved on.
//! Local target and SQLite: no external service needed.

use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::time::{Duration, Instant};

use assert_cmd::Command;

#[path = "common/git_project.rs"]
mod git_project;
use git_project::{free_port, git, sqlite_tables, stop_local_app};

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// A repo `app` whose commit v1 has `0001_notes` and v2 adds `0002_tags`, and a
    /// config for env `s`: local target, SQLite, sql migrations in `app/migrations`.
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("app");
        std::fs::create_dir_all(repo.join("migrations")).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        let p = Self { dir };
        p.write("VERSION", "v1\n");
        p.write("HEALTHY", "yes\n");
        p.write(
            "migrations/0001_notes.sql",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n",
        );
        p.write("migrations/0001_notes.down.sql", "DROP TABLE notes;\n");
        p.commit("v1");
        p.write("VERSION", "v2\n");
        p.write(
            "migrations/0002_tags.sql",
            "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
        );
        p.write("migrations/0002_tags.down.sql", "DROP TABLE tags;\n");
        p.commit("v2");
        let exe = assert_cmd::cargo::cargo_bin("deploykit");
        let config = format!(
            "[environments.s.target]\nkind = \"local\"\ndeploy_to = \"srv\"\nrepo = \"app\"\n\
             start = [{exe:?}, \"demo-app\", \"--port\", \"{{port}}\"]\nport = {port}\n\
             [environments.s.database]\nurl = \"sqlite://{db}\"\n\
             [environments.s.backup]\nkind = \"sqlite\"\ndir = \"backups\"\n{extra}",
            exe = exe.to_string_lossy(),
            port = free_port(),
            db = p.path("app.db").display(),
        );
        std::fs::write(p.path("deploykit.toml"), config).unwrap();
        p
    }

    fn port(&self) -> u16 {
        let text = std::fs::read_to_string(self.path("deploykit.toml")).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("port = "))
            .unwrap()
            .parse()
            .unwrap()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.path("app").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn commit(&self, message: &str) -> String {
        git(&self.path("app"), &["add", "-A"]);
        git(&self.path("app"), &["commit", "-q", "-m", message]);
        git(&self.path("app"), &["tag", message]);
        self.rev(message)
    }

    fn rev(&self, r: &str) -> String {
        git(&self.path("app"), &["rev-parse", r])
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("deploykit").unwrap();
        c.current_dir(self.dir.path())
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1");
        c
    }

    /// The database's tables.
    fn tables(&self) -> Vec<String> {
        sqlite_tables(&self.path("app.db"))
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        stop_local_app(&self.path("srv"));
    }
}

const SQL: &str = "[environments.s.migrations]\nkind = \"sql\"\ndir = \"app/migrations\"\n";

#[test]
fn an_uncommitted_migration_in_the_working_tree_is_neither_planned_nor_applied() {
    let p = Project::new(SQL);
    git(&p.path("app"), &["checkout", "-q", "v1"]);
    p.write(
        "migrations/0099_wt_only.sql",
        "CREATE TABLE wt_only (id INTEGER PRIMARY KEY);\n",
    );

    let out = p
        .cmd()
        .args(["--json", "deploy", "-e", "s", "--ref", "v1", "--dry-run"])
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{plan}");
    assert!(plan.contains("0001"), "v1's migration is planned: {plan}");
    assert!(!plan.contains("0099"), "the dry run plans 0099: {plan}");

    let out = p
        .cmd()
        .args(["deploy", "-e", "s", "--release", "r1", "--ref", "v1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = p.tables();
    assert!(
        !tables.iter().any(|t| t.contains("wt_only")),
        "a deploy of v1 applied the uncommitted 0099: {tables:?}"
    );
    assert!(tables.iter().any(|t| t.contains("notes")), "{tables:?}");
    assert!(
        !p.path("srv/releases/r1/migrations/0099_wt_only.sql")
            .exists(),
        "the release holds the commit's files only"
    );

    // The same from a checkout of another, newer commit: v2's 0002 is not v1's.
    git(&p.path("app"), &["checkout", "-q", "v2"]);
    let out = p
        .cmd()
        .args(["deploy", "-e", "s", "--release", "r1b", "--ref", "v1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = p.tables();
    assert!(
        !tables.iter().any(|t| t.contains("tags")),
        "a deploy of v1 applied v2's migration from the checkout: {tables:?}"
    );
}

#[test]
fn rollback_to_an_older_release_applies_nothing_from_the_checkout() {
    let p = Project::new(SQL);
    for (release, r) in [("r1", "v1"), ("r2", "v2")] {
        let out = p
            .cmd()
            .args(["deploy", "-e", "s", "--release", release, "--ref", r])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The checkout moves ahead: a committed v3 migration nobody deployed, and an
    // uncommitted one.
    p.write(
        "migrations/0003_archive.sql",
        "CREATE TABLE archive (id INTEGER PRIMARY KEY);\n",
    );
    p.commit("v3");
    p.write(
        "migrations/0099_wt_only.sql",
        "CREATE TABLE wt_only (id INTEGER PRIMARY KEY);\n",
    );
    let out = p
        .cmd()
        .args(["rollback", "-e", "s", "--to", "r1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = p.tables();
    assert!(
        !tables
            .iter()
            .any(|t| t.contains("wt_only") || t.contains("archive")),
        "{tables:?}"
    );
    // A dry run of v1 now: v2's 0002 is applied but not v1's, and v3's 0003 and the
    // uncommitted 0099 are not v1's either: nothing is pending.
    let out = p
        .cmd()
        .args([
            "--json",
            "deploy",
            "-e",
            "s",
            "--release",
            "r1c",
            "--ref",
            "v1",
            "--dry-run",
        ])
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{plan}");
    let v: serde_json::Value = serde_json::from_str(plan.trim()).unwrap();
    assert_eq!(
        v["migrations"]["migrations"],
        serde_json::json!([]),
        "nothing is pending for v1: {plan}"
    );
}

/// Starts `deploy --ref v2bad`, kills it once the migration is applied and the
/// release is being verified, and returns when it is dead.
fn kill_while_verifying(p: &Project) {
    let journals = p.path(".deploykit/journal/s");
    let before: Vec<PathBuf> = list(&journals);
    let mut child = Std::new(assert_cmd::cargo::cargo_bin("deploykit"))
        .current_dir(p.dir.path())
        .args(["deploy", "-e", "s", "--release", "r2", "--ref", "v2bad"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = list(&journals)
            .into_iter()
            .filter(|j| !before.contains(j))
            .map(|j| std::fs::read_to_string(j).unwrap_or_default())
            .collect::<String>();
        if text.contains("\"phase\":\"verify\"") {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the deploy ended early: {text}"
        );
        assert!(
            Instant::now() < deadline,
            "the deploy never reached verify: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn list(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn recover_reverts_the_deployed_commits_migrations_after_the_checkout_moved_on() {
    let p = Project::new(SQL);
    let port = p.port();
    // v2bad: v2's migration, and an app that never turns healthy, so the deploy
    // keeps verifying until it is killed.
    let text = std::fs::read_to_string(p.path("deploykit.toml")).unwrap();
    std::fs::write(
        p.path("deploykit.toml"),
        format!(
            "{text}[[environments.s.probes]]\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/api/health\"\njson_status = true\n\
             [environments.s.policy]\nhealth_deadline_secs = 120\nhealth_attempts = 120\nhealth_interval_secs = 1\n"
        ),
    )
    .unwrap();
    git(&p.path("app"), &["checkout", "-q", "v2"]);
    p.write("HEALTHY", "no\n");
    p.commit("v2bad");
    // Each release deployed from its own checkout, as CI does: only the recover
    // below runs from a checkout that has moved on.
    git(&p.path("app"), &["checkout", "-q", "v1"]);
    let out = p
        .cmd()
        .args(["deploy", "-e", "s", "--release", "r1", "--ref", "v1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    git(&p.path("app"), &["checkout", "-q", "v2bad"]);
    kill_while_verifying(&p);
    assert!(
        p.tables().iter().any(|t| t.contains("tags")),
        "v2's migration ran"
    );

    // The checkout moves on: back to v1, and the migrations directory is gone.
    git(&p.path("app"), &["checkout", "-q", "v1"]);
    std::fs::remove_dir_all(p.path("app/migrations")).unwrap();

    let out = p.cmd().args(["recover", "-e", "s"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "recover: {stderr}");
    assert_eq!(
        std::fs::read_link(p.path("srv/current")).unwrap(),
        Path::new("releases/r1")
    );
    let tables = p.tables();
    assert!(
        !tables.iter().any(|t| t.contains("tags")),
        "0002 was reverted with v2's journaled down script: {tables:?}"
    );
    assert!(tables.iter().any(|t| t.contains("notes")), "{tables:?}");
}

#[test]
fn a_command_migration_runs_the_deployed_commits_tool_not_the_checkouts() {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let p = Project::new(&format!(
        "[environments.s.migrations]\nkind = \"command\"\ndir = \"app/tool\"\n\
         up = [\"sh\", \"up.sh\"]\ncurrent = [\"cat\", {out:?}]\ndown = [\"true\", \"{{revision}}\"]\n",
        out = out_file.path().display().to_string()
    ));
    p.write(
        "tool/up.sh",
        &format!("echo committed > {}\n", out_file.path().display()),
    );
    p.commit("v3");
    // Uncommitted edit of the tool's migration in the working tree.
    p.write(
        "tool/up.sh",
        &format!("echo working-tree > {}\n", out_file.path().display()),
    );
    let out = p
        .cmd()
        .args(["deploy", "-e", "s", "--release", "r3", "--ref", "v3"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out_file.path()).unwrap().trim(),
        "committed",
        "the tool ran the working tree's edit"
    );
}
