//! `migrate status|plan|apply|revert` read the commit, not the checkout: with an
//! uncommitted migration in the working tree, the standalone migrate commands
//! neither list nor apply it (they read `--ref`, default HEAD, through git), and
//! `migrate revert --run` runs the tool of the run's commit. Local target and
//! SQLite: no external service needed.

use std::path::PathBuf;

use assert_cmd::Command;

#[path = "common/git_project.rs"]
mod git_project;
use git_project::{free_port, git, sqlite_tables, stop_local_app};

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// A repo `app` whose commit v1 has `0001_notes` and v2 adds `0002_tags`, checked
    /// out at v2 with an uncommitted `0099_wt_only`, and a config for env `s`: local
    /// target, SQLite, a backup, and `migrations` as given.
    fn new(migrations: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("app");
        std::fs::create_dir_all(repo.join("migrations")).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        let p = Self { dir };
        p.write(
            "migrations/0001_notes.sql",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n",
        );
        p.write("migrations/0001_notes.down.sql", "DROP TABLE notes;\n");
        p.commit("v1");
        p.write(
            "migrations/0002_tags.sql",
            "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
        );
        p.write("migrations/0002_tags.down.sql", "DROP TABLE tags;\n");
        p.commit("v2");
        p.write(
            "migrations/0099_wt_only.sql",
            "CREATE TABLE wt_only (id INTEGER PRIMARY KEY);\n",
        );
        let exe = assert_cmd::cargo::cargo_bin("deploykit");
        let config = format!(
            "[environments.s.target]\nkind = \"local\"\ndeploy_to = \"srv\"\nrepo = \"app\"\n\
             start = [{exe:?}, \"demo-app\", \"--port\", \"{{port}}\"]\nport = {port}\n\
             [environments.s.database]\nurl = \"sqlite://{db}\"\n\
             [environments.s.backup]\nkind = \"sqlite\"\ndir = \"backups\"\n{migrations}",
            exe = exe.to_string_lossy(),
            port = free_port(),
            db = p.path("app.db").display(),
        );
        std::fs::write(p.path("deploykit.toml"), config).unwrap();
        p
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.path("app").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn commit(&self, tag: &str) {
        git(&self.path("app"), &["add", "-A"]);
        git(&self.path("app"), &["commit", "-q", "-m", tag]);
        git(&self.path("app"), &["tag", tag]);
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("deploykit").unwrap();
        c.current_dir(self.dir.path())
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1");
        c
    }

    /// Runs deploykit with `args`, asserts exit 0, returns (stdout, stderr).
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.cmd().args(args).output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}{stderr}");
        (stdout, stderr)
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
fn plan_and_status_list_the_commits_migrations_and_warn_about_the_uncommitted_one() {
    let p = Project::new(SQL);
    let (plan, stderr) = p.ok(&["migrate", "plan", "-e", "s"]);
    assert!(
        plan.contains("0002"),
        "HEAD's migrations are planned: {plan}"
    );
    assert!(
        !plan.contains("0099"),
        "plan lists the uncommitted 0099: {plan}"
    );
    assert!(
        stderr.contains("0099_wt_only.sql") && stderr.contains("ignored"),
        "a warning names the ignored file: {stderr}"
    );

    let (status, _) = p.ok(&["--json", "migrate", "status", "-e", "s"]);
    assert!(status.contains("0002"), "{status}");
    assert!(
        !status.contains("0099"),
        "status lists the uncommitted 0099: {status}"
    );

    let (plan, _) = p.ok(&["migrate", "plan", "-e", "s", "--ref", "v1"]);
    assert!(plan.contains("0001") && !plan.contains("0002"), "{plan}");
}

#[test]
fn apply_does_not_apply_an_uncommitted_migration() {
    let p = Project::new(SQL);
    p.ok(&["migrate", "apply", "-e", "s"]);
    let tables = p.tables();
    assert!(tables.iter().any(|t| t == "tags"), "{tables:?}");
    assert!(
        !tables.iter().any(|t| t == "wt_only"),
        "apply applied the uncommitted 0099: {tables:?}"
    );
}

#[test]
fn apply_with_a_ref_applies_that_commits_migrations_only() {
    let p = Project::new(SQL);
    p.ok(&["migrate", "apply", "-e", "s", "--ref", "v1"]);
    let tables = p.tables();
    assert!(tables.iter().any(|t| t == "notes"), "{tables:?}");
    assert!(
        !tables.iter().any(|t| t == "tags" || t == "wt_only"),
        "apply --ref v1 applied more than v1's migrations: {tables:?}"
    );
}

