//! The core Target contract, kept by Pm2Target over real SSH and PM2.

mod common;

use common::app::{spec, AppRepo, Behaviour, HostApp};
use deploykit_core::testing::conformance::target_contract;

#[tokio::test]
async fn pm2_target_over_ssh_keeps_the_target_contract() {
    let Some((ssh, pm2)) = common::rigs() else {
        return;
    };
    let name = "contract";
    let mut repo = AppRepo::create(&pm2.root.join("repos").join(name), &ssh.user);
    let app = HostApp::new(&ssh, &pm2, 0, name, &repo).await;
    let a = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let b = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::Good));
    target_contract(&app.target(), &a, &b).await;
    // The contract ends with `a` live again: PM2 serves it.
    assert_eq!(app.wait_version("1.0.0").await.as_deref(), Some("1.0.0"));
    app.finish().await;
}
