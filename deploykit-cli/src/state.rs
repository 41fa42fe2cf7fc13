//! Which state store an environment uses (`[environments.X.state]`), and opening it.
//!
//! The default follows where the environment runs: a PM2 environment and a
//! Compose engine over `ssh://` keep their journals, history and lock on the host
//! (a CI runner is thrown away after each job; the host is not), everything else
//! keeps today's files under `state_dir`. With several PM2 hosts the state lives on
//! ONE of them (`state.host`, else the first in config order): a second copy would
//! need consensus between hosts to stay true, and a down state host blocks the
//! lock anyway, so preflight refuses before any side effect when it is down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deploykit_core::shell::SshShell;
use deploykit_core::{FileLock, HostStore, LocalShell, LocalStore, Shell, StateStore};

use crate::config::{Environment, LoadedConfig, StoreKind, TargetConfig};
use crate::hosts;
use crate::wiring::{Parts, WiringError};

/// Where an environment's state lives, decided from its config alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// Files under the project's `state_dir`.
    Local,
    /// Files under `dir` on the host `spec` (a PM2 host as written in
    /// `target.hosts`, or the `ssh://` engine's `user@host[:port]`).
    Host {
        /// The host.
        spec: String,
        /// The state directory there (relative: under the SSH user's home).
        dir: PathBuf,
    },
}

/// The state directory of a Compose project on its SSH host: under the SSH
/// user's home, since the compose files need not live on the host.
pub fn compose_state_dir(project: &str) -> PathBuf {
    PathBuf::from(".deploykit/compose").join(project)
}

/// Decides where `name`'s state lives.
pub fn choice(name: &str, env: &Environment) -> Result<StoreChoice, WiringError> {
    let ssh_compose = match &env.target {
        Some(TargetConfig::Compose(c)) => c
            .host
            .as_deref()
            .and_then(|h| h.strip_prefix("ssh://"))
            .map(|spec| (spec.to_string(), c.project.clone())),
        _ => None,
    };
    let default = match &env.target {
        Some(TargetConfig::Pm2(_)) => StoreKind::Hosts,
        Some(TargetConfig::Compose(_)) if ssh_compose.is_some() => StoreKind::Hosts,
        _ => StoreKind::Local,
    };
    let kind = env.state.store.unwrap_or(default);
    if kind == StoreKind::Local {
        if let Some(h) = &env.state.host {
            return Err(WiringError(format!(
                "environment {name}: state.host = {h:?} needs state.store = \"hosts\""
            )));
        }
        return Ok(StoreChoice::Local);
    }
    match (&env.target, ssh_compose) {
        (Some(TargetConfig::Pm2(pm2)), _) => {
            let spec = match &env.state.host {
                Some(h) if pm2.hosts.contains(h) => h.clone(),
                Some(h) => {
                    return Err(WiringError(format!(
                        "environment {name}: state.host = {h:?} is not one of target.hosts {:?}",
                        pm2.hosts
                    )))
                }
                None => pm2.hosts.first().cloned().ok_or_else(|| {
                    WiringError(format!("environment {name}: target.hosts is empty"))
                })?,
            };
            Ok(StoreChoice::Host {
                spec,
                dir: pm2.deploy_to.join(".deploykit"),
            })
        }
        (_, Some((spec, project))) => {
            if let Some(h) = env.state.host.as_ref().filter(|h| **h != spec) {
                return Err(WiringError(format!(
                    "environment {name}: state.host = {h:?}: a Compose environment keeps its state on its engine's host {spec:?}"
                )));
            }
            Ok(StoreChoice::Host {
                spec,
                dir: compose_state_dir(&project),
            })
        }
        _ => Err(WiringError(format!(
            "environment {name}: state.store = \"hosts\" needs a PM2 target or a Compose engine over ssh://; use state.store = \"local\""
        ))),
    }
}

/// An opened store, with the SSH connection it opened itself (if any) to close.
pub struct OpenedStore {
    /// The store.
    pub store: Arc<dyn StateStore>,
    own: Option<Arc<SshShell>>,
}

impl OpenedStore {
    /// Closes the connection this store opened (not one borrowed from the parts).
    pub async fn close(&self) {
        if let Some(ssh) = &self.own {
            if let Err(e) = ssh.close().await {
                eprintln!("warning: closing the SSH connection to the state host: {e}");
            }
        }
    }
}

