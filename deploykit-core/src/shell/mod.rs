//! Running commands on a host: the [`Shell`] trait, commands as argument vectors
//! ([`Cmd`]), and the one function that quotes them ([`quote`]).
//!
//! Every remote or local command deploykit runs is built as a [`Cmd`] by a pure
//! function (testable as data) and turned into a shell string only by
//! [`Cmd::to_shell`], so user values can never be interpreted by a shell.

mod cmd;
mod local;
mod output;
#[cfg(feature = "ssh")]
mod ssh;

pub use cmd::{quote, Cmd};
pub use local::LocalShell;
pub use output::{CommandFailed, Output};
#[cfg(feature = "ssh")]
#[cfg_attr(docsrs, doc(cfg(feature = "ssh")))]
pub use ssh::{HostKeyPolicy, SshAuth, SshConfig, SshShell};

use async_trait::async_trait;

use crate::error::Result;

/// Runs commands on one host (this machine, or a remote one over SSH).
#[async_trait]
pub trait Shell: Send + Sync {
    /// Where commands run, for errors and logs (e.g. `deploy@10.0.0.5:22`).
    fn location(&self) -> &str;
    /// Runs `cmd`, feeding `stdin` if given, and returns its exit status and output.
    /// A non-zero exit is not an error here; see [`ShellExt::check`].
    async fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output>;
}

/// Conveniences on every [`Shell`]. Not meant to be implemented by hand.
#[async_trait]
pub trait ShellExt: Shell {
    /// Runs `cmd` and turns a non-zero exit into an error naming the host, the
    /// command and the tail of its output.
    async fn check(&self, step: &str, cmd: &Cmd) -> Result<Output> {
        let out = self.run(cmd, None).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(CommandFailed::new(step, self.location(), cmd, &out).into())
        }
    }
}

impl<T: Shell + ?Sized> ShellExt for T {}
