//! Running a command inside a running container, streaming its output.

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use deploykit_core::{Error, Result};
use futures::StreamExt;

use super::Engine;

/// A stream of byte chunks fed to a command's standard input.
pub type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<Vec<u8>>> + Send>>;

/// The output and exit code of a command run inside a container.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// Exit code (`-1` if the engine did not report one).
    pub exit_code: i64,
    /// Standard error (standard output went to the caller's sink).
    pub stderr: Vec<u8>,
}

impl Engine {
    /// Runs `argv` inside running container `id` without a TTY (binary output stays
    /// intact), feeding `stdin` if given and sending each stdout chunk to `stdout` as
    /// it arrives. If the receiver goes away (its writer failed), the exec's output
    /// stops being read and an error is returned.
    pub async fn exec_streaming(
        &self,
        id: &str,
        argv: &[String],
        env: &[String],
        stdin: Option<ByteStream>,
        stdout: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<ExecOutput> {
        let config = ExecConfig {
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            env: Some(env.to_vec()),
            cmd: Some(argv.to_vec()),
            ..Default::default()
        };
        let step = "engine.exec";
        let what = || format!("`{}` in container {id}", argv.join(" "));
        let created = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(|e| self.fail(step, what(), e))?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(64 * 1024),
                }),
            )
            .await
            .map_err(|e| self.fail(step, what(), e))?;
        let StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        else {
            return Err(Error::part(
                step,
                &self.location,
                format!("{}: exec did not attach", what()),
            ));
        };
        let feed = async {
            use tokio::io::AsyncWriteExt;
            if let Some(mut stdin) = stdin {
                while let Some(chunk) = stdin.next().await {
                    let chunk = chunk.map_err(|e| {
                        Error::part(
                            step,
                            &self.location,
                            format!("{}: reading input: {e}", what()),
                        )
                    })?;
                    input.write_all(&chunk).await.map_err(|e| {
                        Error::part(
                            step,
                            &self.location,
                            format!("{}: writing stdin: {e}", what()),
                        )
                    })?;
                }
                input.shutdown().await.map_err(|e| {
                    Error::part(
                        step,
                        &self.location,
                        format!("{}: closing stdin: {e}", what()),
                    )
                })?;
            }
            Ok::<(), Error>(())
        };
        let mut stderr = Vec::new();
        let read = async {
            while let Some(frame) = output.next().await {
                match frame.map_err(|e| self.fail(step, what(), e))? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        if stdout.send(message.to_vec()).await.is_err() {
                            return Err(Error::part(
                                step,
                                &self.location,
                                format!("{}: its output could not be stored", what()),
                            ));
                        }
                    }
                    LogOutput::StdErr { message } => {
                        // Keep the tail only: pg_dump -v can be chatty.
                        stderr.extend_from_slice(&message);
                        if stderr.len() > 64 * 1024 {
                            stderr.drain(..stderr.len() - 32 * 1024);
                        }
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
            Ok::<(), Error>(())
        };
        let (fed, read) = futures::join!(feed, read);
        read?;
        fed?;
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(|e| self.fail(step, what(), e))?;
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            stderr,
        })
    }
}
