//! The contract every [`Target`] and [`Migrator`] must keep, as plain async
//! functions: the in-memory twins run them in unit tests, the adapters run them
//! against real servers. They panic with a message on the first broken promise.

use crate::migrate::Migrator;
use crate::release::ReleaseSpec;
use crate::target::Target;

/// Stage, switch, switch back, discard — and every step idempotent.
/// `a` and `b` must be new release ids on a target with nothing live.
pub async fn target_contract(target: &dyn Target, a: &ReleaseSpec, b: &ReleaseSpec) {
    assert_eq!(
        target.current().await.expect("current"),
        None,
        "a fresh target has nothing live"
    );
    target.prepare(a).await.expect("prepare a");
    assert_eq!(
        target.current().await.expect("current"),
        None,
        "prepare must not touch live traffic"
    );
    assert!(
        target.list().await.expect("list").contains(&a.id),
        "prepared release is listed"
    );
    target.activate(Some(&a.id)).await.expect("activate a");
    assert_eq!(target.current().await.expect("current"), Some(a.id.clone()));
    target
        .activate(Some(&a.id))
        .await
        .expect("activating the live release again is a no-op");

    target.prepare(b).await.expect("prepare b");
    assert_eq!(
        target.current().await.expect("current"),
        Some(a.id.clone()),
        "prepare b keeps a live"
    );
    target.activate(Some(&b.id)).await.expect("activate b");
    assert_eq!(target.current().await.expect("current"), Some(b.id.clone()));

    target
        .activate(Some(&a.id))
        .await
        .expect("switch back to a");
    assert_eq!(target.current().await.expect("current"), Some(a.id.clone()));
    target.discard(&b.id).await.expect("discard b");
    target
        .discard(&b.id)
        .await
        .expect("discarding twice is a no-op");
    assert!(
        !target.list().await.expect("list").contains(&b.id),
        "discarded release is gone"
    );
    assert!(
        target.discard(&a.id).await.is_err(),
        "the live release must never be discarded"
    );
    assert_eq!(target.current().await.expect("current"), Some(a.id.clone()));
}

/// Plan, apply, revert exactly what was applied, and revert again as a no-op.
/// The migrator must have at least one pending, reversible migration.
pub async fn migrator_contract(migrator: &dyn Migrator) {
    let before = migrator.status(None).await.expect("status");
    let plan = migrator.plan(None).await.expect("plan");
    assert!(!plan.is_empty(), "the contract needs a pending migration");
    let applied = migrator.apply(&plan).await.expect("apply");
    assert_eq!(
        applied.migrations,
        plan.as_applied().migrations,
        "apply applies the whole plan in order"
    );
    let after = migrator.status(None).await.expect("status");
    assert!(after.pending.is_empty(), "nothing pending after apply");
    assert!(
        migrator.plan(None).await.expect("plan").is_empty(),
        "a second plan is empty"
    );
    migrator.revert(&applied).await.expect("revert");
    assert_eq!(
        migrator.status(None).await.expect("status").applied,
        before.applied,
        "revert restores the applied set"
    );
    migrator
        .revert(&applied)
        .await
        .expect("reverting twice is a no-op");
    assert_eq!(
        migrator.status(None).await.expect("status").applied,
        before.applied
    );
}
