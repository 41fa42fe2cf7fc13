//! Whole deploys of the sample Node app through the core pipeline, over the rig's
//! real sshd, with real PM2 in cluster mode: what users see when things go right
//! and when they go wrong.

mod common;

use std::sync::Arc;

use common::app::{policy, spec, AppRepo, Behaviour, HostApp};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{
    DeployLock, HealthProbe, HealthStatus, LockHolder, Outcome, Phase, Pipeline, Target, TargetExt,
};
use deploykit_pm2::Pm2HostLock;

/// The pipeline of the sample app on one host: PM2 target, PM2 probe, HTTP probe.
fn pipeline(app: &HostApp) -> Pipeline {
    Pipeline::new("test")
        .target(Arc::new(app.target()))
        .probe(Arc::new(app.pm2_probe()))
        .probe(Arc::new(app.http_probe()))
        .policy(policy())
}

async fn setup(name: &str) -> Option<(AppRepo, HostApp)> {
    let (ssh, pm2) = common::rigs()?;
    let repo = AppRepo::create(&pm2.root.join("repos").join(name), &ssh.user);
    let app = HostApp::new(&ssh, &pm2, 0, name, &repo).await;
    Some((repo, app))
}

#[tokio::test]
async fn first_deploy_then_upgrade() {
    let Some((mut repo, app)) = setup("first-and-upgrade").await else {
        return;
    };
    let target = app.target();
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let report = pipeline(&app)
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    assert_eq!(report.previous, None);
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
    assert_eq!(app.version().await.as_deref(), Some("1.0.0"));
    let (status, body) = app.get("/api/health").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(v1.id.as_str()),
        "the app sees its release id: {body}"
    );
    assert_eq!(app.get("/api/health/db").await.unwrap().0, 200);

    // Layout: release dir with the exact commit, shared paths linked in.
    let layout = target.layout();
    let release = layout.release(&v1.id);
    let shell = app.shell.clone();
    use deploykit_core::{Cmd, ShellExt};
    let revision = shell
        .check(
            "t",
            &Cmd::new("cat").arg(release.join("REVISION").to_string_lossy()),
        )
        .await
        .unwrap()
        .stdout_text();
    assert_eq!(revision.trim(), v1.commit.as_str());
    let env_link = shell
        .check(
            "t",
            &Cmd::new("readlink").arg(release.join(".env").to_string_lossy()),
        )
        .await
        .unwrap()
        .stdout_text();
    assert_eq!(
        env_link.trim(),
        layout.shared().join(".env").to_string_lossy()
    );
    assert!(app.exists(&layout.shared().join("logs")).await);

    // The host's deploy lock: a deploy from elsewhere holds it, this one is refused.
    let lock = Arc::new(Pm2HostLock::new(app.shell.clone(), layout.clone()));
    let other = LockHolder::this_process("test", "run-from-another-runner", "someone-else");
    lock.acquire(&other).await.unwrap();
    let v2 = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::Good));
    let err = pipeline(&app)
        .lock(lock.clone())
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("someone-else"), "{err}");
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
    lock.release("run-from-another-runner").await.unwrap();

    let report = pipeline(&app)
        .lock(lock.clone())
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    assert_eq!(report.previous, Some(v1.id.clone()));
    assert_eq!(lock.holder().await.unwrap(), None, "released after the run");
    assert_eq!(target.current().await.unwrap(), Some(v2.id.clone()));
    assert_eq!(app.wait_version("2.0.0").await.as_deref(), Some("2.0.0"));
    // The previous release stays on disk, built: the rollback path.
    assert_eq!(
        target.list().await.unwrap(),
        vec![v1.id.clone(), v2.id.clone()]
    );
    assert!(
        app.exists(&layout.release(&v1.id).join("dist/build.json"))
            .await
    );
    app.finish().await;
}

#[tokio::test]
async fn a_failed_build_leaves_the_live_release_serving() {
    let Some((mut repo, app)) = setup("build-failure").await else {
        return;
    };
    let target = app.target();
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let report = pipeline(&app)
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");

    let v2 = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::FailBuild));
    let report = pipeline(&app)
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.failed_phase, Some(Phase::Prepare));
    let error = report.error.clone().unwrap();
    assert!(
        error.contains("prepare.build failed on dkdeploy@"),
        "{error}"
    );
    assert!(
        error.contains("npm run build"),
        "the command is named: {error}"
    );
    assert!(
        error.contains("simulated compile error"),
        "the output tail is shown: {error}"
    );
    assert!(error.contains("was removed"), "{error}");
    assert!(error.contains("config: DATABASE_URL="), "{error}");
    assert!(
        !error.contains("db-pa55word"),
        "secrets are redacted: {error}"
    );
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
    assert!(
        !app.exists(&target.layout().release(&v2.id)).await,
        "the failed release is gone"
    );
    assert_eq!(app.version().await.as_deref(), Some("1.0.0"));
    assert_eq!(app.get("/api/health").await.unwrap().0, 200);
    app.finish().await;
}

#[tokio::test]
async fn an_app_that_crashes_on_start_is_rolled_back() {
    let Some((mut repo, app)) = setup("crash-on-start").await else {
        return;
    };
    let target = app.target();
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let report = pipeline(&app)
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");

    let v2 = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::CrashOnStart));
    let report = pipeline(&app)
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    // `pm2 reload` would "succeed"; the reload gate's canary shows the crash loop
    // before any live worker is reloaded.
    assert_eq!(report.failed_phase, Some(Phase::Activate), "{report:#?}");
    let error = report.error.clone().unwrap();
    assert!(error.contains("canary worker of r002-2.0.0"), "{error}");
    assert!(error.contains("on dkdeploy@"), "names the host: {error}");
    assert!(
        error.contains("not online") || error.contains("restarting"),
        "{error}"
    );
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
    assert_eq!(app.wait_version("1.0.0").await.as_deref(), Some("1.0.0"));
    assert!(!target.list().await.unwrap().contains(&v2.id));
    app.finish().await;
}

