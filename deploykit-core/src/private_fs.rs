//! Files and directories only their owner can read.
//!
//! Journals, history, backup metadata and logs name hosts, releases and errors,
//! and a backup holds user data: on a shared runner or host, other users must not
//! read them. New directories are created 0700 and new files 0600 (before the
//! umask, which can only remove more); existing ones keep their mode, so an
//! operator's deliberate choice is not undone.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Mode of the directories deploykit creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files deploykit creates.
pub const FILE_MODE: u32 = 0o600;

/// `create_dir_all`, with every directory it creates owner-only.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, DIR_MODE);
    b.create(dir)
}

/// Opens `path` for appending, creating it owner-only if it does not exist.
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, FILE_MODE);
    o.open(path)
}

/// Writes `bytes` to `path` (replacing it), creating it owner-only if it does not
/// exist.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut o = OpenOptions::new();
    o.create(true).write(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, FILE_MODE);
    o.open(path)?.write_all(bytes)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn what_is_created_is_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir_all(&dir).unwrap();
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let f = dir.join("j.jsonl");
        drop(open_append(&f).unwrap());
        assert_eq!(mode(&f), 0o600);
        let w = dir.join("pid");
        write(&w, b"1").unwrap();
        assert_eq!(mode(&w), 0o600);
    }
}
