//! Migrators are built once, bound to no release: each call names the release it
//! concerns, and the applied set carries it to `revert`. One SQL migrator (SQLite)
//! and one command migrator over a git repository plan, apply and revert the files
//! or tool of whichever release each call names, whatever is checked out.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use deploykit_core::command_migrator::{CommandMigrator, MigrationCommands, REVISION_PLACEHOLDER};
use deploykit_core::sql_migrations::SqlMigrator;
use deploykit_core::{
    AppliedSet, Cmd, Commit, Compensation, LocalShell, Migrator, ReleaseId, ReleaseSpec,
};

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn write(repo: &Path, rel: &str, text: &str) {
    let path = repo.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn commit(repo: &Path, message: &str) -> Commit {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    Commit::parse(git(repo, &["rev-parse", "HEAD"])).unwrap()
}

fn release(id: &str, commit: &Commit) -> ReleaseSpec {
    ReleaseSpec {
        id: ReleaseId::parse(id).unwrap(),
        commit: commit.clone(),
        branch: None,
    }
}

fn names(plan: &deploykit_core::MigrationPlan) -> Vec<String> {
    plan.migrations.iter().map(|m| m.id.to_string()).collect()
}

#[tokio::test]
async fn one_sql_migrator_plans_applies_and_reverts_the_release_each_call_names() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    git(tmp.path(), &["init", "-q", "-b", "main", "repo"]);
    write(&root, "db/0001_users.sql", "create table users (id int);\n");
    write(&root, "db/0001_users.down.sql", "drop table users;\n");
    let v1 = commit(&root, "v1");
    write(
        &root,
        "db/0002_bookings.sql",
        "create table bookings (id int);\n",
    );
    write(&root, "db/0002_bookings.down.sql", "drop table bookings;\n");
    let v2 = commit(&root, "v2");
    // Uncommitted: part of no release.
    write(
        &root,
        "db/0003_wt_only.sql",
        "create table wt_only (id int);\n",
    );
    let (r1, r2) = (release("r1", &v1), release("r2", &v2));
    let dir = root.join("db");
    let m = SqlMigrator::sqlite(tmp.path().join("app.db"), &dir).from_release_commits();

    assert_eq!(names(&m.plan(Some(&r1)).await.unwrap()), ["0001_users"]);
    assert_eq!(
        names(&m.plan(None).await.unwrap()),
        ["0001_users", "0002_bookings", "0003_wt_only"],
        "without a release, the directory as it is"
    );
    let plan = m.plan(Some(&r2)).await.unwrap();
    assert_eq!(names(&plan), ["0001_users", "0002_bookings"]);
    assert_eq!(plan.release.as_ref(), Some(&r2));

    // The checkout moves to v1 before the apply: the plan's release decides.
    git(&root, &["checkout", "-q", v1.as_str()]);
    let applied = m.apply(&plan).await.unwrap();
    assert_eq!(
        applied.release.as_ref(),
        Some(&r2),
        "the set names its release"
    );
    let status = m.status(Some(&r2)).await.unwrap();
    assert!(status.pending.is_empty(), "{status:?}");
    assert!(m.plan(Some(&r1)).await.unwrap().is_empty());

    // The undo as journaled, read back after the files are gone from the checkout,
    // and without the journaled down scripts: the release's commit supplies them.
    let undo = Compensation::RevertMigrations {
        applied: AppliedSet {
            migrations: applied.migrations[1..].to_vec(),
            origin: None,
            ..applied.clone()
        },
    };
    let Compensation::RevertMigrations {
        applied: only_bookings,
    } = serde_json::from_str(&serde_json::to_string(&undo).unwrap()).unwrap()
    else {
        unreachable!()
    };
    std::fs::remove_dir_all(&dir).unwrap();
    m.revert(&only_bookings).await.unwrap();
    let applied_now: Vec<String> = m
        .status(Some(&r2))
        .await
        .unwrap()
        .applied
        .iter()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(applied_now, ["0001_users"]);
}

/// A tool whose working directory holds `marker` (the release's name): `up` sets
/// the revision to the marker, `down` goes back and logs which tree it ran in.
fn tool_migrator(tool_dir: &Path, state: &Path) -> CommandMigrator {
    let sh = |script: &str, args: &[&str]| {
        Cmd::new("sh")
            .args(["-c", script])
            .arg(state.to_string_lossy().into_owned())
            .args(args.iter().copied())
            .cwd(tool_dir)
    };
    CommandMigrator::new(
        Arc::new(LocalShell::new()),
        MigrationCommands {
            up: sh(r#"cat marker > "$0/current""#, &[]),
            current: sh(r#"cat "$0/current" 2>/dev/null; true"#, &[]),
            down_to: sh(
                r#"echo "$1" > "$0/current"; cat marker >> "$0/downs""#,
                &[REVISION_PLACEHOLDER],
            ),
            pending: None,
            base_revision: Some("base".into()),
        },
    )
    .from_release_commits()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn one_command_migrator_runs_the_tool_of_the_release_each_call_names() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    git(tmp.path(), &["init", "-q", "-b", "main", "repo"]);
    write(&root, "tool/marker", "v1\n");
    let v1 = commit(&root, "v1");
    write(&root, "tool/marker", "v2\n");
    let v2 = commit(&root, "v2");
    let r2 = release("r2", &v2);
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    git(&root, &["checkout", "-q", v1.as_str()]);
    let m = tool_migrator(&root.join("tool"), &state);

    let plan = m.plan(Some(&r2)).await.unwrap();
    let applied = m.apply(&plan).await.unwrap();
    assert_eq!(
        read(&state.join("current")).trim(),
        "v2",
        "ran v2's tree, not the checkout"
    );
    assert_eq!(applied.release.as_ref(), Some(&r2));
    assert_eq!(applied.revision_after.as_deref(), Some("v2"));

    m.revert(&applied).await.unwrap();
    assert_eq!(read(&state.join("current")).trim(), "base");
    assert_eq!(
        read(&state.join("downs")),
        "v2\n",
        "reverted with v2's tool"
    );

    // A set that names no release (and a call without one) runs in the checkout.
    std::fs::write(state.join("current"), "v2\n").unwrap();
    m.revert(&AppliedSet {
        release: None,
        ..applied.clone()
    })
    .await
    .unwrap();
    assert_eq!(read(&state.join("downs")), "v2\nv1\n");
}
