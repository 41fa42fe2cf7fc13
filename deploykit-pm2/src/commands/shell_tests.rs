//! The scripts run on a real shell (a temp directory and a real git repository).

use deploykit_core::Commit;

use super::tests::{config, id};
use super::*;
use crate::layout::Layout;

#[tokio::test]
async fn the_scripts_work_on_a_real_shell() {
    use deploykit_core::{LocalShell, Shell, ShellExt};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("my app");
    let layout = Layout::new(&root).unwrap();
    let sh = LocalShell::new();
    let marker = layout.prepared_marker(&id());

    // A fresh host: layout created, not prepared, no `current` yet.
    let out = sh.check("t", &prepare_begin(&layout, &id())).await.unwrap();
    assert_eq!(out.stdout_text(), "staging\n");
    assert!(layout.shared().is_dir() && layout.state().is_dir());

    // A real repository: an unknown commit is the check failing, a known one
    // replaces leftovers with exactly its tree.
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(ok.status.success(), "git {args:?}");
        String::from_utf8_lossy(&ok.stdout).trim().to_string()
    };
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let w = work.to_str().unwrap();
    std::fs::write(
        work.join("ecosystem.config.js"),
        "module.exports = { apps: [{ name: 'web', script: 's.js' }] };\n",
    )
    .unwrap();
    git(&["-C", w, "init", "-q"]);
    git(&["-C", w, "add", "-A"]);
    git(&["-C", w, "commit", "-q", "-m", "one"]);
    let hash = git(&["-C", w, "rev-parse", "HEAD"]);
    sh.check("t", &git_cache(&layout, w)).await.unwrap();
    let missing = Commit::parse("0123456789abcdef0123456789abcdef01234567").unwrap();
    let out = sh
        .run(&git_checkout(&layout, &missing, &id()), None)
        .await
        .unwrap();
    assert_eq!(out.status, CHECK_FAILED);
    std::fs::create_dir_all(layout.release(&id()).join("leftover")).unwrap();
    let commit = Commit::parse(&hash).unwrap();
    sh.check("t", &git_checkout(&layout, &commit, &id()))
        .await
        .unwrap();
    let release = layout.release(&id());
    assert!(!release.join("leftover").exists(), "leftovers are replaced");
    assert!(!release.join(".deploykit-export.tar").exists());
    assert_eq!(
        std::fs::read_to_string(release.join("REVISION")).unwrap(),
        format!("{hash}\n")
    );

    let out = sh.check("t", &list_releases(&layout)).await.unwrap();
    assert_eq!(out.stdout_text(), "r1\n");

    // A missing shared file is a clear failure; a missing dir is created.
    let out = sh
        .run(&link_shared(&layout, &id(), &[".env".into()], &[]), None)
        .await
        .unwrap();
    assert_eq!(out.status, CHECK_FAILED);
    assert!(out.tail(5).contains("does not exist"), "{}", out.tail(5));
    std::fs::write(layout.shared().join(".env"), "A=1\n").unwrap();
    sh.check(
        "t",
        &link_shared(
            &layout,
            &id(),
            &[".env".into()],
            &["public/uploads".into(), "logs".into()],
        ),
    )
    .await
    .unwrap();
    assert!(layout.shared().join("public/uploads").is_dir());
    for rel in [".env", "public/uploads", "logs"] {
        let link = release.join(rel);
        assert!(link.is_symlink(), "{rel}");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            layout.shared().join(rel)
        );
    }

    // Not prepared: the switch refuses and changes nothing.
    let out = sh.run(&switch_current(&layout, &id()), None).await.unwrap();
    assert_eq!(out.status, CHECK_FAILED);
    assert!(!layout.current().exists());

    // Without its ecosystem file a release is not sealed.
    let mut other = config();
    other.ecosystem = "missing.config.js".into();
    let out = sh
        .run(&seal_release(&other, &layout, &id()), None)
        .await
        .unwrap();
    assert_eq!(out.status, CHECK_FAILED);
    assert!(!marker.exists());
    // Nor when an app of the config is not in that file (where Node can tell).
    if sh
        .run(&Cmd::new("node").arg("--version"), None)
        .await
        .unwrap()
        .success()
    {
        let out = sh
            .run(
                &seal_release(&config().with_app("worker"), &layout, &id()),
                None,
            )
            .await
            .unwrap();
        assert_eq!(out.status, APPS_MISSING, "{}", out.tail(5));
        assert_eq!(out.stdout_text(), "worker\n");
        assert!(!marker.exists());
        let out = sh
            .run(&apps_in_release(&config(), &layout, &id()), None)
            .await
            .unwrap();
        assert!(out.success(), "{}", out.tail(5));
        assert!(!marker.exists(), "looking marks nothing");
    }
    sh.check("t", &seal_release(&config(), &layout, &id()))
        .await
        .unwrap();
    assert!(marker.exists());
    // The release runs the apps it was prepared with, whatever its file has.
    assert_eq!(
        std::fs::read_to_string(layout.apps_record(&id())).unwrap(),
        "web\n"
    );
    let out = sh
        .run(
            &apps_in_release(&config().with_app("w.2"), &layout, &id()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.status, APPS_MISSING);
    assert_eq!(out.stdout_text(), "w.2\n", "matched whole and literally");
    let out = sh.check("t", &prepare_begin(&layout, &id())).await.unwrap();
    assert_eq!(out.stdout_text(), "prepared\n");

    // Twice, as an undo or a retry would: same result.
    for _ in 0..2 {
        sh.check("t", &switch_current(&layout, &id()))
            .await
            .unwrap();
        let out = sh.check("t", &read_current(&layout)).await.unwrap();
        assert_eq!(Layout::parse_link_target(&out.stdout_text()), Some(id()));
    }
    assert!(!layout.next_current(&id()).exists());
    // `current` named in prepare_begin's output when the release is not complete.
    std::fs::remove_file(&marker).unwrap();
    let out = sh.check("t", &prepare_begin(&layout, &id())).await.unwrap();
    assert_eq!(out.stdout_text(), "staging\nreleases/r1\n");

    // A real directory at `current` (an in-place deploy): the switch fails and
    // leaves it alone.
    std::fs::write(&marker, "").unwrap();
    std::fs::remove_file(layout.current()).unwrap();
    std::fs::create_dir_all(layout.current().join("app")).unwrap();
    let out = sh.run(&switch_current(&layout, &id()), None).await.unwrap();
    assert!(!out.success() && out.status != CHECK_FAILED, "{out:?}");
    assert!(layout.current().join("app").is_dir());

    // The snapshot command on a real shell, with `printf` standing in for pm2.
    let mut fake = config();
    fake.pm2_home = None;
    fake.pm2 = "printf".into();
    let mut c = clocked_jlist(&fake);
    c.args.truncate(5); // `printf jlist` would print `jlist`; print a list instead
    c.args.push("[]".into());
    let out = sh.check("t", &c).await.unwrap();
    let snap = crate::jlist::parse_snapshot(&out.stdout_text()).unwrap();
    assert_eq!(snap.live.as_deref(), Some(""), "no `current` link there");
    let clock = snap.clock_ms.expect("the host's clock is printed");
    assert!(
        clock > 1_600_000_000_000,
        "milliseconds since the epoch: {clock}"
    );
    assert!(snap.processes.is_empty());
}
