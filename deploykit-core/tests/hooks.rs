//! Hooks at each point of a run, against the twins: a failing `pre_deploy` refuses
//! the run before any change, a failing `post_migrate`/`post_activate` undoes it in
//! reverse, a failing `post_deploy` leaves the committed release with a warning, and
//! `on_rollback` never blocks an undo (a failed run's or `recover`'s).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use deploykit_core::testing::{HookScript, MemoryHooks, MemoryJournal};
use deploykit_core::*;

/// One hook at every point, all run by `twin`.
fn with_hooks(s: &Scenario, twin: &MemoryHooks) -> Pipeline {
    let list = HookPoint::ALL
        .into_iter()
        .map(|p| {
            Hook::new(p, HookPlace::Hosts, vec![format!("./{p}.sh")])
                .timeout(Duration::from_secs(5))
        })
        .collect();
    s.pipeline.clone().hooks(Hooks {
        list,
        runner: Arc::new(twin.clone()),
    })
}

fn points(twin: &MemoryHooks) -> Vec<HookPoint> {
    twin.calls().iter().map(|c| c.point).collect()
}

fn var(call: &deploykit_core::testing::HookCall, key: &str) -> String {
    call.vars
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{key} missing from {:?}", call.vars))
}

fn hook_records(journal: &MemoryJournal) -> Vec<(HookPoint, Option<i32>, Option<String>)> {
    journal
        .snapshot()
        .into_iter()
        .filter_map(|r| match r {
            Record::Hook {
                point,
                status,
                error,
                ..
            } => Some((point, status, error)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_clean_run_runs_each_forward_hook_once_in_order_with_its_variables() {
    let s = scenario();
    let twin = MemoryHooks::default();
    let journal = MemoryJournal::default();
    let report = with_hooks(&s, &twin)
        .run(&s.spec(), &journal)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert_eq!(
        points(&twin),
        vec![
            HookPoint::PreDeploy,
            HookPoint::PostMigrate,
            HookPoint::PostActivate,
            HookPoint::PostDeploy
        ]
    );
    let calls = twin.calls();
    for call in &calls {
        assert_eq!(var(call, "DEPLOYKIT_ENV"), "staging");
        assert_eq!(var(call, "DEPLOYKIT_RELEASE"), "v2");
        assert_eq!(var(call, "DEPLOYKIT_PREVIOUS"), "v1");
        assert_eq!(var(call, "DEPLOYKIT_HOOK"), call.point.to_string());
    }
    assert_eq!(var(&calls[0], "DEPLOYKIT_OUTCOME"), "");
    assert_eq!(var(&calls[3], "DEPLOYKIT_OUTCOME"), "succeeded");
    assert_eq!(
        hook_records(&journal),
        calls
            .iter()
            .map(|c| (c.point, Some(0), None))
            .collect::<Vec<_>>(),
        "each hook run is journaled with its exit status"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_pre_deploy_hook_refuses_the_run_before_any_change() {
    let s = scenario();
    let twin = MemoryHooks::default();
    twin.script(
        HookPoint::PreDeploy,
        HookScript::Exit(7, vec!["deploys are frozen".into()]),
    );
    let journal = MemoryJournal::default();
    let report = with_hooks(&s, &twin)
        .run(&s.spec(), &journal)
        .await
        .unwrap();
    assert_eq!(report.failed_phase, Some(Phase::Preflight), "{report:?}");
    assert_eq!(
        report.failure.as_ref().unwrap().kind(),
        ErrorKind::Refused,
        "nothing changed: a refusal (exit 5), not a failed run"
    );
    assert!(
        report.error.as_deref().unwrap().contains("pre_deploy"),
        "{report:?}"
    );
    assert_eq!(s.world.snapshot(), s.old, "nothing was done");
    assert!(
        report.undone.is_empty(),
        "nothing to undo: {:?}",
        report.undone
    );
    assert!(s.world.backups().is_empty(), "not even a backup");
    assert!(
        !journal
            .snapshot()
            .iter()
            .any(|r| matches!(r, Record::Intent { .. })),
        "no step started"
    );
    assert_eq!(
        points(&twin),
        vec![HookPoint::PreDeploy, HookPoint::OnRollback]
    );
    let shown = s.sink.events();
    assert!(
        shown.iter().any(|e| matches!(e,
            Event::StepOutput { phase: Phase::Preflight, line } if line.contains("deploys are frozen"))),
        "the hook's output is in the events: {shown:?}"
    );
    assert!(s.lock.holder().await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_failed_post_activate_hook_undoes_the_run_in_reverse() {
    let s = scenario();
    let twin = MemoryHooks::default();
    twin.script(HookPoint::PostActivate, HookScript::Exit(1, vec![]));
    let journal = MemoryJournal::default();
    let report = with_hooks(&s, &twin)
        .run(&s.spec(), &journal)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(report.failed_phase, Some(Phase::Activate));
    assert!(
        report.error.as_deref().unwrap().contains("post_activate"),
        "{report:?}"
    );
    assert_eq!(s.world.snapshot(), s.old);
    let undos: Vec<&str> = report.undone.iter().map(|u| u.undo.as_str()).collect();
    assert!(undos[0].starts_with("reactivate v1"), "{undos:?}");
    assert!(undos[1].starts_with("revert migrations"), "{undos:?}");
    assert!(
        undos[2].starts_with("discard staged release v2"),
        "{undos:?}"
    );
    let calls = twin.calls();
    let last = calls.last().unwrap();
    assert_eq!(last.point, HookPoint::OnRollback);
    assert_eq!(var(last, "DEPLOYKIT_OUTCOME"), "rolled_back");
    assert_eq!(
        hook_records(&journal)[2],
        (
            HookPoint::PostActivate,
            Some(1),
            Some("hook post_activate on twin exited 1".into())
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_post_migrate_hook_undoes_the_migrations_too() {
    let s = scenario();
    let twin = MemoryHooks::default();
    twin.script(HookPoint::PostMigrate, HookScript::Exit(2, vec![]));
    let report = with_hooks(&s, &twin)
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(report.failed_phase, Some(Phase::Migrate));
    assert_eq!(s.world.snapshot(), s.old);
    assert!(!points(&twin).contains(&HookPoint::PostActivate));
}

#[tokio::test(start_paused = true)]
async fn a_failed_post_deploy_hook_keeps_the_committed_release_with_a_warning() {
    let s = scenario();
    let twin = MemoryHooks::default();
    twin.script(HookPoint::PostDeploy, HookScript::Exit(3, vec![]));
    let report = with_hooks(&s, &twin)
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert_eq!(s.world.snapshot(), s.new_state());
    assert!(
        s.sink.events().iter().any(|e| matches!(e,
            Event::Warning { message } if message.contains("post_deploy") && message.contains("exited 3"))),
        "{:?}",
        s.sink.events()
    );
    assert!(!points(&twin).contains(&HookPoint::OnRollback));
}

#[tokio::test(start_paused = true)]
async fn an_on_rollback_hook_that_hangs_never_blocks_the_undo() {
    let s = scenario();
    s.world.mark_unhealthy("v2");
    let twin = MemoryHooks::default();
    twin.script(HookPoint::OnRollback, HookScript::Hang);
    let report = with_hooks(&s, &twin)
        .run(&s.spec(), &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(report.failed_phase, Some(Phase::Verify));
    assert_eq!(s.world.snapshot(), s.old, "the undo completed");
    assert!(
        s.sink.events().iter().any(|e| matches!(e,
            Event::Warning { message } if message.contains("on_rollback") && message.contains("timed out after 5 s"))),
        "{:?}",
        s.sink.events()
    );
    assert!(s.lock.holder().await.unwrap().is_none(), "lock released");
}

#[tokio::test(start_paused = true)]
async fn recover_runs_the_on_rollback_hook_after_it_finishes_an_undo() {
    let s = scenario();
    let twin = MemoryHooks::default();
    // The deploying process dies right after the post_activate hook ran (its
    // record is the last one written), before verify.
    let full = MemoryJournal::default();
    with_hooks(&scenario(), &MemoryHooks::default())
        .run(&s.spec(), &full)
        .await
        .unwrap();
    let k = 1 + full
        .snapshot()
        .iter()
        .position(|r| {
            matches!(
                r,
                Record::Hook {
                    point: HookPoint::PostActivate,
                    ..
                }
            )
        })
        .unwrap();
    let crashing = MemoryJournal::crashing_after(k);
    let report = with_hooks(&s, &MemoryHooks::default())
        .run(&s.spec(), &crashing)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Interrupted, "{report:?}");
    let journal = MemoryJournal::from_records(crashing.snapshot());
    let next = pipeline_for(&s.world, &s.lock, &s.sink, policy());
    let next = next.hooks(Hooks {
        list: vec![Hook::new(
            HookPoint::OnRollback,
            HookPlace::Local,
            vec!["./notify.sh".into()],
        )],
        runner: Arc::new(twin.clone()),
    });
    twin.script(HookPoint::OnRollback, HookScript::Exit(9, vec![]));
    let recovered = next.recover_with(&journal, true).await.unwrap();
    assert_eq!(recovered.outcome, Outcome::RolledBack, "{recovered:?}");
    assert_eq!(s.world.snapshot(), s.old);
    let calls = twin.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(var(&calls[0], "DEPLOYKIT_OUTCOME"), "rolled_back");
    assert_eq!(var(&calls[0], "DEPLOYKIT_RELEASE"), "v2");
    assert!(hook_records(&journal)
        .iter()
        .any(|(p, status, _)| *p == HookPoint::OnRollback && *status == Some(9)));
}
