//! The SQL migrator reading the deployed commit (Supabase and sqlx dialects) against
//! the rig's PostgreSQL: an uncommitted file is not planned, the journaled undo
//! reverts after the checkout lost the files, and an older commit does not see a
//! newer release's migrations as pending.

mod pg;

use std::path::Path;
use std::process::Command;

use deploykit_core::sql_migrations::{HistoryDialect, SqlMigrator};
use deploykit_core::{AppliedSet, Commit, CommitTree, Compensation, Migrator};
use pg::TestDb;

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

/// v1: one migration; v2: a second one. Returns (v1, v2).
fn repo(repo: &Path) -> (Commit, Commit) {
    git(repo, &["init", "-q", "-b", "main"]);
    write(
        repo,
        "supabase/migrations/20250101000000_users.sql",
        "create table users (id bigserial primary key);\n",
    );
    write(
        repo,
        "supabase/migrations/20250101000000_users.down.sql",
        "drop table users;\n",
    );
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "v1"]);
    let v1 = Commit::parse(git(repo, &["rev-parse", "HEAD"])).unwrap();
    write(
        repo,
        "supabase/migrations/20250102000000_bookings.sql",
        "create table bookings (id bigserial primary key);\n",
    );
    write(
        repo,
        "supabase/migrations/20250102000000_bookings.down.sql",
        "drop table bookings;\n",
    );
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "v2"]);
    let v2 = Commit::parse(git(repo, &["rev-parse", "HEAD"])).unwrap();
    (v1, v2)
}

#[tokio::test]
async fn deployed_commit_decides_plan_apply_and_revert_in_supabase_and_sqlx() {
    for dialect in [HistoryDialect::Supabase, HistoryDialect::Sqlx] {
        let Some(db) = TestDb::create("commit").await else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let (v1, v2) = repo(root);
        let dir = root.join("supabase/migrations");
        // Uncommitted in the working tree: never part of a release.
        write(
            root,
            "supabase/migrations/20250199000000_wt_only.sql",
            "create table wt_only (id int);\n",
        );
        let at = |commit: &Commit| {
            SqlMigrator::postgres(&db.url, &dir, dialect)
                .unwrap()
                .from_commit(CommitTree::open(&dir, commit.clone()).unwrap())
                .unwrap()
        };

        let m = at(&v2);
        let plan = m.plan(None).await.unwrap();
        let planned: Vec<String> = plan.migrations.iter().map(|p| p.id.to_string()).collect();
        assert_eq!(
            planned,
            ["20250101000000_users", "20250102000000_bookings"],
            "{dialect:?}"
        );
        m.apply(&plan).await.unwrap();
        assert_eq!(
            db.scalar_i64("select count(*) from pg_tables where tablename = 'wt_only'")
                .await,
            0,
            "{dialect:?}: the uncommitted file was applied"
        );

        // The undo as the journal keeps it (serialised and read back).
        let undo = Compensation::RevertMigrations {
            applied: plan.as_applied(),
        };
        let journaled: Compensation =
            serde_json::from_str(&serde_json::to_string(&undo).unwrap()).unwrap();
        let Compensation::RevertMigrations { applied } = journaled else {
            unreachable!()
        };

        // An older commit: v2's migration is applied but not v1's, so it is not
        // pending (nor is the uncommitted file).
        assert!(at(&v1).plan(None).await.unwrap().is_empty(), "{dialect:?}");

        // The checkout moves on and loses the files; the undo still reverts exactly
        // what was applied, with v2's down scripts.
        git(root, &["checkout", "-q", v1.as_str()]);
        std::fs::remove_dir_all(&dir).unwrap();
        let only_bookings = AppliedSet {
            migrations: applied.migrations[1..].to_vec(),
            ..applied.clone()
        };
        at(&v1).revert(&only_bookings).await.unwrap();
        assert_eq!(
            db.scalar_i64("select count(*) from pg_tables where tablename = 'bookings'")
                .await,
            0,
            "{dialect:?}"
        );
        assert_eq!(
            db.scalar_i64("select count(*) from pg_tables where tablename = 'users'")
                .await,
            1,
            "{dialect:?}: only the set given is reverted"
        );
    }
}
