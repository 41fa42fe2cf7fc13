//! The commands as data: argv, positional values, secrets kept out of argv.

use std::path::Path;

use deploykit_core::{Cmd, Commit, ReleaseId};

use super::*;
use crate::config::{Pm2Config, Source};
use crate::layout::Layout;

pub(super) fn id() -> ReleaseId {
    ReleaseId::parse("r1").unwrap()
}

pub(super) fn layout() -> Layout {
    Layout::new("/srv/my app").unwrap()
}

pub(super) fn config() -> Pm2Config {
    Pm2Config::new(
        "web",
        "/srv/my app",
        Source::Git {
            repo: "git@example.com:me/app.git".into(),
        },
    )
    .env("DATABASE_URL", "postgres://u:pw@db/app")
    .pm2_home("/home/d/.pm2-web")
}

fn argv(cmd: &Cmd) -> Vec<String> {
    std::iter::once(cmd.program.clone())
        .chain(cmd.args.iter().cloned())
        .collect()
}

/// The values a script gets (after `sh -c <script> sh`).
fn values(cmd: &Cmd) -> Vec<String> {
    assert_eq!(cmd.program, "sh");
    assert_eq!((cmd.args[0].as_str(), cmd.args[2].as_str()), ("-c", "sh"));
    cmd.args[3..].to_vec()
}

#[test]
fn values_travel_as_positional_arguments_never_inside_scripts() {
    let all = [
        prepare_begin(&layout(), &id()),
        git_cache(&layout(), "git@example.com:me/app.git"),
        git_checkout(&layout(), &Commit::parse("0123abcd").unwrap(), &id()),
        unpack_artifact(
            &layout(),
            &id(),
            &Commit::parse("0123abcd").unwrap(),
            "ab12",
        ),
        upload_chunk(&layout(), &id(), true),
        link_shared(&layout(), &id(), &[".env".into()], &["logs".into()]),
        seal_release(&config(), &layout(), &id()),
        switch_current(&layout(), &id()),
        list_releases(&layout()),
        lock_create(&layout()),
        lock_read(&layout()),
        lock_replace(&layout(), "t1", true),
        clocked_jlist(&config()),
        read_live(&config(), &layout()),
        write_adopted(&layout()),
    ];
    for c in &all {
        let script = &c.args[1];
        assert!(
            !script.contains("/srv"),
            "the script holds no values: {script}"
        );
        assert!(
            !script.contains("r1") && !script.contains("web"),
            "{script}"
        );
        assert!(!values(c).is_empty());
    }
    assert_eq!(
        values(&git_cache(&layout(), "git@example.com:me/app.git")),
        ["/srv/my app/repo", "git@example.com:me/app.git"]
    );
    assert_eq!(
        values(&git_checkout(
            &layout(),
            &Commit::parse("0123abcd").unwrap(),
            &id()
        )),
        ["/srv/my app/repo", "0123abcd", "/srv/my app/releases/r1"]
    );
    assert_eq!(
        values(&link_shared(
            &layout(),
            &id(),
            &[".env".into()],
            &["public/uploads".into(), "logs".into()]
        )),
        [
            "/srv/my app/shared",
            "/srv/my app/releases/r1",
            "file",
            ".env",
            "dir",
            "public/uploads",
            "dir",
            "logs"
        ]
    );
    assert_eq!(
        values(&prepare_begin(&layout(), &id())),
        [
            "/srv/my app/releases",
            "/srv/my app/shared",
            "/srv/my app/.deploykit",
            "/srv/my app/releases/r1/.deploykit-prepared",
            "/srv/my app/current"
        ]
    );
    assert!(prepare_begin(&layout(), &id()).args[1].contains(ALREADY_PREPARED));
    let seal = values(&seal_release(
        &config().with_app("worker"),
        &layout(),
        &id(),
    ));
    assert_eq!(
        &seal[..3],
        [
            "/srv/my app/releases/r1/ecosystem.config.js",
            "/srv/my app/releases/r1/.deploykit-prepared",
            "check"
        ]
    );
    assert_eq!(seal[4], "/srv/my app/releases/r1/.deploykit-apps");
    assert_eq!(&seal[5..], ["web", "worker"], "every app is checked");
    assert_eq!(
        values(&apps_in_release(&config(), &layout(), &id()))[1],
        "",
        "only looks, marks nothing"
    );
    let mut yaml = config();
    yaml.ecosystem = "ecosystem.yml".into();
    assert_eq!(values(&seal_release(&yaml, &layout(), &id()))[2], "skip");
    assert_eq!(
        values(&unpack_artifact(
            &layout(),
            &id(),
            &Commit::parse("0123abcd").unwrap(),
            "ab12"
        )),
        [
            "/srv/my app/.deploykit/upload-r1.tar.gz",
            "/srv/my app/releases/r1",
            "0123abcd",
            "ab12"
        ]
    );
    assert_eq!(
        values(&upload_chunk(&layout(), &id(), false)),
        ["/srv/my app/.deploykit/upload-r1.tar.gz", "more"]
    );
}

#[test]
fn repository_credentials_travel_as_secret_env_never_as_arguments() {
    let c = git_cache(&layout(), "https://deploy:t%40ken-42@git.example/app.git");
    assert_eq!(
        values(&c),
        ["/srv/my app/repo", "https://git.example/app.git"]
    );
    let (line, input) = c.to_remote(None);
    assert!(!line.contains("ken-42"), "{line}");
    assert!(String::from_utf8(input.unwrap())
        .unwrap()
        .contains("t@ken-42"));
    assert!(!c.to_string().contains("ken-42"));
    let plain = git_cache(&layout(), "git@example.com:me/app.git");
    assert!(plain.env.is_empty());
}

