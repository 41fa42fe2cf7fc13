//! Running commands on this machine: the target for deploying on the box itself.

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

use super::{Cmd, Output, Shell};

/// A [`Shell`] running commands directly (no shell in between: argv goes to exec).
#[derive(Debug, Clone)]
pub struct LocalShell {
    location: String,
}

impl Default for LocalShell {
    fn default() -> Self {
        Self {
            location: format!("local ({})", crate::lock::this_host()),
        }
    }
}

impl LocalShell {
    /// A shell on this machine.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Shell for LocalShell {
    fn location(&self) -> &str {
        &self.location
    }

    async fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
        let mut command = tokio::process::Command::new(&cmd.program);
        command.args(&cmd.args).kill_on_drop(true);
        for (k, v) in &cmd.env {
            command.env(k, v.expose());
        }
        if let Some(dir) = &cmd.cwd {
            command.current_dir(dir);
        }
        command
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let spawn_error = |e: std::io::Error| {
            Error::part("run", &self.location, format!("cannot start `{cmd}`: {e}"))
                .with_hint(format!("is `{}` installed and on PATH?", cmd.program))
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input).await.map_err(|e| {
                Error::part("run", &self.location, format!("stdin of `{cmd}`: {e}"))
            })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| Error::part("run", &self.location, format!("waiting for `{cmd}`: {e}")))?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::ShellExt;

    #[tokio::test]
    async fn failing_command_error_names_host_command_status_and_tail() {
        let sh = LocalShell::new();
        let cmd = Cmd::new("sh")
            .arg("-c")
            .arg("echo building; echo 'boom: missing module' >&2; exit 3")
            .env("TOKEN", "s3cr3t-value");
        let err = sh.check("prepare", &cmd).await.unwrap_err().to_string();
        assert!(err.contains("prepare failed on local"), "{err}");
        assert!(err.contains("status 3"), "{err}");
        assert!(err.contains("boom: missing module"), "{err}");
        assert!(!err.contains("s3cr3t-value"), "{err}");
    }

    #[tokio::test]
    async fn missing_program_says_what_to_install() {
        let err = LocalShell::new()
            .run(&Cmd::new("definitely-not-a-program-xyz"), None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("installed"), "{err}");
    }

    #[tokio::test]
    async fn stdin_is_fed() {
        let out = LocalShell::new()
            .run(&Cmd::new("cat"), Some(b"hello"))
            .await
            .unwrap();
        assert_eq!(out.stdout_text(), "hello");
    }
}
