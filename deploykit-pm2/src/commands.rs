//! Every command the PM2 target runs on a host, as data.
//!
//! Each function is pure: it returns a [`Cmd`] (argv) that the tests below compare
//! as data and that only [`Cmd::to_shell`] ever quotes. Where a pipeline or a
//! condition is needed, the script is a fixed string and every value is passed as a
//! positional argument (`sh -c '<script>' sh "$1" "$2"…`), so no user value is ever
//! spliced into shell text.

use std::path::Path;

use deploykit_core::{Cmd, Commit, ReleaseId};

use crate::config::Pm2Config;
use crate::layout::Layout;

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `sh -c <script> sh <args…>`: a fixed script with values as `$1`, `$2`, ….
fn script<I, S>(text: &str, args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Cmd::new("sh").arg("-c").arg(text).arg("sh").args(args)
}

/// Creates `releases/`, `shared/` and `.deploykit/`.
pub fn make_layout(layout: &Layout) -> Cmd {
    Cmd::new("mkdir").arg("-p").args([
        path(&layout.releases()),
        path(&layout.shared()),
        path(&layout.state()),
    ])
}

/// Clones the repository bare into the cache on first use, fetches it afterwards
/// (branches and tags, pruned), so each prepare moves only new objects.
pub fn git_cache(layout: &Layout, repo: &str) -> Cmd {
    script(
        r#"set -e
if [ -d "$1/objects" ]; then
  git -C "$1" remote set-url origin "$2"
  git -C "$1" fetch --prune --tags origin '+refs/heads/*:refs/heads/*'
else
  rm -rf "$1"
  git clone --bare --quiet "$2" "$1"
fi"#,
        [path(&layout.repo()), repo.to_string()],
    )
}

/// Resolves `commit` in the cache to a full hash; fails if it is not there.
pub fn git_resolve(layout: &Layout, commit: &Commit) -> Cmd {
    Cmd::new("git")
        .arg("-C")
        .arg(path(&layout.repo()))
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{}^{{commit}}", commit.as_str()))
}

/// Exports exactly `commit` (a resolved hash) into the new release directory and
/// records it in `REVISION`. Through a file rather than a pipe, so a failing
/// `git archive` cannot be hidden by a succeeding `tar`.
pub fn git_export(layout: &Layout, commit: &str, release: &ReleaseId) -> Cmd {
    script(
        r#"set -e
mkdir -p "$3"
git -C "$1" archive --format=tar -o "$3/.deploykit-export.tar" "$2"
tar -xf "$3/.deploykit-export.tar" -C "$3"
rm -f "$3/.deploykit-export.tar"
printf '%s\n' "$2" > "$3/REVISION""#,
        [
            path(&layout.repo()),
            commit.to_string(),
            path(&layout.release(release)),
        ],
    )
}

/// Unpacks a gzipped tarball fed on stdin into the new release directory.
pub fn unpack_artifact(layout: &Layout, release: &ReleaseId) -> Cmd {
    script(
        r#"set -e
mkdir -p "$1"
tar -xzf - -C "$1""#,
        [path(&layout.release(release))],
    )
}

/// Links `shared/<rel>` into the release at `<rel>`, replacing what the code shipped
/// there. A linked directory is created in `shared/` when missing; a linked file
/// must already exist (it usually holds secrets deploykit never writes).
pub fn link_shared(layout: &Layout, release: &ReleaseId, rel: &str, is_dir: bool) -> Cmd {
    script(
        r#"set -e
if [ "$3" = dir ]; then
  mkdir -p "$1"
elif [ ! -e "$1" ]; then
  echo "shared file $1 does not exist; create it on the host first" >&2
  exit 3
fi
mkdir -p "$(dirname "$2")"
rm -rf "$2"
ln -s "$1" "$2""#,
        [
            path(&layout.shared().join(rel)),
            path(&layout.release(release).join(rel)),
            if is_dir { "dir" } else { "file" }.to_string(),
        ],
    )
}

/// One configured install/build command, run in the release with the app's env.
pub fn build_step(config: &Pm2Config, layout: &Layout, release: &ReleaseId, step: &Cmd) -> Cmd {
    let mut cmd = step.clone().cwd(layout.release(release));
    for (k, v) in &config.env {
        cmd = cmd.env(k.clone(), v.expose());
    }
    cmd
}

