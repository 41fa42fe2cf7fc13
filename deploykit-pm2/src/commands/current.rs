//! The `current` link (the switch and reading it) and the release directories.

use deploykit_core::{Cmd, ReleaseId};

use super::{jlist, path, script};
use crate::config::Pm2Config;
use crate::layout::Layout;

/// Makes `release` live on disk, in one round trip: exits [`CHECK_FAILED`](super::CHECK_FAILED) unless
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