#[test]
fn outside_a_git_repository_the_directory_is_read_as_before() {
    let p = Project::new(SQL);
    std::fs::remove_dir_all(p.path("app/.git")).unwrap();
    let (plan, _) = p.ok(&["migrate", "plan", "-e", "s"]);
    assert!(plan.contains("0099"), "{plan}");
    let out = p
        .cmd()
        .args(["migrate", "plan", "-e", "s", "--ref", "v1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--ref needs a repository");
}

#[test]
fn revert_of_a_run_runs_the_tool_of_the_runs_commit() {
    let state = p_file("r0\n");
    let marker = p_file("");
    let p = Project::new(&format!(
        "[environments.s.migrations]\nkind = \"command\"\ndir = \"app/tool\"\n\
         up = [\"sh\", \"up.sh\"]\ncurrent = [\"cat\", {state:?}]\n\
         down = [\"sh\", \"down.sh\", \"{{revision}}\"]\n",
        state = state.path().display().to_string()
    ));
    let down = |who: &str| {
        format!(
            "echo \"$1\" > {}\necho {who} > {}\n",
            state.path().display(),
            marker.path().display()
        )
    };
    p.write(
        "tool/up.sh",
        &format!("echo r1 > {}\n", state.path().display()),
    );
    p.write("tool/down.sh", &down("committed"));
    p.commit("v3");
    p.ok(&["deploy", "-e", "s", "--release", "r3", "--ref", "v3"]);
    assert_eq!(std::fs::read_to_string(state.path()).unwrap().trim(), "r1");

    // The checkout's tool changes after the run, uncommitted.
    p.write("tool/down.sh", &down("working-tree"));
    let run = std::fs::read_dir(p.path(".deploykit/journal/s"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|f| f.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let run = run.file_stem().unwrap().to_string_lossy().to_string();
    p.ok(&["migrate", "revert", "-e", "s", "--run", &run]);
    assert_eq!(std::fs::read_to_string(state.path()).unwrap().trim(), "r0");
    assert_eq!(
        std::fs::read_to_string(marker.path()).unwrap().trim(),
        "committed",
        "revert ran the checkout's tool, not the run's commit's"
    );
}

/// A journal written before applied sets named their release, of a run killed after
/// its migration: `recover` builds its parts for no release, and still reverts with
/// the tool of the commit the run deployed (its `run_started`), not the checkout's.
#[test]
fn recover_of_an_old_journal_runs_the_tool_of_the_runs_commit() {
    let state = p_file("r1\n");
    let marker = p_file("");
    let p = Project::new(&format!(
        "[environments.s.migrations]\nkind = \"command\"\ndir = \"app/tool\"\n\
         up = [\"sh\", \"up.sh\"]\ncurrent = [\"cat\", {state:?}]\n\
         down = [\"sh\", \"down.sh\", \"{{revision}}\"]\n",
        state = state.path().display().to_string()
    ));
    let down = |who: &str| {
        format!(
            "echo \"$1\" > {}\necho {who} > {}\n",
            state.path().display(),
            marker.path().display()
        )
    };
    p.write(
        "tool/up.sh",
        &format!("echo r1 > {}\n", state.path().display()),
    );
    p.write("tool/down.sh", &down("committed"));
    p.commit("v3");
    let v3 = git(&p.path("app"), &["rev-parse", "v3"]);
    p.write("tool/down.sh", &down("working-tree"));
    let journal = p.path(".deploykit/journal/s");
    std::fs::create_dir_all(&journal).unwrap();
    let records = [
        serde_json::json!({"record": "run_started", "run_id": "run-old", "env": "s",
            "release": "r3", "commit": v3, "branch": null, "previous": null, "who": "ci",
            "at": "2026-11-26T10:00:00Z"}),
        serde_json::json!({"record": "intent", "seq": 1, "phase": "migrate",
            "undo": {"undo": "revert_migrations", "applied": {
                "migrations": [{"version": "up", "name": "sh up.sh"}],
                "revision_before": "r0", "revision_after": null}},
            "at": "2026-11-26T10:00:01Z"}),
    ];
    let text: String = records.iter().map(|r| r.to_string() + "\n").collect();
    std::fs::write(journal.join("run-old.jsonl"), text).unwrap();

    p.ok(&["recover", "-e", "s"]);
    assert_eq!(std::fs::read_to_string(state.path()).unwrap().trim(), "r0");
    assert_eq!(
        std::fs::read_to_string(marker.path()).unwrap().trim(),
        "committed",
        "recover ran the checkout's tool, not the run's commit's"
    );
}

fn p_file(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}