/// Opens `name`'s state store, over the parts' connection to the state host when
/// `parts` has one, else over a connection of its own (commands that only read
/// state: `history`, `recover`'s listing, `state import`).
pub async fn open(
    loaded: &LoadedConfig,
    name: &str,
    env: &Environment,
    parts: Option<&Parts>,
) -> Result<OpenedStore, WiringError> {
    let (spec, dir) = match choice(name, env)? {
        StoreChoice::Local => {
            let lock = loaded
                .state_dir()
                .join("locks")
                .join(format!("{name}.lock"));
            return Ok(OpenedStore {
                store: Arc::new(LocalStore::new(
                    loaded.journals(name),
                    Arc::new(FileLock::new(lock)),
                )),
                own: None,
            });
        }
        StoreChoice::Host { spec, dir } => (spec, dir),
    };
    let borrowed: Option<Arc<dyn Shell>> = parts.and_then(|p| {
        p.hosts
            .iter()
            .find(|(n, _)| *n == spec)
            .map(|(_, h)| h.shell())
            .or_else(|| {
                p.compose
                    .as_ref()
                    .and_then(|c| c.ssh.clone())
                    .map(|s| s as Arc<dyn Shell>)
            })
    });
    let (shell, own) = match borrowed {
        Some(s) => (s, None),
        None => connect(loaded, name, env, &spec).await?,
    };
    Ok(OpenedStore {
        store: Arc::new(HostStore::new(shell, dir, name)),
        own,
    })
}

async fn connect(
    loaded: &LoadedConfig,
    name: &str,
    env: &Environment,
    spec: &str,
) -> Result<(Arc<dyn Shell>, Option<Arc<SshShell>>), WiringError> {
    let config = match &env.target {
        Some(TargetConfig::Pm2(pm2)) => hosts::ssh_config(name, spec, pm2, &loaded.base)?,
        Some(TargetConfig::Compose(c)) => {
            let mut config = hosts::parse_ssh(name, spec)?.connect_timeout(Duration::from_secs(10));
            if let Some(k) = &c.key_file {
                config = config.key_file(loaded.resolve(k));
            }
            if let Some(k) = &c.known_hosts {
                config = config.known_hosts_file(loaded.resolve(k));
            }
            Some(config)
        }
        _ => None,
    };
    let Some(config) = config else {
        let local: Arc<dyn Shell> = Arc::new(LocalShell::new());
        return Ok((local, None));
    };
    let ssh = SshShell::connect(&config)
        .await
        .map_err(|e| unreachable(name, spec, e))?;
    let ssh = Arc::new(ssh);
    Ok((ssh.clone(), Some(ssh)))
}

/// The state host did not answer: nothing was changed, and nothing can be until it does.
pub fn unreachable(name: &str, spec: &str, e: impl std::fmt::Display) -> WiringError {
    WiringError(format!(
        "environment {name}: cannot reach the state host {spec}, which keeps the environment's journals and deploy lock: {e}. \
         Nothing was changed. Bring {spec} back (or, for PM2, name another host with state.host after moving its .deploykit/), then retry"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(toml_text: &str) -> Environment {
        toml::from_str(toml_text).unwrap()
    }

    const PM2: &str = r#"
[target]
kind = "pm2"
hosts = ["deploy@web1:22", "deploy@web2:22"]
deploy_to = "/srv/app"
app = "web"
repo = "git@example.com:me/app.git"
"#;

    #[test]
    fn pm2_keeps_its_state_on_the_first_host_unless_told() {
        assert_eq!(
            choice("prod", &env(PM2)).unwrap(),
            StoreChoice::Host {
                spec: "deploy@web1:22".into(),
                dir: "/srv/app/.deploykit".into()
            }
        );
        let second = env(&format!("{PM2}[state]\nhost = \"deploy@web2:22\"\n"));
        assert!(
            matches!(choice("prod", &second).unwrap(), StoreChoice::Host { spec, .. } if spec == "deploy@web2:22")
        );
        let stranger = env(&format!("{PM2}[state]\nhost = \"deploy@web9:22\"\n"));
        let err = choice("prod", &stranger).unwrap_err().to_string();
        assert!(err.contains("not one of target.hosts"), "{err}");
        let local = env(&format!("{PM2}[state]\nstore = \"local\"\n"));
        assert_eq!(choice("prod", &local).unwrap(), StoreChoice::Local);
    }

    #[test]
    fn compose_over_ssh_keeps_it_on_the_engine_host_and_a_local_engine_locally() {
        let compose = |host: &str| {
            env(&format!(
                "[target]\nkind = \"compose\"\nproject = \"crm\"\nfiles = [\"docker-compose.yml\"]\n\
                 service = \"api\"\nimage = \"crm-api\"\n{host}"
            ))
        };
        assert_eq!(
            choice("prod", &compose("host = \"ssh://deploy@vps:2222\"\n")).unwrap(),
            StoreChoice::Host {
                spec: "deploy@vps:2222".into(),
                dir: ".deploykit/compose/crm".into()
            }
        );
        assert_eq!(choice("prod", &compose("")).unwrap(), StoreChoice::Local);
        let forced = compose("[state]\nstore = \"hosts\"\n");
        let err = choice("prod", &forced).unwrap_err().to_string();
        assert!(
            err.contains("needs a PM2 target or a Compose engine over ssh://"),
            "{err}"
        );
    }

    #[test]
    fn no_target_or_a_local_one_keeps_state_locally() {
        assert_eq!(choice("d", &env("")).unwrap(), StoreChoice::Local);
        let stray = env("[state]\nhost = \"x\"\n");
        assert!(choice("d", &stray).is_err());
    }
}
