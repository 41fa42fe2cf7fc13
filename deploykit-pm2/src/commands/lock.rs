//! The host's deploy lock file (core's host_lock commands at this layout's path).

use deploykit_core::Cmd;

use super::path;
use crate::layout::Layout;

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
