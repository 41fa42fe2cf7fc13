//! Where and how to connect: the host, the user and how they authenticate, host
//! key checking, refusing values `ssh` would read as options.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

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
    pub(super) fn validate(&self) -> Result<()> {
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
}
