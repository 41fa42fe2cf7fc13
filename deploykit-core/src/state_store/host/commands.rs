//! The host store's journal commands, as data: fixed scripts, values as `$1`, `$2`.

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

/// The exit status of [`append`] when the file is not `size` bytes long: it
/// printed the file instead, and appended nothing.
pub(super) const CHANGED: i32 = 9;

/// What [`list`] prints before each journal's content.
pub(super) const RUN_HEADER: &str = "deploykit-run ";

/// Appends stdin (one record line) to the journal `file` if it is `size` bytes
/// long, under `flock`, and fsyncs it (`dd conv=fsync`) before exiting 0; a new
/// file's directory is created owner-only and synced too. Otherwise prints the
/// file and exits [`CHANGED`]. The record travels on stdin, never in argv.
pub(super) fn append(file: &Path, size: u64) -> Cmd {
    script(
        // Few processes: each one costs a fork and exec on the host, per record.
        r#"umask 077
case $1 in */*) d=${1%/*} ;; *) d=. ;; esac
new=
if [ ! -e "$1" ]; then mkdir -p "$d" || exit 1; new=1; fi
exec 9>>"$1" || exit 1
flock -w 10 9 || { echo "flock(1) from util-linux is needed on the host, or the journal stayed busy" >&2; exit 1; }
s=$(wc -c < "$1") || exit 1
if [ "$s" -ne "$2" ]; then cat "$1"; exit 9; fi
dd of="$1" oflag=append conv=notrunc,fsync status=none || exit 1
if [ -n "$new" ]; then sync "$d" "$d/.." 2>/dev/null; fi
exit 0"#,
        [path(file), size.to_string()],
    )
}

/// Prints the journal `file` (nothing if it does not exist).
pub(super) fn read(file: &Path) -> Cmd {
    script(r#"if [ -e "$1" ]; then exec cat "$1"; fi"#, [path(file)])
}

/// Prints every journal in `dir`, each after a [`RUN_HEADER`] line naming its run:
/// the whole history in one round trip.
pub(super) fn list(dir: &Path) -> Cmd {
    script(
        r#"cd "$1" 2>/dev/null || exit 0
for f in *.jsonl; do
  [ -e "$f" ] || continue
  printf 'deploykit-run %s\n' "${f%.jsonl}"
  cat "$f" && echo
done"#,
        [path(dir)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_travel_as_arguments_never_inside_the_scripts() {
        let p = Path::new("/srv/my app/.deploykit/journal/prod/r1.jsonl");
        for c in [append(p, 12), read(p), list(p.parent().unwrap())] {
            assert!(!c.args[1].contains("/srv"), "{}", c.args[1]);
            assert!(c.args[3].starts_with("/srv/my app"));
        }
        assert_eq!(append(p, 12).args[4], "12");
    }
}
