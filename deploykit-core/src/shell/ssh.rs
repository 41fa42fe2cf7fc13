//! Running commands on a remote host over one multiplexed OpenSSH connection.
//!
//! Why the system `ssh` (through the `openssh` crate) and not a pure-Rust client: it
//! honours the user's `~/.ssh/config`, agent and known_hosts exactly as a human's
//! `ssh` does, and one ControlMaster carries every command of a run (a few ms per
//! command instead of a fresh handshake each time). The price: **no password
//! authentication** — `ssh` runs in batch mode and the crate's maintainers refused to
//! add it — so a configuration that asks for a password is refused with a clear error.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use std::num::NonZeroUsize;

use openssh::{ControlPersist, ForwardType, KnownHosts, Session, SessionBuilder};

use crate::error::{Error, Result};
use crate::error_chain::error_chain;
use crate::next_step::NextStep;

use super::{Cmd, Output, Shell};

mod attempt;
mod config;
mod connect_error;

use attempt::Attempt;
pub use config::{HostKeyPolicy, SshAuth, SshConfig};
use connect_error::{check_key_file, connect_error, is_transient};

/// A [`Shell`] on a remote host: one OpenSSH master connection, opened once by
/// [`SshShell::connect`] and reused by every command until [`SshShell::close`].
///
/// Commands are sent as the single string [`Cmd::to_remote`] builds (with the one
/// quoting function; secret env values go on stdin), interpreted by the remote login shell, which must therefore be a POSIX
/// shell (sh, bash, dash, zsh; not fish or csh).
///
/// When the master connection dies (sshd restarted, a network blip), the next command
/// opens a new one: a command that could not be sent at all is sent again on the new
/// connection, and a command cut off midway fails (it may have run) while the commands
/// after it — such as the run's undo steps — use the new connection.
pub struct SshShell {
    location: String,
    config: SshConfig,
    session: Mutex<Option<Arc<Session>>>,
    /// Serialises reconnecting, so concurrent commands open one new master, not many.
    reconnecting: tokio::sync::Mutex<()>,
    /// Unix sockets forwarded with [`SshShell::forward_unix_socket`], forwarded again
    /// on a new connection.
    forwards: Mutex<Vec<(PathBuf, PathBuf)>>,
}

