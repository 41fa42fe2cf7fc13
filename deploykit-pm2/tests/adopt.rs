//! An app that already ran under PM2 before deploykit's first deploy, started by
//! hand from a plain directory (`pm2 start server.js --name web -i 2`), over the
//! rig's real sshd and PM2: deploykit refuses it unless told to adopt it, adopts it
//! so an undo restarts it exactly as it was, never deletes it, and a deploy only
//! passes when every worker runs the new release.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::app::{policy, spec, AppRepo, Behaviour, HostApp};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{Cmd, HealthProbe, HealthStatus, Outcome, Pipeline, ShellExt, Target};
use deploykit_pm2::{commands, Pm2Target};

fn pipeline(app: &HostApp, target: Pm2Target) -> Pipeline {
    Pipeline::new("test")
        .target(Arc::new(target))
        .probe(Arc::new(app.pm2_probe()))
        .probe(Arc::new(app.http_probe()))
        .policy(policy())
}

async fn setup(name: &str) -> Option<(AppRepo, HostApp, PathBuf)> {
    let (ssh, pm2) = common::rigs()?;
    // A clean slate when the same rig runs the test again: no daemon, no dirs.
    let base = pm2.root.join(name);
    let _ = std::process::Command::new("su")
        .args([&ssh.user, "-c"])
        .arg(format!(
            "PM2_HOME={}/pm2home pm2 kill >/dev/null 2>&1",
            base.display()
        ))
        .status();
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(pm2.root.join("repos").join(name));
    let repo = AppRepo::create(&pm2.root.join("repos").join(name), &ssh.user);
    let app = HostApp::new(&ssh, &pm2, 0, name, &repo).await;
    let hand = pm2.root.join(name).join("hand");
    Some((repo, app, hand))
}

/// What a team switching from hand scripts has: the app cloned into a plain
/// directory (outside `deploy_to`), built, and started by hand with `instances`
/// cluster workers and a variable of its own.
async fn start_by_hand(app: &HostApp, repo: &AppRepo, hand: &std::path::Path, instances: u32) {
    let home = app.config.pm2_home.clone().unwrap();
    let script = r#"set -e
rm -rf "$2"
git -c safe.directory='*' clone -q "$1" "$2"
cd "$2"
npm run build --silent >/dev/null
env PM2_HOME="$3" PORT="$4" HAND_MARK=started-by-hand pm2 start server.js --name "$5" -i "$6" >/dev/null"#;
    app.shell
        .check(
            "start by hand",
            &Cmd::new("sh").arg("-c").arg(script).arg("sh").args([
                format!("file://{}", repo.dir.display()),
                hand.to_string_lossy().into_owned(),
                home,
                app.port.to_string(),
                app.config.app.clone(),
                instances.to_string(),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(app.wait_version("hand").await.as_deref(), Some("hand"));
}

/// The app's processes as `pm2 jlist` shows them, raw (to read env and paths).
async fn processes(app: &HostApp) -> Vec<serde_json::Value> {
    let out = app
        .shell
        .check("jlist", &commands::jlist(&app.config))
        .await
        .unwrap()
        .stdout_text();
    let start = out.find('[').unwrap();
    let all: Vec<serde_json::Value> = serde_json::from_str(&out[start..]).unwrap();
    all.into_iter()
        .filter(|p| p["name"] == app.config.app.as_str())
        .collect()
}

/// Every process of the app runs the hand-started code, as it was started.
async fn assert_runs_by_hand(app: &HostApp, hand: &std::path::Path, instances: usize) {
    let procs = processes(app).await;
    assert_eq!(procs.len(), instances, "{} instance(s)", instances);
    for p in &procs {
        let env = &p["pm2_env"];
        assert_eq!(env["status"], "online");
        assert_eq!(env["pm_cwd"], hand.to_string_lossy().as_ref());
        assert_eq!(
            env["pm_exec_path"],
            hand.join("server.js").to_string_lossy().as_ref()
        );
        assert_eq!(env["exec_mode"], "cluster_mode");
        assert_eq!(env["env"]["HAND_MARK"], "started-by-hand");
    }
    assert_eq!(app.wait_version("hand").await.as_deref(), Some("hand"));
}

#[tokio::test]
async fn a_hand_started_app_is_refused_before_anything_changes() {
    let Some((mut repo, app, hand)) = setup("adopt-refused").await else {
        return;
    };
    repo.commit("hand", Behaviour::Good);
    start_by_hand(&app, &repo, &hand, 2).await;
    let before: Vec<serde_json::Value> = processes(&app).await;

    // A good release: without adoption, `startOrReload` reloaded the hand-started
    // workers in their own directory and the run "succeeded" on the old code.
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let err = pipeline(&app, app.target())
        .run(&v1, &MemoryJournal::default())
        .await
        .expect_err("refused before anything changes")
        .to_string();
    assert!(err.contains("did not start"), "{err}");
    assert!(err.contains(hand.to_string_lossy().as_ref()), "{err}");
    assert!(
        err.contains("adopt_running = true"),
        "says how to adopt: {err}"
    );
    let layout = app.target().layout().clone();
    assert!(!app.exists(&layout.current()).await);
    assert!(!app.exists(&layout.release(&v1.id)).await);
    assert_runs_by_hand(&app, &hand, 2).await;
    let pids = |ps: &[serde_json::Value]| ps.iter().map(|p| p["pid"].clone()).collect::<Vec<_>>();
    assert_eq!(
        pids(&processes(&app).await),
        pids(&before),
        "not even reloaded"
    );
    app.finish().await;
}

#[tokio::test]
async fn an_undo_never_deletes_a_process_deploykit_did_not_start() {
    let Some((mut repo, app, hand)) = setup("adopt-no-delete").await else {
        return;
    };
    repo.commit("hand", Behaviour::Good);
    start_by_hand(&app, &repo, &hand, 2).await;
    // The undo of a first deploy ("take offline") ran `pm2 delete <app>`.
    let err = app.target().activate(None).await.unwrap_err().to_string();
    assert!(err.contains("did not start"), "{err}");
    assert_runs_by_hand(&app, &hand, 2).await;
    app.finish().await;
}

#[tokio::test]
async fn an_adopted_app_comes_back_exactly_when_the_first_deploy_fails() {
    let Some((mut repo, app, hand)) = setup("adopt-undo").await else {
        return;
    };
    repo.commit("hand", Behaviour::Good);
    // One worker by hand, two in the ecosystem file: the instance count differs.
    start_by_hand(&app, &repo, &hand, 1).await;
    let target =
        || Pm2Target::new(app.shell.clone(), app.config.clone().adopt_running(true)).unwrap();
    let adopted = target().current().await.unwrap().expect("adopted as live");

    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Unhealthy));
    let report = pipeline(&app, target())
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.previous, Some(adopted.clone()), "{report:#?}");
    assert_runs_by_hand(&app, &hand, 1).await;
    assert!(!app.exists(&target().layout().current()).await);
    assert_eq!(target().current().await.unwrap(), Some(adopted.clone()));

    // A good first release takes over: every worker runs it, from `deploy_to`.
    let v2 = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::Good));
    let report = pipeline(&app, target())
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    assert_eq!(target().current().await.unwrap(), Some(v2.id.clone()));
    assert_eq!(app.wait_version("2.0.0").await.as_deref(), Some("2.0.0"));
    let root = app.config.deploy_to.to_string_lossy().into_owned();
    let procs = processes(&app).await;
    assert_eq!(procs.len(), 2);
    for p in &procs {
        let cwd = p["pm2_env"]["pm_cwd"].as_str().unwrap();
        assert!(cwd.starts_with(&root), "{cwd}");
    }
    // The record of the adopted app is owner-only: it holds the app's env.
    let mode = app
        .shell
        .check(
            "t",
            &Cmd::new("stat").args(["-c", "%a"]).arg(
                target()
                    .layout()
                    .state()
                    .join("adopted.json")
                    .to_string_lossy(),
            ),
        )
        .await
        .unwrap()
        .stdout_text();
    assert_eq!(mode.trim(), "600");

    // And going back to it (as a later undo or `rollback --to adopted` would)
    // restores it.
    assert!(target().list().await.unwrap().contains(&adopted));
    target().activate(Some(&adopted)).await.unwrap();
    assert_runs_by_hand(&app, &hand, 1).await;
    app.finish().await;
}

