//! One command over one master connection, and how far it got: whether a failure
//! means it never ran (send it again) or may have run (report it).

use std::sync::Arc;

use openssh::Session;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::error_chain::error_chain;
use crate::next_step::NextStep;

use super::{Cmd, Output, SshShell};

/// How far a command got over one master connection.
pub(super) enum Attempt {
    /// It ran to the end (or failed in a way unrelated to the connection).
    Done(Result<Output>),
    /// The master could not start it: it never reached the host.
    NeverStarted(openssh::Error),
    /// The connection failed while it ran: it may or may not have run.
    CutOff(openssh::Error),
}

impl SshShell {
    pub(super) fn lost(&self, cmd: &Cmd, e: &openssh::Error) -> Error {
        Error::part(
            "ssh",
            &self.location,
            format!("running `{cmd}`: {}", error_chain(e)),
        )
        .with_hint(
            "the SSH connection dropped while the command ran, so it may or may not have run",
        )
        .with_next_step(NextStep::DeployAgainOrRecover {
            env: None,
            first: "check the host and network".into(),
        })
    }

    pub(super) fn not_started(&self, cmd: &Cmd, e: &openssh::Error) -> Error {
        Error::part(
            "ssh",
            &self.location,
            format!("could not start `{cmd}`: {}", error_chain(e)),
        )
        .with_hint("the command did not run; check the host's sshd (e.g. MaxSessions) and the network, then run the deploy again")
    }

    pub(super) async fn run_on(
        &self,
        session: &Arc<Session>,
        cmd: &Cmd,
        stdin: Option<&[u8]>,
    ) -> Attempt {
        // Secret env values travel on stdin, never on the host's command lines.
        let (line, input) = cmd.to_remote(stdin);
        let stdin = input.as_deref();
        let mut command = Session::to_raw_command(session.clone(), line);
        command
            .stdin(if stdin.is_some() {
                openssh::Stdio::piped()
            } else {
                openssh::Stdio::null()
            })
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped());
        let mut child = match command.spawn().await {
            Ok(child) => child,
            Err(e) => return Attempt::NeverStarted(e),
        };
        let stdin_pipe = child.stdin().take();
        let feed = async {
            if let (Some(input), Some(mut pipe)) = (stdin, stdin_pipe) {
                pipe.write_all(input).await?;
                pipe.shutdown().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        // Feed stdin while the output is drained, so large inputs cannot deadlock.
        let mut stdout = child.stdout().take();
        let mut stderr = child.stderr().take();
        let read_out = read_all(stdout.as_mut());
        let read_err = read_all(stderr.as_mut());
        let (fed, out, err) = tokio::join!(feed, read_out, read_err);
        let status = match child.wait().await {
            Ok(status) => status,
            Err(e) => return Attempt::CutOff(e),
        };
        let read_error = |e: std::io::Error| {
            Error::part("ssh", &self.location, format!("output of `{cmd}`: {e}"))
        };
        Attempt::Done((|| {
            fed.map_err(|e| Error::part("ssh", &self.location, format!("stdin of `{cmd}`: {e}")))?;
            Ok(Output {
                status: status.code().unwrap_or(-1),
                stdout: out.map_err(read_error)?,
                stderr: err.map_err(read_error)?,
            })
        })())
    }
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<&mut R>,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    if let Some(pipe) = pipe {
        pipe.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}
