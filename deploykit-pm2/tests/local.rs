//! The same target on the box itself: Pm2Target over core's LocalShell keeps the
//! Target contract, with real PM2 (run as the test's own user).

mod common;

use std::sync::Arc;

use common::app::{free_port, http_get, spec, AppRepo, Behaviour};
use deploykit_core::testing::conformance::target_contract;
use deploykit_core::{Cmd, LocalShell, Shell, Target};
use deploykit_pm2::{commands, Pm2Config, Pm2Target, Source};

/// This process's user: the local shell's commands run as it.
fn me() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn pm2_target_over_a_local_shell_keeps_the_target_contract() {
    let Some(pm2) = common::Pm2Rig::get() else {
        return;
    };
    let base = pm2.root.join("local");
    let mut repo = AppRepo::create(&base.join("src"), &me());
    let port = free_port();
    let config = Pm2Config::new(
        "local-contract",
        base.join("app"),
        Source::Git {
            repo: repo.dir.to_string_lossy().into_owned(),
        },
    )
    .build_step(Cmd::new("npm").args(["run", "build", "--silent"]))
    .env("PORT", port.to_string())
    .env("APP_NAME", "local-contract")
    .pm2_home(base.join("pm2home").to_string_lossy());
    let shell: Arc<dyn Shell> = Arc::new(LocalShell::new());
    let target = Pm2Target::new(shell.clone(), config.clone()).unwrap();
    let a = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let b = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::Good));
    target_contract(&target, &a, &b).await;
    let mut answer = None;
    for _ in 0..100 {
        answer = http_get(port, "/").await;
        if answer.as_ref().map(|(s, b)| (*s, b.trim())) == Some((200, "1.0.0")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = shell.run(&commands::kill_daemon(&config), None).await;
    let (status, body) = answer.expect("the app answers");
    assert_eq!((status, body.trim()), (200, "1.0.0"));
}

#[tokio::test]
async fn an_in_place_checkout_at_current_is_not_overwritten() {
    let Some(pm2) = common::Pm2Rig::get() else {
        return;
    };
    let base = pm2.root.join("local-in-place");
    let mut repo = AppRepo::create(&base.join("src"), &me());
    let config = Pm2Config::new(
        "local-in-place",
        base.join("app"),
        Source::Git {
            repo: repo.dir.to_string_lossy().into_owned(),
        },
    )
    // The ecosystem file names its app from APP_NAME; prepare checks the name.
    .env("APP_NAME", "local-in-place")
    .pm2_home(base.join("pm2home").to_string_lossy());
    // What the seeds leave behind: the app checked out in place at `current`.
    std::fs::create_dir_all(base.join("app/current")).unwrap();
    std::fs::write(base.join("app/current/server.js"), "// live\n").unwrap();
    let target = Pm2Target::new(Arc::new(LocalShell::new()), config).unwrap();
    let a = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    target.prepare(&a).await.unwrap();
    let err = target.activate(Some(&a.id)).await.unwrap_err().to_string();
    assert!(err.contains("activate.swap failed"), "{err}");
    assert!(err.contains("move it aside"), "{err}");
    assert!(
        base.join("app/current/server.js").exists(),
        "the live checkout is untouched"
    );
}