#[tokio::test]
async fn the_probe_fails_while_a_worker_runs_another_release_than_current() {
    let Some((mut repo, app, _)) = setup("probe-release").await else {
        return;
    };
    let target = app.target();
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let report = pipeline(&app, app.target())
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let healthy = app.pm2_probe().check().await;
    assert_eq!(healthy.status, HealthStatus::Healthy, "{healthy:?}");

    // `current` moves to v2 but no worker was reloaded: all online, all old code.
    let v2 = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::Good));
    target.prepare(&v2).await.unwrap();
    app.shell
        .check("t", &commands::switch_current(target.layout(), &v2.id))
        .await
        .unwrap();
    let report = app.pm2_probe().check().await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert!(report.detail.contains(v1.id.as_str()), "{report:?}");
    assert!(report.detail.contains(v2.id.as_str()), "{report:?}");
    app.finish().await;
}

#[tokio::test]
async fn a_current_that_is_a_real_directory_is_refused_before_anything_changes() {
    let Some((mut repo, app, _)) = setup("adopt-inplace").await else {
        return;
    };
    // An earlier in-place deploy: `current` is the app's directory itself.
    let layout = app.target().layout().clone();
    app.shell
        .check(
            "t",
            &Cmd::new("mkdir")
                .arg("-p")
                .arg(layout.current().join("dist").to_string_lossy()),
        )
        .await
        .unwrap();
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let err = pipeline(&app, app.target())
        .run(&v1, &MemoryJournal::default())
        .await
        .expect_err("refused before anything changes")
        .to_string();
    assert!(err.contains("real directory"), "{err}");
    assert!(err.contains("adopt_running = true"), "{err}");
    assert!(!app.exists(&layout.release(&v1.id)).await);
    assert!(app.exists(&layout.current().join("dist")).await);
    app.finish().await;
}
