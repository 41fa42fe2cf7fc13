//! An ecosystem file whose app has an `env:` block: on `startOrReload
//! --update-env` PM2 7 gives a reloaded worker that block and drops the deploying
//! shell's variables, so without care every worker keeps the `DEPLOYKIT_RELEASE` it
//! first started with and the PM2 probe rolls back every later deploy.

mod common;

use std::sync::Arc;

use common::app::{policy, spec, AppRepo, Behaviour, HostApp};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{Outcome, Pipeline, Target};

#[tokio::test]
async fn an_env_block_in_the_ecosystem_file_does_not_pin_the_first_release() {
    let Some((ssh, pm2)) = common::rigs() else {
        return;
    };
    let mut repo = AppRepo::create(&pm2.root.join("repos").join("env-block"), &ssh.user);
    let ecosystem = repo.dir.join("ecosystem.config.js");
    let text = std::fs::read_to_string(&ecosystem).unwrap();
    let with_block = text.replacen(
        "min_uptime: 2000,",
        "env: { FOO: 'x', PORT: '1' },\n      min_uptime: 2000,",
        1,
    );
    assert_ne!(
        text, with_block,
        "the example's ecosystem file changed shape"
    );
    std::fs::write(&ecosystem, with_block).unwrap();
    let app = HostApp::new(&ssh, &pm2, 0, "env-block", &repo).await;
    let pipeline = || {
        Pipeline::new("test")
            .target(Arc::new(app.target()))
            .probe(Arc::new(app.pm2_probe()))
            .probe(Arc::new(app.http_probe()))
            .policy(policy())
    };
    for (n, version) in [(1, "1.0.0"), (2, "2.0.0"), (3, "3.0.0")] {
        let s = spec(n, version, &repo.commit(version, Behaviour::Good));
        let report = pipeline().run(&s, &MemoryJournal::default()).await.unwrap();
        assert_eq!(report.outcome, Outcome::Succeeded, "{version}: {report:#?}");
        assert_eq!(app.target().current().await.unwrap(), Some(s.id.clone()));
        // deploykit's env (the release, the app's PORT) wins over the file's block.
        let (status, body) = app.get("/api/health").await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains(s.id.as_str()),
            "the app sees {}: {body}",
            s.id
        );
    }
    app.finish().await;
}
