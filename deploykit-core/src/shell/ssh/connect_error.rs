//! Why a connect failed, in words a human can act on: the one place that reads
//! `ssh`'s own messages, and decides from them whether trying again may help.

use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::error_chain::error_chain;

use super::{SshAuth, SshConfig};

/// Whether a failed connect may succeed if tried again soon: decided by its kind,
/// which [`classify`] set from ssh's words, the one place that reads them.
pub(super) fn is_transient(error: &Error) -> bool {
    error.kind() == ErrorKind::Transient
}

pub(super) fn check_key_file(path: &Path, location: &str) -> Result<()> {
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
pub(super) fn connect_error(config: &SshConfig, error: &openssh::Error) -> Error {
    connect_failure(config, &error_chain(error))
}

/// The error for a connect that failed with `ssh`'s own words `detail`.
pub(super) fn connect_failure(config: &SshConfig, detail: &str) -> Error {
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
pub(super) fn classify(
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
pub(super) fn explain(
    detail: &str,
    config: &SshConfig,
    known_hosts: &str,
    keyscan: &str,
) -> (String, String) {
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
