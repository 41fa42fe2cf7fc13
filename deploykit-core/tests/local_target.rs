//! [`LocalTarget`] is a library part (not the CLI's): an embedder deploys to this
//! machine with it, and it keeps the same Target contract as every backend.

use std::process::Command;

use deploykit_core::testing::conformance::target_contract;
use deploykit_core::{Commit, LocalTarget, ReleaseId, ReleaseSpec, Target};

fn git(repo: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn commit(repo: &std::path::Path, text: &str) -> Commit {
    std::fs::write(repo.join("app.txt"), text).unwrap();
    git(repo, &["add", "app.txt"]);
    git(repo, &["commit", "-q", "-m", text]);
    Commit::parse(git(repo, &["rev-parse", "HEAD"])).unwrap()
}

#[tokio::test]
async fn a_local_target_keeps_the_target_contract() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    let spec = |id: &str, commit: Commit| ReleaseSpec {
        id: ReleaseId::parse(id).unwrap(),
        commit,
        branch: None,
    };
    let a = spec("a", commit(&repo, "one"));
    let b = spec("b", commit(&repo, "two"));
    let target = LocalTarget::new(
        dir.path().join("srv"),
        repo,
        vec![vec!["test".into(), "-f".into(), "app.txt".into()]],
        vec!["sleep".into(), "30".into()],
        0,
    );
    target_contract(&target, &a, &b).await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("srv/current/app.txt")).unwrap(),
        "one",
        "the live directory holds the commit of the live release"
    );
    target.stop().await.unwrap();
    let _: &dyn Target = &target;
}