/// Marks the release complete: only marked releases can be activated.
pub fn mark_prepared(layout: &Layout, release: &ReleaseId) -> Cmd {
    Cmd::new("touch").arg(path(&layout.prepared_marker(release)))
}

/// Succeeds only if the release holds the ecosystem file PM2 will start it from:
/// checked before the release is marked prepared, so a wrong `ecosystem` setting
/// fails the prepare (nothing switched) instead of the activation and its undo.
pub fn has_ecosystem(config: &Pm2Config, layout: &Layout, release: &ReleaseId) -> Cmd {
    Cmd::new("test")
        .arg("-f")
        .arg(path(&layout.release(release).join(&config.ecosystem)))
}

/// Succeeds only if the release was completely prepared.
pub fn is_prepared(layout: &Layout, release: &ReleaseId) -> Cmd {
    Cmd::new("test")
        .arg("-f")
        .arg(path(&layout.prepared_marker(release)))
}

/// First half of the atomic swap: a new link next to `current`.
pub fn link_next(layout: &Layout, release: &ReleaseId) -> Cmd {
    Cmd::new("ln")
        .arg("-sfn")
        .arg(Layout::link_target(release))
        .arg(path(&layout.next_current(release)))
}

/// Second half: `rename(2)` the new link over `current`, so every reader sees
/// either the old or the new release, never a missing link.
pub fn swap_current(layout: &Layout, release: &ReleaseId) -> Cmd {
    Cmd::new("mv")
        .arg("-T")
        .arg(path(&layout.next_current(release)))
        .arg(path(&layout.current()))
}

/// Prints where `current` points (fails when there is no link).
pub fn read_current(layout: &Layout) -> Cmd {
    Cmd::new("readlink").arg(path(&layout.current()))
}

/// Removes `current` (taking a first deploy back offline).
pub fn remove_current(layout: &Layout) -> Cmd {
    Cmd::new("rm").arg("-f").arg(path(&layout.current()))
}

/// Names the release directories, one per line (nothing if there are none yet).
pub fn list_releases(layout: &Layout) -> Cmd {
    script(
        r#"[ -d "$1" ] || exit 0
find "$1" -mindepth 1 -maxdepth 1 -type d -printf '%f\n'"#,
        [path(&layout.releases())],
    )
}

/// Deletes a release directory.
pub fn remove_release(layout: &Layout, release: &ReleaseId) -> Cmd {
    Cmd::new("rm")
        .arg("-rf")
        .arg(path(&layout.release(release)))
}

/// Creates the host's deploy lock with the holder's JSON from stdin, failing if it
/// exists (`set -C`: the shell opens the file with `O_EXCL`).
pub fn lock_create(layout: &Layout) -> Cmd {
    script(
        r#"mkdir -p "$(dirname "$1")" && set -C && cat > "$1""#,
        [path(&layout.lock())],
    )
}

/// Prints the lock's JSON, or nothing when the host is not locked.
pub fn lock_read(layout: &Layout) -> Cmd {
    script(
        r#"[ -f "$1" ] || exit 0
cat "$1""#,
        [path(&layout.lock())],
    )
}

/// Removes the lock file.
pub fn lock_remove(layout: &Layout) -> Cmd {
    Cmd::new("rm").arg("-f").arg(path(&layout.lock()))
}

/// `pm2 …` with `PM2_HOME` when configured. Non-secret variables travel as `env`
/// arguments so they stay readable in logs; the app's env (secrets) as `Cmd::env`.
fn pm2(config: &Pm2Config, extra_env: &[(&str, String)]) -> Cmd {
    let mut vars: Vec<String> = Vec::new();
    if let Some(home) = &config.pm2_home {
        vars.push(format!("PM2_HOME={home}"));
    }
    vars.extend(extra_env.iter().map(|(k, v)| format!("{k}={v}")));
    if vars.is_empty() {
        Cmd::new(config.pm2.clone())
    } else {
        Cmd::new("env").args(vars).arg(config.pm2.clone())
    }
}