#[tokio::test]
async fn a_worker_dying_a_second_after_start_is_caught_and_rolled_back() {
    let Some((mut repo, app)) = setup("crash-soon").await else {
        return;
    };
    let target = app.target();
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let report = pipeline(&app)
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");

    // Its workers listen, then die a second later, again after every restart:
    // never up for the window. The reload gate's canary shows it before any live
    // worker is reloaded, so the run fails in activate, every time (without the
    // gate, whether `pm2 reload` itself failed or verify caught it depended on
    // how fast the loaded machine started workers).
    let v2 = spec(
        2,
        "2.0.0",
        &repo.commit("2.0.0", Behaviour::CrashSoonAfterStart),
    );
    let report = pipeline(&app)
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.failed_phase, Some(Phase::Activate), "{report:#?}");
    let error = report.error.clone().unwrap();
    assert!(error.contains("canary worker of r002-2.0.0"), "{error}");
    assert!(error.contains("dkdeploy@"), "names the host: {error}");
    assert!(
        error.contains("not online") || error.contains("restarting"),
        "{error}"
    );
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
    assert_eq!(app.wait_version("1.0.0").await.as_deref(), Some("1.0.0"));

    // Back on v1: healthy once its workers have been up for the window; from then
    // on one snapshot shows it, with no second look and no waiting.
    let settled = app.pm2_probe().check().await;
    assert_eq!(settled.status, HealthStatus::Healthy, "{settled:?}");
    let phase = Arc::new(common::recording::CurrentPhase::default());
    let shell = Arc::new(common::recording::RecordingShell::new(
        app.shell.clone(),
        &app.config.pm2,
        phase,
    ));
    let healthy = app.pm2_probe_on(shell.clone()).check().await;
    assert_eq!(healthy.status, HealthStatus::Healthy, "{healthy:?}");
    assert!(healthy.detail.contains("none restarted"), "{healthy:?}");
    let ran = shell.take();
    assert_eq!(ran.len(), 1, "one snapshot: {ran:?}");
    assert!(ran[0].pm2, "{ran:?}");
    app.finish().await;
}

#[tokio::test]
async fn a_failed_health_check_is_rolled_back() {
    let Some((mut repo, app)) = setup("health-failure").await else {
        return;
    };
    let target = app.target();
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let report = pipeline(&app)
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");

    let v2 = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::Unhealthy));
    let report = pipeline(&app)
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.failed_phase, Some(Phase::Verify));
    let error = report.error.clone().unwrap();
    assert!(error.contains("status 503"), "{error}");
    let undone: Vec<String> = report.undone.iter().map(|u| u.undo.clone()).collect();
    assert!(
        undone.iter().any(|u| u.contains("reactivate r001-1.0.0")),
        "{undone:?}"
    );
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
    assert_eq!(app.wait_version("1.0.0").await.as_deref(), Some("1.0.0"));
    let (status, body) = app.get("/api/health").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(v1.id.as_str()), "{body}");
    app.finish().await;
}

#[tokio::test]
async fn prune_keeps_the_newest_releases_and_never_current_or_previous() {
    let Some((mut repo, app)) = setup("prune").await else {
        return;
    };
    let target = app.target();
    let mut policy = policy();
    policy.keep_releases = 2;
    let mut ids = Vec::new();
    for n in 1..=4 {
        let version = format!("{n}.0.0");
        let s = spec(n, &version, &repo.commit(&version, Behaviour::Good));
        let report = Pipeline::new("test")
            .target(Arc::new(app.target()))
            .probe(Arc::new(app.http_probe()))
            .policy(policy.clone())
            .run(&s, &MemoryJournal::default())
            .await
            .unwrap();
        assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
        ids.push(s.id);
    }
    assert_eq!(target.list().await.unwrap(), ids[2..].to_vec());
    // Directly: keep 1, but the protected previous release survives too.
    let removed = target.prune(1, &[ids[2].clone()]).await.unwrap();
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(target.list().await.unwrap(), ids[2..].to_vec());
    let removed = target.prune(1, &[]).await.unwrap();
    assert_eq!(removed, vec![ids[2].clone()]);
    assert_eq!(target.list().await.unwrap(), vec![ids[3].clone()]);
    assert_eq!(app.version().await.as_deref(), Some("4.0.0"));
    app.finish().await;
}

#[tokio::test]
async fn a_missing_ecosystem_file_fails_prepare_and_switches_nothing() {
    let Some((mut repo, mut app)) = setup("no-ecosystem").await else {
        return;
    };
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let report = pipeline(&app)
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");

    // A config naming an ecosystem file the release does not have: caught before the
    // switch, so the undo never has to reload the old release with the bad setting.
    app.config.ecosystem = "missing.config.js".into();
    let target = app.target();
    let v2 = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::Good));
    let report = pipeline(&app)
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.failed_phase, Some(Phase::Prepare));
    let error = report.error.clone().unwrap();
    assert!(
        error.contains("prepare.ecosystem failed on dkdeploy@"),
        "{error}"
    );
    assert!(error.contains("missing.config.js"), "{error}");
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
    assert_eq!(app.version().await.as_deref(), Some("1.0.0"));
    app.finish().await;
}