impl std::fmt::Debug for SshShell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshShell")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SshShell {
    /// Opens the master connection, checking the host key and authenticating.
    ///
    /// Fails with an error that names the host, what happened (unknown or changed host
    /// key, key refused, unreachable) and what to do about it.
    pub async fn connect(config: &SshConfig) -> Result<Self> {
        config.validate()?;
        let location = config.location();
        match &config.auth {
            SshAuth::Password => {
                return Err(Error::part(
                    "ssh connect",
                    &location,
                    "password authentication is not supported: deploykit drives the system OpenSSH client in batch mode, which cannot type passwords",
                )
                .with_hint(format!(
                    "create a key pair (`ssh-keygen -t ed25519 -f deploy_key`), add the public key to ~{}/.ssh/authorized_keys on {}, and configure the key file instead of the password",
                    config.user.as_deref().unwrap_or(""),
                    config.host
                )));
            }
            SshAuth::KeyFile(path) => check_key_file(path, &location)?,
            SshAuth::Default => {}
        }
        let session = open_master(config).await?;
        Ok(Self {
            location,
            config: config.clone(),
            session: Mutex::new(Some(Arc::new(session))),
            reconnecting: tokio::sync::Mutex::new(()),
            forwards: Mutex::new(Vec::new()),
        })
    }

    /// Replaces a dead master connection (`dead` is the session the caller found
    /// dead; if another command already replaced it, that new one is used).
    async fn reconnect(&self, dead: &Arc<Session>) -> Result<Arc<Session>> {
        let _one_at_a_time = self.reconnecting.lock().await;
        let current = self.session()?;
        if !Arc::ptr_eq(&current, dead) {
            return Ok(current);
        }
        // A restarting sshd or a network blip is back within seconds; a refused key
        // or a changed host key is not, and is reported at once.
        let mut waits = RECONNECT_BACKOFF.iter();
        let fresh = loop {
            match open_master(&self.config).await {
                Ok(session) => break Arc::new(session),
                Err(e) => match waits.next() {
                    Some(wait) if is_transient(&e) => tokio::time::sleep(*wait).await,
                    _ => {
                        return Err(e.with_next_step(NextStep::Recover {
                            env: None,
                            first: Some(format!(
                                "the SSH connection to {} dropped and could not be opened again; wait until the host answers",
                                self.location
                            )),
                        }))
                    }
                },
            }
        };
        let forwards = self
            .forwards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (remote, local) in &forwards {
            // The dead master's listener left its socket file behind.
            let _ = std::fs::remove_file(local);
            request_forward(&fresh, &self.location, remote, local).await?;
        }
        let mut slot = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            // Closed meanwhile: stay closed.
            return Err(closed(&self.location));
        }
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    fn session(&self) -> Result<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| closed(&self.location))
    }

    /// Forwards a unix socket on the remote host (e.g. `/var/run/docker.sock`) to a
    /// new unix socket at `local`, over the same master connection: how a remote
    /// Docker engine is reached without exposing it on the network.
    pub async fn forward_unix_socket(&self, remote: &Path, local: &Path) -> Result<()> {
        let session = self.session()?;
        request_forward(&session, &self.location, remote, local).await?;
        self.forwards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((remote.to_path_buf(), local.to_path_buf()));
        Ok(())
    }

    /// The master connection's control socket: for diagnostics by hand
    /// (`ssh -S <path> -O check <host>`). `None` once closed.
    pub fn control_socket(&self) -> Option<PathBuf> {
        self.session()
            .ok()
            .map(|s| s.control_socket().to_path_buf())
    }

    /// Closes the master connection. Later commands fail; closing twice is a no-op.
    pub async fn close(&self) -> Result<()> {
        let session = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(session) = session else {
            return Ok(());
        };
        match Arc::try_unwrap(session) {
            Ok(session) => session.close().await.map_err(|e| {
                Error::part(
                    "ssh close",
                    &self.location,
                    format!("closing the SSH connection: {}", error_chain(&e)),
                )
            }),
            // A command still holds it: the master shuts down when the last one drops.
            Err(_) => Ok(()),
        }
    }
}

#[async_trait]
impl Shell for SshShell {
    fn location(&self) -> &str {
        &self.location
    }

    async fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
        let started = std::time::Instant::now();
        let result = self.run_once(cmd, stdin).await;
        if std::env::var_os(TRACE_VAR).is_some() {
            eprintln!("{}", trace_line(cmd, started.elapsed()));
        }
        result
    }
}

/// When set, every command run over SSH prints one line to stderr: its round trip
/// in milliseconds and the command (redacted, as in logs; long ones shortened).
/// For finding where a run's time goes (`script/bench-pm2-rollback` uses it).
const TRACE_VAR: &str = "DEPLOYKIT_TRACE_SSH";

fn trace_line(cmd: &Cmd, took: std::time::Duration) -> String {
    let text = cmd
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let chars: Vec<char> = text.chars().collect();
    let shown = if chars.len() > 200 {
        let head: String = chars[..80].iter().collect();
        let tail: String = chars[chars.len() - 110..].iter().collect();
        format!("{head} … {tail}")
    } else {
        text
    };
    format!("[ssh-trace] {:>6} ms {shown}", took.as_millis())
}

impl SshShell {
    /// One command, sent again on a new connection when the master died before it
    /// reached the host.
    async fn run_once(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
        let session = self.session()?;
        match self.run_on(&session, cmd, stdin).await {
            Attempt::Done(result) => result,
            Attempt::NeverStarted(e) => {
                if session.check().await.is_ok() {
                    return Err(self.not_started(cmd, &e));
                }
                // The master is gone and the command never reached the host: send it
                // again on a new connection.
                let fresh = self.reconnect(&session).await?;
                match self.run_on(&fresh, cmd, stdin).await {
                    Attempt::Done(result) => result,
                    Attempt::NeverStarted(e) => Err(self.not_started(cmd, &e)),
                    Attempt::CutOff(e) => Err(self.lost(cmd, &e)),
                }
            }
            Attempt::CutOff(e) => {
                let err = self.lost(cmd, &e);
                if session.check().await.is_err() {
                    // It may have run, so it is not sent again; what follows gets a
                    // new connection (a failure to open one shows up there).
                    let _ = self.reconnect(&session).await;
                }
                Err(err)
            }
        }
    }
}