/// Starts the app from the ecosystem file of `current` if it is not running, or
/// reloads it (cluster mode: worker by worker, zero downtime) with the new env.
///
/// The app sees `DEPLOYKIT_APP_DIR` (the `current` path, the stable `cwd` for the
/// ecosystem file) and `DEPLOYKIT_RELEASE`.
pub fn start_or_reload(config: &Pm2Config, layout: &Layout, release: &ReleaseId) -> Cmd {
    let current = path(&layout.current());
    let mut cmd = pm2(
        config,
        &[
            ("DEPLOYKIT_APP_DIR", current.clone()),
            ("DEPLOYKIT_RELEASE", release.to_string()),
        ],
    )
    .arg("startOrReload")
    .arg(path(&layout.current().join(&config.ecosystem)))
    .arg("--update-env")
    .arg("--only")
    .arg(config.app.clone())
    .cwd(current);
    for (k, v) in &config.env {
        cmd = cmd.env(k.clone(), v.expose());
    }
    cmd
}

/// Reloads the running app by name (keeps its ecosystem settings).
pub fn reload(config: &Pm2Config) -> Cmd {
    pm2(config, &[])
        .arg("reload")
        .arg(config.app.clone())
        .arg("--update-env")
}

/// Stops and forgets the app (the undo of a first deploy).
pub fn delete(config: &Pm2Config) -> Cmd {
    pm2(config, &[]).arg("delete").arg(config.app.clone())
}

/// Saves the process list so a host reboot resurrects what is live now.
pub fn save(config: &Pm2Config) -> Cmd {
    pm2(config, &[]).arg("save").arg("--force")
}

/// The process list as JSON.
pub fn jlist(config: &Pm2Config) -> Cmd {
    pm2(config, &[]).arg("jlist")
}

/// `pm2 jlist` preceded by a line `deploykit-clock-ms <ms>`: the host's clock,
/// read just before the list. The probe judges an instance's age as that clock
/// minus its `pm_uptime` — both from the host, so the deploying machine's clock
/// never enters it — and reading the clock first can only understate an age,
/// never overstate it. Where `date` has no `%N` (not GNU), whole seconds rounded
/// down: again only younger. One round trip, one `pm2` start-up.
pub fn clocked_jlist(config: &Pm2Config) -> Cmd {
    let list = jlist(config);
    script(
        r#"now=$(date +%s%3N 2>/dev/null)
case "$now" in ''|*[!0-9]*) now=$(($(date +%s) * 1000)) ;; esac
printf 'deploykit-clock-ms %s\n' "$now"
exec "$@""#,
        std::iter::once(list.program).chain(list.args),
    )
}