#[test]
fn the_switch_checks_the_release_then_renames_a_new_link_over_current() {
    let c = switch_current(&layout(), &id());
    assert_eq!(
        values(&c),
        [
            "/srv/my app/releases/r1/.deploykit-prepared",
            "releases/r1",
            "/srv/my app/.current-r1.tmp",
            "/srv/my app/current",
            "any"
        ]
    );
    assert_eq!(values(&switch_over_link(&layout(), &id()))[4], "linked");
    let script = &c.args[1];
    let (check, link, rename) = (
        script.find(r#"[ -f "$1" ] || exit 3"#).unwrap(),
        script.find(r#"ln -sfn "$2" "$3""#).unwrap(),
        script.find(r#"mv -T "$3" "$4""#).unwrap(),
    );
    assert!(check < link && link < rename, "{script}");
    assert!(script.starts_with("set -e\n"), "stops at the first failure");
    assert_eq!(CHECK_FAILED, 3);
}

#[test]
fn pm2_reload_passes_home_release_and_secret_env() {
    let c = start_or_reload(&config(), &layout(), &id());
    assert_eq!(
        values(&c),
        [
            "/srv/my app/.deploykit/pm2.config.js",
            PM2_WRAPPER,
            "env",
            "PM2_HOME=/home/d/.pm2-web",
            "DEPLOYKIT_APP_DIR=/srv/my app/current",
            "DEPLOYKIT_RELEASE=r1",
            "DEPLOYKIT_ECOSYSTEM=/srv/my app/current/ecosystem.config.js",
            "DEPLOYKIT_ENV_KEYS=DEPLOYKIT_APP_DIR,DEPLOYKIT_RELEASE,DATABASE_URL",
            "pm2",
            "startOrReload",
            "/srv/my app/.deploykit/pm2.config.js",
            "--update-env",
            "--only",
            "web"
        ]
    );
    assert!(
        c.args[1].contains("umask 077"),
        "the process file is owner-only"
    );
    // A YAML ecosystem file cannot be `require`d: PM2 reads it itself.
    let mut yaml = config();
    yaml.ecosystem = "ecosystem.yml".into();
    let y = start_or_reload(&yaml, &layout(), &id());
    assert_eq!(y.program, "env");
    assert_eq!(
        y.args[4..6],
        ["startOrReload", "/srv/my app/current/ecosystem.yml"]
    );
    assert_eq!(c.cwd.as_deref(), Some(Path::new("/srv/my app/current")));
    assert_eq!(c.env.len(), 1);
    let shown = c.to_string();
    assert!(!shown.contains("pw@"), "{shown}");
    assert!(shown.contains("DATABASE_URL=[redacted]"), "{shown}");
    assert_eq!(
        argv(&save(&config())),
        ["env", "PM2_HOME=/home/d/.pm2-web", "pm2", "save", "--force"]
    );
    let mut plain = config();
    plain.pm2_home = None;
    assert_eq!(argv(&jlist(&plain)), ["pm2", "jlist"]);
    assert_eq!(
        argv(&reload(&plain)),
        ["pm2", "reload", "web", "--update-env"]
    );
    assert_eq!(argv(&delete(&plain)), ["pm2", "delete", "web"]);
}

#[test]
fn the_probes_snapshot_reads_the_hosts_clock_then_runs_jlist_from_arguments() {
    let c = clocked_jlist(&config());
    assert_eq!(c.program, "sh");
    assert_eq!(
        &c.args[2..],
        [
            "sh",
            "/srv/my app/current",
            "env",
            "PM2_HOME=/home/d/.pm2-web",
            "pm2",
            "jlist"
        ]
    );
    let script = &c.args[1];
    assert!(script.contains(crate::jlist::CLOCK_LINE), "{script}");
    assert!(script.contains(crate::jlist::CURRENT_LINE), "{script}");
    assert!(
        script.find("date").unwrap() < script.find("exec").unwrap(),
        "the clock is read before the list: {script}"
    );
    assert!(c.env.is_empty(), "no secrets for a read");
}

#[test]
fn build_steps_run_in_the_release_with_the_app_env() {
    let step = Cmd::new("pnpm").args(["install", "--frozen-lockfile"]);
    let c = build_step(&config(), &layout(), &id(), &step);
    assert_eq!(argv(&c), ["pnpm", "install", "--frozen-lockfile"]);
    assert_eq!(c.cwd.as_deref(), Some(Path::new("/srv/my app/releases/r1")));
    assert_eq!(c.env[0].0, "DATABASE_URL");
    assert!(c
        .to_shell()
        .starts_with("cd '/srv/my app/releases/r1' && env "));
}

#[test]
fn release_bookkeeping_commands() {
    assert_eq!(
        argv(&remove_release(&layout(), &id())),
        ["rm", "-rf", "/srv/my app/releases/r1"]
    );
    assert_eq!(
        argv(&read_current(&layout())),
        ["readlink", "/srv/my app/current"]
    );
    assert_eq!(
        argv(&remove_current(&layout())),
        ["rm", "-f", "/srv/my app/current"]
    );
    assert_eq!(list_releases(&layout()).args[3], "/srv/my app/releases");
    assert_eq!(
        lock_create(&layout()).args[3],
        "/srv/my app/.deploykit/lock.json"
    );
    assert_eq!(
        argv(&lock_remove(&layout())),
        ["rm", "-f", "/srv/my app/.deploykit/lock.json"]
    );
}
