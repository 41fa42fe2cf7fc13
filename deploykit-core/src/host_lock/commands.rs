//! The host lock's commands, as data: fixed scripts with every value passed as a
//! positional argument (`sh -c '<script>' sh "$1" …`), never spliced into the text.

use std::path::Path;

use crate::shell::Cmd;

fn script<I, S>(text: &str, args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Cmd::new("sh").arg("-c").arg(text).arg("sh").args(args)
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Creates the lock at `lock` with the holder's JSON from stdin, failing if it
/// exists. The JSON goes to a temporary file first, which `ln` then links into
/// place: `link` fails when the lock exists, and the lock never exists empty or
/// half-written, even when the connection drops midway. The directory is created
/// owner-only and synced.
pub fn lock_create(lock: &Path) -> Cmd {
    script(
        r#"umask 077
d=$(dirname "$1") && mkdir -p "$d" || exit 1
t="$1.$$.tmp"
cat > "$t" && [ -s "$t" ] || { rm -f "$t"; exit 1; }
sync "$t" 2>/dev/null
if ln "$t" "$1" 2>/dev/null; then rm -f "$t"; sync "$d" 2>/dev/null; exit 0; fi
rm -f "$t"
exit 1"#,
        [path(lock)],
    )
}

/// Prints `deploykit-lock <host clock> <lock mtime>` (`-` when there is no lock),
/// then the lock's JSON. Both times come from the host's clock, so the lease is
/// judged without trusting the deploying machine's clock.
pub fn lock_read(lock: &Path) -> Cmd {
    script(
        r#"now=$(date +%s)
if [ -e "$1" ]; then
  m=$(stat -c %Y "$1" 2>/dev/null || date -r "$1" +%s)
  printf 'deploykit-lock %s %s\n' "$now" "$m"
  cat "$1"
else
  printf 'deploykit-lock %s -\n' "$now"
fi"#,
        [path(lock)],
    )
}

/// The exit status of [`lock_replace`] when the lock no longer holds the expected
/// acquisition.
pub const LOCK_CHANGED: i32 = 9;

/// Compare-and-swap of the host's lock, under `flock` on `<lock>.guard` (util-linux;
/// the kernel drops it if the connection dies): if the lock still holds `token` (an
/// empty token: a lock file without one, i.e. older or unreadable), replace it with
/// the JSON on stdin (`put`) or remove it (`remove`); otherwise exit
/// [`LOCK_CHANGED`] and change nothing.
pub fn lock_replace(lock: &Path, token: &str, put: bool) -> Cmd {
    script(
        r#"umask 077
exec 9>>"$1.guard" || exit 1
flock -w 10 9 || { echo "flock(1) from util-linux is needed on the host, or the lock guard stayed busy" >&2; exit 1; }
if [ -n "$2" ]; then
  grep -qF "\"token\":\"$2\"" "$1" 2>/dev/null || exit 9
else
  [ -e "$1" ] && ! grep -qF '"token":"' "$1" || exit 9
fi
d=$(dirname "$1")
if [ "$3" = put ]; then
  t="$1.$$.tmp"
  cat > "$t" && [ -s "$t" ] || { rm -f "$t"; exit 1; }
  sync "$t" 2>/dev/null
  mv -f "$t" "$1" || exit 1
else
  rm -f "$1" || exit 1
fi
sync "$d" 2>/dev/null
exit 0"#,
        [
            path(lock),
            token.to_string(),
            if put { "put" } else { "remove" }.to_string(),
        ],
    )
}
