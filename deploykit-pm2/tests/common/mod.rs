//! What the test rig (script/rig/sshd.sh, script/rig/pm2.sh) started, read from its
//! environment variables. Missing parts fail loudly under `CI`, skip otherwise.
#![allow(dead_code)]

use std::path::PathBuf;

use deploykit_core::shell::{SshConfig, SshShell};

/// The SSH servers and user the rig started.
#[derive(Debug, Clone)]
pub struct SshRig {
    pub host: String,
    pub ports: Vec<u16>,
    pub user: String,
    pub key: PathBuf,
    pub wrong_key: PathBuf,
    pub known_hosts: PathBuf,
}

impl SshRig {
    /// The rig's SSH servers, or `None` (after saying why) outside CI.
    pub fn get() -> Option<Self> {
        let vars = [
            "DEPLOYKIT_RIG_SSH_HOST",
            "DEPLOYKIT_RIG_SSH_PORTS",
            "DEPLOYKIT_RIG_SSH_USER",
            "DEPLOYKIT_RIG_SSH_KEY",
            "DEPLOYKIT_RIG_SSH_WRONG_KEY",
            "DEPLOYKIT_RIG_SSH_KNOWN_HOSTS",
        ];
        let values: Vec<Option<String>> = vars.iter().map(|v| std::env::var(v).ok()).collect();
        if let Some(missing) = vars.iter().zip(&values).find(|(_, v)| v.is_none()) {
            return missing_part(&format!("{} is not set (run via script/test)", missing.0));
        }
        let v: Vec<String> = values.into_iter().map(Option::unwrap).collect();
        Some(Self {
            host: v[0].clone(),
            ports: v[1]
                .split(',')
                .map(|p| p.trim().parse().expect("DEPLOYKIT_RIG_SSH_PORTS"))
                .collect(),
            user: v[2].clone(),
            key: v[3].clone().into(),
            wrong_key: v[4].clone().into(),
            known_hosts: v[5].clone().into(),
        })
    }

    /// A strict config for instance `n` with the accepted key.
    pub fn config(&self, n: usize) -> SshConfig {
        SshConfig::new(&self.host)
            .port(self.ports[n])
            .user(&self.user)
            .key_file(&self.key)
            .known_hosts_file(&self.known_hosts)
    }

    /// Connects to instance `n`.
    pub async fn connect(&self, n: usize) -> SshShell {
        SshShell::connect(&self.config(n))
            .await
            .unwrap_or_else(|e| panic!("connecting to the rig's sshd: {e}"))
    }
}

/// The PM2 side of the rig: a root where the SSH user may create deploy dirs and
/// PM2 homes (the rig's stop kills every daemon under it).
#[derive(Debug, Clone)]
pub struct Pm2Rig {
    pub root: PathBuf,
}

impl Pm2Rig {
    pub fn get() -> Option<Self> {
        match std::env::var("DEPLOYKIT_RIG_PM2_ROOT") {
            Ok(root) => Some(Self { root: root.into() }),
            Err(_) => missing_part("DEPLOYKIT_RIG_PM2_ROOT is not set (run via script/test)"),
        }
    }
}

/// Fails under CI, otherwise prints why the test is skipped.
pub fn missing_part<T>(why: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("test rig part missing under CI: {why}");
    }
    eprintln!("skipped: {why}");
    None
}

pub mod app;
pub mod recording;

/// Both rig parts, or `None` (after saying why) outside CI.
pub fn rigs() -> Option<(SshRig, Pm2Rig)> {
    Some((SshRig::get()?, Pm2Rig::get()?))
}
