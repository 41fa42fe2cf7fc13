//! `deploykit migrate lint`: the CI gate on a pull request, with no database,
//! no hosts and no secrets set, reading the migrations of a commit.

use std::path::Path;
use std::process::Command as Std;

use assert_cmd::Command;
use predicates::prelude::*;

fn git(repo: &Path, args: &[&str]) {
    let ok = Std::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

/// A repository holding deploykit.toml (its database URL and hosts unset, as on a
/// CI runner checking a pull request) and one harmless migration, committed.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    git(p, &["init", "-q", "-b", "main"]);
    std::fs::write(
        p.join("deploykit.toml"),
        "[defaults.database]\nurl = \"${DK_LINT_TEST_UNSET_DB}\"\n\
         [defaults.migrations]\nkind = \"sql\"\ndir = \"db\"\n\
         [environments.production.target]\nkind = \"pm2\"\nhosts = [\"${DK_LINT_TEST_UNSET_HOST}\"]\n\
         deploy_to = \"/srv/a\"\napp = \"a\"\nrepo = \"x\"\n\
         [environments.production.gates]\napproval = true\n",
    )
    .unwrap();
    std::fs::create_dir(p.join("db")).unwrap();
    std::fs::write(p.join("db/1_users.sql"), "create table users (id int);\n").unwrap();
    git(p, &["add", "-A"]);
    git(p, &["commit", "-qm", "one"]);
    dir
}

fn lint(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("deploykit").unwrap();
    c.current_dir(dir).args(["migrate", "lint"]).args(args);
    c
}

#[test]
fn a_destructive_migration_fails_the_gate_until_its_marker_is_committed() {
    let d = project();
    let p = d.path();
    lint(p, &[])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "no finding without an allow marker",
        ));

    std::fs::write(p.join("db/2_drop.sql"), "drop table users;\n").unwrap();
    git(p, &["add", "-A"]);
    git(p, &["commit", "-qm", "drop"]);
    lint(p, &["--env", "production"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("2_drop").and(predicate::str::contains("drop-table")))
        .stdout(predicate::str::contains("NOT ALLOWED"));

    // The commit decides, not the working tree: an uncommitted marker changes nothing.
    std::fs::write(
        p.join("db/2_drop.sql"),
        "-- deploykit:allow drop-table\ndrop table users;\n",
    )
    .unwrap();
    lint(p, &[]).assert().code(1);
    git(p, &["commit", "-qam", "allow"]);
    lint(p, &[])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("allowed by marker"));
    // An older ref is still the commit without the marker.
    lint(p, &["--ref", "HEAD~1"]).assert().code(1);

    let json = lint(p, &["--ref", "HEAD~1"])
        .arg("--json")
        .output()
        .unwrap();
    let line: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(line["event"], "lint");
    assert_eq!(line["migrations"].as_array().unwrap().len(), 2);
}

#[test]
fn unknown_environments_and_configs_without_sql_migrations_are_usage_errors() {
    let d = project();
    lint(d.path(), &["--env", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("production"));
    std::fs::write(
        d.path().join("deploykit.toml"),
        "[environments.p.migrations]\nkind = \"compose_run\"\nup = [\"x\"]\n",
    )
    .unwrap();
    lint(d.path(), &[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("kind = \"sql\""));
}
