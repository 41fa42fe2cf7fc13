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

/// The exit status of a script whose up-front check failed (release not prepared,
/// commit not in the repository, ecosystem or shared file missing), as opposed to
/// the work after it failing (`git`, `tar`, `ln`, `mv`, … exit 1, 2 or 128): the
/// target tells the two apart for its error messages.
pub const CHECK_FAILED: i32 = 3;

/// What [`prepare_begin`] prints first when the release is already complete.
pub const ALREADY_PREPARED: &str = "prepared";

/// The start of a prepare, in one round trip: creates `releases/`, `shared/` and
/// `.deploykit/`; prints [`ALREADY_PREPARED`] if the release is complete, otherwise
/// `staging` and then where `current` points (nothing when there is no link), so
/// the target can refuse to rebuild a live release.
pub fn prepare_begin(layout: &Layout, release: &ReleaseId) -> Cmd {
    script(
        r#"set -e
mkdir -p "$1" "$2" "$3"
if [ -f "$4" ]; then echo prepared; exit 0; fi
echo staging
readlink "$5" || true"#,
        [
            path(&layout.releases()),
            path(&layout.shared()),
            path(&layout.state()),
            path(&layout.prepared_marker(release)),
            path(&layout.current()),
        ],
    )
}

/// The git credential helper that answers with `DEPLOYKIT_GIT_USERNAME` and
/// `DEPLOYKIT_GIT_PASSWORD` from the environment (`printf` is a shell builtin: the
/// values never become a process's arguments).
const GIT_CREDENTIAL_HELPER: &str = r#"!f() { test "$1" = get || return 0; printf 'username=%s\npassword=%s\n' "$DEPLOYKIT_GIT_USERNAME" "$DEPLOYKIT_GIT_PASSWORD"; }; f"#;

/// Clones the repository bare into the cache on first use, fetches it afterwards
/// (branches and tags, pruned), so each prepare moves only new objects.
///
/// Credentials in an `http(s)` URL (`https://user:TOKEN@host/…`) are taken out of
/// it: git's command line and the cache's config would show them to every user of
/// the host. They reach git as env (secret, so on stdin over SSH) through a
/// credential helper instead.
pub fn git_cache(layout: &Layout, repo: &str) -> Cmd {
    let Some((bare, user, password)) = deploykit_core::secret::split_url_credentials(repo) else {
        return git_cache_from(layout, repo);
    };
    git_cache_from(layout, &bare)
        .public_env("GIT_CONFIG_COUNT", "1")
        .public_env("GIT_CONFIG_KEY_0", "credential.helper")
        .public_env("GIT_CONFIG_VALUE_0", GIT_CREDENTIAL_HELPER)
        .env("DEPLOYKIT_GIT_USERNAME", user)
        .env("DEPLOYKIT_GIT_PASSWORD", password.expose())
}

