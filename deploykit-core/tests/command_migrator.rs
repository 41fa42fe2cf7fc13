//! CommandMigrator driving a real (tiny) migration tool process through LocalShell.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deploykit_core::command_migrator::{CommandMigrator, MigrationCommands, REVISION_PLACEHOLDER};
use deploykit_core::testing::conformance::migrator_contract;
use deploykit_core::{Cmd, LocalShell, Migrator};

fn tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/revtool.sh")
}

fn migrator(state: &Path, base: Option<&str>) -> CommandMigrator {
    let cmd = |args: &[&str]| {
        Cmd::new(tool().to_string_lossy().into_owned())
            .arg(state.to_string_lossy().into_owned())
            .args(args.iter().copied())
    };
    CommandMigrator::new(
        Arc::new(LocalShell::new()),
        MigrationCommands {
            up: cmd(&["up"]),
            current: cmd(&["current"]),
            down_to: cmd(&["down", REVISION_PLACEHOLDER]),
            pending: Some(cmd(&["pending"])),
            base_revision: base.map(String::from),
        },
    )
}

fn state(revisions: &str, current: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("revisions"), revisions).unwrap();
    if let Some(c) = current {
        std::fs::write(dir.path().join("current"), format!("{c}\n")).unwrap();
    }
    dir
}

fn current(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("current"))
        .ok()
        .map(|s| s.trim().to_string())
}

#[tokio::test]
async fn command_migrator_keeps_the_contract() {
    let dir = state("r1\nr2\nr3\n", Some("r1"));
    migrator_contract(&migrator(dir.path(), None)).await;
    assert_eq!(current(dir.path()).as_deref(), Some("r1"));

    let fresh = state("r1\nr2\n", None);
    migrator_contract(&migrator(fresh.path(), Some("base"))).await;
    assert_eq!(current(fresh.path()), None);
}

#[tokio::test]
async fn revisions_before_and_after_are_recorded_and_revert_goes_back_exactly() {
    let dir = state("r1\nr2\nr3\n", Some("r1"));
    let m = migrator(dir.path(), None);
    let plan = m.plan(None).await.unwrap();
    assert_eq!(plan.from_revision.as_deref(), Some("r1"));
    let ids: Vec<_> = plan
        .migrations
        .iter()
        .map(|m| m.id.version.clone())
        .collect();
    assert_eq!(ids, ["r2", "r3"]);
    let applied = m.apply(&plan).await.unwrap();
    assert_eq!(applied.revision_before.as_deref(), Some("r1"));
    assert_eq!(applied.revision_after.as_deref(), Some("r3"));
    m.revert(&applied).await.unwrap();
    assert_eq!(current(dir.path()).as_deref(), Some("r1"));
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(log, "up r2\nup r3\ndown to r1\n");
    m.revert(&applied).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        log,
        "a second revert runs nothing"
    );
}

#[tokio::test]
async fn a_partly_applied_run_is_undone_from_the_plan() {
    let dir = state("r1\nr2\nr3\nr4\n", Some("r1"));
    std::fs::write(dir.path().join("fail_at"), "r4").unwrap();
    let m = migrator(dir.path(), None);
    let plan = m.plan(None).await.unwrap();
    let err = m.apply(&plan).await.unwrap_err().to_string();
    assert!(err.contains("relation already exists"), "{err}");
    assert!(err.contains("revision r1"), "{err}");
    assert_eq!(
        current(dir.path()).as_deref(),
        Some("r3"),
        "the tool got part way"
    );
    // What the pipeline does after a failed apply: revert the plan's set.
    m.revert(&plan.as_applied()).await.unwrap();
    assert_eq!(current(dir.path()).as_deref(), Some("r1"));
}

#[tokio::test]
async fn no_previous_revision_and_no_base_is_refused() {
    let dir = state("r1\n", None);
    let m = migrator(dir.path(), None);
    let applied = m.apply(&m.plan(None).await.unwrap()).await.unwrap();
    let err = m.revert(&applied).await.unwrap_err().to_string();
    assert!(err.contains("base revision"), "{err}");
    assert_eq!(
        current(dir.path()).as_deref(),
        Some("r1"),
        "nothing was run"
    );
}
