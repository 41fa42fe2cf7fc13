//! Several PM2 apps per release (a web app and its worker from one ecosystem
//! file), over the rig's real sshd and PM2: they switch together, are verified
//! together and roll back together, and an app missing from the ecosystem file
//! fails the prepare before anything live is touched.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::app::{policy, spec, AppRepo, Behaviour, HostApp};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::HealthPolicy;
use deploykit_core::{Outcome, Phase, Pipeline, ReleaseId, Shell, ShellExt, Target};
use deploykit_pm2::{commands, Pm2Probe};

const WEB: &str = "apps-web";
const WORKER: &str = "apps-worker";

/// Both apps: the sample web app in cluster mode, and a worker that listens on no
/// port (fork mode), which dies right after start when `.worker-dies` exists.
const ECOSYSTEM: &str = r#"const dir = process.env.DEPLOYKIT_APP_DIR || __dirname;
module.exports = {
  apps: [
    { name: 'apps-web', script: 'server.js', cwd: dir, exec_mode: 'cluster', instances: 2,
      min_uptime: 2000, max_restarts: 5, restart_delay: 200, kill_timeout: 4000, listen_timeout: 8000 },
    { name: 'apps-worker', script: 'worker.js', cwd: dir, exec_mode: 'fork', instances: 1,
      min_uptime: 2000, max_restarts: 3, restart_delay: 200, kill_timeout: 2000 },
  ],
};
"#;

/// Both apps in cluster mode: the worker (no port) gets a canary too.
const ECOSYSTEM_CLUSTER_WORKER: &str = r#"const dir = process.env.DEPLOYKIT_APP_DIR || __dirname;
module.exports = {
  apps: [
    { name: 'apps-web', script: 'server.js', cwd: dir, exec_mode: 'cluster', instances: 2,
      min_uptime: 2000, max_restarts: 5, restart_delay: 200, kill_timeout: 4000, listen_timeout: 8000 },
    { name: 'apps-worker', script: 'worker.js', cwd: dir, exec_mode: 'cluster', instances: 1,
      min_uptime: 2000, max_restarts: 3, restart_delay: 200, kill_timeout: 2000, listen_timeout: 500 },
  ],
};
"#;

/// The same file without the worker.
const ECOSYSTEM_WEB_ONLY: &str = r#"module.exports = { apps: [
  { name: 'apps-web', script: 'server.js', cwd: process.env.DEPLOYKIT_APP_DIR || __dirname, exec_mode: 'cluster', instances: 2 },
] };
"#;

const WORKER_JS: &str = r#"const fs = require('fs');
const path = require('path');
console.log(`worker of release ${process.env.DEPLOYKIT_RELEASE} up`);
if (fs.existsSync(path.join(__dirname, '.worker-dies'))) {
  setTimeout(() => { console.error('worker dying right after start, as requested'); process.exit(1); }, 300);
}
setInterval(() => {}, 1000);
process.on('SIGINT', () => process.exit(0));
"#;

/// Commits `version` with both apps; the worker dies at start when `worker_dies`.
fn commit(
    repo: &mut AppRepo,
    version: &str,
    ecosystem: &str,
    worker_dies: bool,
) -> deploykit_core::Commit {
    std::fs::write(repo.dir.join("ecosystem.config.js"), ecosystem).unwrap();
    std::fs::write(repo.dir.join("worker.js"), WORKER_JS).unwrap();
    let dies = repo.dir.join(".worker-dies");
    if worker_dies {
        std::fs::write(&dies, "on\n").unwrap();
    } else if dies.exists() {
        std::fs::remove_file(&dies).unwrap();
    }
    repo.commit(version, Behaviour::Good)
}

fn pipeline(app: &HostApp) -> Pipeline {
    Pipeline::new("test")
        .target(Arc::new(app.target()))
        .probe(Arc::new(
            Pm2Probe::new(app.shell.clone(), app.config.clone())
                .instances(2)
                .settle(Duration::from_secs(1)),
        ))
        .probe(Arc::new(app.http_probe()))
        .policy(policy().health(HealthPolicy {
            deadline: Duration::from_secs(60),
            attempts: 3,
            interval: Duration::from_millis(500),
            accept_degraded: false,
        }))
}

/// (app name, cwd, release) of every PM2 process on the app's host, sorted.
async fn processes(app: &HostApp) -> Vec<(String, String, String)> {
    let out = app
        .shell
        .check("test", &commands::jlist(&app.config))
        .await
        .unwrap();
    let mut all: Vec<_> = deploykit_pm2::jlist::parse_snapshot(&out.stdout_text())
        .unwrap()
        .processes
        .into_iter()
        .map(|p| {
            (
                p.name.clone(),
                p.pm2_env.pm_cwd.clone().unwrap_or_default(),
                p.release_var().unwrap_or_default().to_string(),
            )
        })
        .collect();
    all.sort();
    all
}

/// Every process of both apps runs `release` from `current`, and nothing else runs.
async fn assert_all_on(app: &HostApp, release: &ReleaseId) {
    let current = app.target().layout().current().display().to_string();
    let want: Vec<(String, String, String)> = [WEB, WEB, WORKER]
        .iter()
        .map(|n| (n.to_string(), current.clone(), release.to_string()))
        .collect();
    assert_eq!(processes(app).await, want);
    assert_eq!(app.target().current().await.unwrap(), Some(release.clone()));
}

