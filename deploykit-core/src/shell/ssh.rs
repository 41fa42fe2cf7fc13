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
use tokio::io::AsyncWriteExt;

use crate::error::{Error, ErrorKind, Result};
use crate::error_chain::error_chain;
use crate::next_step::NextStep;

use super::{Cmd, Output, Shell};

/// How host keys are checked. Strict is the default: a host whose key is not
/// already known is refused, so a first connection cannot be intercepted silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// The host key must already be in the known_hosts file (`StrictHostKeyChecking=yes`).
    #[default]
    Strict,
    /// Accept and record the key of a host never seen before; a *changed* key is still
    /// refused (`StrictHostKeyChecking=accept-new`). Only when configured explicitly.
    AcceptNew,
}

/// How the SSH user authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SshAuth {
    /// Whatever `ssh` would use on its own: the agent, `~/.ssh/config`, default keys.
    #[default]
    Default,
    /// Only this private key file (`IdentitiesOnly=yes`).
    KeyFile(PathBuf),
    /// Password authentication: not supported by OpenSSH in batch mode, so connecting
    /// with it fails with an explanation. Kept as a variant so a config that asks for
    /// it gets that explanation instead of a confusing `Permission denied`.
    Password,
}

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SshConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port (22 by default).
    pub port: u16,
    /// Login user; `None` uses `ssh`'s own default.
    pub user: Option<String>,
    /// How to authenticate.
    pub auth: SshAuth,
    /// Host key checking; strict unless configured otherwise.
    pub host_keys: HostKeyPolicy,
    /// A known_hosts file to use instead of `~/.ssh/known_hosts`.
    pub known_hosts_file: Option<PathBuf>,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
}

impl SshConfig {
    /// Port 22, default user and auth, strict host keys, 10 s connect timeout.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: 22,
            user: None,
            auth: SshAuth::Default,
            host_keys: HostKeyPolicy::Strict,
            known_hosts_file: None,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Parses a destination written `[user@]host[:port]`, as config files and
    /// environment variables hold it: one parser, so a bad port is refused the
    /// same way everywhere instead of quietly becoming 22.
    pub fn parse_destination(destination: &str) -> Result<Self> {
        let (user, rest) = match destination.split_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, destination),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => {
                let port = p.parse::<u16>().map_err(|_| Error::Invalid {
                    what: "SSH destination",
                    value: destination.to_string(),
                    reason: format!("bad port {p:?}; write user@host:port"),
                })?;
                (h, port)
            }
            None => (rest, 22),
        };
        let mut config = SshConfig::new(host).port(port);
        if let Some(u) = user {
            config = config.user(u);
        }
        Ok(config)
    }

    /// Sets the port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the login user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Authenticates with only this private key.
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = SshAuth::KeyFile(path.into());
        self
    }

    /// Uses this known_hosts file.
    pub fn known_hosts_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.known_hosts_file = Some(path.into());
        self
    }

    /// Sets the host key policy.
    pub fn host_keys(mut self, policy: HostKeyPolicy) -> Self {
        self.host_keys = policy;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// `user@host:port`, the name errors and logs use.
    pub fn location(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}:{}", self.host, self.port),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    /// Refuses values that `ssh` would read as options or that cannot be a host/user.
    fn validate(&self) -> Result<()> {
        let bad = |what: &'static str, value: &str, reason: &str| Error::Invalid {
            what,
            value: value.chars().take(80).collect(),
            reason: reason.into(),
        };
        let ok_char = |b: u8| b.is_ascii_alphanumeric() || b"-_.:[]%".contains(&b);
        if self.host.is_empty() || self.host.starts_with('-') || !self.host.bytes().all(ok_char) {
            return Err(bad(
                "ssh host",
                &self.host,
                "expected a host name or address (letters, digits, '-', '.', ':'), not starting with '-'",
            ));
        }
        if let Some(user) = &self.user {
            if user.is_empty()
                || user.starts_with('-')
                || !user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(bad(
                    "ssh user",
                    user,
                    "expected letters, digits, '-', '_' or '.', not starting with '-'",
                ));
            }
        }
        Ok(())
    }
}

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