/// Stops the PM2 daemon itself (tests and the rig; never part of a deploy).
pub fn kill_daemon(config: &Pm2Config) -> Cmd {
    pm2(config, &[]).arg("kill")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    fn id() -> ReleaseId {
        ReleaseId::parse("r1").unwrap()
    }

    fn layout() -> Layout {
        Layout::new("/srv/my app").unwrap()
    }

    fn config() -> Pm2Config {
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

    #[test]
    fn values_travel_as_positional_arguments_never_inside_scripts() {
        let c = link_shared(&layout(), &id(), ".env", false);
        assert_eq!(c.program, "sh");
        assert_eq!(
            &c.args[2..],
            [
                "sh",
                "/srv/my app/shared/.env",
                "/srv/my app/releases/r1/.env",
                "file"
            ]
        );
        assert!(!c.args[1].contains("/srv"), "the script holds no values");
        let g = git_cache(&layout(), "git@example.com:me/app.git");
        assert_eq!(
            &g.args[2..],
            ["sh", "/srv/my app/repo", "git@example.com:me/app.git"]
        );
        let e = git_export(&layout(), "0123abcd", &id());
        assert_eq!(
            &e.args[2..],
            [
                "sh",
                "/srv/my app/repo",
                "0123abcd",
                "/srv/my app/releases/r1"
            ]
        );
    }

    #[test]
    fn the_swap_is_a_new_link_renamed_over_current() {
        assert_eq!(
            argv(&link_next(&layout(), &id())),
            ["ln", "-sfn", "releases/r1", "/srv/my app/.current-r1.tmp"]
        );
        assert_eq!(
            argv(&swap_current(&layout(), &id())),
            [
                "mv",
                "-T",
                "/srv/my app/.current-r1.tmp",
                "/srv/my app/current"
            ]
        );
        assert_eq!(
            swap_current(&layout(), &id()).to_shell(),
            "mv -T '/srv/my app/.current-r1.tmp' '/srv/my app/current'"
        );
    }

    #[test]
    fn pm2_reload_passes_home_release_and_secret_env() {
        let c = start_or_reload(&config(), &layout(), &id());
        assert_eq!(
            argv(&c),
            [
                "env",
                "PM2_HOME=/home/d/.pm2-web",
                "DEPLOYKIT_APP_DIR=/srv/my app/current",
                "DEPLOYKIT_RELEASE=r1",
                "pm2",
                "startOrReload",
                "/srv/my app/current/ecosystem.config.js",
                "--update-env",
                "--only",
                "web"
            ]
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
            ["sh", "env", "PM2_HOME=/home/d/.pm2-web", "pm2", "jlist"]
        );
        let script = &c.args[1];
        assert!(script.contains(crate::jlist::CLOCK_LINE), "{script}");
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
            argv(&make_layout(&layout())),
            [
                "mkdir",
                "-p",
                "/srv/my app/releases",
                "/srv/my app/shared",
                "/srv/my app/.deploykit"
            ]
        );
        assert_eq!(
            argv(&git_resolve(&layout(), &Commit::parse("abc123").unwrap())),
            [
                "git",
                "-C",
                "/srv/my app/repo",
                "rev-parse",
                "--verify",
                "--quiet",
                "abc123^{commit}"
            ]
        );
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
        assert_eq!(
            argv(&mark_prepared(&layout(), &id())),
            ["touch", "/srv/my app/releases/r1/.deploykit-prepared"]
        );
        assert_eq!(
            argv(&has_ecosystem(&config(), &layout(), &id())),
            ["test", "-f", "/srv/my app/releases/r1/ecosystem.config.js"]
        );
        assert_eq!(
            argv(&is_prepared(&layout(), &id())),
            ["test", "-f", "/srv/my app/releases/r1/.deploykit-prepared"]
        );
        assert_eq!(
            unpack_artifact(&layout(), &id()).args[3],
            "/srv/my app/releases/r1"
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

    #[tokio::test]
    async fn the_scripts_work_on_a_real_shell() {
        use deploykit_core::{LocalShell, ShellExt};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("my app");
        let layout = Layout::new(&root).unwrap();
        let sh = LocalShell::new();
        sh.check("t", &make_layout(&layout)).await.unwrap();
        std::fs::create_dir_all(layout.release(&id())).unwrap();
        let out = sh.check("t", &list_releases(&layout)).await.unwrap();
        assert_eq!(out.stdout_text(), "r1\n");
        // A missing shared file is a clear failure; a missing dir is created.
        let err = sh
            .check("t", &link_shared(&layout, &id(), ".env", false))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        sh.check("t", &link_shared(&layout, &id(), "public/uploads", true))
            .await
            .unwrap();
        assert!(layout.shared().join("public/uploads").is_dir());
        assert!(layout.release(&id()).join("public/uploads").is_symlink());
        sh.check("t", &link_next(&layout, &id())).await.unwrap();
        sh.check("t", &swap_current(&layout, &id())).await.unwrap();
        let out = sh.check("t", &read_current(&layout)).await.unwrap();
        assert_eq!(Layout::parse_link_target(&out.stdout_text()), Some(id()));

        // The snapshot command on a real shell, with `printf` standing in for pm2.
        let mut fake = config();
        fake.pm2_home = None;
        fake.pm2 = "printf".into();
        let mut c = clocked_jlist(&fake);
        c.args.truncate(4); // `printf jlist` would print `jlist`; print a list instead
        c.args.push("[]".into());
        let out = sh.check("t", &c).await.unwrap();
        let snap = crate::jlist::parse_snapshot(&out.stdout_text()).unwrap();
        let clock = snap.clock_ms.expect("the host's clock is printed");
        assert!(
            clock > 1_600_000_000_000,
            "milliseconds since the epoch: {clock}"
        );
        assert!(snap.processes.is_empty());
    }
}
