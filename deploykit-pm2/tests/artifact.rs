//! Releases shipped as one tarball built here (as CI would), to two hosts over
//! the rig's real sshd and PM2: each host checks the SHA-256 of what it received
//! before unpacking, a wrong digest fails prepare with the live release serving,
//! and an earlier artifact release is switched back to without a rebuild.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::app::{policy, spec, AppRepo, Behaviour, HostApp};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{Cmd, Commit, Fleet, Outcome, Phase, Pipeline, ShellExt, Target};
use deploykit_pm2::{Source, Tarball};

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds `commit` of the example app here, once: its tree plus `dist/` from
/// `node build.js`, as `<dir>/<name>.tar.gz` (the hosts build nothing).
async fn build_tarball(repo: &AppRepo, commit: &Commit, dir: &Path, name: &str) -> Tarball {
    let tree = dir.join(name);
    std::fs::create_dir_all(&tree).unwrap();
    let tar = dir.join(format!("{name}.tar"));
    run(Command::new("git")
        .args(["-c", "safe.directory=*", "-C"])
        .arg(&repo.dir)
        .args(["archive", "--format=tar", "-o"])
        .arg(&tar)
        .arg(commit.as_str()));
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&tree));
    run(Command::new("node").arg("build.js").current_dir(&tree));
    let tarball = dir.join(format!("{name}.tar.gz"));
    run(Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&tree)
        .arg("."));
    Tarball::open(&tarball).await.unwrap()
}

/// Two hosts of the sample app whose releases come from `tarball`.
fn ship(hosts: &mut [HostApp], tarball: Tarball) {
    for h in hosts.iter_mut() {
        h.config.source = Source::Artifact {
            tarball: Some(tarball.clone()),
        };
        // node_modules (none here) and dist/ ship inside the tarball.
        h.config.build.clear();
    }
}

fn pipeline(hosts: &[HostApp]) -> Pipeline {
    let targets = hosts
        .iter()
        .enumerate()
        .map(|(n, h)| {
            (
                format!("host{}", n + 1),
                Arc::new(h.target()) as Arc<dyn Target>,
            )
        })
        .collect();
    let mut p = Pipeline::new("artifact")
        .target(Arc::new(Fleet::new(targets)))
        .policy(policy());
    for h in hosts {
        p = p
            .probe(Arc::new(h.pm2_probe()))
            .probe(Arc::new(h.http_probe()));
    }
    p
}

async fn read(h: &HostApp, path: &Path) -> String {
    h.shell
        .check("t", &Cmd::new("cat").arg(path.to_string_lossy()))
        .await
        .unwrap()
        .stdout_text()
}

#[tokio::test]
async fn one_tarball_to_two_hosts_checked_there_and_rolled_back_to() {
    let Some((ssh, pm2)) = common::rigs() else {
        return;
    };
    let mut repo = AppRepo::create(&pm2.root.join("repos").join("artifact2"), &ssh.user);
    let mut hosts = Vec::new();
    for n in 0..2 {
        hosts.push(HostApp::new(&ssh, &pm2, n, &format!("artifact-h{n}"), &repo).await);
    }
    let built = tempfile::tempdir().unwrap();
    let v1 = spec(1, "1.0.0", &repo.commit("1.0.0", Behaviour::Good));
    let t1 = build_tarball(&repo, &v1.commit, built.path(), "v1").await;
    ship(&mut hosts, t1.clone());
    let report = pipeline(&hosts)
        .run(&v1, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let mut builds = Vec::new();
    for h in &hosts {
        assert_eq!(h.version().await.as_deref(), Some("1.0.0"));
        let layout = h.target().layout().clone();
        let release = layout.release(&v1.id);
        // The release records what it was made from; the upload is gone.
        assert_eq!(
            read(h, &release.join("ARTIFACT")).await.trim(),
            format!("sha256:{}", t1.sha256())
        );
        assert_eq!(
            read(h, &release.join("REVISION")).await.trim(),
            v1.commit.as_str()
        );
        assert!(!h.exists(&layout.upload(&v1.id)).await);
        builds.push(read(h, &release.join("dist/build.json")).await);
    }
    // Built once: both hosts run the very same build (its timestamp included).
    assert_eq!(builds[0], builds[1]);

    // The hosts are told to expect another digest than the bytes they receive:
    // each host's own `sha256sum` refuses them before anything is unpacked.
    let v2 = spec(2, "2.0.0", &repo.commit("2.0.0", Behaviour::Good));
    let t2 = build_tarball(&repo, &v2.commit, built.path(), "v2").await;
    let wrong = "0".repeat(64);
    ship(&mut hosts, Tarball::with_digest(t2.path(), &wrong).unwrap());
    let report = pipeline(&hosts)
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:#?}");
    assert_eq!(report.failed_phase, Some(Phase::Prepare));
    let error = report.error.clone().unwrap();
    assert!(error.contains("prepare.checksum"), "{error}");
    assert!(error.contains(&format!("dkdeploy@{}", ssh.host)), "{error}");
    assert!(error.contains(t2.sha256()), "the host's digest: {error}");
    assert!(error.contains(&wrong), "the expected digest: {error}");
    assert!(error.contains("was not unpacked"), "{error}");
    for h in &hosts {
        let t = h.target();
        assert_eq!(t.current().await.unwrap(), Some(v1.id.clone()));
        assert!(!t.list().await.unwrap().contains(&v2.id));
        assert!(!h.exists(&t.layout().upload(&v2.id)).await);
        assert_eq!(h.version().await.as_deref(), Some("1.0.0"));
    }

    // The right digest: v2 goes live everywhere.
    ship(&mut hosts, t2.clone());
    // v1's id with v2's bytes: the release on the host is not silently reused.
    let err = hosts[0]
        .target()
        .prepare(&v1)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is already on this host"), "{err}");
    assert!(err.contains(t1.sha256()), "{err}");
    let report = pipeline(&hosts)
        .run(&v2, &MemoryJournal::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    for h in &hosts {
        assert_eq!(h.wait_version("2.0.0").await.as_deref(), Some("2.0.0"));
    }

    // Rolling back to the v1 artifact is a switch: no tarball needed any more.
    for h in hosts.iter_mut() {
        h.config.source = Source::Artifact { tarball: None };
    }
    let targets: Vec<(String, Arc<dyn Target>)> = hosts
        .iter()
        .enumerate()
        .map(|(n, h)| {
            (
                format!("host{}", n + 1),
                Arc::new(h.target()) as Arc<dyn Target>,
            )
        })
        .collect();
    let fleet = Fleet::new(targets);
    fleet.activate(Some(&v1.id)).await.unwrap();
    for h in &hosts {
        assert_eq!(h.target().current().await.unwrap(), Some(v1.id.clone()));
        assert_eq!(h.wait_version("1.0.0").await.as_deref(), Some("1.0.0"));
    }
    // And a prepare without a tarball is refused, naming the host.
    let v3 = spec(3, "3.0.0", &repo.commit("3.0.0", Behaviour::Good));
    let err = hosts[0]
        .target()
        .prepare(&v3)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("this run has none"), "{err}");
    assert!(fleet.list().await.unwrap().contains(&v2.id));
    for h in &hosts {
        h.finish().await;
    }
}