/// Opens a master connection: checks the host key and authenticates.
async fn open_master(config: &SshConfig) -> Result<Session> {
    let mut builder = SessionBuilder::default();
    builder
        .port(config.port)
        .known_hosts_check(match config.host_keys {
            HostKeyPolicy::Strict => KnownHosts::Strict,
            HostKeyPolicy::AcceptNew => KnownHosts::Add,
        })
        .connect_timeout(config.connect_timeout.max(Duration::from_secs(1)))
        .server_alive_interval(Duration::from_secs(15))
        // A deploy killed with SIGKILL never closes its master: let the master
        // exit by itself once nothing has used it for 10 minutes (longer than any
        // quiet stretch of a run, such as a health deadline).
        .control_persist(ControlPersist::IdleFor(
            NonZeroUsize::new(600).expect("600 is not zero"),
        ))
        .control_directory(std::env::temp_dir());
    if let Some(user) = &config.user {
        builder.user(user.clone());
    }
    if let SshAuth::KeyFile(key) = &config.auth {
        builder.keyfile(key);
    }
    if let Some(file) = &config.known_hosts_file {
        builder.user_known_hosts_file(file);
    }
    builder
        .connect_mux(&config.host)
        .await
        .map_err(|e| connect_error(config, &e))
}

/// Pauses between attempts to open a new master after the old one died: about 7 s
/// in all, enough for a restarting sshd, short enough not to stall a rollback.
const RECONNECT_BACKOFF: [Duration; 4] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

fn closed(location: &str) -> Error {
    Error::part("ssh", location, "the SSH connection was already closed")
        .with_hint("connect again for the next run")
}

async fn request_forward(
    session: &Session,
    location: &str,
    remote: &Path,
    local: &Path,
) -> Result<()> {
    session
        .request_port_forward(ForwardType::Local, local, remote)
        .await
        .map_err(|e| {
            Error::part(
                "ssh forward",
                location,
                format!(
                    "cannot forward remote socket {} to {}: {}",
                    remote.display(),
                    local.display(),
                    error_chain(&e)
                ),
            )
            .with_hint(
                "check that the remote socket exists and the SSH user may open it, that the local path's directory exists and the path is free, and that sshd allows forwarding (AllowStreamLocalForwarding)",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ssh_trace_shows_no_secret_and_shortens_long_commands() {
        let cmd = Cmd::new("pm2")
            .arg("startOrReload")
            .env("DATABASE_URL", "postgres://app:hunter2@db/app");
        let line = trace_line(&cmd, std::time::Duration::from_millis(42));
        assert!(line.starts_with("[ssh-trace]     42 ms "), "{line}");
        assert!(line.contains("pm2 startOrReload"), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
        let long = Cmd::new("sh").arg("-c").arg("x".repeat(500)).arg("the-end");
        let line = trace_line(&long, std::time::Duration::ZERO);
        assert!(line.contains(" … ") && line.ends_with("the-end"), "{line}");
        assert!(line.chars().count() < 230, "{line}");
    }

    #[tokio::test]
    async fn password_auth_is_refused_with_an_explanation() {
        let mut config = SshConfig::new("127.0.0.1").user("deploy");
        config.auth = SshAuth::Password;
        let err = SshShell::connect(&config).await.unwrap_err().to_string();
        assert!(
            err.contains("password authentication is not supported"),
            "{err}"
        );
        assert!(err.contains("ssh-keygen"), "{err}");
        assert!(err.contains("deploy@127.0.0.1:22"), "{err}");
    }

    #[tokio::test]
    async fn hosts_and_users_that_look_like_options_are_refused() {
        for host in ["-oProxyCommand=x", "a b", "", "h;id"] {
            assert!(
                SshShell::connect(&SshConfig::new(host)).await.is_err(),
                "{host:?}"
            );
        }
        let err = SshShell::connect(&SshConfig::new("h").user("-x"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("ssh user"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_key_file_is_named() {
        let config = SshConfig::new("127.0.0.1").key_file("/nonexistent/deploy_key");
        let err = SshShell::connect(&config).await.unwrap_err().to_string();
        assert!(err.contains("/nonexistent/deploy_key"), "{err}");
    }
}
