//! An environment's `hooks` from the config → core's [`Hooks`]: local hooks run in
//! the project's directory on this machine, host hooks on the run's own host
//! shells (the SSH connections the target uses), in the target's `deploy_to`, so
//! `./current/scripts/x.sh` names the live release's script.

use std::sync::Arc;

use deploykit_core::{Hooks, LocalShell, Shell, ShellHookRunner};

use crate::config::{Environment, LoadedConfig, TargetConfig};
use crate::wiring::Parts;

/// The environment's hooks and their runner, if it has any.
pub fn hooks(loaded: &LoadedConfig, env: &Environment, parts: &Parts) -> Option<Hooks> {
    if env.hooks.is_empty() {
        return None;
    }
    let (hosts, cwd): (Vec<Arc<dyn Shell>>, _) = match &env.target {
        Some(TargetConfig::Local { deploy_to, .. }) => (
            vec![Arc::new(LocalShell::new())],
            Some(loaded.resolve(deploy_to)),
        ),
        Some(TargetConfig::Pm2(pm2)) => (
            parts.hosts.iter().map(|(_, h)| h.shell()).collect(),
            Some(pm2.deploy_to.clone()),
        ),
        _ => (parts.hosts.iter().map(|(_, h)| h.shell()).collect(), None),
    };
    let runner = ShellHookRunner::new(Arc::new(LocalShell::new()))
        .local_cwd(loaded.base.clone())
        .hosts(hosts, cwd);
    Some(Hooks {
        list: env.hooks.iter().map(|h| h.to_hook()).collect(),
        runner: Arc::new(runner),
    })
}
