//! Every command the PM2 target runs on a host, as data.
//!
//! Each function is pure: it returns a [`Cmd`] (argv) that the tests below compare
//! as data and that only [`Cmd::to_shell`] ever quotes. Where a pipeline or a
//! condition is needed, the script is a fixed string and every value is passed as a
//! positional argument (`sh -c '<script>' sh "$1" "$2"…`), so no user value is ever
//! spliced into shell text.

//! One file per concern: preparing a release (`release.rs`), the `current` link
//! and the release directories (`current.rs`), an adopted app (`adopted.rs`), the
//! host's deploy lock (`lock.rs`) and PM2 itself (`pm2.rs`); all re-exported here,
//! so callers name `commands::x` whatever file `x` lives in.

use std::path::Path;

use deploykit_core::Cmd;

mod adopted;
mod current;
mod lock;
mod pm2;
mod release;

pub use adopted::*;
pub use current::*;
pub use lock::*;
pub use pm2::*;
pub use release::*;

pub(crate) fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `sh -c <script> sh <args…>`: a fixed script with values as `$1`, `$2`, ….
pub(crate) fn script<I, S>(text: &str, args: I) -> Cmd
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

#[cfg(test)]
mod shell_tests;
#[cfg(test)]
mod tests;
