//! Turning `user@host[:port]` strings from the config into shells.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deploykit_core::shell::{HostKeyPolicy, SshAuth, SshConfig, SshShell};
use deploykit_core::{LocalShell, Shell};

use crate::config::{Pm2Config, ProbeConfig};
use crate::wiring::WiringError;

/// One host's shell; SSH ones are kept so the run can close their master connection.
pub enum HostShell {
    /// This machine.
    Local(Arc<LocalShell>),
    /// A remote host over one multiplexed SSH connection.
    Ssh(Arc<SshShell>),
}

impl HostShell {
    /// As a plain shell.
    pub fn shell(&self) -> Arc<dyn Shell> {
        match self {
            HostShell::Local(s) => s.clone(),
            HostShell::Ssh(s) => s.clone(),
        }
    }
}

/// Parses `user@host[:port]` into a strict SSH config.
pub fn parse_ssh(env: &str, spec: &str) -> Result<SshConfig, WiringError> {
    SshConfig::parse_destination(spec).map_err(|e| WiringError(format!("environment {env}: {e}")))
}

/// Parses `user@host[:port]` (or `local`) into an SSH config for `pm2`'s settings.
pub fn ssh_config(
    env: &str,
    spec: &str,
    pm2: &Pm2Config,
    base: &std::path::Path,
) -> Result<Option<SshConfig>, WiringError> {
    if spec == "local" {
        return Ok(None);
    }
    let mut config =
        parse_ssh(env, spec)?.connect_timeout(Duration::from_secs(pm2.connect_timeout_secs));
    let resolve = |p: &PathBuf| crate::config::resolve_path(base, p);
    if let Some(k) = &pm2.key_file {
        config = config.key_file(resolve(k));
    }
    if let Some(k) = &pm2.known_hosts {
        config = config.known_hosts_file(resolve(k));
    }
    if pm2.accept_new_host_keys {
        config = config.host_keys(HostKeyPolicy::AcceptNew);
    }
    if pm2.password.is_some() {
        config.auth = SshAuth::Password;
    }
    Ok(Some(config))
}

/// Connects to every host (one master connection each), failing on the first that
/// does not answer: nothing has changed yet.
pub async fn connect(
    env: &str,
    pm2: &Pm2Config,
    base: &std::path::Path,
) -> Result<Vec<(String, HostShell)>, WiringError> {
    if pm2.hosts.is_empty() {
        return Err(WiringError(format!(
            "environment {env}: target.hosts is empty"
        )));
    }
    let mut shells = Vec::new();
    for spec in &pm2.hosts {
        match ssh_config(env, spec, pm2, base)? {
            None => shells.push((spec.clone(), HostShell::Local(Arc::new(LocalShell::new())))),
            Some(config) => {
                let shell = SshShell::connect(&config).await.map_err(|e| {
                    WiringError(format!("environment {env}: cannot reach {spec}: {e}"))
                })?;
                shells.push((spec.clone(), HostShell::Ssh(Arc::new(shell))));
            }
        }
    }
    Ok(shells)
}

/// The address part of a host spec (`user@host[:port]`, `[v6]:port`, `local`):
/// what a probe's `{host}` stands for.
pub fn address(spec: &str) -> String {
    if spec == "local" {
        return "127.0.0.1".into();
    }
    let rest = spec.rsplit_once('@').map_or(spec, |(_, h)| h);
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_string();
    }
    match rest.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
        _ => rest.to_string(),
    }
}

/// Whether a probe's address holds `{host}` (one probe per host, each gating its
/// host's batch in a rolling deploy).
pub fn names_host(probe: &ProbeConfig) -> bool {
    match probe {
        ProbeConfig::Http { url, .. } => url.contains("{host}"),
        ProbeConfig::Tcp { address } => address.contains("{host}"),
        _ => false,
    }
}

/// `probe` with `{host}` replaced by the address of the host spec `host`.
pub fn for_host(probe: &ProbeConfig, host: &str) -> ProbeConfig {
    let at = address(host);
    let mut one = probe.clone();
    match &mut one {
        ProbeConfig::Http { url, .. } => *url = url.replace("{host}", &at),
        ProbeConfig::Tcp { address } => *address = address.replace("{host}", &at),
        _ => {}
    }
    one
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probes_host_is_the_address_of_each_host_spec() {
        assert_eq!(address("deploy@web1.example.com:2222"), "web1.example.com");
        assert_eq!(address("web2"), "web2");
        assert_eq!(address("u@[::1]:22"), "::1");
        assert_eq!(address("local"), "127.0.0.1");
        let probe = ProbeConfig::Http {
            url: "http://{host}:3000/api/health".into(),
            expect_status: 200,
            max_latency_ms: 1000,
            json_status: false,
        };
        assert!(names_host(&probe));
        let ProbeConfig::Http { url, .. } = for_host(&probe, "deploy@10.0.0.7") else {
            unreachable!()
        };
        assert_eq!(url, "http://10.0.0.7:3000/api/health");
        assert!(!names_host(&ProbeConfig::Tcp {
            address: "db:5432".into()
        }));
    }

    #[test]
    fn tilde_in_key_file_and_known_hosts_means_the_home_directory() {
        let pm2: crate::config::Pm2Config = toml::from_str(
            r#"
hosts = ["deploy@example.com"]
deploy_to = "/srv/app"
app = "web"
repo = "git@example.com:me/app.git"
key_file = "~/.ssh/deploy_key"
known_hosts = "~/.ssh/known_hosts"
"#,
        )
        .unwrap();
        let base = std::path::Path::new("/srv/project");
        let config = ssh_config("staging", "deploy@example.com", &pm2, base)
            .unwrap()
            .unwrap();
        let home =
            std::path::PathBuf::from(std::env::var_os("HOME").expect("tests run with HOME set"));
        assert_eq!(
            config.known_hosts_file.as_deref(),
            Some(home.join(".ssh/known_hosts").as_path())
        );
        assert_eq!(
            config.auth,
            deploykit_core::shell::SshAuth::KeyFile(home.join(".ssh/deploy_key"))
        );
    }
}
