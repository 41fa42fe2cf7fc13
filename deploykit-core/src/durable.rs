//! Writing state files so that a crash leaves them either absent or whole.
//!
//! Creating or renaming a file changes its directory; until the directory itself is
//! fsynced, a power loss can forget the new name even though the file's data was
//! synced. Journals and locks are the state `recover` relies on, so every creation
//! syncs the directory too.

use std::io::Write;
use std::path::Path;

/// Fsyncs directory `dir`, making the names created or removed in it durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    synced::record(dir);
    std::fs::File::open(dir)?.sync_all()
}

/// Creates (or truncates) `path` owner-only (0600), writes `bytes` and fsyncs it.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).write(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Which directories this thread synced: lets tests see that a creation was made
/// durable, which no file content can show.
#[cfg(test)]
pub(crate) mod synced {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn record(dir: &Path) {
        SYNCED.with(|s| s.borrow_mut().push(dir.to_path_buf()));
    }

    /// Takes the list of directories synced so far on this thread.
    pub(crate) fn take() -> Vec<PathBuf> {
        SYNCED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }
}