/// How far a command got over one master connection.
enum Attempt {
    /// It ran to the end (or failed in a way unrelated to the connection).
    Done(Result<Output>),
    /// The master could not start it: it never reached the host.
    NeverStarted(openssh::Error),
    /// The connection failed while it ran: it may or may not have run.
    CutOff(openssh::Error),
}

impl SshShell {
    fn lost(&self, cmd: &Cmd, e: &openssh::Error) -> Error {
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

    fn not_started(&self, cmd: &Cmd, e: &openssh::Error) -> Error {
        Error::part(
            "ssh",
            &self.location,
            format!("could not start `{cmd}`: {}", error_chain(e)),
        )
        .with_hint("the command did not run; check the host's sshd (e.g. MaxSessions) and the network, then run the deploy again")
    }

    async fn run_on(&self, session: &Arc<Session>, cmd: &Cmd, stdin: Option<&[u8]>) -> Attempt {
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

/// Whether a failed connect may succeed if tried again soon: decided by its kind,
/// which [`classify`] set from ssh's words, the one place that reads them.
fn is_transient(error: &Error) -> bool {
    error.kind() == ErrorKind::Transient
}

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

fn check_key_file(path: &Path, location: &str) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(Error::part(
            "ssh connect",
            location,
            format!("key file {} is not a file", path.display()),
        )
        .with_hint("point the key file setting at the private key")),
        Err(e) => Err(Error::part(
            "ssh connect",
            location,
            format!("cannot read key file {}: {e}", path.display()),
        )
        .with_hint("check the key file path and its permissions (it must be readable by this user, and not by others)")),
    }
}

/// What went wrong connecting, in words a human can act on.
fn connect_error(config: &SshConfig, error: &openssh::Error) -> Error {
    connect_failure(config, &error_chain(error))
}

/// The error for a connect that failed with `ssh`'s own words `detail`.
fn connect_failure(config: &SshConfig, detail: &str) -> Error {
    let location = config.location();
    let known_hosts = config
        .known_hosts_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.ssh/known_hosts".into());
    let host_for_keyscan = if config.port == 22 {
        config.host.clone()
    } else {
        format!("-p {} {}", config.port, config.host)
    };
    let (what, next, kind) = classify(detail, config, &known_hosts, &host_for_keyscan);
    Error::part("ssh connect", location, format!("{what} ({detail})"))
        .with_hint(next)
        .with_kind(kind)
}

/// Maps `ssh`'s own messages to a cause, a next step and a kind.
///
/// This is the boundary where a remote tool gives only text: `ssh` reports why it
/// could not connect on stderr, not as a code. Every decision about a failed
/// connect (retry or not) is made on the kind returned here, so this function is
/// the only place that reads ssh's words.
fn classify(
    detail: &str,
    config: &SshConfig,
    known_hosts: &str,
    keyscan: &str,
) -> (String, String, ErrorKind) {
    let (what, next) = explain(detail, config, known_hosts, keyscan);
    let d = detail.to_ascii_lowercase();
    let transient = [
        "connection refused",
        "timed out",
        "unreachable",
        "no route to host",
        "connection reset",
        "connection closed",
    ]
    .iter()
    .any(|s| d.contains(s));
    let kind = if transient {
        ErrorKind::Transient
    } else {
        ErrorKind::Failed
    };
    (what, next, kind)
}

/// A cause and a next step for `ssh`'s words `detail`.
fn explain(detail: &str, config: &SshConfig, known_hosts: &str, keyscan: &str) -> (String, String) {
    let d = detail.to_ascii_lowercase();
    if d.contains("remote host identification has changed")
        || d.contains("host key for") && d.contains("has changed")
    {
        (
            "the host's key has CHANGED since it was recorded".into(),
            format!(
                "this may be an attack or a reinstalled server; verify the new key with the host's administrator, then replace its line in {known_hosts}"
            ),
        )
    } else if d.contains("host key verification failed") || d.contains("no matching host key") {
        (
            "the host key is unknown (not in the known_hosts file) and strict host key checking is on".into(),
            format!(
                "verify the host's fingerprint out of band, then add it: `ssh-keyscan {keyscan} >> {known_hosts}`; or, only for a host you trust, set host key checking to accept-new"
            ),
        )
    } else if d.contains("permission denied") {
        let key = match &config.auth {
            SshAuth::KeyFile(p) => format!("the key {}", p.display()),
            _ => "the available keys (agent, ~/.ssh)".into(),
        };
        (
            format!(
                "authentication was refused: {key} is not accepted for user {}",
                config.user.as_deref().unwrap_or("(default)")
            ),
            "check the user name and that the matching public key is in that user's ~/.ssh/authorized_keys on the host (password login is not supported)".into(),
        )
    } else if d.contains("connection refused") {
        (
            format!("nothing accepts SSH connections on port {}", config.port),
            "check the host and port, and that sshd is running".into(),
        )
    } else if d.contains("timed out") {
        (
            format!(
                "the host did not answer within {}s",
                config.connect_timeout.as_secs()
            ),
            "check the address, the network path and any firewall between here and the host".into(),
        )
    } else if d.contains("could not resolve") || d.contains("name or service not known") {
        (
            "the host name does not resolve".into(),
            "check the host name (DNS, /etc/hosts)".into(),
        )
    } else if d.contains("network is unreachable") || d.contains("no route to host") {
        (
            "the host is unreachable".into(),
            "check the address and the network path".into(),
        )
    } else {
        (
            "the SSH connection could not be established".into(),
            format!(
                "try `ssh -p {} {}{}` by hand to see why",
                config.port,
                config
                    .user
                    .as_deref()
                    .map(|u| format!("{u}@"))
                    .unwrap_or_default(),
                config.host
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_user_host_and_port() {
        let c = SshConfig::parse_destination("deploy@app.example.com:2222").unwrap();
        assert_eq!(
            (c.user.as_deref(), c.host.as_str(), c.port),
            (Some("deploy"), "app.example.com", 2222)
        );
        let c = SshConfig::parse_destination("app.example.com").unwrap();
        assert_eq!(
            (c.user, c.host.as_str(), c.port),
            (None, "app.example.com", 22)
        );
        let err = SshConfig::parse_destination("deploy@app:22x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad port \"22x\""), "{err}");
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

    #[test]
    fn only_network_failures_are_retried_when_reconnecting() {
        let config = SshConfig::new("h").user("u");
        let failed = |detail: &str| connect_failure(&config, detail);
        assert!(is_transient(&failed(
            "connect to host h port 22: Connection refused"
        )));
        assert!(is_transient(&failed(
            "ssh: connect to host h port 22: Connection timed out"
        )));
        assert!(is_transient(&failed("Connection reset by peer")));
        assert!(is_transient(&failed(
            "ssh: connect to host h port 22: Network is unreachable"
        )));
        assert!(!is_transient(&failed(
            "u@h: Permission denied (publickey)."
        )));
        assert!(!is_transient(&failed(
            "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@"
        )));
    }

    #[test]
    fn the_retry_decides_on_the_kind_not_on_words_in_the_message() {
        // A failure whose text merely mentions a network word is not retried: only
        // the one classification of ssh's output marks a failure transient.
        let worded = Error::part("ssh connect", "u@h:22", "user `timed out` has no key");
        assert!(!is_transient(&worded));
        let marked = Error::part("ssh connect", "u@h:22", "x").with_kind(ErrorKind::Transient);
        assert!(is_transient(&marked));
    }

    #[test]
    fn connect_failures_are_explained() {
        let config = SshConfig::new("h")
            .port(2222)
            .user("u")
            .key_file("/k")
            .known_hosts_file("/kh");
        let (what, next, _) = classify(
            "failed to connect: Host key verification failed.",
            &config,
            "/kh",
            "-p 2222 h",
        );
        assert!(what.contains("unknown"), "{what}");
        assert!(next.contains("ssh-keyscan -p 2222 h >> /kh"), "{next}");
        let (what, next, _) = classify("u@h: Permission denied (publickey).", &config, "/kh", "");
        assert!(what.contains("/k is not accepted for user u"), "{what}");
        assert!(next.contains("authorized_keys"), "{next}");
        let (what, _, _) = classify(
            "connect to host h port 2222: Connection refused",
            &config,
            "/kh",
            "",
        );
        assert!(what.contains("port 2222"), "{what}");
        let (what, _, _) = classify(
            "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@",
            &config,
            "/kh",
            "",
        );
        assert!(what.contains("CHANGED"), "{what}");
    }
}