fn git_cache_from(layout: &Layout, repo: &str) -> Cmd {
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

/// Resolves `commit` in the cache (exit [`CHECK_FAILED`] when it is not there),
/// replaces whatever an interrupted prepare left in the release directory with
/// exactly that commit's tree, and records the full hash in `REVISION`. Through a
/// file rather than a pipe, so a failing `git archive` cannot be hidden by a
/// succeeding `tar`.
pub fn git_checkout(layout: &Layout, commit: &Commit, release: &ReleaseId) -> Cmd {
    script(
        r#"set -e
hash=$(git -C "$1" rev-parse --verify --quiet "$2^{commit}") || exit 3
rm -rf "$3"
mkdir -p "$3"
git -C "$1" archive --format=tar -o "$3/.deploykit-export.tar" "$hash"
tar -xf "$3/.deploykit-export.tar" -C "$3"
rm -f "$3/.deploykit-export.tar"
printf '%s\n' "$hash" > "$3/REVISION""#,
        [
            path(&layout.repo()),
            commit.as_str().to_string(),
            path(&layout.release(release)),
        ],
    )
}

/// Unpacks a gzipped tarball fed on stdin into the release directory, replacing
/// whatever an interrupted prepare left there.
pub fn unpack_artifact(layout: &Layout, release: &ReleaseId) -> Cmd {
    script(
        r#"set -e
rm -rf "$1"
mkdir -p "$1"
tar -xzf - -C "$1""#,
        [path(&layout.release(release))],
    )
}

/// Links each `shared/<rel>` into the release at `<rel>`, replacing what the code
/// shipped there: every linked file and directory in one round trip. A linked
/// directory is created in `shared/` when missing; a linked file must already
/// exist (it usually holds secrets deploykit never writes), else the script exits
/// [`CHECK_FAILED`] naming it.
pub fn link_shared(layout: &Layout, release: &ReleaseId, files: &[String], dirs: &[String]) -> Cmd {
    let links = files
        .iter()
        .map(|f| ("file", f))
        .chain(dirs.iter().map(|d| ("dir", d)))
        .flat_map(|(kind, rel)| [kind.to_string(), rel.clone()]);
    script(
        r#"set -e
shared=$1 release=$2
shift 2
while [ $# -ge 2 ]; do
  src="$shared/$2" dst="$release/$2"
  if [ "$1" = dir ]; then
    mkdir -p "$src"
  elif [ ! -e "$src" ]; then
    echo "shared file $src does not exist; create it on the host first" >&2
    exit 3
  fi
  mkdir -p "$(dirname "$dst")"
  rm -rf "$dst"
  ln -s "$src" "$dst"
  shift 2
done"#,
        [path(&layout.shared()), path(&layout.release(release))]
            .into_iter()
            .chain(links),
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

/// Marks the release complete (only marked releases can be activated), after
/// checking that it holds the ecosystem file PM2 will start it from: exit
/// [`CHECK_FAILED`] when it does not, so a wrong `ecosystem` setting fails the
/// prepare (nothing switched) instead of the activation and its undo.
pub fn seal_release(config: &Pm2Config, layout: &Layout, release: &ReleaseId) -> Cmd {
    script(
        r#"[ -f "$1" ] || exit 3
touch "$2""#,
        [
            path(&layout.release(release).join(&config.ecosystem)),
            path(&layout.prepared_marker(release)),
        ],
    )
}

/// Makes `release` live on disk, in one round trip: exits [`CHECK_FAILED`] unless
/// the release was completely prepared; otherwise makes a new link next to
/// `current` and `rename(2)`s it over `current` (`mv -T`), so every reader sees
/// either the old or the new release, never a missing link. Running it again is
/// harmless.
pub fn switch_current(layout: &Layout, release: &ReleaseId) -> Cmd {
    switch(layout, release, "any")
}

/// The exit status of [`switch_over_link`] when there is no `current` link yet.
pub const NO_LINK: i32 = 5;

/// [`switch_current`], but only over an existing `current` link: exits
/// [`NO_LINK`] (changing nothing) on a first deploy, when the target must first
/// look at what PM2 already runs under the app's name.
pub fn switch_over_link(layout: &Layout, release: &ReleaseId) -> Cmd {
    switch(layout, release, "linked")
}

fn switch(layout: &Layout, release: &ReleaseId, over: &str) -> Cmd {
    script(
        r#"set -e
[ -f "$1" ] || exit 3
if [ "$5" = linked ] && [ ! -L "$4" ]; then exit 5; fi
ln -sfn "$2" "$3"
mv -T "$3" "$4""#,
        [
            path(&layout.prepared_marker(release)),
            Layout::link_target(release),
            path(&layout.next_current(release)),
            path(&layout.current()),
            over.to_string(),
        ],
    )
}

/// What [`read_live`] prints first.
pub mod live {
    /// `current` is a link; its target follows.
    pub const LINK: &str = "link";
    /// `current` exists but is not a link (an in-place deploy).
    pub const NOT_A_LINK: &str = "not-a-link";
    /// No `current`; `pm2 jlist` follows.
    pub const NONE: &str = "none";
}

/// Where `current` points, in one round trip: [`live::LINK`] and the link's
/// target; or [`live::NOT_A_LINK`]; or, with no `current` at all, [`live::NONE`]
/// and then `pm2 jlist`, so an app PM2 already runs (started by hand) is seen
/// before a first deploy changes anything. Only a first deploy pays the `pm2`
/// start-up.
pub fn read_live(config: &Pm2Config, layout: &Layout) -> Cmd {
    let list = jlist(config);
    script(
        r#"if [ -L "$1" ]; then echo link; readlink "$1"; exit 0; fi
if [ -e "$1" ]; then echo not-a-link; exit 0; fi
echo none
shift
exec "$@""#,
        std::iter::once(path(&layout.current()))
            .chain(std::iter::once(list.program))
            .chain(list.args),
    )
}

/// Writes the record of an adopted app (JSON on stdin: it holds the app's env)
/// owner-only, replacing the file atomically.
pub fn write_adopted(layout: &Layout) -> Cmd {
    script(
        r#"set -e
umask 077
mkdir -p "$(dirname "$1")"
cat > "$1.tmp"
mv -f "$1.tmp" "$1""#,
        [path(&layout.adopted())],
    )
}

/// Forgets the record of an adopted app.
pub fn remove_adopted(layout: &Layout) -> Cmd {
    Cmd::new("rm").arg("-f").arg(path(&layout.adopted()))
}

/// Whether the record of an adopted app exists (exit 0) or not.
pub fn adopted_exists(layout: &Layout) -> Cmd {
    Cmd::new("test").arg("-f").arg(path(&layout.adopted()))
}

/// Starts the adopted app again from its record (a PM2 process file): the
/// script, cwd, instances, mode and env it ran with before deploykit took over.
pub fn start_adopted(config: &Pm2Config, layout: &Layout) -> Cmd {
    pm2(config, &[]).arg("start").arg(path(&layout.adopted()))
}

/// Stops and forgets one PM2 process by id (never the app by name, when other
/// processes of that name are not deploykit's).
pub fn delete_id(config: &Pm2Config, pm_id: u32) -> Cmd {
    pm2(config, &[]).arg("delete").arg(pm_id.to_string())
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
/// The adopted app counts as a release while its record exists, so `rollback --to
/// adopted` can go back to it.
pub fn list_releases(layout: &Layout) -> Cmd {
    script(
        r#"if [ -f "$2" ]; then echo adopted; fi
[ -d "$1" ] || exit 0
find "$1" -mindepth 1 -maxdepth 1 -type d -printf '%f\n'"#,
        [path(&layout.releases()), path(&layout.adopted())],
    )
}

/// Deletes a release directory.
pub fn remove_release(layout: &Layout, release: &ReleaseId) -> Cmd {
    Cmd::new("rm")
        .arg("-rf")
        .arg(path(&layout.release(release)))
}

/// Creates the host's deploy lock (core's [`deploykit_core::host_lock::lock_create`]).
pub fn lock_create(layout: &Layout) -> Cmd {
    deploykit_core::host_lock::lock_create(&layout.lock())
}

/// Reads the host's deploy lock with the host's clock ([`deploykit_core::host_lock::lock_read`]).
pub fn lock_read(layout: &Layout) -> Cmd {
    deploykit_core::host_lock::lock_read(&layout.lock())
}

/// The exit status of [`lock_replace`] when the lock no longer holds the expected
/// acquisition.
pub const LOCK_CHANGED: i32 = deploykit_core::host_lock::LOCK_CHANGED;

/// Compare-and-swap of the host's lock ([`deploykit_core::host_lock::lock_replace`]).
pub fn lock_replace(layout: &Layout, token: &str, put: bool) -> Cmd {
    deploykit_core::host_lock::lock_replace(&layout.lock(), token, put)
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

/// `pm2 jlist` preceded by a line `deploykit-clock-ms <ms>`, the host's clock read
/// just before the list, and a line `deploykit-current <link target>`, so the
/// probe can check that every worker runs the live release. The probe judges an instance's age as that clock
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
printf 'deploykit-current %s\n' "$(readlink "$1" 2>/dev/null)"
shift
exec "$@""#,
        std::iter::once(path(&config.deploy_to.join("current")))
            .chain(std::iter::once(list.program))
            .chain(list.args),
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
            unpack_artifact(&layout(), &id()),
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
        assert_eq!(
            values(&seal_release(&config(), &layout(), &id())),
            [
                "/srv/my app/releases/r1/ecosystem.config.js",
                "/srv/my app/releases/r1/.deploykit-prepared"
            ]
        );
        assert_eq!(
            values(&unpack_artifact(&layout(), &id())),
            ["/srv/my app/releases/r1"]
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
        std::fs::write(work.join("ecosystem.config.js"), "module.exports = {};\n").unwrap();
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
        sh.check("t", &seal_release(&config(), &layout, &id()))
            .await
            .unwrap();
        assert!(marker.exists());
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
}
