//! A finished command's output, and the error for a command that failed.

use std::fmt;

use crate::error::Error;

use super::cmd::Cmd;

/// Exit status and captured output of one command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Exit code (`-1` if killed by a signal).
    pub status: i32,
    /// Captured standard output.
    pub stdout: Vec<u8>,
    /// Captured standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// Standard output as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The last `n` lines of stderr and stdout together, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let mut text = String::from_utf8_lossy(&self.stdout).into_owned();
        let err = String::from_utf8_lossy(&self.stderr);
        if !err.trim().is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&err);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// A command that exited non-zero: host, command (env redacted), status and the
/// tail of its output between divider lines, like ripgrep's `CommandError`.
#[derive(Debug, Clone)]
pub struct CommandFailed {
    /// The step it belonged to.
    pub step: String,
    /// The host it ran on.
    pub location: String,
    /// The command, as displayed (env values redacted).
    pub command: String,
    /// Its exit status.
    pub status: i32,
    /// The last lines of its output.
    pub tail: String,
}

impl CommandFailed {
    /// Describes `out` of `cmd` run on `location`.
    pub fn new(step: &str, location: &str, cmd: &Cmd, out: &Output) -> Self {
        Self {
            step: step.to_string(),
            location: location.to_string(),
            command: cmd.to_string(),
            status: out.status,
            tail: crate::secret::redact(&out.tail(20), &cmd.secret_env()),
        }
    }
}

impl fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` exited with status {}", self.command, self.status)?;
        if !self.tail.trim().is_empty() {
            write!(
                f,
                "\n---- output (last lines) ----\n{}\n----",
                self.tail.trim_end()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for CommandFailed {}

impl From<CommandFailed> for Error {
    fn from(c: CommandFailed) -> Self {
        Error::part(c.step.clone(), c.location.clone(), c.to_string()).with_source(c)
    }
}