#[tokio::test]
async fn web_and_worker_switch_are_verified_and_roll_back_together() {
    let Some((ssh, pm2)) = common::rigs() else {
        return;
    };
    let mut repo = AppRepo::create(&pm2.root.join("repos").join("apps"), &ssh.user);
    let mut app = HostApp::new(&ssh, &pm2, 0, "apps", &repo).await;
    app.config.app = WEB.into();
    // The canary is not what this test is about (see the next one): a short one.
    app.config.reload_gate = Some(Duration::from_secs(1));
    let web_only = app.config.clone();
    app.config = web_only.clone().with_app(WORKER);

    // v1 is deployed with the web app alone (its ecosystem file has the worker,
    // unused).
    let v1 = spec(1, "1.0.0", &commit(&mut repo, "1.0.0", ECOSYSTEM, false));
    let both = std::mem::replace(&mut app.config, web_only);
    let report = pipeline(&app)
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    app.config = both;
    let current = app.target().layout().current().display().to_string();
    let web_on = |r: &ReleaseId| vec![(WEB.to_string(), current.clone(), r.to_string()); 2];
    assert_eq!(processes(&app).await, web_on(&v1.id));

    // v2 adds the worker, which dies right after start: verify fails, the web
    // app goes back to v1 and the worker, new in v2, is deleted.
    let v2 = spec(2, "2.0.0", &commit(&mut repo, "2.0.0", ECOSYSTEM, true));
    let report = pipeline(&app)
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.failed_phase, Some(Phase::Verify), "{report:#?}");
    assert_eq!(processes(&app).await, web_on(&v1.id), "no worker left");
    assert_eq!(app.version().await.as_deref(), Some("1.0.0"));

    // A good v3 switches both (the worker starts).
    let v3 = spec(3, "3.0.0", &commit(&mut repo, "3.0.0", ECOSYSTEM, false));
    let report = pipeline(&app)
        .run(&v3, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    assert_all_on(&app, &v3.id).await;
    assert_eq!(app.version().await.as_deref(), Some("3.0.0"));

    // The worker of v4 dies right after start: verify fails, and the undo puts
    // both apps back on v3, the web app too although its reload to v4 had
    // succeeded.
    let v4 = spec(4, "4.0.0", &commit(&mut repo, "4.0.0", ECOSYSTEM, true));
    let report = pipeline(&app)
        .run(&v4, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.failed_phase, Some(Phase::Verify), "{report:#?}");
    let error = report.error.clone().unwrap();
    assert!(error.contains(WORKER), "the failing app is named: {error}");
    assert_all_on(&app, &v3.id).await;
    assert_eq!(app.version().await.as_deref(), Some("3.0.0"));

    // A release whose ecosystem file lost the worker fails its prepare, naming
    // the app, the file and the host; v3 is untouched.
    let v5 = spec(
        5,
        "5.0.0",
        &commit(&mut repo, "5.0.0", ECOSYSTEM_WEB_ONLY, false),
    );
    let err = app.target().prepare(&v5).await.unwrap_err().to_string();
    assert!(err.contains(WORKER), "{err}");
    assert!(err.contains("ecosystem.config.js"), "{err}");
    assert!(err.contains(app.shell.location()), "{err}");
    assert!(!app.exists(&app.target().layout().release(&v5.id)).await);
    assert_all_on(&app, &v3.id).await;
    app.finish().await;
}

/// (pm_id, start time) of each web worker: changes when it is reloaded.
async fn web_identities(app: &HostApp) -> Vec<(u32, Option<u64>)> {
    let out = app
        .shell
        .check("test", &commands::jlist(&app.config))
        .await
        .unwrap();
    let mut ids: Vec<_> = deploykit_pm2::jlist::parse_snapshot(&out.stdout_text())
        .unwrap()
        .processes
        .into_iter()
        .filter(|p| p.name == WEB)
        .map(|p| (p.pm_id, p.pm2_env.pm_uptime))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn every_canary_runs_before_any_live_worker_is_reloaded() {
    let Some((ssh, pm2)) = common::rigs() else {
        return;
    };
    let mut repo = AppRepo::create(&pm2.root.join("repos").join("apps-gate"), &ssh.user);
    let mut app = HostApp::new(&ssh, &pm2, 0, "apps-gate", &repo).await;
    app.config.app = WEB.into();
    app.config = app.config.clone().with_app(WORKER);

    let v1 = spec(
        1,
        "1.0.0",
        &commit(&mut repo, "1.0.0", ECOSYSTEM_CLUSTER_WORKER, false),
    );
    let report = pipeline(&app)
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    assert_all_on(&app, &v1.id).await;
    let web_before = web_identities(&app).await;

    // The web app's canary stays up, the worker's dies: refused in activate, and
    // the web app's live workers were never reloaded either.
    let v2 = spec(
        2,
        "2.0.0",
        &commit(&mut repo, "2.0.0", ECOSYSTEM_CLUSTER_WORKER, true),
    );
    let report = pipeline(&app)
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.failed_phase, Some(Phase::Activate), "{report:#?}");
    let error = report.error.clone().unwrap();
    assert!(error.contains("apps-worker-deploykit-canary"), "{error}");
    assert_all_on(&app, &v1.id).await;
    assert_eq!(
        web_identities(&app).await,
        web_before,
        "web was never reloaded"
    );
    assert_eq!(app.version().await.as_deref(), Some("1.0.0"));
    app.finish().await;
}
