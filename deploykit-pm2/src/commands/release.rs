//! Preparing a release: the layout, the code (git or an artifact), shared files,
//! build steps and the seal that marks it complete.

use deploykit_core::{Cmd, Commit, ReleaseId};

use super::{path, script};
use crate::config::Pm2Config;
use crate::layout::Layout;

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

/// Resolves `commit` in the cache (exit [`CHECK_FAILED`](super::CHECK_FAILED) when it is not there),
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

/// Appends one chunk of an artifact, fed on stdin, to its upload file in
/// `.deploykit/` (`first`: starts a new file, so no earlier file's mode is kept).
/// Owner-only (`umask 077`):
/// the tarball may hold the app's built secrets. The data never goes in argv.
pub fn upload_chunk(layout: &Layout, release: &ReleaseId, first: bool) -> Cmd {
    script(
        r#"umask 077
if [ "$2" = first ]; then rm -f "$1"; cat > "$1"; else cat >> "$1"; fi"#,
        [
            path(&layout.upload(release)),
            if first { "first" } else { "more" }.to_string(),
        ],
    )
}

/// `sha256sum` of the uploaded artifact, as the host computes it.
pub fn upload_digest(layout: &Layout, release: &ReleaseId) -> Cmd {
    Cmd::new("sha256sum")
        .arg("--")
        .arg(path(&layout.upload(release)))
}

/// Deletes the upload file (after unpacking, or when its check failed).
pub fn remove_upload(layout: &Layout, release: &ReleaseId) -> Cmd {
    Cmd::new("rm")
        .arg("-f")
        .arg("--")
        .arg(path(&layout.upload(release)))
}

/// Unpacks the checked upload into the release directory, replacing whatever an
/// interrupted prepare left there, and records with the release the commit it
/// was built from (`REVISION`, as a git checkout does) and the artifact's digest
/// (`ARTIFACT`: `sha256:<hex>`), then deletes the upload.
pub fn unpack_artifact(layout: &Layout, release: &ReleaseId, commit: &Commit, sha256: &str) -> Cmd {
    script(
        r#"set -e
rm -rf "$2"
mkdir -p "$2"
tar -xzf "$1" -C "$2"
printf '%s\n' "$3" > "$2/REVISION"
printf 'sha256:%s\n' "$4" > "$2/ARTIFACT"
rm -f "$1""#,
        [
            path(&layout.upload(release)),
            path(&layout.release(release)),
            commit.as_str().to_string(),
            sha256.to_string(),
        ],
    )
}

/// Prints the digest recorded by [`unpack_artifact`] (fails when there is none).
pub fn read_artifact(layout: &Layout, release: &ReleaseId) -> Cmd {
    Cmd::new("cat").arg(path(&layout.release(release).join("ARTIFACT")))
}

/// Links each `shared/<rel>` into the release at `<rel>`, replacing what the code
/// shipped there: every linked file and directory in one round trip. A linked
/// directory is created in `shared/` when missing; a linked file must already
/// exist (it usually holds secrets deploykit never writes), else the script exits
/// [`CHECK_FAILED`](super::CHECK_FAILED) naming it.
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
/// checking that it holds the ecosystem file PM2 will start it from (exit
/// [`CHECK_FAILED`](super::CHECK_FAILED) when it does not) and that every app of
/// the config is in that file (exit [`APPS_MISSING`], the missing names on
/// stdout): a wrong `ecosystem` or `apps` setting fails the prepare (nothing
/// switched) instead of the activation and its undo.
pub fn seal_release(config: &Pm2Config, layout: &Layout, release: &ReleaseId) -> Cmd {
    apps_script(
        config,
        layout,
        release,
        path(&layout.prepared_marker(release)),
    )
}

/// The exit status of [`seal_release`] and [`apps_in_release`] when an app of the
/// config is not in the release's ecosystem file; the missing names are on
/// stdout, one per line.
pub const APPS_MISSING: i32 = 4;

/// Which apps of the config the release lacks: exits [`APPS_MISSING`] naming
/// them, 0 when it has them all. A release has the apps it was prepared with
/// ([`Layout::apps_record`]); one prepared before that record existed, those of
/// its ecosystem file. Going back to a release from before an app was added, the
/// activation deletes that app instead of starting it.
pub fn apps_in_release(config: &Pm2Config, layout: &Layout, release: &ReleaseId) -> Cmd {
    apps_script(config, layout, release, String::new())
}

/// Loads an ecosystem file (`$1`) as PM2 does and prints each name of `$2…` that
/// none of its apps has; exit [`APPS_MISSING`] then.
const LIST_MISSING_APPS: &str = r#"const conf = require(process.argv[1]);
const apps = Array.isArray(conf) ? conf : conf && conf.apps ? [].concat(conf.apps) : [conf];
const names = apps.map((a) => a && a.name);
const missing = process.argv.slice(2).filter((n) => !names.includes(n));
if (missing.length) { console.log(missing.join('\n')); process.exit(4); }
"#;

/// The ecosystem file must exist; where Node can load it (`.js`, `.cjs`,
/// `.json`, and `node` on the host), every app must be in it; then the apps are
/// recorded and `mark` is touched (when not empty: sealing). Without `mark`
/// (looking), the record answers when there is one. A YAML file, or a host without `node` on the PATH
/// (PM2 found elsewhere), skips the app check: PM2 itself then names a missing
/// app at activation. Run with the app's env, as PM2 and the build see it.
fn apps_script(config: &Pm2Config, layout: &Layout, release: &ReleaseId, mark: String) -> Cmd {
    let check = if super::pm2::wrappable(&config.ecosystem) {
        "check"
    } else {
        "skip"
    };
    let mut cmd = script(
        r#"[ -f "$1" ] || exit 3
eco=$1 mark=$2 mode=$3 js=$4 record=$5
shift 5
if [ -z "$mark" ] && [ -f "$record" ]; then
  st=0
  for app in "$@"; do grep -qxF -e "$app" "$record" || { printf '%s\n' "$app"; st=4; }; done
  exit $st
fi
if [ "$mode" = check ] && command -v node >/dev/null 2>&1; then
  (cd "$(dirname "$eco")" && node -e "$js" "$eco" "$@") || exit $?
fi
[ -n "$mark" ] || exit 0
umask 077
printf '%s\n' "$@" > "$record"
touch "$mark""#,
        [
            path(&layout.release(release).join(&config.ecosystem)),
            mark,
            check.to_string(),
            LIST_MISSING_APPS.to_string(),
            path(&layout.apps_record(release)),
        ]
        .into_iter()
        .chain(config.app_names()),
    );
    for (k, v) in &config.env {
        cmd = cmd.env(k.clone(), v.expose());
    }
    cmd
}
